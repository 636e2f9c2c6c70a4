"""Secondary malignancies: new malignancies after infusion, with latency and T-cell malignancies marked.

An AE whose term names a malignancy (safety/data/malignancy_terms.csv, kind 'malignancy'), not a progression or
treatment-effect term (kind 'exclude', and the study's dlt.progression_terms), with onset after day 0. There is no
follow-up limit: a malignancy in year 2 or 15 is listed. T-cell malignancies (kind 't_cell') are marked because of
the FDA boxed warning of January 2024. The CAR-transgene test on the tumour is read from SUPPAE (QNAM CARTGRES,
else CARTEST) when delivered.
"""
from __future__ import annotations

from safety.derive.graph import Derivation
from safety.derive.outcomes import _data
from safety.derive.toxicity._sql import insert, reset
from safety.schema import SECONDARY_MALIGNANCIES

DAYS_PER_MONTH = 30.4375
TRANSGENE_QUALIFIERS = ("supp_cartgres", "supp_cartest")  # SUPPAE QNAMs, in order of preference


def _sql(transgene: str) -> str:
    return f"""
WITH a AS (
  SELECT *, upper(coalesce(aedecod, '') || ' | ' || coalesce(aeterm, '')) AS txt FROM adverse_events
  WHERE studyid = $s AND data_cut = $c AND onset_day IS NOT NULL AND onset_day > 0
),
k AS (SELECT kind, pattern FROM _malignancy_terms)
SELECT $s AS studyid, $c AS data_cut, a.usubjid, a.event_key, coalesce(a.aedecod, a.aeterm) AS term, a.onset_day,
       a.onset_day AS latency_days, round(a.onset_day / {DAYS_PER_MONTH}, 1) AS latency_months,
       EXISTS (SELECT 1 FROM k WHERE k.kind = 't_cell' AND regexp_matches(a.txt, k.pattern)) AS t_cell_malignancy,
       {transgene} AS car_transgene_result, a.aetoxgr AS ctcae_grade,
       (a.aetoxgr = 5 OR upper(coalesce(a.aeout, '')) = 'FATAL') AS fatal
FROM a
WHERE EXISTS (SELECT 1 FROM k WHERE k.kind IN ('malignancy', 't_cell') AND regexp_matches(a.txt, k.pattern))
  AND NOT EXISTS (SELECT 1 FROM k WHERE k.kind = 'exclude' AND regexp_matches(a.txt, k.pattern))
  AND NOT list_contains($prog, upper(coalesce(a.aedecod, a.aeterm)))
"""


def derive_malignancies(con, studyid, data_cut, config, review_store=None) -> None:
    """Rebuild secondary_malignancies for one (study, cut)."""
    reset(con, (SECONDARY_MALIGNANCIES,), studyid, data_cut)
    _data.install(con, "malignancy_terms.csv")
    cols = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                      "WHERE table_name = 'adverse_events'").fetchall()}
    present = [q for q in TRANSGENE_QUALIFIERS if q in cols]  # names from our own list, never from input
    transgene = f"upper(coalesce({', '.join('a.' + q for q in present)}))" if present else "CAST(NULL AS VARCHAR)"
    prog = [t.upper() for t in config.get("dlt", {}).get("progression_terms", [])]
    insert(con, SECONDARY_MALIGNANCIES, _sql(transgene), {"s": studyid, "c": data_cut, "prog": prog})


DERIVATION = Derivation(name="secondary_malignancies", writes=(SECONDARY_MALIGNANCIES,), reads=("adverse_events",),
                        run=derive_malignancies)
