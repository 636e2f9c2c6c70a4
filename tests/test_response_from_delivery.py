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


def test_myeloma_codes_rank_by_imwg_2016_and_a_table_lists_progression_before_ne(tmp_path):
    """IMWG 2016 (Kumar et al., Lancet Oncol 2016) ranks sCR > CR > VGPR > PR > MR > SD > PD; an sCR is a CR.
    The study counts CR, VGPR and PR. S-001's SD then VGPR is best VGPR (it read SD, VGPR ranked with NE); S-002's
    not-evaluable scan then sCR is best sCR, a responder from day 28 (it read NE, not a responder); S-003's MR before
    a progression spelled out is best MR (it read PROGRESSIVE DISEASE). The packet's table lists the best responses
    by those ranks, S-004's PROGRESSIVE DISEASE with PD, before S-005's NE (it came after NE), and cites IMWG 2016."""
    import datetime as dt

    from safety.access.reader import Scope, StudyReader
    from safety.export.outcomes import table_response
    from test_ingest_fixtures import DM, STUDY_YAML

    dm = DM.copy()
    infused = {"S-004": "2024-03-06", "S-005": "2024-05-10"}
    dm.loc[dm["USUBJID"].isin(list(infused)), "RFXSTDTC"] = dm["USUBJID"].map(infused)

    def later(subject: str, seq: int, n: int, stresc: str) -> dict:
        d = (dt.date.fromisoformat(infused[subject]) + dt.timedelta(days=n)).isoformat()
        return {**overall("S-001", seq, 0, stresc, stresc), "USUBJID": subject, "RSDTC": d}

    rs = pd.DataFrame([overall("S-001", 1, 28, "SD", "SD"), overall("S-001", 2, 56, "VGPR", "VGPR"),
                       overall("S-002", 1, 14, "NE", "NE"), overall("S-002", 2, 28, "sCR", "sCR"),
                       overall("S-003", 1, 28, "MR", "MR"),
                       overall("S-003", 2, 56, "Progressive disease", "PROGRESSIVE DISEASE"),
                       later("S-004", 1, 28, "NE"), later("S-004", 2, 56, "PROGRESSIVE DISEASE"),
                       later("S-005", 1, 28, "NE")])
    study_yaml = STUDY_YAML + "response:\n  criteria: IMWG 2016\n  responders: [CR, VGPR, PR]\n"
    db = tmp_path / "s.duckdb"
    ingest_study(make_study(tmp_path / "study", "csv", domains={**DOMAINS, "dm": dm, "rs": rs},
                            study_yaml=study_yaml), db, cutoff=CUT)
    con = duckdb.connect(str(db), read_only=True)
    got = {u: (best, responder, first) for u, best, responder, first in con.execute(
        "SELECT usubjid, best_response, responder, first_response_day FROM response_outcomes").fetchall()}
    assert got == {"S-001": ("VGPR", True, 56), "S-002": ("sCR", True, 28), "S-003": ("MR", False, None),
                   "S-004": ("PROGRESSIVE DISEASE", False, None), "S-005": ("NE", False, None)}
    table = table_response(StudyReader(con, Scope(STUDY, dt.date.fromisoformat(CUT))))
    assert [row for _, row, _ in table.values if row.startswith("Best overall response")] == [
        f"Best overall response {bor}" for bor in ("sCR", "VGPR", "MR", "PROGRESSIVE DISEASE", "NE")]
    # the table cites the criteria it ranks and counts by
    assert table.attrs["reference"] == ("Study response criteria: IMWG 2016 (CR + VGPR + PR); IMWG 2016: Kumar et al., "
                                        "Lancet Oncol 2016")


def test_a_leukaemia_rule_picks_a_leukemia_diagnosis_so_its_cri_counts(tmp_path):
    """by_diagnosis compares the words as the deaths code does (British spellings American, punctuation a space):
    a 'leukaemia' rule counts S-001, whose SUPPDM DIAGNOSIS reads 'B-cell acute lymphoblastic leukemia', by CR + CRi,
    so its CRi makes it a responder; before, the exact text missed it and Lugano 2014 left the CRi uncounted.
    S-003's 'Diffuse large B cell lymphoma' meets a 'B-cell' rule the same way."""
    from test_ingest_fixtures import STUDY, STUDY_YAML, SUPPDM

    def diagnosis(subject: str, text: str) -> dict:
        return {"STUDYID": STUDY, "RDOMAIN": "DM", "USUBJID": subject, "IDVAR": "", "IDVARVAL": "",
                "QNAM": "DIAGNOSIS", "QVAL": text}

    suppdm = pd.concat([SUPPDM, pd.DataFrame([diagnosis("S-001", "B-cell acute lymphoblastic leukemia"),
                                              diagnosis("S-003", "Diffuse large B cell lymphoma")])],
                       ignore_index=True)
    rs = pd.DataFrame([overall("S-001", 1, 28, "CRi", "CRI"), overall("S-003", 1, 28, "PR", "PR")])
    study_yaml = STUDY_YAML + """response:
  criteria: Lugano 2014
  responders: [CR, PR]
  by_diagnosis:
    - {diagnosis_contains: "leukaemia", criteria: "CR + CRi (acute leukaemia)", responders: [CR, CRI]}
    - {diagnosis_contains: "B-cell", criteria: "Lugano 2014 (B-cell)", responders: [CR, PR]}
"""
    db = tmp_path / "s.duckdb"
    ingest_study(make_study(tmp_path / "study", "csv", domains={**DOMAINS, "suppdm": suppdm, "rs": rs},
                            study_yaml=study_yaml), db, cutoff=CUT)
    con = duckdb.connect(str(db), read_only=True)
    got = {u: (criteria, best, responder) for u, criteria, best, responder in con.execute(
        "SELECT usubjid, criteria, best_response, responder FROM response_outcomes "
        "WHERE usubjid IN ('S-001', 'S-003')").fetchall()}
    assert got == {"S-001": ("CR + CRi (acute leukaemia)", "CRi", True),
                   "S-003": ("Lugano 2014 (B-cell)", "PR", True)}
