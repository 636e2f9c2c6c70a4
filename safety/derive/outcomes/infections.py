"""Infection episodes, incidence density per window, and infection-related support (IVIG, G-CSF, anti-infectives).

An episode is an AE in the SOC "Infections and infestations" or whose term names a pathogen, plus positive
microbiology (MB) of no such AE. AE records of one pathogen that overlap or follow on the next day (a site's new
record for a change of grade) are one episode, with the worst grade; an AE episode and the positive results that
could be that infection (one pathogen class; the AE names their pathogen, or it or they name none), no more than 7
days apart, are one run, the AE's episode, and a run of results alone is one episode per organism. An ongoing AE
reaches to the cut only for records and results of the one organism it names. grade3_onset_day is the onset of an
episode's first grade >= 3 record. An AE without a start date is counted (as the
FDA Standard Safety Tables do), an episode of its own from day 0, or its end day if earlier, with onset_date_flag
'Y'. A positive result that names no organism (a
quantity, 'POSITIVE') is one of the organism its test names (MBTEST, else MBTESTCD). The pathogen class comes from
safety/data/infection_classes.csv (lowest priority number wins). Windows by onset day follow the committee
convention (days 0-30, 31-90, 91-365); incidence density counts every episode (recurrent events) over the
patient-days each infused subject was followed in the window. Choices are in docs/outcomes.md.
"""
from __future__ import annotations

import re

from safety.core.vocabulary import BELOW_LIMIT_TEXTS, fatal_ae
from safety.derive.graph import Derivation
from safety.derive.outcomes import _data
from safety.derive.toxicity._sql import insert, reset
from safety.schema import INFECTION_EPISODES, INFECTION_INCIDENCE_DENSITY, INFECTION_SUPPORT

# (label, first day, last day): one definition, read by the density table, the pages and the packet.
WINDOWS = (("day 0-30", 0, 30), ("day 31-90", 31, 90), ("day 91-365", 91, 365))
PATHOGEN_CLASSES = ("bacterial", "viral", "fungal", "other/unspecified")
MB_MATCH_DAYS = 7           # a finding that could be an AE's infection, during it or this near, is its episode
UNNAMED_PRIORITY = 9        # class rows at this priority name no pathogen: alone they do not make an AE an infection
NO_INFECTION = "none"       # pathogen_class of a row whose text reads like an infection and is none ('Influenza like illness')
# A microbiology result that found nothing: a negative, a non-reactive test, an undetected target, no growth, a
# result below the assay's limit (a whole result of BELOW_LIMIT_TEXTS: 'BLQ', '<LOD', 'ND', 'TND' ..., the PC load's
# list; any result starting with '<': '<137 IU/mL', '< LLOQ') or a quantity of zero ('0 IU/mL'), or a result that
# could not be read (indeterminate, equivocal, inconclusive, invalid, not done); so is a result naming what it did
# not find ('CMV NEGATIVE', 'NO ASPERGILLUS DETECTED') and a culture of no pathogen: sterile, or normal, mixed or
# commensal flora. Such a result is no infection. A Gram stain's 'GRAM NEGATIVE RODS' found an organism: GRAM_STAIN
# is taken out of a result before it is read.
GRAM_STAIN = r"\bGRAM[- ]?(NEGATIVE|POSITIVE|VARIABLE)\b"
NEGATIVE_MB = (r"^\s*$|^\s*(" + "|".join(re.escape(t) for t in BELOW_LIMIT_TEXTS) + r")\s*$|^\s*<"
               r"|^\W*(NO|NONE|ABSENT)\b|\bNEGATIVE\b|NON-?REACTIVE|NOT (DETECTED|ISOLATED|FOUND|SEEN)|UNDETECT"
               r"|NO GROWTH|\bSTERILE\b|\bFLORA\b"
               r"|BELOW (THE )?(LIMIT|LLOQ|LOWER LIMIT)|^0+([.,]0*)?(\s|[A-Z/%]|$)"
               r"|INDETERMINATE|EQUIVOCAL|INCONCLUSIVE|INVALID|NOT (DONE|PERFORMED|TESTED)")

ONGOING_REACH = 1000000     # the day an ongoing record reaches when it reaches the cut: later than any follow-up


def grade3_by_window(episodes):
    """The grade >= 3 (or fatal) rows of ``episodes`` (infection_episodes as a DataFrame), each with onset_window
    set to the window its first grade >= 3 record began in (grade3_onset_window), as the incidence density counts
    them: an infection that began before the infusion and turned grade 3 on day 2 is a day 0-30 grade >= 3 one.
    The Outcomes page and the packet count these."""
    severe = episodes[(episodes["ctcae_grade"].fillna(0) >= 3) | episodes["fatal"].fillna(False).astype(bool)]
    return severe.assign(onset_window=severe["grade3_onset_window"])


def open_reach(end_day: str, onset_day: str, same_organism: str) -> str:
    """SQL of the last day an AE record can take another record or result of its infection: its end; without one
    (ongoing at the cut), the cut for one of the one organism it names (``same_organism``), else its onset day,
    so an open record takes nothing of a new organism weeks later. One definition for AE records and MB results."""
    return f"coalesce({end_day}, CASE WHEN {same_organism} THEN {ONGOING_REACH} ELSE {onset_day} END)"


def names_infection_sql(text: str) -> str:
    """SQL: the upper-case ``text`` names an infection by the class table (any row, a pathogen or none, the row of
    lowest priority number not one of NO_INFECTION): the infection deaths read causes by it. Needs
    _infection_classes (``_data.install(con, "infection_classes.csv")``)."""
    return (f"coalesce((SELECT arg_min(k.pathogen_class, k.priority) <> '{NO_INFECTION}' FROM _infection_classes k "
            f"WHERE regexp_matches({text}, k.pattern)), false)")


WINDOW_SQL = ("CASE WHEN {d} < 0 THEN 'before day 0' "
              + " ".join(f"WHEN {{d}} <= {hi} THEN '{lab}'" for lab, _, hi in WINDOWS)
              + " ELSE 'after day 365' END")


def window_of(day_expr: str) -> str:
    """SQL CASE giving the window label of a day expression."""
    return WINDOW_SQL.format(d=day_expr)


_EPISODES = f"""
-- whether an AE is an infection depends on its terms and SOC alone: they are read once per distinct combination
-- (few in a study of 500,000 AEs), and only the AEs of an infection's combination are read further
WITH ae_key AS (
  SELECT *, upper(coalesce(aedecod, '') || ' | ' || coalesce(aeterm, '')) AS txt, upper(coalesce(aebodsys, '')) AS soc
  FROM (SELECT DISTINCT aedecod, aeterm, aebodsys FROM adverse_events WHERE studyid = $s AND data_cut = $c)
),
mb_src AS (
  SELECT b.usubjid, b.usubjid || '/MB/' || coalesce(CAST(b.mbseq AS VARCHAR), CAST(b.day AS VARCHAR)) AS event_key,
         b.organism, upper(b.mbtest) AS test, upper(b.mbtestcd) AS testcd, b.day, b.mb_date, b.mb_date_flag
  FROM microbiology b
  WHERE b.studyid = $s AND b.data_cut = $c AND b.day IS NOT NULL
    AND NOT regexp_matches(regexp_replace(upper(coalesce(b.organism, '')), '{GRAM_STAIN}', 'GRAM', 'g'), '{NEGATIVE_MB}')
),
-- the best class of each distinct AE text, MB result, test name and test code; patterns are matched once per
-- distinct text: a pattern read from a table is compiled for every row it meets
txt_best AS (
  SELECT t.txt,
         min({{'p': k.priority, 'cls': k.pathogen_class, 'pathogen': k.pathogen, 'mould': k.invasive_mould,
              'names': k.names}}) AS best
  FROM (SELECT txt FROM ae_key UNION SELECT organism FROM mb_src UNION SELECT test FROM mb_src
        UNION SELECT testcd FROM mb_src) t
  JOIN _infection_classes k ON regexp_matches(t.txt, k.pattern)
  GROUP BY t.txt
),
ae_key_inf AS (
  SELECT k.aedecod, k.aeterm, k.aebodsys, tb.best
  FROM ae_key k LEFT JOIN txt_best tb USING (txt)
  WHERE (k.soc LIKE '%INFECTIONS AND INFESTATIONS%' OR (tb.best IS NOT NULL AND tb.best.p < {UNNAMED_PRIORITY}))
    AND tb.best.cls IS DISTINCT FROM '{NO_INFECTION}'
),
-- An AE without a start date of an infused subject is counted (FDA Standard Safety Tables: AEs with a missing start
-- date are conservatively included), with its onset the earliest day it could have started: day 0, as the load
-- counts such an AE as treatment-emergent, but not after its end; flagged 'Y' (the whole date imputed, as ADaM)
ae_inf AS (
  SELECT a.usubjid, a.event_key, a.aeseq, coalesce(a.aedecod, a.aeterm) AS term, k.best,
         a.aetoxgr, a.aeser, a.aeout, a.aesdth,
         a.aeen_date, a.ongoing, a.aest_date IS NULL AS onset_imputed,
         coalesce(a.onset_day, least(0, coalesce(a.end_day, 0))) AS onset_day,
         coalesce(a.aest_date, s.first_infusion_date + least(0, coalesce(a.end_day, 0))) AS aest_date,
         CASE WHEN a.aest_date IS NULL THEN 'Y' ELSE a.aest_date_flag END AS onset_date_flag, a.end_day
  FROM adverse_events a
  JOIN ae_key_inf k ON a.aedecod IS NOT DISTINCT FROM k.aedecod AND a.aeterm IS NOT DISTINCT FROM k.aeterm
   AND a.aebodsys IS NOT DISTINCT FROM k.aebodsys
  JOIN subjects s ON s.studyid = a.studyid AND s.data_cut = a.data_cut AND s.usubjid = a.usubjid
  WHERE a.studyid = $s AND a.data_cut = $c
    AND (a.onset_day IS NOT NULL OR (a.aest_date IS NULL AND s.first_infusion_date IS NOT NULL))
),
ae_rec AS (
  SELECT usubjid, event_key, aeseq, term,
         CASE WHEN best IS NULL OR best.cls = 'other' THEN 'other/unspecified' ELSE best.cls END AS pathogen_class,
         coalesce(best.pathogen, 'unspecified') AS pathogen, coalesce(best.mould, false) AS invasive_mould,
         coalesce(best.names, 'none') AS names,
         aetoxgr, upper(coalesce(aeser, '')) = 'Y' AS serious, {fatal_ae('')} AS fatal,
         onset_day, aest_date, onset_date_flag, end_day,
         -- an ongoing record reaches the cut only for later records of the one organism it names (a CMV
         -- infection not yet resolved); an unresolved sinusitis is not the pneumonia of months later
         {open_reach('end_day', 'onset_day', "names = 'organism'")} AS reach,
         -- a record of imputed onset is an episode of its own: whether it overlaps another record is not known
         CASE WHEN onset_imputed THEN event_key END AS alone
  FROM ae_inf
),
-- records of one pathogen that overlap or follow on the next day are one infection (a new record for a change
-- of grade is not a new infection): a new episode starts after a day free of it
ae_grp AS (
  SELECT *, sum(CASE WHEN prev_reach IS NULL OR onset_day > prev_reach + 1 THEN 1 ELSE 0 END)
              OVER (PARTITION BY usubjid, pathogen_class, pathogen, alone ORDER BY onset_day, aeseq) AS grp
  FROM (SELECT *, max(reach) OVER (PARTITION BY usubjid, pathogen_class, pathogen, alone ORDER BY onset_day, aeseq
                                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_reach
        FROM ae_rec)
),
ae_ep AS (
  SELECT usubjid, arg_min(event_key, (onset_day, aeseq)) AS event_key, 'AE' AS source,
         arg_min(term, (onset_day, aeseq)) AS term, pathogen_class, pathogen, bool_or(invasive_mould) AS invasive_mould,
         max(aetoxgr) AS ctcae_grade, bool_or(serious) AS serious, bool_or(fatal) AS fatal,
         min(onset_day) AS onset_day, arg_min(aest_date, (onset_day, aeseq)) AS onset_date,
         arg_min(onset_date_flag, (onset_day, aeseq)) AS onset_date_flag,
         CASE WHEN count(end_day) = count(*) THEN max(end_day) END AS end_day,
         -- the first grade >= 3 infection begins with its grade >= 3 record, not the episode's first record
         min(onset_day) FILTER (WHERE aetoxgr >= 3 OR fatal) AS grade3_onset_day,
         -- one pathogen's records may name it or not ('Candidiasis', 'Fungal infection'): named if one does
         coalesce(min(names) FILTER (WHERE names <> 'none'), 'none') AS names
  FROM ae_grp GROUP BY usubjid, pathogen_class, pathogen, alone, grp
),
-- A positive result that names no organism ('2350 IU/mL', 'POSITIVE', 'DETECTED') is a finding of what the test
-- looks for: the organism is then read from the test name (MBTEST), else its code (MBTESTCD), by the same classes.
-- NULL, not a struct of NULLs, for a finding no class names: it is then 'other/unspecified'
mb AS (
  SELECT b.usubjid, b.event_key, b.day, b.mb_date, b.mb_date_flag,
         CASE WHEN r.best.p < {UNNAMED_PRIORITY} THEN b.organism WHEN t.best.p < {UNNAMED_PRIORITY} THEN b.test
              WHEN d.best.p < {UNNAMED_PRIORITY} THEN b.testcd ELSE b.organism END AS organism,
         CASE WHEN r.best.p < {UNNAMED_PRIORITY} THEN r.best WHEN t.best.p < {UNNAMED_PRIORITY} THEN t.best
              WHEN d.best.p < {UNNAMED_PRIORITY} THEN d.best ELSE r.best END AS best
  FROM mb_src b LEFT JOIN txt_best r ON r.txt = b.organism LEFT JOIN txt_best t ON t.txt = b.test
       LEFT JOIN txt_best d ON d.txt = b.testcd
),
mbc AS (
  SELECT mb.*,
         -- a positive result is a finding whatever its text: a text of no infection names no pathogen
         CASE WHEN mb.best IS NULL OR mb.best.cls IN ('other', '{NO_INFECTION}') THEN 'other/unspecified'
              ELSE mb.best.cls END AS pathogen_class,
         CASE WHEN mb.best.cls = '{NO_INFECTION}' THEN 'unspecified' ELSE coalesce(mb.best.pathogen, 'unspecified') END
           AS pathogen, coalesce(mb.best.names, 'none') AS names
  FROM mb
),
-- An infection runs while its findings keep coming: an AE episode and the positive results that could be the same
-- infection, no more than {MB_MATCH_DAYS} days apart, are one run (weekly CMV PCRs while and after a CMV infection are
-- that infection); a run with an AE is the AE's episode, a run of results alone one episode per organism. Results
-- run with the results of their own pathogen (and naming level), and with each AE episode of their class that names
-- the same pathogen, or that or they name none ('Sepsis' and a blood culture's E. coli): a URTI never takes a CMV PCR.
-- An ongoing AE reaches to the cut only for results of the one organism it names (a CMV reactivation not yet
-- resolved); for any other result it reaches its onset, so it takes no result of a new organism weeks later.
run_of AS (SELECT DISTINCT usubjid, pathogen_class, pathogen, names FROM mbc),
span AS (
  SELECT r.usubjid, r.pathogen_class, r.pathogen AS run_pathogen, r.names AS run_names, a.onset_day AS d0,
         {open_reach('a.end_day', 'a.onset_day', "a.pathogen = r.pathogen AND r.names = 'organism'")} AS d1,
         true AS is_ae, NULL AS event_key
  FROM ae_ep a JOIN run_of r ON r.usubjid = a.usubjid AND r.pathogen_class = a.pathogen_class
   AND (a.pathogen = r.pathogen OR a.names = 'none' OR r.names = 'none')
  UNION ALL
  SELECT usubjid, pathogen_class, pathogen, names, day, day, false, event_key FROM mbc
),
run AS (
  SELECT *, sum(CASE WHEN prev IS NULL OR d0 > prev + {MB_MATCH_DAYS} THEN 1 ELSE 0 END)
              OVER (PARTITION BY usubjid, pathogen_class, run_pathogen, run_names
                    ORDER BY d0, d1, is_ae DESC, event_key) AS run_no
  FROM (SELECT *, max(d1) OVER (PARTITION BY usubjid, pathogen_class, run_pathogen, run_names
                                ORDER BY d0, d1, is_ae DESC, event_key
                                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev
        FROM span)
),
mb_alone AS (
  SELECT mbc.* FROM mbc JOIN run r ON r.event_key = mbc.event_key AND NOT r.is_ae
  WHERE NOT EXISTS (SELECT 1 FROM run a WHERE a.is_ae AND a.usubjid = r.usubjid AND a.pathogen_class = r.pathogen_class
                      AND a.run_pathogen = r.run_pathogen AND a.run_names = r.run_names AND a.run_no = r.run_no)
),
-- results of one organism alone: one episode from the first positive while the next comes within the window
mb_run AS (
  SELECT *, sum(CASE WHEN prev IS NULL OR day > prev + {MB_MATCH_DAYS} THEN 1 ELSE 0 END)
              OVER (PARTITION BY usubjid, pathogen_class, organism ORDER BY day, event_key) AS mb_no
  FROM (SELECT *, lag(day) OVER (PARTITION BY usubjid, pathogen_class, organism ORDER BY day, event_key) AS prev
        FROM mb_alone)
),
mb_ep AS (
  SELECT usubjid, arg_min(event_key, (day, event_key)) AS event_key, 'MB' AS source, organism AS term,
         pathogen_class, any_value(pathogen) AS pathogen,
         coalesce(bool_or(best.mould), false) AS invasive_mould,
         CAST(NULL AS INTEGER) AS ctcae_grade, false AS serious, false AS fatal,
         min(day) AS onset_day, arg_min(mb_date, (day, event_key)) AS onset_date,
         arg_min(mb_date_flag, (day, event_key)) AS onset_date_flag, CAST(NULL AS INTEGER) AS end_day,
         CAST(NULL AS INTEGER) AS grade3_onset_day
  FROM mb_run GROUP BY usubjid, pathogen_class, organism, mb_no
),
ep AS (SELECT * FROM ae_ep UNION ALL BY NAME SELECT * FROM mb_ep)
SELECT $s AS studyid, $c AS data_cut, ep.*,
       CASE WHEN ctcae_grade IS NULL THEN 'not graded' WHEN ctcae_grade = 5 OR fatal THEN 'grade 5'
            WHEN ctcae_grade >= 3 THEN 'grade 3-4' ELSE 'grade 1-2' END AS severity,
       {window_of('onset_day')} AS onset_window,
       CASE WHEN grade3_onset_day IS NOT NULL THEN {window_of('grade3_onset_day')} END AS grade3_onset_window
FROM ep
"""


ALL_DOSE_LEVELS = "all"         # dose_level of the whole-study rows of infection_incidence_density
NO_DOSE_LEVEL = "not assigned"  # dose_level of subjects without one


def _density_sql() -> str:
    windows = " UNION ALL ".join(f"SELECT '{lab}' AS w, {lo} AS lo, {hi} AS hi" for lab, lo, hi in WINDOWS)
    classes = " UNION ALL ".join(f"SELECT '{c}' AS k" for c in ("all", *PATHOGEN_CLASSES))
    return f"""
WITH w AS ({windows}),
k AS ({classes}),
sev AS (SELECT 'any grade' AS sv UNION ALL SELECT 'grade >= 3'),
subj0 AS (
  SELECT usubjid, coalesce(death_day, last_known_alive_day) AS last_day,
         coalesce(dose_level, '{NO_DOSE_LEVEL}') AS dose_level FROM subjects
  WHERE studyid = $s AND data_cut = $c AND infused AND first_infusion_date IS NOT NULL
),
-- every subject counts in the whole study and in its own dose level
subj AS (
  SELECT usubjid, last_day, '{ALL_DOSE_LEVELS}' AS dl FROM subj0
  UNION ALL SELECT usubjid, last_day, dose_level FROM subj0
),
dl AS (SELECT DISTINCT dl FROM subj),
risk AS (
  SELECT w.w, subj.dl, sum(greatest(0, least(subj.last_day, w.hi) - w.lo + 1)) AS pdays,
         count(*) FILTER (WHERE subj.last_day >= w.lo) AS n_risk
  FROM w CROSS JOIN subj GROUP BY w.w, subj.dl
),
ep AS (
  SELECT e.*, subj.dl FROM infection_episodes e JOIN subj USING (usubjid)
  WHERE e.studyid = $s AND e.data_cut = $c
),
cnt AS (
  SELECT w.w, dl.dl, k.k, sev.sv, count(ep.event_key) AS n, count(DISTINCT ep.usubjid) AS n_subj
  FROM w CROSS JOIN dl CROSS JOIN k CROSS JOIN sev
  -- a grade >= 3 episode counts as one in the window its grade >= 3 record began
  LEFT JOIN ep ON ep.dl = dl.dl AND (k.k = 'all' OR ep.pathogen_class = k.k)
              AND w.w = CASE WHEN sev.sv = 'any grade' THEN ep.onset_window ELSE ep.grade3_onset_window END
  GROUP BY ALL
)
SELECT $s AS studyid, $c AS data_cut, cnt.dl AS dose_level, w.w AS onset_window, w.lo AS window_start,
       w.hi AS window_end, cnt.k AS pathogen_class, cnt.sv AS severity, CAST(cnt.n AS INTEGER) AS episodes,
       CAST(cnt.n_subj AS INTEGER) AS subjects_with_episode, CAST(coalesce(risk.n_risk, 0) AS INTEGER) AS subjects_at_risk,
       CAST(coalesce(risk.pdays, 0) AS INTEGER) AS patient_days,
       CASE WHEN coalesce(risk.pdays, 0) > 0 THEN CAST(cnt.n AS DOUBLE) / risk.pdays * 100.0 END AS per_100_patient_days
FROM cnt JOIN w ON w.w = cnt.w LEFT JOIN risk ON risk.w = cnt.w AND risk.dl = cnt.dl
"""


_SUPPORT = """
WITH m AS (
  SELECT c.*, upper(coalesce(c.cmtrt, '') || ' | ' || coalesce(c.cmdecod, '')) AS txt FROM medications c
  WHERE c.studyid = $s AND c.data_cut = $c
),
txt_hit AS (
  SELECT t.txt, k.support, k.priority
  FROM (SELECT DISTINCT txt FROM m) t JOIN _infection_support k ON regexp_matches(t.txt, k.pattern)
),
hit AS (
  SELECT m.usubjid, m.cmseq, m.cmtrt, m.cmindc, m.cmcat, m.start_day, m.end_day,
         arg_min(k.support, (k.priority, k.support)) AS support  -- two of one priority: the first in text order
  FROM m JOIN txt_hit k USING (txt)
  GROUP BY ALL
)
SELECT $s AS studyid, $c AS data_cut, usubjid, cmseq, support, cmtrt, cmindc,
       (regexp_matches(upper(coalesce(cmindc, '') || ' ' || coalesce(cmcat, '')), 'PROPHYLA|PREVENT|PRE-EMPTIVE')
        OR (support = 'IVIG' AND regexp_matches(upper(coalesce(cmindc, '')), 'HYPOGAMMA|IMMUNOGLOBULIN|REPLACEMENT')))
         AS prophylaxis,
       start_day, end_day
FROM hit
"""


def derive_infections(con, studyid, data_cut, config, review_store=None) -> None:
    """Rebuild infection_episodes, infection_incidence_density and infection_support for one (study, cut)."""
    p = {"s": studyid, "c": data_cut}
    reset(con, (INFECTION_EPISODES, INFECTION_INCIDENCE_DENSITY, INFECTION_SUPPORT), studyid, data_cut)
    _data.install(con, "infection_classes.csv")
    _data.install(con, "infection_support.csv")
    insert(con, INFECTION_EPISODES, _EPISODES, p)
    insert(con, INFECTION_INCIDENCE_DENSITY, _density_sql(), p)
    insert(con, INFECTION_SUPPORT, _SUPPORT, p)


DERIVATION = Derivation(
    name="infections",
    writes=(INFECTION_EPISODES, INFECTION_INCIDENCE_DENSITY, INFECTION_SUPPORT),
    reads=("subjects", "adverse_events", "microbiology", "medications"),
    run=derive_infections,
)
