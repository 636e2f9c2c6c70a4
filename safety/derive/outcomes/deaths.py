"""Every death with its day and cause category, non-relapse mortality (NRM) at days 28, 100 and 365, and the
treatment-related deaths the stopping rules monitor.

A death is read from DM (DTHDTC), DS (DSDECOD DEATH) and AE (grade 5, AEOUT FATAL or AESDTH Y): a death recorded
only as a fatal AE still counts. The cause category comes from the delivered cause (DS DSTERM) and from the fatal
AE through safety/data/death_causes.csv, a cause naming the subject's own disease under study being its
progression/relapse; the delivered cause wins unless it only reads as 'other'. NRM follows the
transplant/CAR-T convention: death without prior progression or relapse, with progression/relapse as the competing
event. Choices are in docs/outcomes.md.
"""
from __future__ import annotations

import datetime as dt

from safety.core.vocabulary import fatal_ae
from safety.derive.graph import Derivation
from safety.derive.outcomes import _data
from safety.derive.outcomes.infections import names_infection_sql
from safety.derive.outcomes.malignancy import KIND_PARAMS, malignant_sql, myeloid_sql, names_disease_sql
from safety.derive.outcomes.survival import (PROGRESSION_SQL, cumulative_incidence_at, endpoint_arrays,
                                             progression_params)
from safety.derive.toxicity._sql import insert, reset, run
from safety.schema import DEATHS, NRM_ESTIMATES

NRM_HORIZONS = (28, 100, 365)
# the page's and the packet's note when a death has no date (deaths.death_day NULL); one definition
UNDATED_DEATHS_NOTE = ("{n} death(s) without a recorded date (death day blank): counted among the deaths, with the "
                       "non-relapse deaths by day blank; in the NRM and other cumulative incidences the subject is "
                       "censored at the last known alive day, since the day of death cannot be placed in time.")


# and when such a death is a non-relapse death of an infused subject: how many the by-day NRM counts leave out, so
# a committee never reads a lower NRM without knowing (the estimate's censoring rule is kept: docs/outcomes.md)
UNDATED_NRM_NOTE = ("{n} non-relapse death(s) of infused subjects without a recorded date are not in the "
                    "'Non-relapse deaths by day' counts (28, 100, 365) nor in the NRM cumulative incidence, which "
                    "censors them at the last known alive day: non-relapse mortality may be higher than shown.")


def undated_deaths_note(deaths) -> list[str]:
    """The notes on the deaths of ``deaths`` (rows of the deaths table, a pandas DataFrame) without a day, for the
    page and the packet alike: :data:`UNDATED_DEATHS_NOTE` when any has no day, and :data:`UNDATED_NRM_NOTE`
    when any of those is a non-relapse death of an infused subject (``treatment_related``)."""
    undated = deaths["death_day"].isna()
    n = int(undated.sum())
    nrm = int((undated & deaths["treatment_related"].fillna(False).astype(bool)).sum())
    return ([UNDATED_DEATHS_NOTE.format(n=n)] if n else []) + ([UNDATED_NRM_NOTE.format(n=nrm)] if nrm else [])

_DEATHS = """
WITH subj AS (
  SELECT usubjid, infused, first_infusion_date, death_date, death_source, death_cause, diagnosis FROM subjects
  WHERE studyid = $s AND data_cut = $c
),
ds AS (
  SELECT usubjid, min(dsst_date) AS ds_date,
         -- the first DS death record by date, then DSSEQ (two on one date: the lower DSSEQ, not whichever
         -- DuckDB's threads met first)
         -- (a record of no date, a death the load counts with its day unknown: the first by DSSEQ)
         coalesce(arg_min(CASE WHEN upper(dsterm) <> 'DEATH' THEN dsterm END, (dsst_date, dsseq))
                    FILTER (WHERE dsst_date IS NOT NULL),
                  arg_min(CASE WHEN upper(dsterm) <> 'DEATH' THEN dsterm END, dsseq)) AS ds_cause
  FROM disposition WHERE studyid = $s AND data_cut = $c AND upper(dsdecod) = 'DEATH' GROUP BY usubjid
),
fae AS (
  SELECT usubjid, arg_max(event_key, (coalesce(aeen_date, aest_date), aeseq)) AS fatal_ae_key,
         arg_max(coalesce(aedecod, aeterm), (coalesce(aeen_date, aest_date), aeseq)) AS fatal_ae_term,
         arg_max(related, (coalesce(aeen_date, aest_date), aeseq)) AS fatal_ae_related,
         max(coalesce(aeen_date, aest_date)) AS ae_date
  FROM adverse_events
  WHERE studyid = $s AND data_cut = $c AND __FATAL_AE__
  GROUP BY usubjid
),
d AS (
  SELECT subj.usubjid, subj.infused, subj.first_infusion_date,
         coalesce(subj.death_date, ds.ds_date, fae.ae_date) AS death_date,
         concat_ws(', ', CASE WHEN subj.death_source = 'DM' THEN 'DM' END,
                   CASE WHEN ds.usubjid IS NOT NULL THEN 'DS' END,
                   CASE WHEN fae.fatal_ae_key IS NOT NULL THEN 'AE' END) AS sources,
         coalesce(ds.ds_cause, subj.death_cause) AS delivered_cause,
         fae.fatal_ae_key, fae.fatal_ae_term, fae.fatal_ae_related, subj.diagnosis
  FROM subj LEFT JOIN ds USING (usubjid) LEFT JOIN fae USING (usubjid)
  -- a death the load counts without a date (subjects.death_source with no death_date) is one, its day unknown
  WHERE subj.death_date IS NOT NULL OR subj.death_source IS NOT NULL OR ds.ds_date IS NOT NULL
     OR fae.fatal_ae_key IS NOT NULL
),
-- a cause naming the subject's own disease under study is its progression/relapse, one naming another malignancy
-- (safety/data/malignancy_terms.csv, as the secondary malignancies read it) a secondary malignancy, one the infection
-- table reads as an infection an infection: each at the priority of the one row whose also_reads names that rule
-- (the disease under study ranks first; an infection named by the table last, as one named 'infectious')
cat_cause AS (
  SELECT d.usubjid, min({'p': dc.priority, 'cat': dc.cause_category, 'rel': dc.relapse_related}) AS best
  -- the progression words read a myeloid neoplasm's progression ('AML progression') as relapse only when it is
  -- the disease under study: after CAR-T for a lymphoma it is a secondary malignancy progressing
  FROM d JOIN _death_causes dc ON (regexp_matches(upper(d.delivered_cause), dc.pattern)
                                   AND NOT (dc.cause_category = 'progression/relapse' AND __MYELOID_CAUSE__
                                            AND NOT __DISEASE_CAUSE__))
    OR (dc.also_reads = 'diagnosis' AND __DISEASE_CAUSE__)
    OR (dc.also_reads = 'malignancy_terms.csv' AND __MALIGNANT_CAUSE__)
    OR (dc.also_reads = 'infection_classes.csv' AND __INFECTION_CAUSE__)
  WHERE d.delivered_cause IS NOT NULL AND trim(d.delivered_cause) <> '' GROUP BY d.usubjid
),
cat_ae AS (
  SELECT d.usubjid, min({'p': dc.priority, 'cat': dc.cause_category, 'rel': dc.relapse_related}) AS best
  FROM d JOIN _death_causes dc ON (regexp_matches(upper(d.fatal_ae_term), dc.pattern)
                                   AND NOT (dc.cause_category = 'progression/relapse' AND __MYELOID_AE__
                                            AND NOT __DISEASE_AE__))
    OR (dc.also_reads = 'diagnosis' AND __DISEASE_AE__)
    OR (dc.also_reads = 'malignancy_terms.csv' AND __MALIGNANT_AE__)
    OR (dc.also_reads = 'infection_classes.csv' AND __INFECTION_AE__)
  WHERE d.fatal_ae_term IS NOT NULL GROUP BY d.usubjid
),
prog AS (
  SELECT usubjid, min(day) AS prog_day FROM (__PROGRESSION__) GROUP BY usubjid
),
x AS (
  SELECT d.*, datediff('day', d.first_infusion_date, d.death_date) AS death_day,
         CASE WHEN cc.best IS NOT NULL AND cc.best.cat <> 'other' THEN cc.best
              WHEN ca.best IS NOT NULL THEN ca.best ELSE cc.best END AS best,
         CASE WHEN cc.best IS NOT NULL AND cc.best.cat <> 'other' THEN 'delivered cause'
              WHEN ca.best IS NOT NULL THEN 'fatal AE'
              WHEN cc.best IS NOT NULL THEN 'delivered cause' ELSE 'not recorded' END AS cause_from,
         coalesce(cc.best.cat <> ca.best.cat, false) AS cause_conflict,
         prog.prog_day
  FROM d LEFT JOIN cat_cause cc USING (usubjid) LEFT JOIN cat_ae ca USING (usubjid) LEFT JOIN prog USING (usubjid)
),
y AS (
  SELECT x.*, coalesce(best.cat, 'other') AS cause_category,
         CASE WHEN prog_day IS NOT NULL AND death_day IS NOT NULL AND prog_day <= death_day THEN prog_day END AS progression_day
  FROM x
)
SELECT $s AS studyid, $c AS data_cut, usubjid, death_date, death_day, sources, delivered_cause, fatal_ae_key,
       fatal_ae_term, fatal_ae_related, cause_category, cause_from, cause_conflict, progression_day,
       (cause_category = 'progression/relapse' OR progression_day IS NOT NULL) AS relapse_related,
       NOT (cause_category = 'progression/relapse' OR progression_day IS NOT NULL) AS non_relapse,
       (coalesce(infused, false) AND first_infusion_date IS NOT NULL
        AND NOT (cause_category = 'progression/relapse' OR progression_day IS NOT NULL)) AS treatment_related,
       (first_infusion_date IS NOT NULL AND death_day <= 28 AND progression_day IS NULL AND cause_category <> 'progression/relapse') AS nrm_by_day28,
       (first_infusion_date IS NOT NULL AND death_day <= 100 AND progression_day IS NULL AND cause_category <> 'progression/relapse') AS nrm_by_day100,
       (first_infusion_date IS NOT NULL AND death_day <= 365 AND progression_day IS NULL AND cause_category <> 'progression/relapse') AS nrm_by_day365
FROM y
"""
# the one definition of a fatal AE, of a term naming the disease under study, one naming a malignancy and one
# naming an infection
# (struct literals: no f-string)
_DEATHS = (_DEATHS.replace("__FATAL_AE__", fatal_ae(""))
           .replace("__MYELOID_CAUSE__", myeloid_sql("upper(d.delivered_cause)"))
           .replace("__MYELOID_AE__", myeloid_sql("upper(d.fatal_ae_term)"))
           .replace("__DISEASE_CAUSE__", names_disease_sql("d.delivered_cause", "d.diagnosis"))
           .replace("__DISEASE_AE__", names_disease_sql("d.fatal_ae_term", "d.diagnosis"))
           .replace("__MALIGNANT_CAUSE__", malignant_sql("upper(d.delivered_cause)"))
           .replace("__MALIGNANT_AE__", malignant_sql("upper(d.fatal_ae_term)"))
           .replace("__INFECTION_CAUSE__", names_infection_sql("upper(d.delivered_cause)"))
           .replace("__INFECTION_AE__", names_infection_sql("upper(d.fatal_ae_term)")))


# the rules in code that a row of safety/data/death_causes.csv may carry (its also_reads), each on one row
ALSO_READS = ("diagnosis", "malignancy_terms.csv", "infection_classes.csv")


def _check_also_reads() -> None:
    """Fail at start on a death_causes.csv whose also_reads names an unknown rule or gives one rule to two rows: a
    misspelt name would silently drop the rule, and two rows would rank one cause at two priorities."""
    given = [r["also_reads"] for r in _data.read_rules("death_causes.csv") if r["also_reads"]]
    if sorted(given) != sorted(ALSO_READS):
        raise ValueError(f"safety/data/death_causes.csv: also_reads must name each of {', '.join(ALSO_READS)} on "
                         f"exactly one row; it names {', '.join(given) or 'none'}")


_check_also_reads()


def derive_deaths(con, studyid, data_cut, config, review_store=None) -> None:
    """Rebuild deaths and nrm_estimates for one (study, cut)."""
    p = {"s": studyid, "c": data_cut, **progression_params(config), **KIND_PARAMS}
    reset(con, (DEATHS, NRM_ESTIMATES), studyid, data_cut)
    _data.install(con, "death_causes.csv")
    _data.install(con, "infection_classes.csv")  # infection causes: the infection table's terms
    insert(con, DEATHS, _DEATHS.replace("__PROGRESSION__", PROGRESSION_SQL), p)
    _insert_nrm(con, studyid, data_cut, config)


def _insert_nrm(con, studyid, data_cut, config) -> None:
    time, status = endpoint_arrays(con, "NRM", config, studyid, data_cut)
    cif = dict(zip(NRM_HORIZONS, cumulative_incidence_at(time, status, NRM_HORIZONS, cause=1)))
    n = len(time)
    rows = []
    for h in NRM_HORIZONS:
        deaths = int(((status == 1) & (time <= h)).sum())
        followed = int(((time >= h) | (status > 0)).sum())
        rows.append((studyid, data_cut, h, n, deaths, followed, 100.0 * deaths / n if n else None,
                     100.0 * cif[h] if n else None,
                     int((time >= h).sum())))
    con.executemany(f"INSERT INTO {NRM_ESTIMATES.name} ({', '.join(NRM_ESTIMATES.column_names)}) "
                    "VALUES ($1, $2, $3, $4, $5, $6, CAST($7 AS DOUBLE), CAST($8 AS DOUBLE), $9)", rows)


def treatment_related_deaths(con, studyid: str, data_cut: dt.date, by_day: int | None = None) -> list[dict]:
    """Treatment-related deaths of infused subjects (non-relapse deaths from DM, DS or AE), optionally by a day.

    The monitored event 'treatment_related_death' of the stopping rules reads this: one dict per subject with
    usubjid, death_day, cause_category, sources and fatal_ae_key."""
    rows = run(con, """SELECT usubjid, death_day, cause_category, sources, fatal_ae_key FROM deaths
                       WHERE studyid = $s AND data_cut = $c AND treatment_related
                         AND ($d IS NULL OR death_day <= $d) ORDER BY death_day, usubjid""",
               {"s": studyid, "c": data_cut, "d": by_day}).fetchall()
    return [dict(zip(("usubjid", "death_day", "cause_category", "sources", "fatal_ae_key"), r)) for r in rows]


DERIVATION = Derivation(
    name="deaths",
    writes=(DEATHS, NRM_ESTIMATES),
    reads=("subjects", "disposition", "adverse_events", "responses"),
    run=derive_deaths,
)
