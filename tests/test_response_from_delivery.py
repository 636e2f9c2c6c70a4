"""Best overall response of studies loaded through the real ingest (RS as sites deliver it)."""
from __future__ import annotations

import duckdb
import pandas as pd

from safety.ingest import ingest_study
from test_dlt_from_delivery import CUT, day
from test_ingest_fixtures import DOMAINS, STUDY, make_study


def overall(subject: str, seq: int, n: int, orres: str, stresc: str) -> dict:
    return {"STUDYID": STUDY, "USUBJID": subject, "RSSEQ": seq, "RSTESTCD": "OVRLRESP", "RSORRES": orres,
            "RSSTRESC": stresc, "RSDTC": day(subject, n)}


def test_a_progression_spelled_out_is_the_best_response_after_a_not_evaluable_scan(tmp_path):
    """study.yaml's progression codes (default PD, PMD, RELAPSE, PROGRESSIVE DISEASE) end the response and compete
    with NRM; the best overall response ranks PD above NE (Lugano 2014). S-001's day-28 scan is not evaluable and its
    day-56 scan shows progression, standardised 'PROGRESSIVE DISEASE': the best response is that progression, not
    NE (the code ranked with NE, and the earlier NE won). S-003's SD before the same progression stays SD."""
    rs = pd.DataFrame([overall("S-001", 1, 28, "Not evaluable", "NE"),
                       overall("S-001", 2, 56, "Progressive disease", "PROGRESSIVE DISEASE"),
                       overall("S-003", 1, 28, "Stable disease", "SD"),
                       overall("S-003", 2, 56, "Progressive disease", "PROGRESSIVE DISEASE")])
    db = tmp_path / "s.duckdb"
    ingest_study(make_study(tmp_path / "study", "csv", domains={**DOMAINS, "rs": rs}), db, cutoff=CUT)
    con = duckdb.connect(str(db), read_only=True)
    got = dict(con.execute("SELECT usubjid, best_response || ' from day ' || first_progression_day "
                           "FROM response_outcomes WHERE usubjid IN ('S-001', 'S-003')").fetchall())
    assert got == {"S-001": "PROGRESSIVE DISEASE from day 56", "S-003": "SD from day 56"}
