"""CTCAE v5 lab grading: the worked examples of clinical-rules.md §1.4 (admiral tests) verbatim,
missing inputs, units, baseline branches, specimens and floating-point boundaries."""
from __future__ import annotations

import random

import pytest

from safety.derive.grading.ctcae import grade_labs
from tests.ctcae_helpers import lab, make_db

NA = None

# (label, lbtestcd, term, unit, lln, uln, value, baseline (value, lbnrind) or None, expected grade)
EXAMPLES = []


def ex(label, code, term, unit, lln, uln, pairs, base=None):
    for value, grade in pairs:
        EXAMPLES.append((label, code, term, unit, lln, uln, value, base, grade))


ANC, HGB = "Neutrophil count decreased", "Anemia"
ex("ANC LLN 2.0", "NEUT", ANC, "10^9/L", 2.0, 7.5,
   [(0.49, 4), (0.5, 3), (0.99, 3), (1.0, 2), (1.49, 2), (1.5, 1), (1.9, 1), (2.0, 0)])
ex("ANC LLN missing", "NEUT", ANC, "10^9/L", None, 7.5, [(1.5, NA), (1.49, 2), (0.49, 4)])
ex("Hgb LLN 140", "HGB", HGB, "g/L", 140, 180, [(79, 3), (80, 2), (99, 2), (100, 1), (139, 1), (140, 0)])
ex("Hgb unit G/cL", "HGB", HGB, "G/cL", 140, 180, [(79, NA)])
ALT = "Alanine aminotransferase increased"
ex("ALT ULN 40 baseline normal", "ALT", ALT, "U/L", 7, 40,
   [(801, 4), (800, 3), (201, 3), (200, 2), (121, 2), (120, 1), (41, 1), (40, 0)], base=(30, "NORMAL"))
ex("ALT baseline abnormal BASE 40 ULN 39", "ALT", ALT, "U/L", 7, 39,
   [(801, 4), (800, 3), (201, 3), (200, 2), (121, 2), (120, 1), (60, 1), (59, 0)], base=(40, "HIGH"))
ex("ALP baseline abnormal BASE 40", "ALP", "Alkaline phosphatase increased", "U/L", 10, 39,
   [(100, 1), (101, 2), (80, 1), (79, 0)], base=(40, "HIGH"))
ex("Bilirubin ULN 40", "BILI", "Blood bilirubin increased", "umol/L", 3, 40,
   [(401, 4), (400, 3), (121, 3), (120, 2), (61, 2), (60, 1), (41, 1), (40, 0)])
CREAT = "Creatinine increased"
ex("Creatinine ULN 40", "CREAT", CREAT, "umol/L", 10, 40,
   [(241, 4), (240, 3), (121, 3), (120, 2), (61, 2), (60, 1), (41, 1), (40, 0)])
ex("Creatinine BASE 13.9", "CREAT", CREAT, "umol/L", 10, 60, [(42, 3)], base=(13.9, None))
ex("Creatinine BASE 14", "CREAT", CREAT, "umol/L", 10, 60, [(42, 2)], base=(14, None))
ex("Creatinine BASE 28", "CREAT", CREAT, "umol/L", 10, 60, [(42.1, 2)], base=(28, None))
ex("Creatinine ULN missing BASE 13.9", "CREAT", CREAT, "umol/L", None, None, [(42, 3), (20, NA)], base=(13.9, None))
INR = "INR increased"
ex("INR BASE 1", "INR", INR, None, None, None, [(2.51, 3), (2.5, 2), (1.5, 1), (1.2, 1)], base=(1, None))
ex("INR BASE 1.19", "INR", INR, None, None, None, [(1.19, 0)], base=(1.19, None))
ex("INR BASE 0.99", "INR", INR, None, None, None, [(2.5, 3)], base=(0.99, None))
ex("INR BASE missing", "INR", INR, None, None, None, [(1.2, NA), (1.6, 2)])
FIB = "Fibrinogen decreased"
ex("Fibrinogen LLN missing", "FIBRINO", FIB, "g/L", None, 4, [(0.49, 4)])
ex("Fibrinogen LLN 2.1", "FIBRINO", FIB, "g/L", 2.1, 4, [(0.5, 4), (1.0, 3), (1.5, 2), (2.0, 1)])
ex("Fibrinogen LLN 1.5 PCHG -1", "FIBRINO", FIB, "g/L", 1.5, 4, [(1.5, 0)], base=(1.5 / 0.99, None))
ex("Fibrinogen LLN missing PCHG -75", "FIBRINO", FIB, "g/L", None, 4, [(1.0, NA)], base=(4.0, None))
ex("Fibrinogen PCHG -50 below LLN", "FIBRINO", FIB, "g/L", 2.0, 4, [(1.9, 3)], base=(3.8, None))
ex("Fibrinogen PCHG -26.9 below LLN", "FIBRINO", FIB, "g/L", 2.0, 4, [(1.9, 2)], base=(2.6, None))
ex("Fibrinogen PCHG -75 below LLN", "FIBRINO", FIB, "g/L", 2.0, 4, [(1.9, 4)], base=(7.6, None))
ex("Hyponatremia LLN 140", "SODIUM", "Hyponatremia", "mmol/L", 140, 150,
   [(119, 4), (120, 3), (129, 3), (130, 1), (139, 1), (140, 0), (129.5, 1)])
ex("Hypokalemia LLN 4", "K", "Hypokalemia", "mmol/L", 4, 5.5,
   [(2.49, 4), (2.5, 3), (2.9, 3), (3.0, 2), (3.9, 2), (4.0, 0)])
ex("Triglycerides", "TRIG", "Hypertriglyceridemia", "mmol/L", None, None,
   [(11.5, 4), (11.4, 3), (5.8, 3), (5.7, 2), (3.43, 2), (3.42, 1), (1.72, 1), (1.71, 0)])


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    rows = []
    for i, (label, code, term, unit, lln, uln, value, base, grade) in enumerate(EXAMPLES):
        subj = f"E{i:03d}"
        if base is not None:
            rows.append(lab(subj, 1, code, base[0], unit, lln, uln, day=0, lbblfl="Y", lbnrind=base[1]))
        rows.append(lab(subj, 2, code, value, unit, lln, uln, day=7))
    con = make_db(tmp_path_factory.mktemp("ex") / "ex.duckdb", rows)
    df = grade_labs(con)
    con.close()
    return df


@pytest.mark.parametrize("i", range(len(EXAMPLES)), ids=[f"{e[0]}: {e[6]}" for e in EXAMPLES])
def test_worked_example(graded, i):
    label, code, term, unit, lln, uln, value, base, grade = EXAMPLES[i]
    row = graded[(graded.usubjid == f"E{i:03d}") & (graded.lbseq == 2) & (graded.ctcae_term == term)]
    assert len(row) == 1
    got = row.grade.iloc[0]
    if grade is None:
        assert got is None or got != got, (label, value, got)
        assert row.grade_reason.iloc[0]
    else:
        assert got == grade, (label, value, row.grade_reason.iloc[0])


_CACHE = {}


def _one(con, term, usubjid, lbseq=2):
    if id(con) not in _CACHE:
        _CACHE.clear()
        _CACHE[id(con)] = (con, grade_labs(con))
    df = _CACHE[id(con)][1]
    r = df[(df.usubjid == usubjid) & (df.lbseq == lbseq) & (df.ctcae_term == term)]
    assert len(r) == 1, r
    g = r.grade.iloc[0]
    return (None if g != g else int(g)), r.grade_reason.iloc[0], r.iloc[0]


def test_missing_inputs_give_null_with_reason(db_path):
    con = make_db(db_path, [
        lab("A", 2, "NEUT", None, "10^9/L", 2, 7),                              # missing value
        lab("B", 2, "ALT", 500, "U/L", 7, None),                                # missing ULN
        lab("C", 1, "ALT", 80, "U/L", 7, None, day=0, lbblfl="Y", lbnrind="HIGH"),
        lab("C", 2, "ALT", 500, "U/L", 7, None),                                # ULN missing, BL high branch too
        lab("D", 2, "PLAT", 100, "10^9/L", None, 400),                          # missing LLN, above 75
        lab("E", 2, "INR", 1.1, None, None, None),                              # no baseline, <= 1.2
        lab("E", 3, "INR", 1.3, None, None, None),                              # > 1.2: grade 1 before the NA arm
        lab("F", 2, "NEUT", 0.3, None, 2, 7),                                   # unit missing
        lab("G", 2, "HGB", 5.0, "mmol/L", 8.0, 11.0),                           # hemoglobin mmol/L
        lab("H", 2, "APTT", 60, None, 25, 35),                                  # xULN: no unit check
        lab("I", 2, "PH", 7.2, None, 7.35, 7.45),                               # pH unitless
        lab("J", 2, "NEUT", 0.3, "10^9/l", 2, 7),                               # unit case-insensitive
    ])
    assert _one(con, "Neutrophil count decreased", "A")[:2] == (None, "missing value")
    assert _one(con, ALT, "B")[:2] == (None, "missing ULN")
    assert _one(con, ALT, "C")[:2] == (None, "missing ULN")
    assert _one(con, "Platelet count decreased", "D")[:2] == (None, "missing LLN")
    assert _one(con, INR, "E")[:2] == (None, "missing baseline")
    assert _one(con, INR, "E", lbseq=3)[0] == 1
    assert _one(con, "Neutrophil count decreased", "F")[:2] == (None, "unit missing")
    assert _one(con, "Anemia", "G")[:2] == (None, "unit mmol/L not g/L")
    assert _one(con, "Hemoglobin increased", "G")[:2] == (None, "unit mmol/L not g/L")
    assert _one(con, "Activated partial thromboplastin time prolonged", "H")[0] == 2
    assert _one(con, "Acidosis", "I")[0] == 3
    assert _one(con, "Alkalosis", "I")[0] == 0
    assert _one(con, "Neutrophil count decreased", "J")[0] == 4


def test_every_null_grade_has_a_reason_and_graded_rows_say_which_rule(db_path):
    rng = random.Random(7)
    rows = []
    for i in range(400):
        code = rng.choice(["NEUT", "ALT", "HGB", "INR", "FIBRINO", "CREAT", "K", "SODIUM", "PH"])
        rows.append(lab(f"R{i}", 2, code, rng.choice([None, rng.uniform(0, 300)]),
                        rng.choice([None, "10^9/L", "g/L", "U/L", "mmol/L"]),
                        rng.choice([None, 2.0]), rng.choice([None, 40.0])))
    con = make_db(db_path, rows)
    df = grade_labs(con)
    assert df.grade_reason.notna().all()
    assert set(df.grade.dropna().unique()) <= {0, 1, 2, 3, 4}
    assert (df[df.grade == 2].grade_reason != "").all()


def test_baseline_flagged_record_wins_over_later_predose(db_path):
    con = make_db(db_path, [
        lab("A", 1, "ALT", 100, "U/L", 7, 40, day=-3, lbblfl="Y", lbnrind="HIGH"),
        lab("A", 3, "ALT", 20, "U/L", 7, 40, day=0),
        lab("A", 2, "ALT", 160, "U/L", 7, 40, day=5),
    ])
    g, reason, row = _one(con, ALT, "A")
    assert row.baseline_value == 100 and bool(row.baseline_high)
    assert g == 1 and "baseline" in reason          # 160 >= 1.5 x 100, not 3 x ULN (120) -> grade 2
    _, _, b = _one(con, ALT, "A", lbseq=1)
    assert bool(b.is_baseline) and b.grade == 0      # the abnormal baseline record itself grades 0


def test_baseline_falls_back_to_last_nonmissing_value_on_or_before_day0(db_path):
    con = make_db(db_path, [
        lab("A", 1, "ALT", 90, "U/L", 7, 40, day=-7),
        lab("A", 4, "ALT", None, "U/L", 7, 40, day=0),   # missing: skipped
        lab("A", 5, "ALT", 10, "U/L", 7, 40, day=1),     # after infusion: not a baseline
        lab("A", 2, "ALT", 130, "U/L", 7, 40, day=5),
        lab("B", 2, "ALT", 130, "U/L", 7, 40, day=5),    # no baseline at all: normal branch
    ])
    g, _, row = _one(con, ALT, "A")
    assert row.baseline_value == 90
    assert bool(row.baseline_high)                   # no LBNRIND: 90 > ULN 40 -> high
    assert g == 0                                    # 130 < 1.5 x 90 = 135
    g, _, row = _one(con, ALT, "B")
    assert row.baseline_value != row.baseline_value and not row.baseline_high
    assert g == 2                                    # 130 > 3 x 40


def test_lbnrind_given_overrides_value(db_path):
    con = make_db(db_path, [
        lab("A", 1, "GGT", 80, "U/L", 8, 60, day=0, lbblfl="Y", lbnrind="NORMAL"),  # value > ULN but NORMAL
        lab("A", 2, "GGT", 161, "U/L", 8, 60),
        lab("B", 1, "GGT", 50, "U/L", 8, 60, day=0, lbblfl="Y", lbnrind="HIGH"),    # value <= ULN but HIGH
        lab("B", 2, "GGT", 100, "U/L", 8, 60),
        lab("C", 1, "GGT", 50, "U/L", 8, 60, day=0, lbblfl="Y", lbnrind="HIGH"),
        lab("C", 2, "GGT", 101, "U/L", 8, 60),
    ])
    assert _one(con, "GGT increased", "A")[0] == 2   # 161 > 2.5 x ULN 150 (ULN branch; as high: 161 > 2 x 80 -> 1)
    assert _one(con, "GGT increased", "B")[0] == 0   # GGT: strict > 2 x BASE (100 is not > 100)
    assert _one(con, "GGT increased", "C")[0] == 1


def test_urine_and_other_specimens_are_not_graded(db_path):
    con = make_db(db_path, [
        lab("A", 1, "GLUC", 0.5, "mmol/L", 3.9, 6.1, lbspec="URINE"),
        lab("A", 2, "PH", 5.0, None, 7.35, 7.45, lbspec=None, lbcat="URINALYSIS"),
        lab("A", 3, "GLUC", 1.0, "mmol/L", 3.9, 6.1, lbspec="CSF"),
        lab("A", 4, "GLUC", 1.6, "mmol/L", 3.9, 6.1, lbspec=None),             # empty spec = blood
        lab("A", 5, "GLUC", 2.0, "mmol/L", 3.9, 6.1, lbspec="PLASMA"),
        lab("A", 6, "PH", 7.25, None, 7.35, 7.45, lbspec="ARTERIAL BLOOD", lbcat="BLOOD GAS"),
    ])
    df = grade_labs(con)
    assert sorted(df.lbseq.unique()) == [4, 5, 6]
    assert df.set_index(["lbseq", "ctcae_term"]).grade.to_dict() == {
        (4, "Hypoglycemia"): 4, (5, "Hypoglycemia"): 3, (6, "Acidosis"): 3, (6, "Alkalosis"): 0}


def test_hemoglobin_graded_in_both_directions(db_path):
    con = make_db(db_path, [lab("A", 2, "HGB", 79, "g/L", 120, 160), lab("B", 2, "HGB", 200.5, "g/L", 120, 160)])
    assert _one(con, "Anemia", "A")[0] == 3 and _one(con, "Hemoglobin increased", "A")[0] == 0
    assert _one(con, "Anemia", "B")[0] == 0 and _one(con, "Hemoglobin increased", "B")[0] == 3


@pytest.mark.parametrize("code,term,uln,k,value,expected", [
    ("ALT", ALT, 1.2, 3, 3.6, 1),        # 3 x 1.2 = 3.5999999999999996: exactly 3 x ULN -> grade 1
    ("APTT", "Activated partial thromboplastin time prolonged", 36.3, 1.5, 54.45, 1),  # 1.5 x 36.3 = 54.449999999999996
    ("CK", "CPK increased", 0.1, 3, 0.3, 2),             # 3 x 0.1 = 0.30000000000000004 (above): 0.3 is on it
    ("LIPASE", "Lipase increased", 1.1, 1.5, 1.65, 1),   # 1.5 x 1.1 = 1.6500000000000001
])
def test_float_noisy_multiples_sit_on_the_boundary(db_path, code, term, uln, k, value, expected):
    assert (k * uln) != value           # the float product is off the decimal value ...
    con = make_db(db_path, [lab("A", 2, code, value, "U/L", 0.1, uln)])
    assert _one(con, term, "A")[0] == expected   # ... yet it grades as on the threshold (admiral signif 15)


def test_exact_modes_agree_on_noisy_data(db_path):
    """The production comparison (rounding only near ties) equals signif(15) on both sides."""
    rng = random.Random(11)
    rows, n = [], 0
    for code, ulns in (("ALT", [40, 1.2, 33.3, 0.7]), ("APTT", [36.3, 35.1]), ("HGB", [160.3, 170.1]),
                       ("CREAT", [110, 97.2]), ("FIBRINO", [4.0, 3.3])):
        for uln in ulns:
            for k in (1, 1.5, 2, 2.5, 3, 5, 6, 10, 20, 0.25, 0.5, 0.75):
                for v in (k * uln, round(k * uln, 10), k * uln * (1 + 1e-15), k * uln * (1 - 1e-15), uln + 20, uln + 40):
                    n += 1
                    rows.append(lab(f"N{n}", 1, code, rng.uniform(0.5, 2) * uln, "g/L", uln / 2, uln, day=0, lbblfl="Y",
                                    lbnrind=rng.choice(["HIGH", "NORMAL", None])))
                    rows.append(lab(f"N{n}", 2, code, v, "g/L", uln / 2, uln))
    con = make_db(db_path, rows)
    guarded = grade_labs(con, exact="guarded").sort_values(["usubjid", "lbseq", "ctcae_term"]).reset_index(drop=True)
    signif = grade_labs(con, exact="signif").sort_values(["usubjid", "lbseq", "ctcae_term"]).reset_index(drop=True)
    raw = grade_labs(con, exact="raw").sort_values(["usubjid", "lbseq", "ctcae_term"]).reset_index(drop=True)
    assert guarded.grade.fillna(-1).tolist() == signif.grade.fillna(-1).tolist()
    assert (raw.grade.fillna(-1) != signif.grade.fillna(-1)).sum() > 0   # the rounding matters on this data


def test_sql_signif_matches_r_signif(tmp_path):
    """The SQL rounding equals R's signif(x, 15) (nmath fprec, restated in rules.signif) on ties,
    products of decimal numbers and random values."""
    import duckdb

    from safety.derive.grading.rules import signif, signif_sql
    rng = random.Random(3)
    xs = [0.0, 1.0, -2.5, 3 * 1.2, 1.5 * 36.3, 0.1 + 0.2, 123456789012344.5 / 10, 99.99999999999999,
          99.9999999999999, 1e-9 * 3.3, 7.000000000000001, 12.345678901234549]
    xs += [rng.uniform(-1000, 1000) for _ in range(3000)]
    xs += [round(rng.uniform(0, 500), 2) * k for k in (1.5, 2.5, 3, 5, 20, 0.25, 0.75) for _ in range(100)]
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    con.execute("CREATE TABLE x (i INTEGER, v DOUBLE)")
    con.executemany("INSERT INTO x VALUES (?, ?)", list(enumerate(xs)))
    got = dict(con.sql(f"SELECT i, {signif_sql('v')} FROM x").fetchall())
    assert all(got[i] == signif(v) for i, v in enumerate(xs)), [(v, got[i], signif(v)) for i, v in enumerate(xs) if got[i] != signif(v)][:5]
    assert signif(3 * 1.2) == 3.6 and signif(1.5 * 36.3) == 54.45
