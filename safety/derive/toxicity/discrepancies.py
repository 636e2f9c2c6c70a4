"""Reported CRS/ICANS AEs against the grades derived from bedside assessments (`grade_discrepancies`).

Only subjects with bedside assessments of the syndrome are compared; for the others the reported AEs are the
episode (`toxicity_episodes.source = 'reported AE'`), and so are the AEs of compared subjects that no derived
episode matches and no gradable assessment covers (`ungraded_aes`). A grade reported on another scale (the AE's
grading_system, read from the data) is shown with its scale and never compared as if it were ASTCT.
"""
from __future__ import annotations

from safety.core.vocabulary import CRS_HYPOTENSION_HYPOXIA_TERMS, syndrome_term_sql
from safety.derive.toxicity._sql import insert, run
from safety.derive.toxicity.episodes import WORST_AE_FIRST, ae_days_sql, ae_sql
from safety.schema import GRADE_DISCREPANCIES

# AE-to-episode matching tolerance (days) around the derived episode.
MATCH_TOLERANCE_DAYS = 2
# a hypotension or hypoxia AE during a derived CRS episode, graded above it (grade_discrepancies.discrepancy)
SIGN_HIGHER = "hypotension or hypoxia reported higher than derived CRS"


def during_crs_episode_sql(ae: str, ep: str) -> str:
    """SQL: the AE ``ae`` began during the CRS episode ``ep`` (same subject, onset from the episode's onset to its
    last symptomatic day, no tolerance) and was not over before the infusion: a sign ASTCT 2019 grades CRS by,
    reported there as an AE of its own, is that CRS. One definition for the DLT screening and the comparison here."""
    return (f"{ep}.usubjid = {ae}.usubjid AND {ae}.onset_day BETWEEN {ep}.onset_day AND {ep}.last_symptomatic_day "
            f"AND NOT coalesce({ae}.ended_before_infusion, false)")


def matches_sql(ae: str, ep: str) -> str:
    """SQL: reported AE ``ae`` matches derived episode ``ep``: same subject, AE onset within the episode +/- the
    tolerance."""
    tol = MATCH_TOLERANCE_DAYS
    return (f"{ep}.usubjid = {ae}.usubjid "
            f"AND {ae}.onset_day BETWEEN {ep}.onset_day - {tol} AND {ep}.last_symptomatic_day + {tol}")


def ungraded_aes(con, params: dict, syndrome: str) -> None:
    """Reported AEs of subjects with bedside assessments that no derived episode matches and no gradable assessment
    covers (none graded from the AE's onset to its last day, ``stop_day``) into ``_tox_ungraded_aes``: bedside
    rows that could not be graded are no evidence against the site's grade, so these AEs are episodes
    (episodes.episodes_from_aes). Reads _tox_ep and _tox_<syn>_graded (episodes_from_assessments, grade_rows)."""
    run(con, f"""
CREATE OR REPLACE TEMP TABLE _tox_ungraded_aes AS
SELECT ae.* FROM ({ae_days_sql(ae_sql(syndrome, with_assessments=True))}) ae
WHERE NOT EXISTS (SELECT 1 FROM _tox_ep ep WHERE ep.onset_day IS NOT NULL AND {matches_sql('ae', 'ep')})
  AND NOT EXISTS (SELECT 1 FROM _tox_{syndrome.lower()}_graded g
                  WHERE g.usubjid = ae.usubjid AND g.row_grade IS NOT NULL
                    AND g.day BETWEEN ae.onset_day AND ae.stop_day)
""", params)


def same_scale_sql(a: str, b: str) -> str:
    """SQL: grading systems a and b name the same scale ('ASTCT' and 'ASTCT 2019' do; 'CTCAE v5.0' does not)."""
    na = f"regexp_replace(upper({a}), '[^A-Z0-9]', '', 'g')"
    nb = f"regexp_replace(upper({b}), '[^A-Z0-9]', '', 'g')"
    return f"(starts_with({na}, {nb}) OR starts_with({nb}, {na}))"


def discrepancies(con, params: dict, syndrome: str) -> None:
    """Match reported AEs to derived episodes (AE onset within the episode +/- tolerance) and compare grades."""
    tol = MATCH_TOLERANCE_DAYS
    ae = ae_sql(syndrome, with_assessments=True)
    same = same_scale_sql("coalesce(reported_grading_system, $grading)", "$grading")
    run(con, f"""
CREATE OR REPLACE TEMP TABLE _tox_match AS
WITH ae AS ({ae}),
ep AS (SELECT e.usubjid, e.event_key, e.onset_day, e.last_symptomatic_day, e.max_grade, e.grade5_basis,
              p.max_evidence, p.max_grade_day
       FROM toxicity_episodes e JOIN _tox_ep p ON p.event_key = e.event_key
       WHERE e.studyid = $s AND e.data_cut = $c AND e.syndrome = '{syndrome}'),
cand AS (
  SELECT ae.*, ep.event_key AS episode_key, ep.onset_day AS ep_onset, ep.max_grade, ep.max_evidence, ep.max_grade_day,
    ep.grade5_basis,
    row_number() OVER (PARTITION BY ae.event_key ORDER BY abs(ae.onset_day - ep.onset_day), ep.onset_day) AS k
  FROM ae JOIN ep ON {matches_sql('ae', 'ep')}
)
SELECT * FROM cand WHERE k = 1
""", params)
    # The episode records its matched AE (the highest-graded one when a site split the event).
    run(con, f"""
UPDATE toxicity_episodes t SET ae_event_key = m.ae_key, reported_grade = m.rg
FROM (SELECT episode_key, arg_max(event_key, {WORST_AE_FIRST}) AS ae_key, max(aetoxgr) AS rg
      FROM _tox_match GROUP BY episode_key) m
WHERE t.studyid = $s AND t.data_cut = $c AND t.event_key = m.episode_key
""", params)
    ev = ("CASE WHEN max_grade = 5 THEN 'grade 5: ' || grade5_basis || '; bedside maximum ' ELSE 'grade ' END"
          " || CASE WHEN max_grade = 5 THEN '' ELSE max_grade || ' ' END || 'on day ' || max_grade_day || ': ' || max_evidence")
    # CRS: a hypotension or hypoxia AE begun during a derived episode and graded above it (CTCAE) says the CRS was
    # worse than its assessments show; one row per episode, its highest-graded such AE (then the earliest, lowest
    # AESEQ). The DLT screening reads the same AE as that CRS.
    sign_cte, sign_rows = "", ""
    if syndrome == "CRS":
        term = syndrome_term_sql("a.aedecod", "a.aeterm")
        sign_cte = f""", sign AS (
  SELECT e.usubjid, e.event_key AS episode_key, e.onset_day, e.max_grade, e.grade5_basis, p.max_evidence,
         p.max_grade_day, a.event_key AS ae_event_key, a.aeseq, a.aetoxgr AS reported_grade,
         a.grading_system AS reported_grading_system, {term} AS sign_term, a.onset_day AS sign_onset,
         row_number() OVER (PARTITION BY e.event_key ORDER BY a.aetoxgr DESC, a.onset_day, a.aeseq) AS k
  FROM toxicity_episodes e JOIN _tox_ep p ON p.event_key = e.event_key
  JOIN adverse_events a ON a.studyid = $s AND a.data_cut = $c AND {during_crs_episode_sql('a', 'e')}
  WHERE e.studyid = $s AND e.data_cut = $c AND e.syndrome = 'CRS' AND a.aetoxgr > e.max_grade
    AND {term} IN (SELECT unnest($hypotension_hypoxia_terms::VARCHAR[]))
)"""
        sign_rows = f"""
UNION ALL
SELECT $s, $c, usubjid, 'CRS', episode_key, ae_event_key, aeseq, onset_day, reported_grade, max_grade,
  '{SIGN_HIGHER}', reported_grading_system,
  sign_term || ' grade ' || reported_grade || coalesce(' (' || reported_grading_system || ')', '') || ' from day '
  || sign_onset || ', during the episode: ASTCT 2019 grades hypotension and hypoxia as CRS; derived ' || {ev}
FROM sign WHERE k = 1"""
    insert(con, GRADE_DISCREPANCIES, f"""
WITH per_ep AS (
  SELECT episode_key, usubjid, arg_max(event_key, {WORST_AE_FIRST}) AS ae_event_key,
         arg_max(aeseq, {WORST_AE_FIRST}) AS aeseq, max(aetoxgr) AS reported_grade,
         arg_max(grading_system, {WORST_AE_FIRST}) AS reported_grading_system,
         any_value(ep_onset) AS onset_day, any_value(max_grade) AS max_grade, any_value(grade5_basis) AS grade5_basis,
         any_value(max_evidence) AS max_evidence, any_value(max_grade_day) AS max_grade_day
  FROM _tox_match GROUP BY episode_key, usubjid
), cmp AS (SELECT *, {same} AS same_scale FROM per_ep){sign_cte}
SELECT $s::VARCHAR AS studyid, $c::DATE AS data_cut, usubjid, '{syndrome}' AS syndrome, episode_key, ae_event_key, aeseq,
  onset_day, reported_grade, max_grade AS derived_grade,
  CASE WHEN reported_grade IS NULL THEN 'reported AE has no grade'
       WHEN NOT same_scale THEN 'reported on a different grading system'
       WHEN reported_grade < max_grade THEN 'reported lower than derived'
       ELSE 'reported higher than derived' END AS discrepancy,
  reported_grading_system,
  CASE WHEN NOT same_scale
       THEN 'reported grade ' || coalesce(reported_grade::VARCHAR, '?') || ' (' || reported_grading_system
            || ') not compared with the ' || $grading || ' grade; ' ELSE '' END || {ev} AS evidence
FROM cmp
WHERE reported_grade IS NULL OR NOT same_scale OR reported_grade <> max_grade
UNION ALL
SELECT $s, $c, e.usubjid, '{syndrome}', e.event_key, NULL, NULL, e.onset_day, NULL, e.max_grade,
  'no AE reported for derived episode', NULL, 'grade ' || e.max_grade || ' on day ' || p.max_grade_day || ': ' || p.max_evidence
FROM toxicity_episodes e JOIN _tox_ep p ON p.event_key = e.event_key
WHERE e.studyid = $s AND e.data_cut = $c AND e.syndrome = '{syndrome}'
  AND e.event_key NOT IN (SELECT episode_key FROM _tox_match)
UNION ALL
SELECT $s, $c, ae.usubjid, '{syndrome}', NULL, ae.event_key, ae.aeseq, ae.onset_day, ae.aetoxgr, NULL,
  'reported AE without derived episode', ae.grading_system,
  CASE WHEN u.event_key IS NULL
       THEN n.n_assess || ' assessments, none with grade >= 1 within ' || {tol} || ' days of AE onset day '
            || coalesce(ae.onset_day::VARCHAR, '?')
       ELSE n.n_assess || ' assessments, none gradable on the AE''s days ' || u.onset_day || '-' || u.stop_day
            || ' (' || coalesce(w.n_there, 0) || ' there): the reported AE is episode ' || coalesce(e.event_key, '?') END
FROM ({ae}) ae
LEFT JOIN (SELECT usubjid, count(*) AS n_assess FROM _tox_{syndrome.lower()}_rows GROUP BY usubjid) n USING (usubjid)
LEFT JOIN _tox_ungraded_aes u ON u.event_key = ae.event_key
LEFT JOIN (SELECT u.event_key, count(r.usubjid) AS n_there FROM _tox_ungraded_aes u
           JOIN _tox_{syndrome.lower()}_rows r ON r.usubjid = u.usubjid AND r.day BETWEEN u.onset_day AND u.stop_day
           GROUP BY u.event_key) w ON w.event_key = ae.event_key
LEFT JOIN (SELECT usubjid, event_key, onset_day, last_symptomatic_day FROM toxicity_episodes
           WHERE studyid = $s AND data_cut = $c AND syndrome = '{syndrome}' AND source = 'reported AE') e
  ON e.usubjid = u.usubjid AND u.onset_day BETWEEN e.onset_day AND e.last_symptomatic_day
WHERE ae.event_key NOT IN (SELECT event_key FROM _tox_match){sign_rows}
""", {**params, "hypotension_hypoxia_terms": list(CRS_HYPOTENSION_HYPOXIA_TERMS)})
