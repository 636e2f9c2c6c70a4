"""Protocol settings of a study (``study.yaml``): defaults, loading and validation with exact key paths.

Every default below is documented in docs/study-config.md; a study.yaml overrides any part of it.
Lists (DLT rules, eligibility limits) replace the default list as a whole.
"""
from __future__ import annotations

import copy
import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import yaml

from safety.core.files import load_yaml, unit_conversions
from safety.core.sdtm_map import MapError, validate_rows
from safety.core.vocabulary import (CRS_TERMS, DEFAULT_RESPONSE_ASSESSOR, DLT_WINDOW_END_DAY, DLT_WINDOW_START_DAY,
                                    ICANS_TERMS, NEUROTOXICITY_AE_TERMS, unit_spelling)


class ConfigError(ValueError):
    """A study.yaml that cannot be used; the message names the file and the key."""


class ListOf:
    """The expected type of a list setting whose every entry has type ``item`` (checked by ``_check``)."""

    def __init__(self, item, name: str):
        self.item, self.name = item, name


# AE terms, test codes and response codes are compared as text: a number or a YAML `null` or `no` in such a list
# ended in a traceback half-way through the load, or matched nothing
TEXT_LIST = ListOf(str, "a list of text")


# The cytopenias R6/R9 leave out ("non-haematological"; persisting grade 4 ANC or platelets are R7): the MedDRA PTs
# of SOC Blood and lymphatic system disorders and the haematology investigations (CTCAE terms, those of
# safety/data/lab_terms.csv among them) that name a low blood count or marrow failure, British and US spellings.
# HLH, coagulopathy and haemolysis stay screened: they are not the expected cytopenias (docs/dlt.md).
EXPECTED_HAEM_TERMS = [
    "NEUTROPENIA", "NEUTROPHIL COUNT DECREASED", "THROMBOCYTOPENIA", "PLATELET COUNT DECREASED",
    "ANAEMIA", "ANEMIA", "LEUKOPENIA", "WHITE BLOOD CELL DECREASED", "WHITE BLOOD CELL COUNT DECREASED",
    "LYMPHOPENIA", "LYMPHOCYTE COUNT DECREASED", "CD4 LYMPHOCYTES DECREASED", "B-CELL APLASIA",
    "HYPOGAMMAGLOBULINAEMIA", "HYPOGAMMAGLOBULINEMIA",
    "PANCYTOPENIA", "BICYTOPENIA", "CYTOPENIA", "BONE MARROW FAILURE", "BONE MARROW HYPOCELLULAR",
    "APLASTIC ANAEMIA", "APLASTIC ANEMIA", "AGRANULOCYTOSIS", "GRANULOCYTOPENIA", "GRANULOCYTE COUNT DECREASED",
    "HAEMOGLOBIN DECREASED", "HEMOGLOBIN DECREASED", "HAEMATOCRIT DECREASED", "HEMATOCRIT DECREASED",
    "RED BLOOD CELL COUNT DECREASED", "FEBRILE BONE MARROW APLASIA",
]

DEFAULT_DLT_RULES: list[dict[str, Any]] = [
    {"id": "R1", "type": "fatal_event", "reason": "Grade 5 event not attributed to disease progression"},
    {"id": "R2", "type": "syndrome_grade", "syndrome": "CRS", "min_grade": 4,
     "reason": "CRS grade >= 4"},
    {"id": "R3", "type": "syndrome_grade", "syndrome": "CRS", "min_grade": 3, "max_grade": 3,
     "more_than_hours": 72, "reason": "CRS grade 3 lasting more than 72 hours"},
    {"id": "R4", "type": "syndrome_grade", "syndrome": "ICANS", "min_grade": 4,
     "reason": "ICANS grade >= 4"},
    {"id": "R5", "type": "syndrome_grade", "syndrome": "ICANS", "min_grade": 3, "max_grade": 3,
     "more_than_hours": 72, "reason": "ICANS grade 3 lasting more than 72 hours"},
    {"id": "R6", "type": "ae_grade", "min_grade": 3, "related_only": True, "more_than_days": 7,
     "exclude_terms": ["FEVER", "PYREXIA", "FEBRILE NEUTROPENIA", *EXPECTED_HAEM_TERMS, *CRS_TERMS, *ICANS_TERMS],
     "reason": "Non-haematological grade >= 3 AE, at least possibly related, lasting more than 7 days"},
    {"id": "R7", "type": "cytopenia_persisting", "tests": ["NEUT", "PLAT"], "grade": 4,
     "from_day": 28, "to_day": 35,
     "reason": "Prolonged cytopenia: ANC or platelets still grade 4 at the first lab on or after day 28"},
    # grade 4 counts whatever its duration: R6's "more than 7 days" is for grade 3
    # ICANS grade 4 is R4 (assessments, else the ICANS AE); seizures and encephalopathy are reported as AEs
    {"id": "R8", "type": "ae_grade", "min_grade": 4, "include_terms": list(NEUROTOXICITY_AE_TERMS),
     "reason": "Neurotoxicity grade >= 4 reported as an AE (seizure, encephalopathy, cerebral oedema)"},
    {"id": "R9", "type": "ae_grade", "min_grade": 4, "related_only": True,
     "exclude_terms": ["FEVER", "PYREXIA", "FEBRILE NEUTROPENIA", *EXPECTED_HAEM_TERMS, *CRS_TERMS, *ICANS_TERMS],
     "reason": "Non-haematological grade >= 4 AE, at least possibly related, any duration"},
]

DEFAULTS: dict[str, Any] = {
    "studyid": None,
    "title": None,
    "product": None,
    "product_type": "CAR-T",
    "ctcae_version": "5.0",
    "lab_terms_path": None,  # optional study LBTESTCD -> CTCAE term map (CSV, as safety/data/lab_terms.csv)
    "crs_grading": "ASTCT 2019",
    "icans_grading": "ASTCT 2019",
    "sites": {},          # siteid -> site name
    "data_cuts": [],      # data cuts the sample-data builder loads; informational elsewhere
    "dlt": {
        "window": {"start_day": DLT_WINDOW_START_DAY, "end_day": DLT_WINDOW_END_DAY},
        "rules": DEFAULT_DLT_RULES,
        "progression_terms": ["DISEASE PROGRESSION", "PROGRESSIVE DISEASE", "MALIGNANT NEOPLASM PROGRESSION"],
        # AE terms (AEDECOD or AETERM, upper case) read as CRS / ICANS for subjects without assessment data
        "syndrome_terms": {"CRS": list(CRS_TERMS), "ICANS": list(ICANS_TERMS)},
    },
    "stopping_rule": {
        "method": "bayesian_beta_binomial",  # bayesian_beta_binomial | pocock | boin | three_plus_three
        "event": "dlt",                      # dlt | crs_grade3 | icans_grade3 | crs_icans_grade3 | treatment_related_death
        "prior_a": 0.5,
        "prior_b": 1.5,
        "threshold": 0.25,         # unacceptable toxicity rate p0 (beta-binomial, Pocock) or target (BOIN)
        "posterior_cutoff": 0.90,  # stop when P(p > threshold | data) exceeds this
        "max_n": 24,
        "min_n": 1,                # first evaluable n at which the rule is applied
        "alpha": 0.10,             # Pocock: overall probability of crossing at p0
        "boin_elimination_cutoff": 0.95,
        "boin_phi1": None,         # BOIN highest sub-therapeutic rate; None = 0.6 x target
        "boin_phi2": None,         # BOIN lowest overly toxic rate; None = 1.4 x target
        "boin_cohort_size": 3,     # BOIN escalates from a dose once a first cohort is evaluable (R BOIN default)
        "group_by": "dose_level",  # BOIN / 3+3 decisions per dose_level (as the designs define them) or per cohort
        "dose_order": [],          # dose levels from lowest to highest; empty = by the number in each level's name
    },
    "eligibility": {
        "age": {"min": 18, "max": 70},
        "labs": [],
        "vitals": [],
    },
    # CRS/ICANS inputs built from standard SDTM (safety/ingest/sdtm_assessments.py, docs/input-format.md)
    "sdtm_mapping": {
        "hypotension_sbp_below": 90,  # mmHg, subjects older than 10 years; younger: 70 + 2 x age
        "rows": [],                   # extra rules, columns as safety/data/sdtm_assessment_map.csv
    },
    # Outcomes beyond CRS/ICANS (docs/study-config.md "Outcomes"): response criteria, immune monitoring per
    # product, on-target off-tumour watch list, planned cell doses.
    "response": {
        "criteria": "CR + CRi (acute leukaemia)",  # printed with the ORR
        "responders": ["CR", "CRI"],                 # standardised RS responses counted as response
        "progression": ["PD", "PMD", "RELAPSE", "PROGRESSIVE DISEASE"],
        "assessor": DEFAULT_RESPONSE_ASSESSOR,       # the RSEVAL read when RS names its assessor
        "by_diagnosis": [],  # [{diagnosis_contains, criteria, responders}]: first match wins, else the above
    },
    "immune_monitoring": [
        {"test": "IGG", "label": "IgG", "below": 4.0, "unit": "g/L", "finding": "hypogammaglobulinaemia (IgG < 4 g/L)"},
    ],
    "off_tumour_watch": {
        "label": None,       # e.g. "CD56 (NCAM1) on neural tissue"
        "terms": [],         # AE terms (upper case, AEDECOD or AETERM), substring match
        "socs": [],          # whole system organ classes, e.g. NERVOUS SYSTEM DISORDERS
        "exclude_terms": ["IMMUNE EFFECTOR CELL-ASSOCIATED NEUROTOXICITY SYNDROME", "ICANS", "NEUROTOXICITY"],
        "late_after_day": 30,
    },
    "planned_doses": {},     # dose level -> planned cell dose in the EXDOSU unit of the infusion
}

_ALLOWED = {
    "product_type": {"CAR-T", "CAR-NK", "CAR-ITNK", "TCR-T", "other"},
    "ctcae_version": {"5.0"},
    "crs_grading": {"ASTCT 2019"},
    "icans_grading": {"ASTCT 2019"},
    "stopping_rule.method": {"bayesian_beta_binomial", "pocock", "boin", "three_plus_three"},
    "stopping_rule.event": {"dlt", "crs_grade3", "icans_grade3", "crs_icans_grade3", "treatment_related_death"},
    "stopping_rule.group_by": {"cohort", "dose_level"},
}

DLT_RULE_FIELDS: dict[str, dict[str, type | tuple]] = {
    "fatal_event": {"exclude_progression": bool},
    "syndrome_grade": {"syndrome": str, "min_grade": int, "max_grade": int,
                       "more_than_hours": (int, float), "more_than_days": (int, float)},
    "ae_grade": {"min_grade": int, "related_only": bool, "more_than_days": (int, float),
                 "exclude_terms": TEXT_LIST, "include_terms": TEXT_LIST},
    "cytopenia_persisting": {"tests": TEXT_LIST, "grade": int, "from_day": int, "to_day": int},
}
_DLT_COMMON = {"id": str, "type": str, "reason": str}
# Defaults for optional rule fields (None = criterion not applied), as docs/study-config.md lists them
DLT_RULE_DEFAULTS: dict[str, dict[str, Any]] = {
    "fatal_event": {"exclude_progression": True},
    "syndrome_grade": {"min_grade": 1, "max_grade": None, "more_than_days": None},
    "ae_grade": {"min_grade": 3, "related_only": False, "more_than_days": None, "exclude_terms": [],
                 "include_terms": []},
    "cytopenia_persisting": {"tests": ["NEUT", "PLAT"], "grade": 4, "from_day": 28, "to_day": 35},
}

ELIGIBILITY_LIMIT_FIELDS = {"test": str, "min": (int, float), "max": (int, float),
                            "max_x_uln": (int, float), "inclusive": bool, "label": str, "unit": str}


def _type_name(t) -> str:
    if isinstance(t, ListOf):
        return t.name
    if isinstance(t, tuple):
        return " or ".join(x.__name__ for x in t)
    return t.__name__


def _check(value, expected, path: str, src: str) -> None:
    if isinstance(expected, ListOf):
        if not isinstance(value, list):
            raise ConfigError(f"{src}: '{path}' must be {expected.name}, got {value!r}")
        for i, item in enumerate(value):
            if not isinstance(item, expected.item) or isinstance(item, bool):
                raise ConfigError(f"{src}: '{path}[{i}]' must be {_type_name(expected.item)} "
                                  f"({path} is {expected.name}), got {item!r}")
        return
    ok = isinstance(value, expected) and not (expected in (int, (int, float)) and isinstance(value, bool))
    if not ok:
        raise ConfigError(f"{src}: '{path}' must be {_type_name(expected)}, got {value!r}")


def _merge(defaults: dict, given: dict, path: str, src: str) -> dict:
    out = copy.deepcopy(defaults)
    for key, value in given.items():
        full = f"{path}{key}"
        if key not in defaults:
            raise ConfigError(f"{src}: unknown key '{full}' (allowed: {', '.join(sorted(defaults))})")
        default = defaults[key]
        if isinstance(default, dict) and default and key not in ("sites",):
            if not isinstance(value, dict):
                raise ConfigError(f"{src}: '{full}' must be a mapping, got {value!r}")
            out[key] = _merge(default, value, full + ".", src)
        else:
            out[key] = value
    return out


def _validate_dlt_rules(rules, src: str) -> None:
    if not isinstance(rules, list):
        raise ConfigError(f"{src}: 'dlt.rules' must be a list, got {rules!r}")
    if not rules:  # screening nothing read as 'no DLT' on every page, the pending-DLT warnings gone with it
        raise ConfigError(f"{src}: 'dlt.rules' is empty: no event would be screened as a DLT; leave the key out to "
                          "use rules R1-R9, or list the protocol's rules")
    seen = set()
    for i, rule in enumerate(rules):
        p = f"dlt.rules[{i}]"
        if not isinstance(rule, dict):
            raise ConfigError(f"{src}: '{p}' must be a mapping")
        rtype = rule.get("type")
        if rtype not in DLT_RULE_FIELDS:
            raise ConfigError(f"{src}: '{p}.type' must be one of {', '.join(DLT_RULE_FIELDS)}, got {rtype!r}")
        fields = {**_DLT_COMMON, **DLT_RULE_FIELDS[rtype]}
        for key, value in rule.items():
            if key not in fields:
                raise ConfigError(f"{src}: unknown key '{p}.{key}' for rule type {rtype}")
            _check(value, fields[key], f"{p}.{key}", src)
        if "id" not in rule:
            raise ConfigError(f"{src}: '{p}.id' is required")
        if rule["id"] in seen:
            raise ConfigError(f"{src}: '{p}.id' repeats rule id {rule['id']!r}")
        seen.add(rule["id"])
        if rtype == "syndrome_grade" and rule.get("syndrome") not in ("CRS", "ICANS"):
            raise ConfigError(f"{src}: '{p}.syndrome' must be CRS or ICANS, got {rule.get('syndrome')!r}")
        _validate_rule_values(rule, {**DLT_RULE_DEFAULTS[rtype], **rule}, p, src)


def _validate_rule_values(given: dict, rule: dict, p: str, src: str) -> None:
    """Values no rule can use (a grade 9, a day range backwards, a negative duration), which left the rule empty
    or switched its criterion off; ``rule`` is ``given`` over the type's defaults."""
    for k in ("min_grade", "max_grade", "grade"):
        if rule.get(k) is not None and not 1 <= rule[k] <= 5:
            raise ConfigError(f"{src}: '{p}.{k}' must be a CTCAE grade from 1 to 5, got {rule[k]!r}")
    if rule.get("max_grade") is not None and rule["max_grade"] < rule["min_grade"]:
        raise ConfigError(f"{src}: '{p}.max_grade' ({rule['max_grade']!r}) must not be below "
                          f"'{p}.min_grade' ({rule['min_grade']!r})")
    if "from_day" in rule and rule["from_day"] > rule["to_day"]:
        raise ConfigError(f"{src}: '{p}.from_day' ({rule['from_day']!r}) must not be after "
                          f"'{p}.to_day' ({rule['to_day']!r})")
    for k in ("more_than_hours", "more_than_days"):
        if given.get(k) is not None and given[k] < 0:
            raise ConfigError(f"{src}: '{p}.{k}' must not be negative, got {given[k]!r}")
    if given.get("more_than_hours") is not None and given.get("more_than_days") is not None:
        raise ConfigError(f"{src}: '{p}' gives both more_than_hours and more_than_days; give one of them")


def _validate_limits(limits, path: str, src: str) -> None:
    if not isinstance(limits, list):
        raise ConfigError(f"{src}: '{path}' must be a list, got {limits!r}")
    for i, lim in enumerate(limits):
        p = f"{path}[{i}]"
        if not isinstance(lim, dict) or "test" not in lim:
            raise ConfigError(f"{src}: '{p}' must be a mapping with a 'test' key")
        for key, value in lim.items():
            if key not in ELIGIBILITY_LIMIT_FIELDS:
                raise ConfigError(f"{src}: unknown key '{p}.{key}' (allowed: {', '.join(ELIGIBILITY_LIMIT_FIELDS)})")
            _check(value, ELIGIBILITY_LIMIT_FIELDS[key], f"{p}.{key}", src)
        _min_not_above_max(lim, p, src)
        if "unit" in lim:
            if path != "eligibility.labs":
                raise ConfigError(f"{src}: '{p}.unit' is for lab limits only; write a vital sign's limit in its "
                                  "delivered unit")
            _in_stored_unit(lim, p, src)
        if lim.get("max_x_uln") is not None and lim["max_x_uln"] <= 0:
            raise ConfigError(f"{src}: '{p}.max_x_uln' must be a positive multiple of the ULN, got {lim['max_x_uln']!r}")


def _in_stored_unit(lim: dict, p: str, src: str, levels: tuple[str, ...] = ("min", "max")) -> None:
    """Convert a lab limit's ``levels`` (min and max; an immune marker's below) from its ``unit`` to the unit the load
    stores the test in, by the load's own table (safety/data/unit_conversions.csv); ``unit`` becomes that stored
    unit, so the stored settings validate again unchanged."""
    code = lim["test"].upper()
    rows = [(frm, to, factor) for test, frm, to, factor in unit_conversions() if test == code]
    match = [(to, factor) for frm, to, factor in rows if unit_spelling(frm) == unit_spelling(lim["unit"])]
    if not match:
        known = (f"it converts {code} from {', '.join(sorted({frm for frm, _, _ in rows}))}" if rows else
                 f"it holds no conversion for {code}, which is stored as delivered: leave out 'unit' and write the "
                 "limit in the delivered unit")
        raise ConfigError(f"{src}: '{p}.unit' {lim['unit']!r} is not a unit safety/data/unit_conversions.csv "
                          f"converts: {known}")
    to, factor = match[0]
    for k in levels:
        if lim.get(k) is not None:
            lim[k] = round(lim[k] * factor, 10)  # 1.5 mg/dL is 25.65 umol/L, not 25.650000000000002
    lim["unit"] = to


def _min_not_above_max(limit: dict, p: str, src: str) -> None:
    """A limit whose min is above its max flags every subject."""
    if limit.get("min") is not None and limit.get("max") is not None and limit["min"] > limit["max"]:
        raise ConfigError(f"{src}: '{p}.min' ({limit['min']!r}) must not be above '{p}.max' ({limit['max']!r})")


# Whole numbers in the settings are days, hours, grades and counts: beyond this they are typing errors, and an
# INTEGER column or a date computed from them would overflow half-way through a load.
SETTING_INT_LIMIT = 100_000
# The DLT window lies within a year before and ten years after the infusion; a stopping rule's table is computed for
# every n up to max_n, and early-phase trials enrol tens of subjects.
DLT_WINDOW_DAYS = (-365, 3650)
MAX_N_LIMIT = 1000
# A study.yaml's values with its YAML aliases written out: a protocol holds hundreds; aliases nested within one
# another multiply (ten aliases of ten aliases ... of a list of ten: 10^9 values from 300 bytes).
ALIAS_EXPANSION_LIMIT = 10_000


def _expanded_size(value, path: str, src: str, holding: dict[int, str], sizes: dict[int, int]) -> int:
    """The number of values in ``value`` with every YAML alias written out, each list or mapping walked once
    (``sizes``). Refuses a setting that holds itself: YAML reads ``&p [X, *p]`` as a list inside itself, and
    every walk of the settings went round it until Python's recursion limit, ending the load in a traceback."""
    if not isinstance(value, (dict, list)):
        return 1
    if id(value) in sizes:
        return sizes[id(value)]
    if id(value) in holding:
        raise ConfigError(f"{src}: '{path}' is an alias of '{holding[id(value)] or 'the top level'}', which holds "
                          "it: a YAML alias inside its own anchor repeats without end; write the value out in full")
    holding[id(value)] = path
    if isinstance(value, dict):
        children = [(f"{path}.{k}" if path else str(k), v) for k, v in value.items()]
    else:
        children = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    size = 1 + sum(_expanded_size(v, p, src, holding, sizes) for p, v in children)
    del holding[id(value)]
    sizes[id(value)] = size
    return size


def _refuse_alias_expansion(given: dict, src: str) -> None:
    """Refuse aliases that hold one another to a size no protocol has (a 'billion laughs': nine lines of
    ``a1: &a1 [*a0, *a0, ...]`` are a billion values, and the load walked each one)."""
    sizes: dict[int, int] = {}
    for key, value in given.items():
        size = _expanded_size(value, str(key), src, {}, sizes)
        if size > ALIAS_EXPANSION_LIMIT:
            raise ConfigError(f"{src}: '{key}' holds {size:,} values once its YAML aliases are written out (at "
                              f"most {ALIAS_EXPANSION_LIMIT:,}); write the values out in full")


def _plain_numbers(value, path: str, src: str) -> None:
    """Refuse a number YAML reads as .inf or .nan, or a whole number past SETTING_INT_LIMIT, naming its key: a
    prior of .inf made every n a 'stop'."""
    if isinstance(value, dict):
        for k, v in value.items():
            _plain_numbers(v, f"{path}.{k}" if path else str(k), src)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _plain_numbers(v, f"{path}[{i}]", src)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{src}: '{path}' must be a finite number, got {value!r}")
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > SETTING_INT_LIMIT:
        raise ConfigError(f"{src}: '{path}' must be between -{SETTING_INT_LIMIT:,} and {SETTING_INT_LIMIT:,}, "
                          f"got {value!r}")


def _site_key_error(key, src: str, text: str | None) -> ConfigError:
    """The refusal of a site id that YAML read as other than text (``01:`` is the number 1, ``010:`` is 8): turned
    back into text it would not match SITEID '01'. Named as written in ``text`` (the YAML) when given."""
    written, where = str(key), ""
    if text is not None:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        sites = next((v for k, v in root.value if k.value == "sites"), None)
        # the first key not typed as text is the first such key of the mapping (a merged-in key is not here)
        node = next((k for k, _ in getattr(sites, "value", ()) if k.tag not in
                     ("tag:yaml.org,2002:str", "tag:yaml.org,2002:merge")), None)
        if isinstance(node, yaml.ScalarNode):
            written, where = node.value, f"line {node.start_mark.line + 1}: "
    number = isinstance(key, (int, float)) and not isinstance(key, bool)
    read_as = f"the number {key}" if number else f"{key!r}, not text"
    return ConfigError(f"{src}: {where}sites: key {written} read as {read_as}; write it in quotes ('{written}') so "
                       "it matches SITEID")


def validate(given: dict | None, src: str = "study.yaml", text: str | None = None) -> dict:
    """Return the full settings: defaults overlaid with ``given`` (read from the YAML ``text``, when given, which
    names a key as written). Raises ConfigError naming the key."""
    given = given or {}
    if not isinstance(given, dict):
        raise ConfigError(f"{src}: the top level must be a mapping of settings")
    # the keys first: _merge reads no deeper than the defaults, so an unknown key is named before any walk
    cfg = _merge(DEFAULTS, given, "", src)
    _refuse_alias_expansion(given, src)
    _plain_numbers(given, "", src)
    for path, allowed in _ALLOWED.items():
        node = cfg
        for part in path.split("."):
            node = node[part]
        if isinstance(node, (list, dict)) or node not in allowed:  # a list is not hashable: not a set member
            raise ConfigError(f"{src}: '{path}' must be one of {', '.join(sorted(allowed))}, got {node!r}")
    for key in ("studyid", "title", "product", "lab_terms_path"):
        if cfg[key] is not None and not isinstance(cfg[key], str):
            raise ConfigError(f"{src}: '{key}' must be text, got {cfg[key]!r}")
    if not isinstance(cfg["sites"], dict):
        raise ConfigError(f"{src}: 'sites' must be a mapping of site id to name")
    for key in cfg["sites"]:
        if not isinstance(key, str):
            raise _site_key_error(key, src, text)
    cfg["sites"] = {k: str(v) for k, v in cfg["sites"].items()}
    cuts = []
    if cfg["data_cuts"] is not None and not isinstance(cfg["data_cuts"], list):
        raise ConfigError(f"{src}: 'data_cuts' must be a list of dates YYYY-MM-DD (one per line after '- '), "
                          f"got {str(cfg['data_cuts'])!r}")
    for i, c in enumerate(cfg["data_cuts"] or []):
        try:
            cuts.append(c if isinstance(c, dt.date) else dt.date.fromisoformat(str(c)))
        except ValueError:
            raise ConfigError(f"{src}: 'data_cuts[{i}]' must be a date YYYY-MM-DD, got {c!r}") from None
    cfg["data_cuts"] = [c.isoformat() for c in cuts]
    win = cfg["dlt"]["window"]
    for k in ("start_day", "end_day"):
        _check(win[k], int, f"dlt.window.{k}", src)
    if win["start_day"] > win["end_day"]:
        raise ConfigError(f"{src}: 'dlt.window.start_day' must not be after 'dlt.window.end_day'")
    for k in ("start_day", "end_day"):
        if not DLT_WINDOW_DAYS[0] <= win[k] <= DLT_WINDOW_DAYS[1]:
            raise ConfigError(f"{src}: 'dlt.window.{k}' must be a day from {DLT_WINDOW_DAYS[0]} to "
                              f"{DLT_WINDOW_DAYS[1]}, got {win[k]!r}")
    _validate_dlt_rules(cfg["dlt"]["rules"], src)
    _check(cfg["dlt"]["progression_terms"], TEXT_LIST, "dlt.progression_terms", src)
    for syn, terms in cfg["dlt"]["syndrome_terms"].items():
        _check(terms, TEXT_LIST, f"dlt.syndrome_terms.{syn}", src)
    sr = cfg["stopping_rule"]
    for k in ("prior_a", "prior_b", "threshold", "posterior_cutoff", "alpha", "boin_elimination_cutoff"):
        _check(sr[k], (int, float), f"stopping_rule.{k}", src)
    for k in ("max_n", "min_n", "boin_cohort_size"):
        _check(sr[k], int, f"stopping_rule.{k}", src)
    if not 1 <= sr["boin_cohort_size"] <= 12:
        raise ConfigError(f"{src}: 'stopping_rule.boin_cohort_size' must be from 1 to 12, got {sr['boin_cohort_size']!r}")
    if not 1 <= sr["max_n"] <= MAX_N_LIMIT:
        raise ConfigError(f"{src}: 'stopping_rule.max_n' must be from 1 to {MAX_N_LIMIT}, got {sr['max_n']!r}")
    if not 1 <= sr["min_n"] <= sr["max_n"]:
        raise ConfigError(f"{src}: 'stopping_rule.min_n' must be from 1 to max_n ({sr['max_n']}), got {sr['min_n']!r}")
    _check(sr["dose_order"], ListOf((str, int, float), "a list of dose levels"), "stopping_rule.dose_order", src)
    # a dose level is text (subjects.dose_level): 1 in the YAML is the level '1', as a quoted '1' would be
    sr["dose_order"] = [str(x) for x in sr["dose_order"]]
    if not 0 < sr["threshold"] < 1:
        raise ConfigError(f"{src}: 'stopping_rule.threshold' must be between 0 and 1, got {sr['threshold']!r}")
    for k in ("alpha", "boin_elimination_cutoff"):
        if not 0 < sr[k] < 1:
            raise ConfigError(f"{src}: 'stopping_rule.{k}' must be a probability strictly between 0 and 1 "
                              f"(a percentage as a fraction: 10 % is 0.10), got {sr[k]!r}")
    for k in ("boin_phi1", "boin_phi2"):
        if sr[k] is not None:
            _check(sr[k], (int, float), f"stopping_rule.{k}", src)
            if not 0 < sr[k] < 1:
                raise ConfigError(f"{src}: 'stopping_rule.{k}' must be between 0 and 1, got {sr[k]!r}")
    # BOIN's intervals need 0 < phi1 < target < phi2 < 1 (Liu & Yuan 2015); a default takes 0.6 / 1.4 x target
    if sr["boin_phi1"] is not None and not sr["boin_phi1"] < sr["threshold"]:
        raise ConfigError(f"{src}: 'stopping_rule.boin_phi1' must be below the target 'stopping_rule.threshold' "
                          f"({sr['threshold']!r}), got {sr['boin_phi1']!r}")
    if sr["boin_phi2"] is not None and not sr["boin_phi2"] > sr["threshold"]:
        raise ConfigError(f"{src}: 'stopping_rule.boin_phi2' must be above the target 'stopping_rule.threshold' "
                          f"({sr['threshold']!r}), got {sr['boin_phi2']!r}")
    if sr["method"] == "boin" and sr["boin_phi2"] is None and 1.4 * sr["threshold"] >= 1:
        raise ConfigError(f"{src}: 'stopping_rule.threshold' {sr['threshold']!r} puts BOIN's default "
                          "'stopping_rule.boin_phi2' (1.4 x target) at 1 or above; give boin_phi2 below 1")
    if not 0 < sr["posterior_cutoff"] < 1:
        raise ConfigError(f"{src}: 'stopping_rule.posterior_cutoff' must be between 0 and 1")
    if sr["prior_a"] <= 0 or sr["prior_b"] <= 0:
        raise ConfigError(f"{src}: 'stopping_rule.prior_a' and 'prior_b' must be positive")
    el = cfg["eligibility"]
    _check(el["age"], dict, "eligibility.age", src)
    for k, v in el["age"].items():
        if k not in ("min", "max"):
            raise ConfigError(f"{src}: unknown key 'eligibility.age.{k}' (allowed: min, max)")
        _check(v, (int, float), f"eligibility.age.{k}", src)
        if v < 0:
            raise ConfigError(f"{src}: 'eligibility.age.{k}' must not be negative, got {v!r}")
    _min_not_above_max(el["age"], "eligibility.age", src)
    _validate_limits(el["labs"], "eligibility.labs", src)
    _validate_limits(el["vitals"], "eligibility.vitals", src)
    sm = cfg["sdtm_mapping"]
    _check(sm["hypotension_sbp_below"], (int, float), "sdtm_mapping.hypotension_sbp_below", src)
    if not 40 <= sm["hypotension_sbp_below"] <= 140:
        raise ConfigError(f"{src}: 'sdtm_mapping.hypotension_sbp_below' must be a systolic pressure in mmHg (40-140), "
                          f"got {sm['hypotension_sbp_below']!r}")
    try:
        validate_rows(sm["rows"], src)
    except MapError as exc:
        raise ConfigError(str(exc)) from None
    _validate_outcomes(cfg, src)
    return cfg


IMMUNE_MARKER_FIELDS = {"test": str, "label": str, "below": (int, float), "unit": str, "finding": str}
RESPONSE_RULE_FIELDS = {"diagnosis_contains": str, "criteria": str, "responders": TEXT_LIST}


def _validate_outcomes(cfg: dict, src: str) -> None:
    """response, immune_monitoring, off_tumour_watch and planned_doses: types and required keys."""
    r = cfg["response"]
    _check(r["criteria"], str, "response.criteria", src)
    for k in ("responders", "progression"):
        _check(r[k], TEXT_LIST, f"response.{k}", src)
    _check(r["by_diagnosis"], list, "response.by_diagnosis", src)
    r["responders"] = [str(x).upper() for x in r["responders"]]
    r["progression"] = [str(x).upper() for x in r["progression"]]
    _check(r["assessor"], str, "response.assessor", src)
    if not r["assessor"].strip():
        raise ConfigError(f"{src}: 'response.assessor' must name an RSEVAL value, e.g. INVESTIGATOR or "
                          "INDEPENDENT ASSESSOR, got an empty text")
    r["assessor"] = r["assessor"].strip().upper()
    for i, rule in enumerate(r["by_diagnosis"]):
        p = f"response.by_diagnosis[{i}]"
        if not isinstance(rule, dict) or not {"diagnosis_contains", "criteria", "responders"} <= set(rule):
            raise ConfigError(f"{src}: '{p}' must be a mapping with diagnosis_contains, criteria and responders")
        for key, value in rule.items():
            if key not in RESPONSE_RULE_FIELDS:
                raise ConfigError(f"{src}: unknown key '{p}.{key}' (allowed: {', '.join(RESPONSE_RULE_FIELDS)})")
            _check(value, RESPONSE_RULE_FIELDS[key], f"{p}.{key}", src)
        rule["responders"] = [str(x).upper() for x in rule["responders"]]
    _check(cfg["immune_monitoring"], list, "immune_monitoring", src)
    for i, m in enumerate(cfg["immune_monitoring"]):
        p = f"immune_monitoring[{i}]"
        if not isinstance(m, dict) or "test" not in m or "below" not in m:
            raise ConfigError(f"{src}: '{p}' must be a mapping with 'test' and 'below'")
        for key, value in m.items():
            if key not in IMMUNE_MARKER_FIELDS:
                raise ConfigError(f"{src}: unknown key '{p}.{key}' (allowed: {', '.join(IMMUNE_MARKER_FIELDS)})")
            _check(value, IMMUNE_MARKER_FIELDS[key], f"{p}.{key}", src)
        if m["below"] <= 0:
            raise ConfigError(f"{src}: '{p}.below' must be a positive level, got {m['below']!r}")
        m["test"] = m["test"].upper()
        # the load stores a test it converts in one unit: a level written in another ('below 10 cells/uL' for CD19,
        # stored in 10^9/L) is converted to it, or matched no value; a test it does not convert keeps its unit
        if "unit" in m and any(test == m["test"] for test, *_ in unit_conversions()):
            _in_stored_unit(m, p, src, levels=("below",))
    w = cfg["off_tumour_watch"]
    for k in ("terms", "socs", "exclude_terms"):
        _check(w[k], TEXT_LIST, f"off_tumour_watch.{k}", src)
        w[k] = [str(x).upper() for x in w[k]]
    _check(w["late_after_day"], int, "off_tumour_watch.late_after_day", src)
    if w["late_after_day"] < 0:
        raise ConfigError(f"{src}: 'off_tumour_watch.late_after_day' must be a day after the infusion (0 or more), "
                          f"got {w['late_after_day']!r}")
    if w["label"] is not None:
        _check(w["label"], str, "off_tumour_watch.label", src)
    _check(cfg["planned_doses"], dict, "planned_doses", src)
    for k, v in cfg["planned_doses"].items():
        _check(v, (int, float), f"planned_doses.{k}", src)
        if v <= 0:
            raise ConfigError(f"{src}: 'planned_doses.{k}' must be a positive dose, got {v!r}")
    cfg["planned_doses"] = {str(k): float(v) for k, v in cfg["planned_doses"].items()}


def settings_file(study_dir: Path) -> Path:
    """A study folder's settings file: study.yaml, else study.yml, else the study.yaml to write (refused when
    both are there: only one would be read)."""
    yaml_path, yml_path = study_dir / "study.yaml", study_dir / "study.yml"
    if yaml_path.exists() and yml_path.exists():
        raise ConfigError(f"{study_dir}: both study.yaml and study.yml are in the folder, and only one would be "
                          "read; keep one of them")
    return yml_path if yml_path.exists() else yaml_path


def load_study_config(study_dir: str | Path) -> dict:
    """Read and validate ``study.yaml`` (or ``study.yml``) in a study folder; defaults when absent."""
    study_dir = Path(study_dir)
    path = settings_file(study_dir)
    if path.exists():
        try:
            text = path.read_text(encoding="utf-8")
            given = load_yaml(text)
        except UnicodeDecodeError as exc:
            line = path.read_bytes()[:exc.start].count(b"\n") + 1
            raise ConfigError(f"{path}: line {line} is not UTF-8 text; save the file as UTF-8") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark else ""
            problem = getattr(exc, "problem", None)
            raise ConfigError(f"{path}: not valid YAML{where}" + (f" ({problem})" if problem else "")) from None
        except ValueError as exc:  # YAML reads 2026-02-30 as a date and the calendar refuses it
            raise ConfigError(f"{path}: a value is not a real date ({exc}); write dates as YYYY-MM-DD") from None
        if given is None or given == {}:
            # a file truncated by a failed copy would otherwise put every default in force without a word
            raise ConfigError(f"{path}: the file holds no settings; delete it to use the defaults")
        cfg = validate(given, str(path), text)
        if cfg["lab_terms_path"]:
            terms = (study_dir / cfg["lab_terms_path"]).resolve()
            if not terms.is_file():
                raise ConfigError(f"{path}: 'lab_terms_path' names {terms}, which does not exist")
            cfg["lab_terms_path"] = str(terms)
        return cfg
    return validate({}, str(path))


def stored_config(config_json: str | None, src: str = "the stored study settings") -> dict:
    """The settings a cut was loaded with (``studies.config_json``), validated; defaults when none was stored."""
    given = json.loads(config_json) if config_json else {}
    return validate(given, src)


def _flat(value, path: str = "") -> dict[str, Any]:
    """Settings as dotted paths ('dlt.window.end_day'); a list is one value."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k in sorted(value):
            out.update(_flat(value[k], f"{path}.{k}" if path else str(k)))
        return out
    return {path: value}


def settings_changed_note(before_json: str | None, now_json: str | None, previous_cut) -> str | None:
    """The note for settings (``studies.config_json``) that differ from the study's previous cut's, naming each
    changed setting with both values (the first ten); None when they are the same or either is unknown. A
    committee reading two cuts side by side must know that the window, a rule or a limit moved between them."""
    if not before_json or not now_json or previous_cut is None:
        return None
    before, now = _flat(json.loads(before_json)), _flat(json.loads(now_json))
    changed = [f"{k} {before.get(k, '(not set)')} -> {now.get(k, '(not set)')}"
               for k in sorted(set(before) | set(now)) if k != "data_cuts" and before.get(k) != now.get(k)]
    if not changed:
        return None
    more = f"; and {len(changed) - 10} more" if len(changed) > 10 else ""
    return (f"study.yaml settings differ from the {previous_cut:%Y-%m-%d} cut's: " + "; ".join(changed[:10]) + more)


def dlt_window(cfg: dict) -> tuple[int, int]:
    """(start_day, end_day) of the DLT window, both included, days from the first infusion (day 0)."""
    w = cfg["dlt"]["window"]
    return int(w["start_day"]), int(w["end_day"])
