"""The names safety/data/malignancy_terms.csv reads a new malignancy by, checked with MedDRA preferred terms and
verbatim terms as sites report the malignancies seen after CAR-T (myeloid neoplasms, skin cancers and melanoma,
T-cell lymphomas), loaded from a study folder by the real ingest into the secondary_malignancies table."""
from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb
import pytest

from outcome_fixtures import OutcomeDB
from safety.ingest import ingest_study

ROOT = Path(__file__).resolve().parents[1]
NEO = "Neoplasms benign, malignant and unspecified (incl cysts and polyps)"
SKIN = "Skin and subcutaneous tissue disorders"

# (AEDECOD, AETERM, SOC, a new malignancy?, a T-cell one?); an empty AEDECOD is a verbatim term not yet coded
TERMS = [
    # melanoma and its in-situ form: 'Lentigo maligna' holds 'maligna', not 'malignant', and no 'melanoma'
    ("Lentigo maligna", "Lentigo maligna of left cheek", NEO, True, False),
    ("", "Hutchinson's melanotic freckle", NEO, True, False),
    ("Lentigo maligna melanoma", "Lentigo maligna melanoma", NEO, True, False),
    ("Malignant melanoma in situ", "Melanoma in situ, back", NEO, True, False),
    ("Acral lentiginous melanoma", "Acral lentiginous melanoma", NEO, True, False),
    ("Superficial spreading melanoma stage unspecified", "Superficial spreading melanoma", NEO, True, False),
    ("Uveal melanoma", "Uveal melanoma", NEO, True, False),
    # non-melanoma skin cancers
    ("Squamous cell carcinoma of skin", "cSCC right forearm", NEO, True, False),
    ("Basal cell carcinoma", "BCC nose", NEO, True, False),
    ("Bowen's disease", "Bowen's disease", NEO, True, False),
    ("Keratoacanthoma", "Keratoacanthoma left hand", NEO, True, False),
    ("Extramammary Paget's disease", "Extramammary Paget's disease", NEO, True, False),
    ("Merkel cell carcinoma", "Merkel cell carcinoma", NEO, True, False),
    # myeloid neoplasms, the usual secondary malignancy after CAR-T
    ("Myelodysplastic syndrome", "MDS", NEO, True, False),
    ("Acute myeloid leukaemia", "AML", NEO, True, False),
    ("Chronic myelomonocytic leukaemia", "CMML", NEO, True, False),
    ("Acute promyelocytic leukaemia", "APL", NEO, True, False),
    ("Therapy-related myeloid neoplasm", "t-MN", NEO, True, False),
    ("", "Myeloid neoplasm", NEO, True, False),
    ("Blastic plasmacytoid dendritic cell neoplasia", "BPDCN", NEO, True, False),
    ("Systemic mastocytosis", "Systemic mastocytosis", NEO, True, False),
    # T-cell lymphomas (FDA boxed warning, January 2024), CAR-positive ones named as sites report them
    ("T-cell lymphoma", "CAR+ T-cell lymphoma", NEO, True, True),
    ("Peripheral T-cell lymphoma unspecified", "PTCL-NOS", NEO, True, True),
    ("Angioimmunoblastic T-cell lymphoma", "AITL", NEO, True, True),
    ("", "Primary cutaneous CD30-positive T-cell lymphoproliferative disorder", NEO, True, True),
    ("Lymphomatoid papulosis", "Lymphomatoid papulosis", NEO, True, True),
    # not malignancies: benign or precursor lesions whose names come close
    ("Solar lentigo", "Solar lentigo", SKIN, False, False),
    ("Lentigo", "Lentigo", SKIN, False, False),
    ("Dysplastic naevus", "Dysplastic naevus", SKIN, False, False),
    ("Actinic keratosis", "Actinic keratosis", SKIN, False, False),
    ("Seborrhoeic keratosis", "Seborrhoeic keratosis", SKIN, False, False),
    ("Paget's disease of bone", "Paget's disease of bone", "Musculoskeletal and connective tissue disorders", False,
     False),
    ("Clonal haematopoiesis", "Clonal haematopoiesis", "Blood and lymphatic system disorders", False, False),
    ("T-lymphocyte count decreased", "Low CD3 count", "Investigations", False, False),
]

SUBJECT, RFSTDTC, INFUSED = "ITNK-B-01-01-001", dt.date(2024, 11, 15), dt.date(2024, 11, 20)  # B-ALL, DL1
CUT = "2026-09-30"


def _csv(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> Path:
    """The CAR-ITNK sample study with :data:`TERMS` appended to AE for subject 01-001 (B-cell ALL), one a week from
    day 30, loaded by ingest_study into a new database file."""
    folder = tmp_path_factory.mktemp("malignancy_terms")
    study = folder / "car_itnk"
    shutil.copytree(ROOT / "sample_data" / "car_itnk", study)
    rows = []
    for i, (decod, term, soc, _, _) in enumerate(TERMS):
        onset = INFUSED + dt.timedelta(days=30 + 7 * i)
        rows.append(",".join([
            "ITNK-B-01", "AE", SUBJECT, str(9000 + i), _csv(term), _csv(decod), _csv(soc), "MODERATE", "2", "N", "N",
            "N", "N", "N", "N", "N", "NOT RELATED", "NOT APPLICABLE", "NOT RECOVERED/NOT RESOLVED", onset.isoformat(),
            "", str((onset - RFSTDTC).days + 1)]) + "\n")
    with open(study / "ae.csv", "a", encoding="utf-8") as f:
        f.writelines(rows)
    db = folder / "itnk.duckdb"
    ingest_study(study, db, cutoff=CUT)
    return db


def test_every_malignancy_term_is_found_through_the_load_and_no_lookalike(loaded):
    con = duckdb.connect(str(loaded), read_only=True)
    try:
        got = {r[0]: (r[1], bool(r[2])) for r in con.execute(
            "SELECT split_part(event_key, '/', 3)::INTEGER - 9000, onset_day, t_cell_malignancy "
            "FROM secondary_malignancies WHERE studyid = 'ITNK-B-01' AND data_cut = $c AND usubjid = $u "
            "AND source = 'AE' AND event_key LIKE '%/AE/9___'", {"c": dt.date.fromisoformat(CUT), "u": SUBJECT}
        ).fetchall()}
        loaded_aes = con.execute("SELECT count(*) FROM adverse_events WHERE usubjid = $u AND aeseq >= 9000",
                                 {"u": SUBJECT}).fetchone()[0]
    finally:
        con.close()
    assert loaded_aes == len(TERMS)  # every row went in: none was quarantined
    expected = {i: (30 + 7 * i, t_cell) for i, (_, _, _, new, t_cell) in enumerate(TERMS) if new}
    missed = [TERMS[i][:2] for i in sorted(set(expected) - set(got))]
    wrong = [TERMS[i][:2] for i in sorted(set(got) - set(expected))]
    assert not missed and not wrong, {"not found": missed, "found but no malignancy": wrong}
    assert got == expected


@pytest.mark.parametrize("cause", ["Acute promyelocytic leukaemia progression", "Acute monocytic leukaemia relapse"])
def test_an_aml_subtype_progressing_after_car_t_for_a_lymphoma_is_a_secondary_malignancy(tmp_path, cause):
    """The myeloid kind names AML by its subtypes too: a progression word does not make a new acute promyelocytic or
    monocytic leukaemia the disease under study's, in the death causes and in the listing alike."""
    db = OutcomeDB(tmp_path / "apl.duckdb")
    db.subject("P", death_day=400, diagnosis="Diffuse large B-cell lymphoma")
    db.ds("P", "DEATH", cause, 400)
    db.ae("P", cause, 5, 380, 400, soc=NEO, aeout="FATAL")
    db.derive("deaths", "secondary_malignancies")
    d = db.by("deaths")["P"]
    assert (d["cause_category"], bool(d["non_relapse"])) == ("secondary malignancy", True)
    assert [r["term"] for r in db.rows("SELECT term FROM secondary_malignancies")] == [cause]


def test_a_terms_file_without_a_kind_fails_loudly_naming_the_file_and_the_kind(monkeypatch):
    """Each test reads its kinds' patterns as one expression: a file that lost every 'myeloid' row would leave the
    test matching nothing (AML read as the disease's progression), so it fails at start instead."""
    from safety.derive.outcomes import _data, malignancy

    rows = [r for r in _data.read_rules("malignancy_terms.csv") if r["kind"] != "myeloid"]
    monkeypatch.setattr(_data, "read_rules", lambda name: rows)
    with pytest.raises(ValueError, match=r"malignancy_terms\.csv: no pattern of kind myeloid"):
        malignancy.kind_params()


def test_a_cause_matched_by_the_second_row_of_a_kind_is_read_as_that_kind(tmp_path):
    """'exclude' has two rows; a fatal 'Malignant pleural effusion' is matched by the second only: an effect of a
    malignancy, neither a secondary malignancy nor one listed, as with a single row per kind."""
    db = OutcomeDB(tmp_path / "effusion.duckdb")
    db.subject("P", death_day=200, diagnosis="Diffuse large B-cell lymphoma")
    db.ae("P", "Malignant pleural effusion", 5, 190, 200, soc=NEO, aeout="FATAL")
    db.derive("deaths", "secondary_malignancies")
    assert db.by("deaths")["P"]["cause_category"] != "secondary malignancy"
    assert db.rows("SELECT term FROM secondary_malignancies") == []


def test_the_terms_file_is_not_installed_as_a_rule_table():
    """The terms are read once into statement parameters (malignancy.KIND_PARAMS), which DuckDB compiles once per
    statement; installing them as a table to read patterns from would bring back a compile per text, so it fails."""
    from safety.derive.outcomes import _data, malignancy

    assert set(malignancy.KIND_PARAMS) == {f"mk_{g}" for g in malignancy.KIND_GROUPS}
    with pytest.raises(ValueError, match=r"malignancy_terms\.csv is read into statement parameters: it has no table"):
        _data.install(duckdb.connect(), "malignancy_terms.csv")
