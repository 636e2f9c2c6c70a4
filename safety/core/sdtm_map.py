"""Which SDTM test codes, categories, classes and devices mean which CRS/ICANS input: one table of rules.

The packaged defaults are ``safety/data/sdtm_assessment_map.csv`` (common CDISC controlled terminology and common
sponsor spellings); ``study.yaml`` adds or replaces rows under ``sdtm_mapping.rows``. Each row is
``kind, match, code, priority``: ``match`` is an exact code (test codes, units, qualifier names) or a
case-insensitive regular expression over text (``TEXT_KINDS``); among the text rules of one kind that match, the
lowest priority number wins. The rules are read by :mod:`safety.ingest.sdtm_assessments`.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

from safety.core.vocabulary import CONSCIOUSNESS_LEVELS, EDEMA_VALUES, MOTOR_VALUES, OXYGEN_DEVICES, SEIZURE_VALUES

MAP_PATH = Path(__file__).resolve().parents[1] / "data" / "sdtm_assessment_map.csv"

# kind -> what its code must be: None (no code), "number", "item10", "item8", or a tuple of allowed values
KINDS: dict[str, object] = {
    "vs_temperature": None, "vs_systolic_bp": None, "vs_spo2": None,
    "temperature_unit_f": None,
    "flow_unit": "number",
    "oxygen_medication": None, "vasopressin": None,
    "device_qualifier": None,
    "oxygen_device": tuple(d for d in OXYGEN_DEVICES if d != "NONE"),
    "ice_category": None, "ice_total": None, "ice_item": "item10",
    "capd_category": None, "capd_total": None, "capd_item": "item8",
    "consciousness_test": None,
    "consciousness_value": CONSCIOUSNESS_LEVELS,
    "seizure_event": tuple(v for v in SEIZURE_VALUES if v != "NONE"),
    "motor_event": tuple(v for v in MOTOR_VALUES if v != "NONE"),
    "edema_event": tuple(v for v in EDEMA_VALUES if v != "NONE"),
    "hypotension_event": None,
    "negative_result": None,
    "support_other_cause": None, "support_crs_cause": None,
    "dialysis": None,
}
# kinds whose match is a regular expression over lower-case text; the others are exact codes compared in upper case
TEXT_KINDS = frozenset({"oxygen_medication", "vasopressin", "oxygen_device", "ice_category", "capd_category",
                        "consciousness_value", "seizure_event", "motor_event", "edema_event", "hypotension_event",
                        "support_other_cause", "support_crs_cause", "dialysis"})
ROW_FIELDS = ("kind", "match", "code", "priority", "note")


class MapError(ValueError):
    """A mapping row that cannot be used; the message names where it came from."""


def _clean(row: dict, src: str, path: str) -> tuple[str, str, str, int]:
    unknown = set(row) - set(ROW_FIELDS)
    if unknown:
        raise MapError(f"{src}: unknown key '{path}.{sorted(unknown)[0]}' (allowed: {', '.join(ROW_FIELDS)})")
    kind = str(row.get("kind") or "").strip()
    if kind not in KINDS:
        raise MapError(f"{src}: '{path}.kind': {kind!r} is not one of {', '.join(KINDS)}")
    match = row.get("match")
    if not isinstance(match, (str, int, float)) or isinstance(match, bool) or not str(match).strip():
        raise MapError(f"{src}: '{path}.match': must be non-empty text, got {match!r}")
    match = str(match).strip()
    if kind in TEXT_KINDS:
        try:
            re.compile(match)
        except re.error as exc:
            raise MapError(f"{src}: '{path}.match': {match!r} is not a regular expression ({exc})") from None
        match = match.lower()
    else:
        match = re.sub(r"\s+", "", match.upper()) if kind in ("temperature_unit_f", "flow_unit") else match.upper()
    code = row.get("code")
    code = "" if code is None else str(code).strip()
    rule = KINDS[kind]
    if rule is None and code:
        raise MapError(f"{src}: '{path}.code': kind {kind} takes no code, got {code!r}")
    if rule == "number":
        try:
            if float(code) <= 0:
                raise ValueError
        except ValueError:
            raise MapError(f"{src}: '{path}.code': kind {kind} needs a positive factor to L/min, got {code!r}") from None
    if rule in ("item10", "item8"):
        top = 10 if rule == "item10" else 8
        if not (code.isdigit() and 1 <= int(code) <= top):
            raise MapError(f"{src}: '{path}.code': kind {kind} needs an item number 1-{top}, got {code!r}")
    if isinstance(rule, tuple):
        code = code.upper()
        if code not in rule:
            raise MapError(f"{src}: '{path}.code': kind {kind} needs one of {', '.join(rule)}, got {code!r}")
    prio = row.get("priority", 1)
    try:
        prio = int(prio if prio not in (None, "") else 1)
    except (TypeError, ValueError):
        raise MapError(f"{src}: '{path}.priority': must be a whole number, got {row.get('priority')!r}") from None
    return kind, match, code, prio


def packaged_rows() -> list[tuple[str, str, str, int]]:
    """The default rules from safety/data/sdtm_assessment_map.csv."""
    with open(MAP_PATH, newline="", encoding="utf-8") as fh:
        return [_clean(r, MAP_PATH.name, f"row {i}") for i, r in enumerate(csv.DictReader(fh), 1)]


def validate_rows(rows, src: str) -> list[tuple[str, str, str, int]]:
    """Check study.yaml ``sdtm_mapping.rows``; raise MapError naming the row and field."""
    if not isinstance(rows, list):
        raise MapError(f"{src}: 'sdtm_mapping.rows' must be a list, got {rows!r}")
    out = []
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise MapError(f"{src}: 'sdtm_mapping.rows[{i}]' must be a mapping with kind and match")
        out.append(_clean(r, src, f"sdtm_mapping.rows[{i}]"))
    return out


def effective_rows(config: dict | None) -> list[tuple[str, str, str, int]]:
    """Packaged rules overlaid with the study's: a study row with the same kind and match replaces the packaged one."""
    study = validate_rows(((config or {}).get("sdtm_mapping") or {}).get("rows", []), "study.yaml")
    given = {(k, m) for k, m, _, _ in study}
    return [r for r in packaged_rows() if (r[0], r[1]) not in given] + study
