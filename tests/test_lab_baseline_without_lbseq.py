"""LBSEQ is optional in LB: without it the baseline record is still recognised (baseline grade, shift table) and the
graded records still find their lab records (the grade 3 listing's date, the subject profile's grades)."""
from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest

from safety.access.reader import Scope, StudyReader
from safety.derive.grading.summary import shift_table
from safety.export.listings import listing_lab_grade3, listing_lab_grade3_episodes
from safety.ingest import ingest_study
from test_ingest_fixtures import DOMAINS, STUDY_YAML, make_study

# S-001 is infused on 2024-02-01: day -3 is the baseline (last value on or before day 0), day 3 the worst
CUTS = (dt.date(2024, 12, 1), dt.date(2024, 12, 15))
ROWS = [("NEUT", "0.8", "2", "7", "2024-01-29"), ("NEUT", "0.3", "2", "7", "2024-02-04"),
        ("PLAT", "40", "150", "400", "2024-01-29"), ("PLAT", "20", "150", "400", "2024-02-04")]


def _load(root, with_lbseq: bool):
    lb = pd.DataFrame({"STUDYID": "CT-TEST-01", "USUBJID": "S-001", "LBTESTCD": [r[0] for r in ROWS],
                       "LBTEST": [r[0] for r in ROWS], "LBCAT": "HEMATOLOGY", "LBSPEC": "BLOOD",
                       "LBORRES": [r[1] for r in ROWS], "LBORRESU": "10^9/L", "LBORNRLO": [r[2] for r in ROWS],
                       "LBORNRHI": [r[3] for r in ROWS], "LBDTC": [r[4] for r in ROWS]})
    if with_lbseq:
        lb.insert(2, "LBSEQ", range(1, len(ROWS) + 1))
    study = make_study(root / "s", domains=dict(DOMAINS, lb=lb), study_yaml=STUDY_YAML)
    db = root / "db.duckdb"
    for cut in CUTS:  # the same records at two cuts: none is new at the second
        ingest_study(study, db, cutoff=cut)
    return db


def _read(db):
    from dashboard.data import PROFILE_LABS_SQL
    con = duckdb.connect(str(db), read_only=True)
    try:
        worst = con.execute("SELECT ctcae_term, baseline_grade, worst_grade FROM lab_worst_grades WHERE usubjid = 'S-001' "
                            "AND lbtestcd IN ('NEUT', 'PLAT') AND data_cut = $c ORDER BY 1", {"c": CUTS[1]}).fetchall()
        baseline = con.execute("SELECT lbtestcd, day, value FROM lab_toxicity WHERE usubjid = 'S-001' AND is_baseline "
                               "AND data_cut = $c ORDER BY 1", {"c": CUTS[1]}).fetchall()
        reader = StudyReader(con, Scope("CT-TEST-01", CUTS[1], previous_cut=CUTS[0]))
        shift = shift_table(reader, "Neutrophil count decreased")
        shift = [tuple(r) for r in shift[["baseline_grade", "worst_grade", "subjects"]].astype(object).to_numpy()]
        listing = listing_lab_grade3(reader)
        listing = listing[listing.usubjid == "S-001"]
        listed = sorted(zip(listing.lbtestcd, listing.lab_date.astype(str), listing.grade,
                            listing.new_since_previous_cut))
        episodes = listing_lab_grade3_episodes(reader)
        episodes = episodes[episodes.usubjid == "S-001"]
        episodes = sorted(zip(episodes.lbtestcd, episodes.first_day, episodes.new_since_previous_cut))
        profile = con.execute(f"WITH labs AS (FROM labs WHERE data_cut = $c), lab_toxicity AS (FROM lab_toxicity "
                              f"WHERE data_cut = $c) {PROFILE_LABS_SQL} WHERE l.usubjid = 'S-001' "
                              f"AND l.lbtestcd = 'NEUT' ORDER BY l.day", {"c": CUTS[1]}).fetchall()
    finally:
        con.close()
    return worst, baseline, shift, listed, episodes, [(r[0], r[2], r[-1]) for r in profile]


@pytest.mark.parametrize("with_lbseq", [False, True], ids=["without LBSEQ", "with LBSEQ"])
def test_the_baseline_record_and_the_lab_records_are_found_without_lbseq(tmp_path, with_lbseq):
    worst, baseline, shift, listed, episodes, profile = _read(_load(tmp_path, with_lbseq))
    assert worst == [("Neutrophil count decreased", 3, 4), ("Platelet count decreased", 3, 4)]
    assert baseline == [("NEUT", -3, 0.8), ("PLAT", -3, 40.0)]
    assert shift == [(3, 4, 1)]
    assert listed == [("NEUT", "2024-01-29", 3, False), ("NEUT", "2024-02-04", 4, False),
                      ("PLAT", "2024-01-29", 3, False), ("PLAT", "2024-02-04", 4, False)]
    assert episodes == [("NEUT", -3, False), ("PLAT", -3, False)]
    assert profile == [("NEUT", -3, 3), ("NEUT", 3, 4)]
