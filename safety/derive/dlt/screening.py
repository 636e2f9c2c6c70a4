"""DLT screening: protocol rules read from study.yaml (``dlt.rules``), one SQL template per rule type.

Each rule in ``config['dlt']['rules']`` has an ``id``, a ``type``, its parameters and a plain-language
``reason``. The engine runs one SQL template per rule type with the rule's values bound as parameters,
over whole tables in one statement, and keeps one row per event key: the first rule (in config order)
that the event meets names the candidate, the others are listed in ``also_matches``. A reported CRS/ICANS AE
and the episode derived for it (``toxicity_episodes.ae_event_key``) that both meet rules are one event, keyed
by the episode.

Rule types:
  fatal_event           grade 5 AE (or fatal outcome), or a death with no fatal AE (of a known day, or of an
                        infused subject on a day not recorded), not due to progression
  syndrome_grade        CRS / ICANS episode (or, for subjects without assessments, the reported AE) by
                        grade and, optionally, duration at grade >= 3 ("more than 72 hours")
  ae_grade              any other AE by grade, relatedness, duration and term lists
  cytopenia_persisting  the first lab on or after ``from_day`` (up to ``to_day``) still at ``grade``

Durations are ADaM day counts (end - start + 1); without times, "more than N hours" means more than N/24
such days. Events ongoing at the cut count to the cut and are marked ongoing. The DLT window
(``dlt.window``, default days 0-28 inclusive) applies to the onset day; an event of unknown onset is in it
unless it ended before the window, a death of unknown day unless the subject was known alive after it
(:func:`safety.derive.dlt.events.event_in_window_sql`); cytopenia rules carry
their own lab period, so their candidates are always in the window.
"""
from __future__ import annotations

import datetime as dt

from safety.core.config import DLT_RULE_DEFAULTS
from safety.core.sql import PARAM_RE as _PARAM_RE, create_missing, existing, reset_derived, run_sql
from safety.core.vocabulary import CRS_SIGN_TERMS, blood_result, syndrome_term_sql
from safety.derive.dlt.decisions import adjudication_params, event_sources_of
from safety.derive.dlt.evaluability import evaluability_sql
from safety.derive.dlt.events import (EPISODE_END_DAY, EPISODE_GRADE, FATAL_AE as _FATAL_AE, SOURCE_LABEL,
                                      DEATH_SOURCE, death_event_key_sql, death_events_sql, death_evidence_sql,
                                      event_in_window_sql, fingerprint_sql, lab_event_key_sql, lab_evidence_sql,
                                      latest_onset_sql)
from safety.derive.graph import Derivation
from safety.derive.toxicity.discrepancies import during_crs_episode_sql
from safety.derive.toxicity.episodes import DEATH_CAUSE_BASIS, DEATH_DS_BASIS
from safety.schema import DLT_CANDIDATES, DLT_EVALUABILITY


# the latest day a candidate of unknown onset can have begun (r: the candidate, s: its subject)
_LATEST_ONSET = latest_onset_sql("r.end_day", "s")
_IN_WINDOW = event_in_window_sql("r", "s")
# the evidence's words for an event of unknown day that the window rule keeps in the window
_SCREENED_IN_WINDOW = ": screened as in the DLT window"
_ASSESSMENTS = {"CRS": "crs_assessments", "ICANS": "icans_assessments"}
# the evidence of an episode built from a reported AE that the subject's assessments could not grade
UNGRADED_BASIS = "reported AE (no gradable assessment on its days)"
# an AE whose causality is not yet entered meets a rule that asks for a related one: the committee decides
CAUSALITY_NOT_GIVEN = "screened, since not yet assessed is not unrelated"
# the evidence of a sign of CRS reported as an AE during a CRS episode that meets no rule itself
CRS_SIGN_NOTE = "ASTCT 2019 grades fever, hypotension and hypoxia as CRS"

# --- rule templates: each SELECTs the common candidate columns; $params are the rule's values ------
_COLS = "usubjid, event_key, source, term, onset_day, end_day, grade, duration_days, ongoing, evidence, window_applies"

TEMPLATES: dict[str, str] = {
    "fatal_event": f"""
        SELECT a.usubjid, a.event_key, 'AE' AS source, coalesce(a.aedecod, a.aeterm) AS term, a.onset_day,
               a.end_day, a.aetoxgr AS grade, a.duration_days, a.ongoing, a.ended_before_infusion,
               coalesce(a.aedecod, a.aeterm, 'AE') || ' grade ' || coalesce(CAST(a.aetoxgr AS VARCHAR), 'not given')
                 || ', fatal outcome' || coalesce(', onset day ' || CAST(a.onset_day AS VARCHAR), '') AS evidence,
               true AS window_applies
        FROM ae a
        WHERE {_FATAL_AE}
          AND NOT (coalesce(CAST($exclude_progression AS BOOLEAN), true)
                   AND (upper(coalesce(a.aedecod, '')) IN (SELECT unnest($progression_terms::VARCHAR[]))
                        OR upper(coalesce(a.aeterm, '')) IN (SELECT unnest($progression_terms::VARCHAR[]))))
        UNION ALL
        -- a death inside the data with no fatal AE recorded would otherwise never be screened
        SELECT s.usubjid, s.event_key, '{DEATH_SOURCE}' AS source, s.term, s.onset_day, s.end_day, s.grade, s.duration_days,
               s.ongoing, false AS ended_before_infusion,
               {death_evidence_sql('s')} || '; no fatal AE recorded' AS evidence,
               true AS window_applies
        FROM ({death_events_sql('subj')}) s
        WHERE coalesce(s.infused, false)
          AND NOT EXISTS (SELECT 1 FROM ae a WHERE a.usubjid = s.usubjid AND {_FATAL_AE})
          AND NOT (coalesce(CAST($exclude_progression AS BOOLEAN), true)
                   AND EXISTS (SELECT 1 FROM unnest($progression_terms::VARCHAR[]) AS p(term)
                               WHERE contains(upper(coalesce(s.death_cause, '')), p.term)))
    """,
    "syndrome_grade": """
        SELECT usubjid, event_key, source, term, onset_day, end_day, grade, rule_duration AS duration_days, ongoing,
               term || ' grade ' || CAST(grade AS VARCHAR)
                 || CASE WHEN g3_first IS NOT NULL AND $min_grade::INTEGER >= 3
                         THEN ' (grade >= 3 on days ' || CAST(g3_first AS VARCHAR) || '-' || CAST(g3_last AS VARCHAR)
                              || CASE WHEN NOT g3_open THEN ''
                                      WHEN basis LIKE 'reported AE%' THEN ', a grade >= 3 AE ongoing, counted to the cut'
                                      ELSE ', still grade >= 3 at the last assessment, counted to the cut' END
                              || ', ' || CAST(rule_duration AS VARCHAR) || ' days'
                              || CASE WHEN g3_hours IS NOT NULL THEN ', ' || CAST(round(g3_hours, 1) AS VARCHAR) || ' h'
                                      ELSE '' END || ')' ELSE '' END
                 || ' on days ' || coalesce(CAST(onset_day AS VARCHAR), '?') || '-'
                 || CASE WHEN ongoing THEN 'ongoing at the cut' ELSE coalesce(CAST(end_day AS VARCHAR), '?') END
                 || ' (' || coalesce(CAST(duration_days AS VARCHAR), '?') || ' days' || CASE WHEN ongoing THEN ' so far' ELSE '' END
                 || ')' || CASE WHEN basis = 'reported AE' THEN ', reported AE (no assessment data)'
                                WHEN basis LIKE 'reported AE%' THEN ', ' || basis ELSE '' END AS evidence,
               true AS window_applies
        FROM (SELECT *, CASE WHEN $min_grade::INTEGER >= 3 AND g3_first IS NOT NULL THEN g3_last - g3_first + 1
                             ELSE duration_days END AS rule_duration
              FROM syn_{syndrome})
        WHERE grade >= $min_grade::INTEGER
          AND ($max_grade::INTEGER IS NULL OR grade <= $max_grade::INTEGER)
          -- with assessment times, hours at grade >= 3 decide; without them, whole days (72 h = more than 3 days)
          AND ($more_than_days::DOUBLE IS NULL
               OR CASE WHEN $more_than_hours::DOUBLE IS NOT NULL AND g3_hours IS NOT NULL AND $min_grade::INTEGER >= 3
                       THEN g3_hours > $more_than_hours::DOUBLE
                       ELSE rule_duration > $more_than_days::DOUBLE END)
    """,
    "ae_grade": """
        SELECT a.usubjid, a.event_key, 'AE' AS source, coalesce(a.aedecod, a.aeterm) AS term, a.onset_day,
               a.end_day, a.aetoxgr AS grade, a.duration_days, a.ongoing, a.ended_before_infusion,
               coalesce(a.aedecod, a.aeterm, 'AE') || ' grade ' || CAST(a.aetoxgr AS VARCHAR) || ' on days '
                 || coalesce(CAST(a.onset_day AS VARCHAR), '?') || '-'
                 || CASE WHEN a.ongoing THEN 'ongoing at the cut' ELSE coalesce(CAST(a.end_day AS VARCHAR), '?') END
                 || ' (' || coalesce(CAST(a.duration_days AS VARCHAR), '?') || ' days' || CASE WHEN a.ongoing THEN ' so far' ELSE '' END
                 || '), ' || CASE WHEN a.related THEN 'related (' || coalesce(a.aerel, '?') || ')'
                                  WHEN a.related IS NULL THEN 'causality not given (AEREL '
                                       || coalesce('''' || a.aerel || '''', 'blank') || '): ' || $causality_not_given
                                  ELSE 'not related (' || a.aerel || ')' END AS evidence,
               true AS window_applies
        FROM ae a
        WHERE a.aetoxgr >= $min_grade::INTEGER
          -- a causality not yet entered is not 'unrelated': screened, and the evidence says so
          AND (NOT coalesce($related_only::BOOLEAN, false) OR coalesce(a.related, true))
          AND ($more_than_days::DOUBLE IS NULL OR a.duration_days > $more_than_days::DOUBLE)
          AND upper(coalesce(a.aedecod, '')) NOT IN (SELECT unnest($exclude_terms::VARCHAR[]))
          AND upper(coalesce(a.aeterm, '')) NOT IN (SELECT unnest($exclude_terms::VARCHAR[]))
          AND (len($include_terms::VARCHAR[]) = 0
               OR upper(coalesce(a.aedecod, '')) IN (SELECT unnest($include_terms::VARCHAR[]))
               OR upper(coalesce(a.aeterm, '')) IN (SELECT unnest($include_terms::VARCHAR[])))
    """,
    "cytopenia_persisting": f"""
        SELECT usubjid, {lab_event_key_sql('usubjid', 'lbtestcd', '$from_day::INTEGER')} AS event_key,
               'lab' AS source, lbtestcd AS term, day AS onset_day, NULL::INTEGER AS end_day, grade,
               NULL::INTEGER AS duration_days, NULL::BOOLEAN AS ongoing,
               {lab_evidence_sql('lbtestcd', 'grade', 'day', '$from_day::INTEGER')} AS evidence,
               false AS window_applies
        FROM (SELECT * FROM labg
              WHERE lbtestcd IN (SELECT unnest($tests::VARCHAR[]))
                AND day BETWEEN $from_day::INTEGER AND $to_day::INTEGER
              QUALIFY row_number() OVER (PARTITION BY usubjid, lbtestcd ORDER BY day) = 1)
        WHERE grade >= $grade::INTEGER
    """,
}



def _source_ctes(con) -> str:
    """Shared CTEs: the cut's subjects and AEs, CRS/ICANS per subject (episodes, else AEs) and lab grades."""
    where = "studyid = $studyid AND data_cut = $data_cut"
    # the AEs are read where used, not copied once for all readers: each reader's filters then go into its scan, and
    # the term lists are matched on the stored, dictionary-encoded text (DuckDB's copy is plain text, matched row
    # by row; 0.65 -> 0.57 CPU s at 20,000 subjects)
    ctes = [f"subj AS (SELECT * FROM subjects WHERE {where})",
            f"ae AS NOT MATERIALIZED (SELECT * FROM adverse_events WHERE {where})"]
    present = existing(con, ("toxicity_episodes", "lab_toxicity_records", *_ASSESSMENTS.values()))
    has_episodes = "toxicity_episodes" in present
    episode_columns = {r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = 'toxicity_episodes'").fetchall()}
    has_hours = "grade3_plus_hours" in episode_columns
    # grade >= 3 still present at the last assessment of an ongoing episode: counted to the cut
    g3_end = ("coalesce(grade3_plus_end_day, grade3_plus_last_day)" if "grade3_plus_end_day" in episode_columns
              else "grade3_plus_last_day")
    g3_open = ("coalesce(grade3_plus_ongoing, false)" if "grade3_plus_ongoing" in episode_columns else "false")
    for syn, label in SOURCE_LABEL.items():
        if has_episodes:
            basis = "source" if "source" in episode_columns else "NULL::VARCHAR"
            if "source" in episode_columns and _ASSESSMENTS[syn] in present:
                # a reported AE of a subject with assessments: none of them could be graded on its days
                basis = (f"CASE WHEN source = 'reported AE' AND usubjid IN (SELECT usubjid FROM {_ASSESSMENTS[syn]} "
                         f"WHERE {where}) THEN '{UNGRADED_BASIS}' ELSE source END")
            ep = (f"SELECT usubjid, event_key, '{label}' AS source, '{syn}' AS term, onset_day, "
                  f"{EPISODE_END_DAY} AS end_day, {EPISODE_GRADE} AS grade, duration_days, ongoing, "
                  f"grade3_plus_first_day AS g3_first, {g3_end} AS g3_last, "
                  f"{'grade3_plus_hours' if has_hours else 'NULL::DOUBLE'} AS g3_hours, {g3_open} AS g3_open, "
                  f"{basis} AS basis "
                  f"FROM toxicity_episodes WHERE {where} AND upper(syndrome) = '{syn}'")
            assessed = f"SELECT usubjid FROM ep_{syn}"
            if _ASSESSMENTS[syn] in present:
                assessed += f" UNION SELECT usubjid FROM {_ASSESSMENTS[syn]} WHERE {where}"
        else:
            # no derived episodes in this database: every subject falls back to reported AEs
            ep = ("SELECT NULL::VARCHAR AS usubjid, NULL::VARCHAR AS event_key, NULL::VARCHAR AS source, "
                  "NULL::VARCHAR AS term, NULL::INTEGER AS onset_day, NULL::INTEGER AS end_day, NULL::INTEGER AS grade, "
                  "NULL::INTEGER AS duration_days, NULL::BOOLEAN AS ongoing, NULL::INTEGER AS g3_first, "
                  "NULL::INTEGER AS g3_last, NULL::DOUBLE AS g3_hours, NULL::BOOLEAN AS g3_open, "
                  "NULL::VARCHAR AS basis WHERE false")
            assessed = "SELECT NULL::VARCHAR AS usubjid WHERE false"
        ctes.append(f"ep_{syn} AS ({ep})")
        ctes.append(f"assessed_{syn} AS ({assessed})")
        ctes.append(
            f"syn_{syn} AS (SELECT * FROM ep_{syn} UNION ALL "
            f"SELECT usubjid, event_key, 'AE', '{syn}', onset_day, end_day, aetoxgr, duration_days, ongoing, "
            "NULL::INTEGER, NULL::INTEGER, NULL::DOUBLE, NULL::BOOLEAN, 'reported AE' FROM ae "
            f"WHERE (upper(coalesce(aedecod, '')) IN (SELECT unnest($terms_{syn}::VARCHAR[])) "
            f"OR upper(coalesce(aeterm, '')) IN (SELECT unnest($terms_{syn}::VARCHAR[]))) "
            f"AND usubjid NOT IN (SELECT usubjid FROM assessed_{syn} WHERE usubjid IS NOT NULL))"
        )
    if "lab_toxicity_records" in present:
        # lab_toxicity's stored records: the grade needs neither the term's name nor the reason's
        labg = ("SELECT r.usubjid, upper(t.lbtestcd) AS lbtestcd, r.day, max(r.grade) AS grade "
                "FROM lab_toxicity_records r JOIN lab_toxicity_terms t ON t.lab_term_id = r.lab_term_id "
                "WHERE t.studyid = $studyid AND t.data_cut = $data_cut AND r.grade IS NOT NULL "
                "AND r.day IS NOT NULL GROUP BY ALL")
    else:
        # Fallback when the lab grading derivation has not run: CTCAE v5 grades 2-4 for ANC and
        # platelets from their absolute cut-offs (10^9/L, strict <), the only tests cytopenia rules need.
        labg = ("SELECT usubjid, upper(lbtestcd) AS lbtestcd, day, max(CASE "
                "WHEN upper(lbtestcd) = 'NEUT' THEN CASE WHEN value < 0.5 THEN 4 WHEN value < 1.0 THEN 3 "
                "WHEN value < 1.5 THEN 2 ELSE 0 END "
                "WHEN upper(lbtestcd) = 'PLAT' THEN CASE WHEN value < 25 THEN 4 WHEN value < 50 THEN 3 "
                "WHEN value < 75 THEN 2 ELSE 0 END END) AS grade "
                f"FROM labs WHERE {where} AND value IS NOT NULL AND day IS NOT NULL AND {blood_result()} "
                "AND upper(lbtestcd) IN ('NEUT', 'PLAT') GROUP BY ALL")
    ctes.append(f"labg AS ({labg})")
    # a reported CRS/ICANS AE and the episode derived for it are one clinical event (episodes.ae_event_key); so are
    # a death with no fatal AE and the episode that its recorded cause (DM/DS) makes grade 5
    twins = ["SELECT NULL::VARCHAR AS ae_event_key, NULL::VARCHAR AS episode_key, false AS crs_sign WHERE false"]
    if has_episodes and "ae_event_key" in episode_columns:
        twins.append("SELECT ae_event_key, event_key AS episode_key, false FROM toxicity_episodes "
                     f"WHERE {where} AND ae_event_key IS NOT NULL")
    if has_episodes and "grade5_basis" in episode_columns:
        twins.append(f"SELECT {death_event_key_sql('usubjid')}, event_key, false FROM toxicity_episodes "
                     f"WHERE {where} AND max_grade = 5 AND (contains(grade5_basis, '{DEATH_CAUSE_BASIS}') "
                     f"OR contains(grade5_basis, '{DEATH_DS_BASIS}'))")
    if has_episodes and "last_symptomatic_day" in episode_columns:
        # and so are a sign ASTCT grades CRS by (hypotension, hypoxia) reported as an AE and the CRS episode it
        # began in (its onset to its last symptomatic day; not one over before the infusion); an organ toxicity is not
        twins.append(
            "SELECT a.event_key, arg_max(e.event_key, e.onset_day), true "
            f"FROM ae a JOIN toxicity_episodes e ON {during_crs_episode_sql('a', 'e')} "
            "WHERE e.studyid = $studyid AND e.data_cut = $data_cut AND upper(e.syndrome) = 'CRS' "
            f"AND {syndrome_term_sql('a.aedecod', 'a.aeterm')} IN (SELECT unnest($crs_sign_terms::VARCHAR[])) "
            "GROUP BY a.event_key")
    ctes.append(f"twin AS ({' UNION ALL '.join(twins)})")
    return ",\n".join(ctes)


def _rule_params(rule: dict) -> dict:
    """The rule's values for its template, with defaults, hours turned into days."""
    rtype = rule["type"]
    p = {**DLT_RULE_DEFAULTS[rtype], **{k: v for k, v in rule.items() if k not in ("id", "type", "reason")}}
    if rtype == "syndrome_grade":
        # without times, "more than 72 hours" means more than 3 days counted end - start + 1
        hours = p.get("more_than_hours")
        if hours is not None:
            p["more_than_days"] = hours / 24.0
        else:
            p["more_than_hours"] = None
        p.pop("syndrome", None)
    if rtype == "ae_grade":
        p["exclude_terms"] = [str(t).upper() for t in p["exclude_terms"]]
        p["include_terms"] = [str(t).upper() for t in p["include_terms"]]
    if rtype == "cytopenia_persisting":
        p["tests"] = [str(t).upper() for t in p["tests"]]
    return p


_SHARED = {"studyid", "data_cut", "progression_terms", "terms_CRS", "terms_ICANS", "causality_not_given",
           "crs_sign_terms", "crs_sign_note"}


def _with_syndrome_spellings(terms: list[str], params: dict) -> list[str]:
    """``terms`` with every spelling of a syndrome one of them names (dlt.syndrome_terms): a rule that leaves out
    "CYTOKINE RELEASE SYNDROME" leaves out a site's "CRS" too, which the syndrome rules grade instead."""
    out = list(terms)
    for syndrome in ("CRS", "ICANS"):
        spellings = params[f"terms_{syndrome}"]
        if set(spellings) & set(terms):
            out += [t for t in spellings if t not in out]
    return out


def screening_sql(con, config: dict) -> tuple[str, dict]:
    """The one SELECT that screens every configured rule, and its parameters (without studyid/data_cut)."""
    dlt = config["dlt"]
    params: dict = {
        "progression_terms": [str(t).upper() for t in dlt.get("progression_terms", [])],
        "terms_CRS": [str(t).upper() for t in dlt.get("syndrome_terms", {}).get("CRS", [])],
        "terms_ICANS": [str(t).upper() for t in dlt.get("syndrome_terms", {}).get("ICANS", [])],
        "win_start": int(dlt["window"]["start_day"]),
        "win_end": int(dlt["window"]["end_day"]),
        "causality_not_given": CAUSALITY_NOT_GIVEN,
        "crs_sign_terms": list(CRS_SIGN_TERMS),
        "crs_sign_note": CRS_SIGN_NOTE,
        # a rule's id by its rule_order (+ 1): the rules an event meets are gathered as orders, then named
        "rule_ids": [str(rule["id"]) for rule in dlt["rules"]],
    }
    parts = []
    for i, rule in enumerate(dlt["rules"]):
        template = TEMPLATES[rule["type"]]
        if rule["type"] == "syndrome_grade":
            template = template.replace("{syndrome}", rule["syndrome"])  # CRS or ICANS, validated
        values = _rule_params(rule)
        if rule["type"] == "ae_grade":
            values["exclude_terms"] = _with_syndrome_spellings(values["exclude_terms"], params)
        prefix = f"r{i}_"

        def rename(m, values=values, prefix=prefix):
            name = m.group(1)
            if name in _SHARED:
                return m.group(0)
            if name not in values:
                values[name] = None
            return "$" + prefix + name

        body = _PARAM_RE.sub(rename, template)
        for k, v in values.items():
            params[prefix + k] = v
        params[prefix + "rule_id"] = str(rule["id"])
        params[prefix + "reason"] = str(rule.get("reason") or rule["id"])
        parts.append(f"SELECT {i} AS rule_order, ${prefix}rule_id AS rule_id, ${prefix}reason AS reason, * "
                     f"FROM ({body}) AS r{i}")
    # no rows; it names every column, so a rule set with no AE rule (or none) still has ended_before_infusion
    parts.append("SELECT NULL::INTEGER AS rule_order, NULL::VARCHAR AS rule_id, NULL::VARCHAR AS reason, "
                 "NULL::VARCHAR AS usubjid, NULL::VARCHAR AS event_key, NULL::VARCHAR AS source, "
                 "NULL::VARCHAR AS term, NULL::INTEGER AS onset_day, NULL::INTEGER AS end_day, "
                 "NULL::INTEGER AS grade, NULL::INTEGER AS duration_days, NULL::BOOLEAN AS ongoing, "
                 "NULL::VARCHAR AS evidence, NULL::BOOLEAN AS window_applies, "
                 "NULL::BOOLEAN AS ended_before_infusion WHERE false")
    hits = "\nUNION ALL BY NAME\n".join(parts)
    # An AE that meets a rule (a fatal ICANS AE, R1) while the episode derived for it meets another (ICANS grade
    # >= 4, R4) is one event: it becomes one candidate under the episode's key, the other rule in also_matches,
    # so the committee adjudicates it once and the pending counts count it once.
    sql = f"""WITH {_source_ctes(con)},
rule_hits AS ({hits}),
-- met: the twin's episode meets a rule itself (one lookup per twin, read by both columns of hits)
twin_met AS (SELECT *, episode_key IN (SELECT event_key FROM rule_hits WHERE event_key IS NOT NULL) AS met FROM twin),
hits AS (SELECT h.event_key AS hit_key, h.rule_order, h.rule_id,
                CASE WHEN t.met THEN t.episode_key ELSE h.event_key END AS event_key,
                -- a sign of CRS whose episode meets no rule stays a candidate of its own, saying where it lay
                CASE WHEN t.crs_sign AND NOT t.met THEN t.episode_key END AS crs_sign_episode
         FROM rule_hits h LEFT JOIN twin_met t ON t.ae_event_key = h.event_key),
-- one row per event, of the hits' keys, not their evidence: its first rule's hit, joined back to rule_hits by
-- (hit_key, rule_order), which names one row (a rule meets an event key once: AESEQ and episode numbers are
-- unique), and the orders of every rule it meets (a GROUP BY: a window over the hits cost 0.1 CPU s more). Two
-- AEs of one episode that meet its first rule: the lower key speaks for it, the same on every load (a reload
-- that picked the other would change the candidate's fingerprint and ask the committee to review it again)
ranked AS (SELECT event_key, min(rule_order) AS rule_order,
                  arg_min(struct_pack(hit_key, crs_sign_episode), struct_pack(rule_order, hit_key)) AS first_hit,
                  CASE WHEN count(*) > 1
                       THEN list_transform(list_sort(list(rule_order)), lambda o: $rule_ids[o + 1]) END AS rules_met
           FROM hits GROUP BY event_key)
SELECT $studyid AS studyid, $data_cut::DATE AS data_cut, r.usubjid, k.event_key, r.source, r.rule_id, r.reason,
       -- each other rule once: two AEs of one CRS episode that meet R9 are one R9, and the rule that names the
       -- candidate is not "also" met
       nullif(array_to_string(list_filter(k.rules_met,
                                          lambda x, i: x <> r.rule_id AND list_position(k.rules_met, x) = i),
                              ', '), '') AS also_matches,
       r.term, r.onset_day, r.end_day, r.grade, r.duration_days, r.ongoing,
       CASE WHEN r.window_applies THEN {_IN_WINDOW} ELSE true END AS in_window,
       r.evidence || CASE WHEN r.window_applies AND coalesce(r.ended_before_infusion, false) AND NOT {_IN_WINDOW}
                          THEN '; ended before the infusion: outside the DLT window'
                          -- a death of unknown day: in the window unless known alive after it (the evidence
                          -- names the last day known alive)
                          WHEN r.window_applies AND r.onset_day IS NULL AND r.source = '{DEATH_SOURCE}' THEN
         '; date of death unknown' || CASE WHEN {_IN_WINDOW} THEN '{_SCREENED_IN_WINDOW}'
                                           ELSE ': known alive after the DLT window' END
                          WHEN r.window_applies AND r.onset_day IS NULL THEN
         '; onset date unknown' || CASE WHEN {_IN_WINDOW}
           THEN '{_SCREENED_IN_WINDOW}' || coalesce(' (began by day ' || CAST({_LATEST_ONSET} AS VARCHAR) || ' at the latest)', '')
           ELSE coalesce(': ended on day ' || CAST(r.end_day AS VARCHAR) || ', before the DLT window', '') END
         ELSE '' END
       || coalesce('; during CRS episode ' || k.first_hit.crs_sign_episode || ', which meets no rule: '
                   || $crs_sign_note, '')
         AS evidence,
       {fingerprint_sql('r')} AS event_fingerprint,
       s.cohort, s.dose_level
FROM ranked k JOIN rule_hits r ON r.event_key = k.first_hit.hit_key AND r.rule_order = k.rule_order
LEFT JOIN subj s ON s.usubjid = r.usubjid"""
    return sql, params


def derive_dlt(con, studyid: str, data_cut: dt.date, config: dict, review_store=None) -> None:
    """Rebuild dlt_candidates and dlt_evaluability for one study and cut (adjudications read from the store)."""
    base = {"studyid": studyid, "data_cut": data_cut}
    con.execute("BEGIN TRANSACTION")
    try:
        reset_derived(con, (DLT_CANDIDATES,), studyid, data_cut)
        create_missing(con, (DLT_EVALUABILITY,))
        sql, params = screening_sql(con, config)
        run_sql(con, f"INSERT INTO dlt_candidates BY NAME {sql}", {**params, **base})
        adj = adjudication_params(review_store, studyid, data_cut)
        # computed before the cut's old rows go: they still tell the dose level of a decided subject who has
        # left the cut on this reload
        evaluability = evaluability_sql(_source_ctes(con), event_sources_of(con))
        run_sql(con, f"CREATE OR REPLACE TEMP TABLE _dlt_evaluability_new AS {evaluability}",
                {**params, **adj, **base})
        reset_derived(con, (DLT_EVALUABILITY,), studyid, data_cut)
        con.execute("INSERT INTO dlt_evaluability BY NAME SELECT * FROM _dlt_evaluability_new")
        con.execute("DROP TABLE _dlt_evaluability_new")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


DERIVATION = Derivation(
    name="dlt_screening",
    writes=(DLT_CANDIDATES, DLT_EVALUABILITY),
    reads=('subjects', 'adverse_events', 'labs', 'crs_assessments', 'icans_assessments', 'lab_toxicity_records',
           'lab_toxicity_terms', 'toxicity_episodes', 'deaths'),
    run=derive_dlt,
)
