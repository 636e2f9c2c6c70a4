"""Response by the study's criteria: best overall response, ORR, duration of response and DFS/PFS from response.

The criteria are study settings (study.yaml ``response``): e.g. Lugano 2014 for lymphoma, where CR and PR count,
and CR + CRi for acute leukaemia; ``by_diagnosis`` picks the criteria per subject by the disease under study, its
text found in the diagnosis as words are compared with a diagnosis (``disease_words``: 'leukaemia' in 'leukemia'). Best
overall response is the best assessment up to the first progression, by the ranks of the published criteria
(safety/data/response_criteria.csv, ``response_codes``: Lugano 2014, IMWG 2016, ELN 2022, iwCLL 2018, NCCN ALL;
e.g. sCR > CR > VGPR > PR > MR > SD > PD for myeloma, CR > CRh > CRi > MLFS > PR > NR > relapse for AML, NE
last; the study's other progression codes at PD's); on the day progression is first documented only the
progression counts, and a subject assessed only after a progression an AE or DS records first is PD. A responder
has a counted response before the first progression: its code, or the response the criteria read it as (a CMR as
CR, an sCR as CR), is one the study counts. Duration of response runs from the first counted response to
progression/relapse or death (any death of the deaths table), censored at the last response assessment; DFS/PFS
from the first response runs to progression/relapse or death, censored at last known alive.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from safety.core.numbers import NO_DENOMINATOR, of_n, percent
from safety.core.sql import temp_table
from safety.derive.graph import Derivation
from safety.core.vocabulary import OVERALL_RESPONSE_ROW, disease_words
from safety.derive.outcomes.response_codes import COUNTS_AS, CRITERIA_SOURCES, LABELS, RESPONSE_RANK
from safety.derive.outcomes.survival import PROGRESSION_SQL, progression_params
from safety.derive.toxicity._sql import insert, reset
from safety.schema import RESPONSE_OUTCOMES

if TYPE_CHECKING:  # orr() reads a page's DataFrame; the load's derivation is SQL
    import pandas as pd

NOT_ASSESSED = "not assessed"  # best_response of an infused subject with no response assessment

# How a response table cites what it counts: these words, then the criteria in use (orr()['counted_as']),
# then the publication of each criteria the study names that has one.
CRITERIA_REFERENCE = "Study response criteria"


def best_response_order(values, progression=()) -> list[str]:
    """The best overall responses among ``values`` (``response_outcomes.best_response``) in the order a table lists
    them: by the criteria's rank (CR, CRh, CRi, MLFS, PR, SD, PD, PMD, relapse, ...; of one rank in the data file's
    order), a code of the study's ``progression`` list the criteria do not name with PD ('PROGRESSIVE DISEASE'),
    then NE, then any other response text in alphabetical order, then 'not assessed'. Every value is listed once,
    so a table's rows add up to its N."""
    import pandas as pd  # tables and pages: values are a DataFrame's column

    seen = {str(v) for v in values if v is not None and not pd.isna(v)}
    # (rank, place) of each printed code: the file's codes in file order, the study's other progression codes
    # after those of PD's rank, alphabetically
    place = {LABELS.get(k, k): (r, i, "") for i, (k, r) in enumerate(RESPONSE_RANK.items())}
    for code in progression:
        place.setdefault(str(code).upper(), (RESPONSE_RANK["PD"], len(RESPONSE_RANK), str(code).upper()))
    order = sorted(seen & set(place), key=lambda v: place[v])
    rest = sorted(seen - set(order) - {NOT_ASSESSED})
    return order + rest + ([NOT_ASSESSED] if NOT_ASSESSED in seen else [])


def _labelled_sql(expr: str) -> str:
    """SQL of a response code as tables print it: ``LABELS`` ('CRI' -> 'CRi'), any other code unchanged."""
    return f"CASE {expr} " + " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in LABELS.items()) + f" ELSE {expr} END"


def definition(responders: list[str]) -> str:
    """'CR + PR' from ['CR', 'PR']: the printed definition of a responder."""
    return " + ".join(LABELS.get(r, r) for r in responders)


def counts_as_sql(response: str) -> str:
    """SQL: the response the code ``response`` (upper case) counts as (``COUNTS_AS``: CMR as CR), else itself."""
    return (f"CASE {response} " + " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in COUNTS_AS.items())
            + f" ELSE {response} END")


def counts_sql(responders: str, response: str) -> str:
    """SQL: the code ``response`` (upper case) is one of ``responders``, or the response it counts as is (an sCR
    where CR counts; an sCR where only sCR counts)."""
    return f"(list_contains({responders}, {response}) OR list_contains({responders}, {counts_as_sql(response)}))"


def counted_response_sql(response: str, responders: str, day: str, first_progression: str) -> str:
    """SQL: an assessment counts as a response: its code (or the response the criteria read it as) is one of the
    subject's counted responses, and it comes before the first progression. The one definition the
    responder (``response_outcomes.first_response_day``) and the swimmer page's time-point ORRs use."""
    return (f"({counts_sql(responders, f'upper({response})')} "
            f"AND ({first_progression} IS NULL OR {day} < {first_progression}))")


# The overall-response rows of the study's assessor (parameters overall_response_params) that count as a response,
# with their day and visit: a page's time-point ORR reads these beside response_outcomes.
COUNTED_RESPONSE_ROWS_SQL = f"""
  SELECT r.usubjid, r.day, r.visit FROM responses r JOIN response_outcomes o ON o.usubjid = r.usubjid
  WHERE r.day >= 0 AND {OVERALL_RESPONSE_ROW}
    AND {counted_response_sql("r.response", "o.counted_responses", "r.day", "o.first_progression_day")}"""


_SQL = f"""
WITH rules AS (SELECT * FROM _response_rules),
subj AS (
  -- every death of the deaths table (DM, DS and a fatal AE): a death recorded only as a fatal AE ends a response too;
  -- the rule's text is found in the diagnosis as the deaths code compares them (a 'leukaemia' rule in 'leukemia')
  SELECT s.usubjid, coalesce(any_value(dth.death_day), s.death_day) AS death_day, s.last_known_alive_day,
         coalesce(min({{'i': r.idx, 'crit': r.criteria, 'resp': r.responders}})
                  FILTER (WHERE r.idx > 0 AND contains({disease_words('s.diagnosis')}, trim({disease_words('r.contains')}))),
                  min({{'i': r.idx, 'crit': r.criteria, 'resp': r.responders}}) FILTER (WHERE r.idx = 0)) AS rule
  FROM subjects s CROSS JOIN rules r
  LEFT JOIN (SELECT usubjid, death_day FROM deaths WHERE studyid = $s AND data_cut = $c) dth USING (usubjid)
  WHERE s.studyid = $s AND s.data_cut = $c AND s.infused AND s.first_infusion_date IS NOT NULL
  GROUP BY s.usubjid, s.death_day, s.last_known_alive_day
),
rs AS (
  SELECT usubjid, day, upper(response) AS resp
  FROM responses
  WHERE studyid = $s AND data_cut = $c AND day IS NOT NULL AND day >= 0 AND {OVERALL_RESPONSE_ROW}
),
prog AS (__PROGRESSION__),
first_prog AS (SELECT usubjid, min(day) AS d FROM prog GROUP BY usubjid),
rk_t AS (SELECT * FROM (VALUES {", ".join(f"('{k}', {v})" for k, v in RESPONSE_RANK.items())}) t(resp, rk)),
best AS (
  -- the best rank; of one rank a counted response first (a CMR counted beside an earlier CR), then the earliest
  -- day, then text order (two responses of one rank on one day: e.g. PD and PMD). A code of the study's
  -- progression list the criteria do not rank ('PROGRESSIVE DISEASE') ranks as PD, any other as NE.
  SELECT rs.usubjid,
         arg_min(rs.resp, (coalesce(rk_t.rk, CASE WHEN list_contains($rs_prog, rs.resp) THEN {RESPONSE_RANK["PD"]} END,
                                    {RESPONSE_RANK["NE"]}),
                           NOT {counts_sql("subj.rule.resp", "rs.resp")}, rs.day, rs.resp))
           AS bor,
         max(rs.day) AS last_rs
  FROM rs JOIN subj USING (usubjid) LEFT JOIN rk_t USING (resp) LEFT JOIN first_prog fp USING (usubjid)
  -- on the day progression is first documented, the progression is that day's response: a response recorded
  -- beside it counts neither here nor as a responder's (firstr)
  WHERE fp.d IS NULL OR rs.day < fp.d OR (rs.day = fp.d AND list_contains($rs_prog, rs.resp))
  GROUP BY rs.usubjid
),
firstr AS (
  SELECT rs.usubjid, min(rs.day) AS d FROM rs JOIN subj USING (usubjid)
  LEFT JOIN first_prog fp USING (usubjid)
  WHERE {counted_response_sql("rs.resp", "subj.rule.resp", "rs.day", "fp.d")}
  GROUP BY rs.usubjid
),
lastrs AS (SELECT usubjid, max(day) AS d FROM rs GROUP BY usubjid),
x AS (
  -- assessed, but the first progression (an AE or DS record) comes before every assessment: the best response up
  -- to progression is that progression
  SELECT subj.*, CASE WHEN best.bor IS NULL AND lastrs.d IS NOT NULL AND fp.d IS NOT NULL THEN 'PD' ELSE best.bor END
           AS bor,
         firstr.d AS first_response_day, lastrs.d AS last_assessment_day, fp.d AS first_progression_day,
         (SELECT min(p.day) FROM prog p WHERE p.usubjid = subj.usubjid AND p.day > firstr.d) AS progression_day
  FROM subj LEFT JOIN best USING (usubjid) LEFT JOIN firstr USING (usubjid) LEFT JOIN lastrs USING (usubjid)
  LEFT JOIN first_prog fp USING (usubjid)
)
SELECT $s AS studyid, $c AS data_cut, usubjid, rule.crit AS criteria,
       array_to_string(list_transform(rule.resp, lambda r: {_labelled_sql("r")}), ' + ') AS responders_definition,
       rule.resp AS counted_responses,
       CASE WHEN bor IS NULL THEN '{NOT_ASSESSED}' ELSE {_labelled_sql("bor")} END AS best_response,
       first_response_day IS NOT NULL AS responder,
       first_response_day, progression_day, first_progression_day, death_day, last_assessment_day,
       CASE WHEN first_response_day IS NOT NULL THEN
         coalesce(least(progression_day, CASE WHEN death_day > first_response_day THEN death_day END),
                  greatest(last_assessment_day, first_response_day)) - first_response_day END AS dor_days,
       CASE WHEN first_response_day IS NOT NULL THEN
         progression_day IS NOT NULL OR coalesce(death_day > first_response_day, false) END AS dor_event,
       CASE WHEN first_response_day IS NOT NULL THEN
         coalesce(least(progression_day, CASE WHEN death_day > first_response_day THEN death_day END),
                  greatest(last_known_alive_day, first_response_day)) - first_response_day END AS pfs_from_response_days,
       CASE WHEN first_response_day IS NOT NULL THEN
         progression_day IS NOT NULL OR coalesce(death_day > first_response_day, false) END AS pfs_event
FROM x
"""


def derive_response(con, studyid, data_cut, config, review_store=None) -> None:
    """Rebuild response_outcomes for one (study, cut)."""
    reset(con, (RESPONSE_OUTCOMES,), studyid, data_cut)
    r = config.get("response", {})
    temp_table(con, "_response_rules",
               {"idx": "INTEGER", "contains": "VARCHAR", "criteria": "VARCHAR", "responders": "VARCHAR[]"},
               [(0, None, r.get("criteria", "CR + CRi (acute leukaemia)"),
                 [x.upper() for x in r.get("responders", ["CR", "CRI"])]),
                *((i, rule["diagnosis_contains"], rule["criteria"], [x.upper() for x in rule["responders"]])
                  for i, rule in enumerate(r.get("by_diagnosis", []), start=1))])
    insert(con, RESPONSE_OUTCOMES, _SQL.replace("__PROGRESSION__", PROGRESSION_SQL),
           {"s": studyid, "c": data_cut, **progression_params(config)})


def orr(rows: pd.DataFrame) -> dict:
    """Objective response rate from ``response_outcomes`` rows (infused subjects), with its printed definition.

    Returns responders, n, orr_pct, ``by_criteria`` (one dict per criteria in use), ``counted_as`` (what counts
    as a response, for a chart's title: "Lugano 2014 (CR + PR) or CR + CRi (acute leukaemia), by each subject's
    diagnosis") and ``text``, e.g.
    "ORR 15/22 (68.2%): Lugano 2014 (CR + PR) 10/16; CR + CRi (acute leukaemia) 5/6. ..."."""
    parts = []
    if len(rows):
        g = (rows.assign(responder=rows["responder"].fillna(False).astype(bool))
             .groupby(["criteria", "responders_definition"], dropna=False)["responder"].agg(["sum", "count"])
             .reset_index().sort_values(["count", "criteria"], ascending=[False, True]))
        parts = [{"criteria": r.criteria, "definition": r.responders_definition, "responders": int(r.sum),
                  "n": int(r.count)} for r in g.itertuples()]
    k = sum(p["responders"] for p in parts)
    n = sum(p["n"] for p in parts)
    pct = 100.0 * k / n if n else None
    # a criteria name that already says what counts ("CR + CRi (acute leukaemia)") is not followed by it again
    names = [p["criteria"] if str(p["definition"]) in str(p["criteria"]) else f"{p['criteria']} ({p['definition']})"
             for p in parts]
    detail = "; ".join(f"{name} {p['responders']}/{p['n']}" for name, p in zip(names, parts))
    text = (f"ORR {of_n(k, n, '/', f'{NO_DENOMINATOR} (no subject infused)')}" + (f" ({percent(k, n)}%)" if n else "")
            + (f": {detail}" if detail else "")
            + ". Responder: best overall response before progression in the counted categories; "
              "denominator: infused subjects.")
    counted_as = (names[0] if len(names) == 1 else " or ".join(names) + ", by each subject's diagnosis" if names
                  else "the study's response criteria")
    return {"responders": k, "n": n, "orr_pct": pct, "by_criteria": parts, "counted_as": counted_as, "text": text}


def criteria_reference(res: dict) -> str:
    """The reference line of a response table from :func:`orr`'s result: the study's response criteria as the
    swimmer page names them, e.g. "Study response criteria: Lugano 2014 (CR + PR) or CR + CRi (acute
    leukaemia), by each subject's diagnosis; Lugano 2014: Cheson et al., J Clin Oncol 2014"; without rows,
    "Study response criteria"."""
    if not res["by_criteria"]:
        return CRITERIA_REFERENCE
    counted_as = res["counted_as"]
    cited = "".join(f"; {name}: {source}" for name, source in CRITERIA_SOURCES.items()
                    if any(p["criteria"] == name for p in res["by_criteria"]))
    return f"{CRITERIA_REFERENCE}: {counted_as}{cited}"


DERIVATION = Derivation(name="response", writes=(RESPONSE_OUTCOMES,),
                        reads=("subjects", "responses", "disposition", "adverse_events", "deaths"), run=derive_response)
