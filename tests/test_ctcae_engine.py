"""The rule engine itself: the criterion parser, rule-file validation, the term map, and the
agreement of the fast (dense) SQL with the plain per-term CASE on random data."""
from __future__ import annotations

import random
import shutil

import pytest

from safety.derive.grading import rules as R
from safety.derive.grading.ctcae import grade_labs
from tests.ctcae_helpers import lab, make_db


def test_parser_reads_the_grammar():
    (g1,), = R.parse_criterion("AVAL >= 1.5 * BASE")
    assert g1 == R.Compare(R.Operand("AVAL"), ">=", R.Operand("BASE", coef=1.5))
    crit = R.parse_criterion("AVAL < LLN & PCHG <= -25 | AVAL < 0.5")
    assert len(crit) == 2 and len(crit[0]) == 2
    assert crit[0][1] == R.Compare(R.Operand("PCHG"), "<=", R.Operand(None, const=-25.0))
    (c,), = R.parse_criterion("AVAL > ULN + 40")
    assert c.right == R.Operand("ULN", offset=40.0)
    assert R.parse_criterion("missing(lln)") == ((R.Missing("LLN"),),)
    assert R.describe(R.parse_criterion("AVAL > 2.5 * ULN")) == "value > 2.5 x ULN"
    for bad in ("AVAL >", "AVAL > FOO", "3 > 4", "AVAL ~ 3", "AVAL > 3 &", ""):
        with pytest.raises(R.RuleError):
            R.parse_criterion(bad)


def test_rule_file_has_all_40_term_directions_and_is_validated(tmp_path):
    rules = R.load_rules("5.0")
    assert len(rules.terms) == 40
    assert R.rule_file("5.0").name == "ctcae_v5.csv"
    with pytest.raises(R.RuleError):
        R.rule_file("6.0")
    broken = tmp_path / "ctcae_vX.csv"
    text = R.rule_file("5.0").read_text().replace("Anemia,L,0,,g/L,TRUE,\n", "")
    broken.write_text(text)
    with pytest.raises(R.RuleError, match="last row of Anemia"):
        R.load_rules(path=broken)
    broken.write_text(R.rule_file("5.0").read_text().replace("Anemia,L,3,,g/L,AVAL < 80", "Anemia,L,3,,g/L,AVAL < 8O"))
    with pytest.raises(R.RuleError, match="line 2"):
        R.load_rules(path=broken)


def test_term_map_covers_the_issue_codes_and_is_extendable(tmp_path):
    rules = R.load_rules()
    rows = R.load_lab_terms(rules)
    codes = {r.lbtestcd for r in rows}
    assert codes >= {"ALB", "ALP", "ALT", "AMYLASE", "APTT", "AST", "BILI", "CA", "CAION", "CD4", "CHOL", "CK",
                     "CREAT", "FIBRINO", "GGT", "GLUC", "HAPTO", "HGB", "INR", "K", "LDH", "LIPASE", "LYM", "MG",
                     "NEUT", "PH", "PLAT", "SODIUM", "TRIG", "URATE", "WBC"}
    two = {c for c in codes if sum(r.lbtestcd == c for r in rows) == 2}
    assert two == {"HGB", "K", "SODIUM", "CA", "CAION", "MG", "LYM", "WBC", "PH"}
    assert len({(r.ctcae_term, r.direction) for r in rows}) == 40
    extra = tmp_path / "lab_terms.csv"
    extra.write_text("lbtestcd,ctcae_term,direction\nneutsg,Neutrophil count decreased,L\nGLUC,Hypoglycemia,L\n")
    rows2 = R.load_lab_terms(rules, extra)
    assert ("NEUTSG", "Neutrophil count decreased", "L") in {(r.lbtestcd, r.ctcae_term, r.direction) for r in rows2}
    extra.write_text("lbtestcd,ctcae_term,direction\nX,Hyperglycemia,H\n")
    with pytest.raises(R.RuleError, match="Hyperglycemia"):
        R.load_lab_terms(rules, extra)


def test_study_term_map_is_used_by_grading(db_path, tmp_path):
    extra = tmp_path / "lab_terms.csv"
    extra.write_text("lbtestcd,ctcae_term,direction\nNEUTSG,Neutrophil count decreased,L\n")
    con = make_db(db_path, [lab("A", 1, "NEUTSG", 0.4, "10^9/L", 2, 7)])
    assert grade_labs(con).empty
    df = grade_labs(con, lab_terms_path=extra)
    assert df.grade.tolist() == [4]


def test_all_v5_terms_compile_to_the_dense_form():
    rules = R.load_rules()
    assert all(R.compile_dense(t) is not None for t in rules.terms.values())


def test_unusual_rules_fall_back_to_the_case_path_with_the_same_semantics(db_path, tmp_path):
    rules_dir = tmp_path
    custom = rules_dir / "ctcae_custom.csv"
    custom.write_text(
        "term,direction,grade,baseline,unit_check,criterion,comment\n"
        # two NA arms and an OR of two kinds: not the dense shape
        "Neutrophil count decreased,L,NA,,10^9/L,missing(LLN),\n"
        "Neutrophil count decreased,L,NA,,10^9/L,missing(ULN),\n"
        "Neutrophil count decreased,L,3,,10^9/L,AVAL < 1 | AVAL < 0.2 * ULN,\n"
        "Neutrophil count decreased,L,1,,10^9/L,AVAL < LLN,\n"
        "Neutrophil count decreased,L,0,,10^9/L,TRUE,\n"
        "Anemia,L,2,,g/L,AVAL < 100,\n"
        "Anemia,L,0,,g/L,TRUE,\n")
    rules = R.load_rules(path=custom)
    assert R.compile_dense(rules.term_rules("Neutrophil count decreased", "L")) is None
    assert R.compile_dense(rules.term_rules("Anemia", "L")) is not None
    terms = tmp_path / "terms.csv"
    terms.write_text("lbtestcd,ctcae_term,direction\nNEUT,Neutrophil count decreased,L\nHGB,Anemia,L\n")
    con = make_db(db_path, [
        lab("A", 1, "NEUT", 0.9, "10^9/L", 2, 5), lab("A", 2, "NEUT", 1.9, "10^9/L", 2, 5),
        lab("A", 3, "NEUT", 1.9, "10^9/L", None, 5), lab("A", 4, "NEUT", 0.5, "10^9/L", 2, None),
        lab("A", 7, "NEUT", 1.5, "10^9/L", 2, 8),     # 1.5 < 0.2 x 8 = 1.6: the OR arm gives grade 3
        lab("A", 5, "HGB", 90, "g/L", 120, 160), lab("A", 6, "HGB", 110, "mmol/L", 120, 160)])
    df = grade_labs(con, rules_path=custom, lab_terms_path=terms).set_index("lbseq")
    assert df.grade.fillna(-1).to_dict() == {1: 3, 2: 1, 3: -1, 4: -1, 5: 2, 6: -1, 7: 3}
    assert df.grade_reason.to_dict()[3] == "missing LLN" and df.grade_reason.to_dict()[4] == "missing ULN"
    assert df.grade_reason.to_dict()[6] == "unit mmol/L not g/L"


def test_dense_and_case_engines_agree_on_random_data(db_path):
    rules = R.load_rules()
    codes = sorted({r.lbtestcd for r in R.load_lab_terms(rules)})
    units = {"ALB": "g/L", "HGB": "g/L", "FIBRINO": "g/L", "HAPTO": "g/L", "CD4": "10^9/L", "LYM": "10^9/L",
             "NEUT": "10^9/L", "PLAT": "10^9/L", "WBC": "10^9/L", "INR": None, "PH": None}
    rng = random.Random(2024)
    rows = []
    for s in range(300):
        for code in rng.sample(codes, 8):
            lln, uln = rng.choice([(1.0, 2.0), (2.0, 7.5), (35, 50), (120, 160), (7.35, 7.45), (None, 40), (3.5, None)])
            scale = (uln or lln or 1)
            for seq, day in enumerate((-3, 0, 2, 9, 30)):
                v = rng.choice([None, round(rng.uniform(0, 6) * scale, rng.choice([0, 1, 2])),
                                rng.choice([1, 1.5, 2, 2.5, 3, 5, 10, 20, 0.75, 0.5, 0.25]) * scale])
                unit = units.get(code, "mmol/L") if rng.random() > 0.05 else rng.choice([None, "mg/dL"])
                rows.append(lab(f"R{s}", seq + 1, code, v, unit, lln, uln, day=day,
                                lbblfl="Y" if day == 0 and rng.random() < 0.5 else None,
                                lbnrind=rng.choice([None, "HIGH", "NORMAL", "LOW", "ABNORMAL"])))
    con = make_db(db_path, rows)
    keys = ["usubjid", "lbseq", "ctcae_term"]
    dense = grade_labs(con, engine="dense").sort_values(keys).reset_index(drop=True)
    case = grade_labs(con, engine="case").sort_values(keys).reset_index(drop=True)
    assert len(dense) == len(case) > 5000
    assert dense.grade.fillna(-1).tolist() == case.grade.fillna(-1).tolist()
    null = dense.grade.isna()
    assert (dense.grade_reason[null] == case.grade_reason[null]).all()
    assert dense.grade.isna().sum() > 100 and set(dense.grade.dropna()) == {0, 1, 2, 3, 4}


@pytest.mark.parametrize("engine", ["dense", "case"])
def test_a_censored_result_is_graded_beyond_its_bound(db_path, engine):
    """'<0.5' neutrophils lies below 0.5, so CTCAE grade 4 ("< 0.5"), not the grade 3 of the bound itself; '>1000'
    ALT with ULN 50 is over 20 x ULN (grade 4). The stored value stays the bound as reported."""
    rows = [lab("A", 1, "NEUT", 0.5, "10^9/L", 2, 7) | {"censored": "<"},
            lab("A", 2, "NEUT", 1.0, "10^9/L", 2, 7) | {"censored": "<"},
            lab("A", 3, "NEUT", 0.5, "10^9/L", 2, 7),
            lab("A", 4, "PLAT", 25.0, "10^9/L", 150, 400) | {"censored": "<"},
            lab("A", 5, "ALT", 1000.0, "U/L", 5, 50) | {"censored": ">"},
            lab("A", 6, "ALT", 1000.0, "U/L", 5, 50),
            lab("A", 7, "ALT", 10.0, "U/L", 5, 50) | {"censored": "<"}]
    con = make_db(db_path, rows)
    got = grade_labs(con, engine=engine).set_index("lbseq")
    assert got["grade"].to_dict() == {1: 4, 2: 3, 3: 3, 4: 4, 5: 4, 6: 3, 7: 0}
    assert got.loc[1, "value"] == 0.5 and got.loc[5, "value"] == 1000.0
