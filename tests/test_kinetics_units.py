"""Cellular kinetics over samples in several units, loaded for real: a unit that converts to the subject's main unit
is converted (safety/data/pc_unit_conversions.csv), a tie between units that do not convert is broken by the
first sampled and said, and an analyte without any blood sample keeps a row saying why it has no parameters."""
from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from safety.derive.outcomes.kinetics import curve_samples
from safety.ingest import ingest_study
from test_ingest_fixtures import DOMAINS, STUDY, make_study
from test_ingest_pp_mh import compared


LLOQ = {"cells/uL": "0.5", "cells/mL": "500", "copies/ug gDNA": "50"}


def _pc(rows):
    """PC rows (usubjid, pctestcd, PCORRES, unit, PCSPEC, date), each with its unit's LLOQ."""
    return pd.DataFrame({
        "STUDYID": STUDY, "USUBJID": [r[0] for r in rows], "PCSEQ": list(range(1, len(rows) + 1)),
        "PCTESTCD": [r[1] for r in rows], "PCORRES": [r[2] for r in rows], "PCSTRESU": [r[3] for r in rows],
        "PCLLOQ": [LLOQ[r[3]] for r in rows], "PCSPEC": [r[4] for r in rows], "PCDTC": [r[5] for r in rows],
    })


# S-001 infused 2024-02-01, S-002 on 2024-02-10
PC = _pc([
    # two samples in cells/mL, two in cells/uL: the peak (80 cells/uL, day 7) was left out by the text order
    ("S-001", "CARCELLS", "<500", "cells/mL", "BLOOD", "2024-02-01"),
    ("S-001", "CARCELLS", "80", "cells/uL", "BLOOD", "2024-02-08"),
    ("S-001", "CARCELLS", "20", "cells/uL", "BLOOD", "2024-02-15"),
    ("S-001", "CARCELLS", "3000", "cells/mL", "BLOOD", "2024-02-29"),
    # marrow only: no blood parameters, and the row says so
    ("S-001", "CARTGDNA", "900", "copies/ug gDNA", "BONE MARROW", "2024-02-15"),
    ("S-001", "CARTGDNA", "300", "copies/ug gDNA", "BONE MARROW", "2024-02-29"),
    # two assays that do not convert, two samples each: the one sampled first is used
    ("S-002", "CARCELLS", "<50", "copies/ug gDNA", "BLOOD", "2024-02-10"),
    ("S-002", "CARCELLS", "5000", "copies/ug gDNA", "BLOOD", "2024-02-17"),
    ("S-002", "CARCELLS", "30", "cells/uL", "BLOOD", "2024-02-24"),
    ("S-002", "CARCELLS", "4", "cells/uL", "BLOOD", "2024-03-09"),
])


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    root = tmp_path_factory.mktemp("pcunits")
    path = root / "db.duckdb"
    ingest_study(make_study(root / "s", "csv", domains={**DOMAINS, "pc": PC}), path, cutoff="2024-09-30")
    con = duckdb.connect(str(path), read_only=True)
    yield con
    con.close()


def kinetics(con) -> dict:
    cur = con.execute("SELECT usubjid, pctestcd, unit, n_samples, cmax, tmax_day, auc_0_28, values_used "
                      "FROM cellular_kinetics")
    return {(r[0], r[1]): r[2:] for r in cur.fetchall()}


def test_a_unit_that_converts_to_the_main_unit_is_converted_and_the_peak_kept(db):
    """cells/uL and cells/mL are one measure a factor 1000 apart: as many samples in each left the cells/uL peak out
    by text order. All four are used, in the unit of as many samples sampled first (cells/mL, day 0)."""
    # AUC: 7 * 80000 / 2 + 7 * (80000 + 20000) / 2 + 14 * (20000 + 3000) / 2
    assert kinetics(db)[("S-001", "CARCELLS")] == (
        "cells/mL", 4, 80000.0, 7, 280000.0 + 350000.0 + 161000.0,
        "0:BLQ; 7:80000; 14:20000; 28:3000; converted to cells/mL: 2 samples in cells/uL (x1000)")
    # the chart draws the same samples in the same unit, the LLOQ (0.5 cells/uL) too
    drawn = db.execute(f"SELECT day, value, lloq, main_unit FROM {curve_samples('usubjid = $u AND pctestcd = $t')} "
                       "WHERE used ORDER BY day", {"u": "S-001", "t": "CARCELLS"}).fetchall()
    assert drawn == [(0, 500.0, 500.0, "cells/mL"), (7, 80000.0, 500.0, "cells/mL"), (14, 20000.0, 500.0, "cells/mL"),
                     (28, 3000.0, 500.0, "cells/mL")]


def test_a_tie_between_units_that_do_not_convert_is_broken_by_the_first_sampled_and_said(db):
    assert kinetics(db)[("S-002", "CARCELLS")] == (
        "copies/ug gDNA", 2, 5000.0, 7, 17500.0,
        "0:BLQ; 7:5000; units tied at 2 blood samples each (copies/ug gDNA, cells/uL): copies/ug gDNA used, "
        "sampled first (day 0); not used: 2 samples in cells/uL")


def test_an_analyte_without_a_blood_sample_keeps_a_row_saying_why_it_has_no_parameters(db):
    assert kinetics(db)[("S-001", "CARTGDNA")] == (
        None, 0, None, None, None,
        "no peripheral-blood sample: no parameters derived; not used: 2 BONE MARROW samples")


# S-001 (infused 2024-02-01): Cmax 80 cells/uL on day 7, AUC 0-28 791 day*cells/uL; S-002 (2024-02-10): AUC 210.
# Loaded with a sponsor's PP by test_ingest_pp_mh.compared.
PC_CELLS_UL = _pc([("S-001", "CARCELLS", "<0.5", "cells/uL", "BLOOD", "2024-02-01"),
                   ("S-001", "CARCELLS", "80", "cells/uL", "BLOOD", "2024-02-08"),
                   ("S-001", "CARCELLS", "20", "cells/uL", "BLOOD", "2024-02-15"),
                   ("S-001", "CARCELLS", "3", "cells/uL", "BLOOD", "2024-02-29"),
                   ("S-002", "CARCELLS", "50", "cells/uL", "BLOOD", "2024-02-17"),
                   ("S-002", "CARCELLS", "10", "cells/uL", "BLOOD", "2024-02-24")])


def test_a_sponsor_cmax_in_a_unit_that_converts_is_converted_before_it_is_compared(tmp_path):
    """A sponsor's Cmax in cells/mL beside celltox's cells/uL read 'unit differs', and its AUC was not compared either,
    although the two units are one measure (safety/data/pc_unit_conversions.csv). Both are converted by that table and
    compared, the note saying so and by what factor; a unit that does not convert (copies/ug gDNA) still differs."""
    pp = pd.DataFrame({
        "STUDYID": STUDY, "USUBJID": ["S-001", "S-001", "S-002", "S-002"], "PPSEQ": [1, 2, 1, 2],
        "PPTESTCD": ["CMAX", "AUCINT"] * 2, "PPCAT": ["CARCELLS"] * 4,
        "PPORRES": ["82000", "800000", "50", "60"], "PPSTRESN": ["82000", "800000", "50", "60"],
        "PPSTRESU": ["cells/mL", "day*cells/mL", "copies/ug gDNA", "day*copies/ug gDNA"],
        "PPSTINT": ["", "P0D"] * 2, "PPENINT": ["", "P28D"] * 2, "PPRFTDTC": ["2024-02-01"] * 2 + ["2024-02-10"] * 2,
    })
    got = compared(tmp_path, pp, "usubjid, pptestcd, celltox_value, celltox_unit, difference, difference_pct, status, "
                   "note", pc=PC_CELLS_UL)
    # celltox: Cmax 80 cells/uL; AUC 0-28 = 7 * 80 / 2 + 7 * 100 / 2 + 14 * 23 / 2 = 791 day*cells/uL
    assert got == [
        ("S-001", "CMAX", 80.0, "cells/uL", pytest.approx(2.0), 2.5, "agree",
         "converted from cells/mL to cells/uL (x0.001)"),
        ("S-001", "AUCINT", 791.0, "day*cells/uL", pytest.approx(9.0), 1.1, "agree",
         "converted from day*cells/mL to day*cells/uL (x0.001)"),
        ("S-002", "CMAX", 50.0, "cells/uL", None, None, "unit differs", None),
        ("S-002", "AUCINT", 210.0, "day*cells/uL", None, None, "unit differs", None)]


def test_each_sponsor_value_is_converted_from_its_own_unit(tmp_path):
    """A sponsor's AUC in day*cells/mL with no Cmax beside it was compared unconverted with celltox's day*cells/uL
    (a thousandfold 'differs'), and of two Cmax rows in two units one unit's factor served both. Each value is now
    converted from its own unit (an AUC's with its day taken off, written before or after the concentration); an AUC
    unit with no day in it is not day times a concentration, and is not compared."""
    pp = pd.DataFrame({
        "STUDYID": STUDY, "USUBJID": ["S-001", "S-001", "S-001", "S-002", "S-002"], "PPSEQ": [1, 2, 3, 1, 2],
        "PPTESTCD": ["AUCINT", "CMAX", "CMAX", "AUCINT", "AUCINT"], "PPCAT": ["CARCELLS"] * 5,
        "PPORRES": ["800000", "82000", "80", "210", "210"], "PPSTRESN": ["800000", "82000", "80", "210", "210"],
        "PPSTRESU": ["day*cells/mL", "cells/mL", "cells/uL", "cells/uL.d", "cells/uL"],
        "PPSTINT": ["P0D", "", "", "P0D", "P0D"], "PPENINT": ["P28D", "", "", "P28D", "P28D"],
        "PPRFTDTC": ["2024-02-01"] * 3 + ["2024-02-10"] * 2,
    })
    got = compared(tmp_path, pp, "usubjid, ppseq, celltox_value, difference, status, note", pc=PC_CELLS_UL)
    # celltox: S-001 Cmax 80 cells/uL, AUC 0-28 791 day*cells/uL; S-002 AUC 7 * 60 / 2 = 210 day*cells/uL
    assert got == [
        ("S-001", 1, 791.0, pytest.approx(9.0), "agree", "converted from day*cells/mL to day*cells/uL (x0.001)"),
        ("S-001", 2, 80.0, pytest.approx(2.0), "agree", "converted from cells/mL to cells/uL (x0.001)"),
        ("S-001", 3, 80.0, 0.0, "agree", None),
        ("S-002", 1, 210.0, 0.0, "agree", None),
        ("S-002", 2, 210.0, None, "unit differs", None)]
