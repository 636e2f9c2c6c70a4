"""Secondary malignancies: new malignancies after infusion, with latency and T-cell malignancies marked.

An AE whose term names a malignancy (safety/data/malignancy_terms.csv, kind 'malignancy'), not a progression or
treatment-effect term (kind 'exclude', and the study's dlt.progression_terms) and not the subject's own disease under
study (names_disease_sql: a relapse reported as an AE), with onset after day 0. A medical
history (MH) record naming a malignancy counts the same way when it started after day 0 (a malignancy reported as
history at a later visit), unless the subject has a malignancy AE with onset within MH_AE_MATCH_DAYS of it (the
same malignancy reported twice: the AE is kept). An MH malignancy that started on or before day 0 is prior
history: not counted, listed in prior_malignancies as context. There is no follow-up limit: a malignancy in
year 2 or 15 is listed. T-cell malignancies (kind 't_cell', not 'not_t_cell') are marked because of the FDA boxed
warning of January 2024. The CAR-transgene test on the tumour is read from SUPPAE (QNAM CARTGRES, else CARTEST), or
SUPPMH for an MH record, when delivered. A T-cell malignancy naming a T-cell disease under study is a relapse only
when its tumour tested negative for the transgene; otherwise it is listed (possible_relapse when not positive).
"""
from __future__ import annotations

from safety.core.vocabulary import fatal_ae, names_disease_under_study
from safety.derive.graph import Derivation
from safety.derive.outcomes import _data
from safety.derive.toxicity._sql import insert, reset
from safety.schema import PRIOR_MALIGNANCIES, SECONDARY_MALIGNANCIES

DAYS_PER_MONTH = 30.4375
TRANSGENE_QUALIFIERS = ("supp_cartgres", "supp_cartest")  # SUPPAE/SUPPMH QNAMs, in order of preference
TRANSGENE_POSITIVE, TRANSGENE_NEGATIVE = "POSITIVE", "NEGATIVE"  # the results, upper case
MH_AE_MATCH_DAYS = 30  # an MH malignancy this close to a malignancy AE of the subject is that AE


# The kinds of safety/data/malignancy_terms.csv a test reads, each group as one parameter of the statement: the
# group's patterns joined into one expression, which DuckDB compiles once per statement. A pattern read from a
# column of the terms table is compiled again for every text it is tested on (one pattern, 200,000 texts: 43 s
# against 0.03 s), which made the deaths' few causes cost 0.1-0.2 s at any study size.
KIND_GROUPS = {
    "named": ("malignancy", "t_cell"),
    "new": ("malignancy", "t_cell", "malignancy_unnamed"),
    "exclude": ("exclude",),
    "status": ("disease_status",),
    "t_cell": ("t_cell",),
    "not_t_cell": ("not_t_cell",),
    "myeloid": ("myeloid",),
}


def kind_params() -> dict[str, str]:
    """The statement parameters the SQL of this module's tests reads, :data:`KIND_PARAMS` (``$mk_<group>`` for
    each of :data:`KIND_GROUPS`): every pattern of the group's kinds, in file order, as one expression. A group with no
    pattern in the file fails loudly: its test would otherwise match nothing, or everything."""
    rows = _data.read_rules("malignancy_terms.csv")
    params = {}
    for group, kinds in KIND_GROUPS.items():
        patterns = [r["pattern"] for r in rows if r["kind"] in kinds and r["pattern"]]
        if not patterns:
            raise ValueError(f"safety/data/malignancy_terms.csv: no pattern of kind {' or '.join(kinds)}")
        params[f"mk_{group}"] = "|".join(f"(?:{p})" for p in patterns)
    return params


# read once, at start: a terms file without one of the kinds fails then, not at the first load
KIND_PARAMS = kind_params()


def _is(group: str, txt: str) -> str:
    """SQL: the upper-case text matches a pattern of the group's kinds (false for no text, as no match)."""
    return f"coalesce(regexp_matches({txt}, $mk_{group}), false)"


def malignant_sql(txt: str) -> str:
    """SQL (reads :data:`KIND_PARAMS`): the upper-case text names a malignancy, not an effect of one
    or a progression term (kind 'exclude'), nor a malignancy unnamed by type with a disease-status word ('Recurrent
    cancer'). A myeloid neoplasm (kind 'myeloid') named with a progression word is one still. Whether it is the
    disease under study is :func:`names_disease_sql`'s."""
    # a myeloid neoplasm progressing ('AML progression') is still a new malignancy after CAR-T for another disease
    return (f"{_is('new', txt)} AND NOT ({_is('exclude', txt)} AND NOT {_is('myeloid', txt)}) "
            f"AND NOT ({_is('status', txt)} AND NOT {_is('named', txt)})")


def t_cell_sql(txt: str) -> str:
    """SQL (reads :data:`KIND_PARAMS`): the upper-case text names a T-cell malignancy (kind 't_cell'),
    not a B-cell lymphoma whose name holds 'T-cell' (kind 'not_t_cell': T-cell/histiocyte-rich large B-cell)."""
    return f"({_is('t_cell', txt)} AND NOT {_is('not_t_cell', txt)})"


def myeloid_sql(txt: str) -> str:
    """SQL (reads :data:`KIND_PARAMS`): the upper-case text names a myeloid neoplasm (kind 'myeloid':
    AML, MDS), the usual secondary malignancy after CAR-T."""
    return _is('myeloid', txt)


def names_disease_sql(term: str, diagnosis: str) -> str:
    """SQL (reads :data:`KIND_PARAMS`): the term names the subject's disease under study (the one comparison of
    safety.core.vocabulary), unless it names a T-cell malignancy and the diagnosis does not: a T-cell lymphoma after
    CAR-T for 'Non-Hodgkin lymphoma' is the malignancy of the FDA boxed warning, never read as a relapse.
    A disease-status word (kind 'disease_status') is no disease word: 'Lymphoma refractory' names a lymphoma."""
    return (f"({_names_disease(term, diagnosis)} AND NOT ({t_cell_sql(f'upper({term})')} "
            f"AND NOT {_t_cell_disease(diagnosis)}))")


def _names_disease(term: str, diagnosis: str) -> str:
    return names_disease_under_study(f"regexp_replace(upper({term}), $mk_status, ' ', 'g')", diagnosis)


def _t_cell_disease(diagnosis: str) -> str:
    return f"coalesce({t_cell_sql(f'upper({diagnosis})')}, false)"


def _judged(alias: str, decod: str, verbatim: str) -> str:
    """SELECT-list columns of a record ``alias`` (column txt: its coded and verbatim terms, upper case) joined to
    ``dx``: names_dx (either term names the disease under study), t_cell (it names a T-cell malignancy), t_cell_dx
    (the disease under study is a T-cell one); each test runs once per record."""
    return (f"({_names_disease(f'{alias}.{decod}', 'dx.diagnosis')} "
            f"OR {_names_disease(f'{alias}.{verbatim}', 'dx.diagnosis')}) AS names_dx, "
            f"{t_cell_sql(f'{alias}.txt')} AS t_cell, {_t_cell_disease('dx.diagnosis')} AS t_cell_dx")


def _relapse_sql(alias: str) -> str:
    """SQL over :func:`_judged`'s columns and car_transgene_result: the record is the disease under study coming
    back, not a new malignancy. A T-cell malignancy is read as relapse only of a T-cell disease under study, and then
    only when its tumour tested negative for the CAR transgene: a positive one comes from the product (FDA boxed
    warning, January 2024), and an untested one cannot be told from a new T-cell malignancy, so it is listed for
    review (possible_relapse)."""
    return (f"(({alias}.names_dx AND NOT ({alias}.t_cell AND NOT {alias}.t_cell_dx)) "
            f"AND NOT ({alias}.t_cell AND coalesce({alias}.car_transgene_result, '') <> '{TRANSGENE_NEGATIVE}'))")


def _possible_relapse_sql(alias: str) -> str:
    """SQL over :func:`_judged`'s columns: a T-cell malignancy naming the subject's T-cell disease under study, its
    tumour not found positive for the CAR transgene (not tested, or pending): relapse or a new T-cell malignancy,
    the data cannot tell."""
    return (f"coalesce({alias}.names_dx AND {alias}.t_cell AND {alias}.t_cell_dx "
            f"AND coalesce({alias}.car_transgene_result, '') <> '{TRANSGENE_POSITIVE}', false)")


def _sql(ae_transgene: str, mh_transgene: str) -> str:
    return f"""
WITH dx AS (SELECT usubjid, diagnosis FROM subjects WHERE studyid = $s AND data_cut = $c),
-- a study has few distinct AE terms: the pattern runs once per pair of terms, not once per AE
named AS (
  SELECT * FROM (
    SELECT *, upper(coalesce(aedecod, '') || ' | ' || coalesce(aeterm, '')) AS txt FROM (
      SELECT DISTINCT aedecod, aeterm FROM adverse_events
      WHERE studyid = $s AND data_cut = $c AND onset_day IS NOT NULL AND onset_day > 0))
  WHERE regexp_matches(txt, $mk_new)
),
a AS (
  SELECT e.*, n.txt FROM adverse_events e
  JOIN named n ON e.aedecod IS NOT DISTINCT FROM n.aedecod AND e.aeterm IS NOT DISTINCT FROM n.aeterm
  WHERE e.studyid = $s AND e.data_cut = $c AND e.onset_day IS NOT NULL AND e.onset_day > 0
),
ax AS (SELECT a.*, {ae_transgene} AS car_transgene_result, {_judged('a', 'aedecod', 'aeterm')}
        FROM a LEFT JOIN dx USING (usubjid)),
ae_m AS (
  SELECT ax.usubjid, ax.event_key, coalesce(ax.aedecod, ax.aeterm) AS term, ax.onset_day, ax.txt,
         ax.car_transgene_result, ax.aetoxgr AS ctcae_grade,
         {fatal_ae('ax')} AS fatal, 'AE' AS source, {_possible_relapse_sql('ax')} AS possible_relapse,
         ax.t_cell AS t_cell_malignancy
  FROM ax
  WHERE {malignant_sql('ax.txt')} AND NOT list_contains($prog, upper(coalesce(ax.aedecod, ax.aeterm)))
    AND NOT {_relapse_sql('ax')}
),
m AS (
  SELECT * FROM (
    SELECT *, upper(coalesce(mhdecod, '') || ' | ' || coalesce(mhterm, '')) AS txt FROM medical_history
    WHERE studyid = $s AND data_cut = $c AND start_day IS NOT NULL AND start_day > 0
      AND coalesce(mhoccur, 'Y') <> 'N')
  WHERE regexp_matches(txt, $mk_new)
),
mx AS (SELECT m.*, {mh_transgene} AS car_transgene_result, {_judged('m', 'mhdecod', 'mhterm')}
        FROM m LEFT JOIN dx USING (usubjid)),
mh_m AS (
  SELECT mx.usubjid, mx.usubjid || '/MH/' || CAST(mx.mhseq AS VARCHAR) AS event_key,
         coalesce(mx.mhdecod, mx.mhterm) AS term, mx.start_day AS onset_day, mx.txt,
         mx.car_transgene_result, CAST(NULL AS INTEGER) AS ctcae_grade, false AS fatal, 'MH' AS source,
         {_possible_relapse_sql('mx')} AS possible_relapse, mx.t_cell AS t_cell_malignancy
  FROM mx
  WHERE {malignant_sql('mx.txt')} AND NOT list_contains($prog, upper(coalesce(mx.mhdecod, mx.mhterm)))
    AND NOT {_relapse_sql('mx')}
    AND NOT EXISTS (SELECT 1 FROM ae_m WHERE ae_m.usubjid = mx.usubjid
                      AND abs(ae_m.onset_day - mx.start_day) <= {MH_AE_MATCH_DAYS})
),
x AS (SELECT * FROM ae_m UNION ALL BY NAME SELECT * FROM mh_m)
SELECT $s AS studyid, $c AS data_cut, usubjid, event_key, term, onset_day,
       onset_day AS latency_days, round(onset_day / {DAYS_PER_MONTH}, 1) AS latency_months,
       t_cell_malignancy, car_transgene_result, ctcae_grade, fatal, source, possible_relapse
FROM x
"""


_PRIOR = f"""
WITH m AS (
  SELECT *, upper(coalesce(mhdecod, '') || ' | ' || coalesce(mhterm, '')) AS txt FROM medical_history
  WHERE studyid = $s AND data_cut = $c AND (start_day IS NULL OR start_day <= 0) AND coalesce(mhoccur, 'Y') <> 'N'
)
SELECT $s AS studyid, $c AS data_cut, usubjid, mhseq, coalesce(mhdecod, mhterm) AS term, mhcat,
       mhst_date AS start_date, start_day,
       (mhen_date IS NULL OR coalesce(mhenrtpt, '') = 'ONGOING') AS ongoing,
       {t_cell_sql('m.txt')} AS t_cell_malignancy
FROM m WHERE {_is('new', 'm.txt')}
"""


def _transgene(con, table: str, alias: str) -> str:
    cols = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                      "WHERE table_name = $t", {"t": table}).fetchall()}
    present = [q for q in TRANSGENE_QUALIFIERS if q in cols]  # names from our own list, never from input
    return (f"upper(coalesce({', '.join(alias + '.' + q for q in present)}))" if present
            else "CAST(NULL AS VARCHAR)")


def derive_malignancies(con, studyid, data_cut, config, review_store=None) -> None:
    """Rebuild secondary_malignancies and prior_malignancies for one (study, cut)."""
    reset(con, (SECONDARY_MALIGNANCIES, PRIOR_MALIGNANCIES), studyid, data_cut)
    prog = [t.upper() for t in config.get("dlt", {}).get("progression_terms", [])]
    # the group 'new' (every pattern a new malignancy must match) also picks the few AE and MH texts naming a
    # malignancy first: the other tests then run on those, not on every AE (500,000 at 20,000 subjects)
    p = {"s": studyid, "c": data_cut, **KIND_PARAMS}
    insert(con, SECONDARY_MALIGNANCIES, _sql(_transgene(con, "adverse_events", "a"), _transgene(con, "medical_history", "m")),
           {**p, "prog": prog})
    insert(con, PRIOR_MALIGNANCIES, _PRIOR, p)


DERIVATION = Derivation(name="secondary_malignancies", writes=(SECONDARY_MALIGNANCIES, PRIOR_MALIGNANCIES),
                        reads=("subjects", "adverse_events", "medical_history"), run=derive_malignancies)
