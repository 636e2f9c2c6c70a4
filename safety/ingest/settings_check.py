"""Test codes and units named in study.yaml that the delivered data never contain.

A misspelled code (ANC for NEUT) or a unit no stored value is in (IgG in mg/dL, stored in g/L after the load's
conversion to SI) leaves a DLT rule, an immune marker or an eligibility limit silently empty. Such a setting is
warned of, not refused: an early cut may not yet hold a test the protocol names (docs/study-config.md).
"""
from __future__ import annotations

import datetime as dt

from safety.core.config import DEFAULTS, DLT_RULE_DEFAULTS
from safety.core.vocabulary import unit_spelling

_CODES_SQL = {
    "LB": """SELECT upper(lbtestcd) AS code, list(DISTINCT unit ORDER BY unit) FILTER (unit IS NOT NULL) AS units
             FROM labs WHERE studyid = $s AND data_cut = $c GROUP BY ALL""",
    "VS": """SELECT upper(vstestcd) AS code, list(DISTINCT unit ORDER BY unit) FILTER (unit IS NOT NULL) AS units
             FROM vitals WHERE studyid = $s AND data_cut = $c GROUP BY ALL""",
}


def named_codes(config: dict) -> list[tuple[str, str, str, str | None]]:
    """(domain, key, test code, unit or None; the unit's key is beside the test's) of every test study.yaml names: the cytopenia rules' tests, the
    immune markers, the eligibility limits. A list left at its default is not a typing error and is not
    checked: the default rule R7 or IgG marker on a study that does not measure these finds nothing, as it should."""
    out = []
    rules = [] if config["dlt"]["rules"] == DEFAULTS["dlt"]["rules"] else config["dlt"]["rules"]
    markers = [] if config["immune_monitoring"] == DEFAULTS["immune_monitoring"] else config["immune_monitoring"]
    for i, rule in enumerate(rules):
        if rule["type"] == "cytopenia_persisting":
            for test in rule.get("tests", DLT_RULE_DEFAULTS["cytopenia_persisting"]["tests"]):
                out.append(("LB", f"dlt.rules[{i}].tests", test, None))
    for i, m in enumerate(markers):
        out.append(("LB", f"immune_monitoring[{i}].test", m["test"], m.get("unit")))
    for dom, kind in (("LB", "labs"), ("VS", "vitals")):
        for i, lim in enumerate(config["eligibility"][kind]):
            out.append((dom, f"eligibility.{kind}[{i}].test", lim["test"], None))
    return out


def unmatched_settings(con, studyid: str, data_cut: dt.date, config: dict, delivered: set[str]) -> dict[str, list[str]]:
    """{domain: notes} for the tests study.yaml names that the cut's ``delivered`` LB or VS never contains, and the
    immune-marker units no stored value of the test is in. A domain not delivered is not checked (its absence
    is reported on its own)."""
    named = named_codes(config)
    read = delivered & {dom for dom, *_ in named}  # a domain no setting names is not read
    stored = {dom: {code: [u for u in units or []] for code, units in
                    con.execute(sql, {"s": studyid, "c": data_cut}).fetchall()}
              for dom, sql in _CODES_SQL.items() if dom in read}
    notes: dict[str, list[str]] = {}
    missing: dict[tuple[str, str], list[str]] = {}
    for dom, key, test, unit in named:
        if dom not in stored:
            continue
        codes, code = stored[dom], str(test).upper()
        if code not in codes:
            missing.setdefault((dom, key), []).append(code)
        elif unit is not None and unit_spelling(unit) not in {unit_spelling(u) for u in codes[code]}:
            notes.setdefault(dom, []).append(
                f"study.yaml '{key.rsplit('.', 1)[0]}.unit' is {unit}, and no {code} value is stored in it (stored, after the "
                f"load's conversion to SI: {', '.join(codes[code]) or 'no unit'}): the marker finds nothing")
    for (dom, key), absent in missing.items():
        notes.setdefault(dom, []).append(
            f"study.yaml '{key}' names {', '.join(absent)}, which no result loaded from this file has "
            f"({dom}TESTCD loaded: {', '.join(sorted(stored[dom])) or 'none'}): nothing is compared with "
            f"{'it' if len(absent) == 1 else 'them'}")
    return notes


def dose_levels_not_ordered(con, studyid: str, data_cut: dt.date, config: dict) -> list[str]:
    """The dose levels of infused subjects (subjects.dose_level) that a non-empty ``stopping_rule.dose_order`` does
    not list. Such a level sorted above every listed one: BOIN called it eliminated by a higher dose, and a dose
    order matching no level lost the sentence that the trial stops when the lowest dose is eliminated."""
    order = config["stopping_rule"]["dose_order"]
    if not order:
        return []
    rows = con.execute("""SELECT DISTINCT dose_level FROM subjects
                          WHERE studyid = $s AND data_cut = $c AND infused AND dose_level IS NOT NULL
                            AND NOT list_contains($order, dose_level) ORDER BY dose_level""",
                       {"s": studyid, "c": data_cut, "order": order}).fetchall()
    return [r[0] for r in rows]
