"""A study can map its own lab test codes to CTCAE terms with `lab_terms_path` in study.yaml."""
from __future__ import annotations

import pytest

from safety.core.config import ConfigError, load_study_config
from safety.derive.grading.ctcae import derive_lab_toxicity
from ctcae_helpers import CUT, STUDY, lab, make_db


def test_study_term_map_grades_a_sponsor_specific_code(tmp_path):
    study = tmp_path / "study"
    study.mkdir()
    (study / "lab_terms.csv").write_text(
        "lbtestcd,ctcae_term,direction,comment\nANCX,Neutrophil count decreased,L,sponsor code for ANC\n")
    (study / "study.yaml").write_text("lab_terms_path: lab_terms.csv\n")
    cfg = load_study_config(study)
    assert cfg["lab_terms_path"] == str((study / "lab_terms.csv").resolve())

    con = make_db(tmp_path / "db.duckdb", [
        lab("S1", 1, "ANCX", 0.4, "10^9/L", lln=2.0),   # grade 4 under the study map
        lab("S1", 2, "NEUT", 1.2, "10^9/L", lln=2.0),   # packaged map still applies: grade 2
    ])
    derive_lab_toxicity(con, STUDY, CUT, cfg)
    got = dict(con.execute("SELECT lbtestcd, grade FROM lab_toxicity ORDER BY lbtestcd").fetchall())
    assert got == {"ANCX": 4, "NEUT": 2}

    # Without the study map the sponsor code is not a CTCAE lab term at all.
    derive_lab_toxicity(con, STUDY, CUT, load_study_config(tmp_path))
    assert con.execute("SELECT count(*) FROM lab_toxicity WHERE lbtestcd = 'ANCX'").fetchone()[0] == 0


def test_missing_study_term_map_is_named(tmp_path):
    (tmp_path / "study.yaml").write_text("lab_terms_path: nowhere.csv\n")
    with pytest.raises(ConfigError, match="lab_terms_path"):
        load_study_config(tmp_path)
