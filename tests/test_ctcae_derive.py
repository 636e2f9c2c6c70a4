"""derive_lab_toxicity: the lab_toxicity and lab_worst_grades tables for one study and cut, rebuilt
on re-run, other cuts untouched; committee summaries (shift table, grade >= 3 counts) via StudyReader."""
from __future__ import annotations

import datetime as dt

import pytest

from safety import schema
from safety.access.reader import Scope, StudyReader
from safety.core.config import validate
from safety.derive.grading import summary
from safety.derive.grading.ctcae import LAB_TOXICITY, LAB_WORST_GRADES, derive_lab_toxicity
from tests.ctcae_helpers import CUT, STUDY, lab, make_db

OTHER_CUT = dt.date(2025, 12, 31)


def _subjects(con, rows):
    con.execute(schema.SUBJECTS.ddl())
    for usubjid, cohort, siteid, infused in rows:
        con.execute("INSERT INTO subjects (studyid, data_cut, usubjid, cohort, siteid, infused) VALUES (?, ?, ?, ?, ?, ?)",
                    [STUDY, CUT, usubjid, cohort, siteid, infused])


@pytest.fixture
def con(db_path):
    rows = [
        # S1: ANC baseline 3.0 (grade 0), nadir 0.3 on day 4 and again day 9 -> worst 4 first on day 4
        lab("S1", 1, "NEUT", 3.0, "10^9/L", 2.0, 7.5, day=-5),
        lab("S1", 2, "NEUT", 0.3, "10^9/L", 2.0, 7.5, day=4),
        lab("S1", 3, "NEUT", 0.4, "10^9/L", 2.0, 7.5, day=9),
        lab("S1", 4, "NEUT", 1.2, "10^9/L", 2.0, 7.5, day=14),
        lab("S1", 5, "HGB", 95, "g/L", 120, 160, day=0, lbblfl="Y"),
        lab("S1", 6, "HGB", 75, "g/L", 120, 160, day=10),
        # S2: ANC baseline 1.8 (grade 1), post 1.6 (grade 1); HGB post only in mmol/L (not gradable)
        lab("S2", 1, "NEUT", 1.8, "10^9/L", 2.0, 7.5, day=0),
        lab("S2", 2, "NEUT", 1.6, "10^9/L", 2.0, 7.5, day=7),
        lab("S2", 3, "HGB", 7.0, "mmol/L", 7.4, 9.9, day=7),
        # S3: cohort B, ANC grade 3 post; urine glucose ignored
        lab("S3", 1, "NEUT", 0.8, "10^9/L", 2.0, 7.5, day=3),
        lab("S3", 2, "GLUC", 0.1, "mmol/L", 3.9, 6.1, day=3, lbspec="URINE"),
        # another cut of the same study: must stay untouched
        lab("S1", 1, "NEUT", 0.1, "10^9/L", 2.0, 7.5, day=4, data_cut=OTHER_CUT),
    ]
    c = make_db(db_path, rows)
    _subjects(c, [("S1", "A", "01", True), ("S2", "A", "02", True), ("S3", "B", "01", True), ("S4", "B", "02", True)])
    yield c
    c.close()


def _table(con, name):
    return con.sql(f"SELECT * FROM {name} ORDER BY ALL").to_arrow_table().to_pandas()


def test_derivation_builds_both_tables(con):
    derive_lab_toxicity(con, STUDY, CUT, validate({}))
    tox = _table(con, "lab_toxicity")
    assert list(tox.columns) == LAB_TOXICITY.column_names
    cur = tox[tox.data_cut == CUT]
    assert len(cur) == 4 + 2 * 2 + 2 + 2 + 1     # S1 NEUT 4, S1 HGB 2x2 terms, S2 NEUT 2, S2 HGB 2 terms, S3 NEUT 1
    assert (tox.data_cut == CUT).all()          # the other cut was not graded by this call
    assert "GLUC" not in set(tox.lbtestcd)      # urine left out
    assert set(cur.ctcae_version) == {"5.0"}
    # the view's reasons, stored as ids: the unit one is made from the record's unit and the term's
    assert set(cur[(cur.usubjid == "S2") & (cur.lbtestcd == "HGB")].grade_reason) == {"unit mmol/L not g/L"}
    assert set(cur[(cur.usubjid == "S1") & (cur.lbseq == 2)].grade_reason) == {"value < 0.5"}
    w = _table(con, "lab_worst_grades").set_index(["usubjid", "ctcae_term"])
    assert list(_table(con, "lab_worst_grades").columns) == LAB_WORST_GRADES.column_names
    s1 = w.loc[("S1", "Neutrophil count decreased")]
    assert (s1.baseline_grade, s1.worst_grade, s1.worst_day, s1.n_post) == (0, 4, 4, 3)
    s2 = w.loc[("S2", "Neutrophil count decreased")]
    assert (s2.baseline_grade, s2.worst_grade, s2.worst_day, s2.n_post) == (1, 1, 7, 1)
    anemia = w.loc[("S1", "Anemia")]
    assert (anemia.baseline_grade, anemia.worst_grade, anemia.worst_day) == (2, 3, 10)
    s2hgb = w.loc[("S2", "Anemia")]
    assert s2hgb.worst_grade != s2hgb.worst_grade and s2hgb.n_post == 0   # not gradable: NULL, not 0


def test_rerun_replaces_rows_and_keeps_other_cuts(con):
    derive_lab_toxicity(con, STUDY, OTHER_CUT, validate({}))
    derive_lab_toxicity(con, STUDY, CUT, validate({}))
    n1 = con.sql("SELECT count(*) FROM lab_toxicity WHERE data_cut = $c", params={"c": CUT}).fetchall()[0][0]
    con.execute("UPDATE labs SET value = 0.2 WHERE usubjid = 'S2' AND lbseq = 2 AND data_cut = $c", {"c": CUT})
    derive_lab_toxicity(con, STUDY, CUT, validate({}))
    n2 = con.sql("SELECT count(*) FROM lab_toxicity WHERE data_cut = $c", params={"c": CUT}).fetchall()[0][0]
    assert n1 == n2
    g = con.sql("SELECT worst_grade FROM lab_worst_grades WHERE usubjid = 'S2' AND data_cut = $c "
                "AND ctcae_term = 'Neutrophil count decreased'", params={"c": CUT}).fetchall()
    assert g == [(4,)]
    other = con.sql("SELECT grade FROM lab_toxicity WHERE data_cut = $c", params={"c": OTHER_CUT}).fetchall()
    assert other == [(4,)]


def test_registered_in_schema():
    names = {t.name: t for t in schema.all_tables()}
    assert names["lab_toxicity"].group == "derived" and names["lab_worst_grades"].group == "derived"
    assert all(c.description for c in LAB_TOXICITY.columns + LAB_WORST_GRADES.columns)


def test_shift_table_and_grade3_counts(con):
    derive_lab_toxicity(con, STUDY, CUT, validate({}))
    reader = StudyReader(con, Scope(STUDY, CUT))
    shift = summary.shift_table(reader, term="Neutrophil count decreased")
    assert shift[["baseline_grade", "worst_grade", "subjects"]].astype("float").fillna(-1).values.tolist() == [
        [0, 4, 1], [1, 1, 1], [-1, 3, 1]]       # S3 has no baseline: 'Missing' row
    wide = summary.shift_table(reader, term="Neutrophil count decreased", wide=True)
    row0 = wide[wide.baseline_grade == "Grade 0"].iloc[0]
    assert row0["Grade 4"] == 1 and row0["Total"] == 1
    assert set(wide.baseline_grade) == {"Grade 0", "Grade 1", "Missing"}

    counts = summary.grade3_counts(reader, by="cohort")
    anc = counts[counts.ctcae_term == "Neutrophil count decreased"].set_index("cohort")
    assert anc.loc["A", ["n_subjects", "n_grade_3_plus", "n_grade_4"]].tolist() == [2, 1, 1]
    assert anc.loc["B", ["n_subjects", "n_grade_3_plus", "n_grade_4"]].tolist() == [2, 1, 0]
    assert anc.loc["All", ["n_subjects", "n_grade_3_plus"]].tolist() == [4, 2]
    assert anc.loc["B", "pct_grade_3_plus"] == 50.0
    with pytest.raises(ValueError):
        summary.grade3_counts(reader, by="usubjid; DROP TABLE labs")


def test_site_scoped_reader_sees_only_its_subjects(con):
    derive_lab_toxicity(con, STUDY, CUT, validate({}))
    reader = StudyReader(con, Scope(STUDY, CUT, sites=("02",)))
    counts = summary.grade3_counts(reader)
    anc = counts[counts.ctcae_term == "Neutrophil count decreased"].set_index("cohort")
    assert anc.loc["All", "n_subjects"] == 2 and anc.loc["All", "n_grade_3_plus"] == 0
    assert set(reader.sql("SELECT DISTINCT usubjid FROM lab_toxicity").usubjid) == {"S2"}


def test_a_cut_is_graded_as_by_the_whole_term_map(db_path):
    """The load writes its records' SQL for the tests and terms its cut holds; on random values of a few tests (one
    graded by its own CASE, one with conventional-unit cut-offs, one whose unit is checked) it stores what
    grade_labs, with every term of the map, computes."""
    import random

    from safety.derive.grading.ctcae import grade_labs

    rng = random.Random(7)
    rows = []
    for s in range(60):
        for code, source, unit, lln, uln in (("FIBRINO", "LBSTRESN", "g/L", 2.0, 4.0),
                                             ("HGB", "LBSTRESN", "g/L", 120, 160),
                                             ("HGB", "LBORRES x 16.1145", "g/L", 120, 160),  # delivered in mmol/L
                                             ("ALT", "LBSTRESN", "U/L", None, 40),
                                             ("NEUT", "LBSTRESN", "10^9/L", 2, 7.5)):
            for seq, day in enumerate((-3, 0, 4, 9, 30)):
                v = rng.choice([None, round(rng.uniform(0, 3) * (uln or lln), 2)])
                r = lab(f"R{s}", len(rows) + 1, code, v, unit if rng.random() > 0.05 else "mg/dL", lln, uln, day=day,
                        lbnrind=rng.choice([None, "HIGH", "NORMAL"]))
                r["value_source"] = source
                rows.append(r)
    con = make_db(db_path, rows)
    derive_lab_toxicity(con, STUDY, CUT, validate({}))
    cols = ", ".join(LAB_TOXICITY.column_names)
    con.register("computed", grade_labs(con, "labs"))
    stored = f"SELECT {cols} FROM lab_toxicity"
    assert con.execute(f"SELECT count(*) FROM ({stored})").fetchone()[0] > 1500
    for a, b in ((stored, f"SELECT {cols} FROM computed"), (f"SELECT {cols} FROM computed", stored)):
        assert con.execute(f"SELECT count(*) FROM ({a} EXCEPT ALL {b})").fetchone()[0] == 0
