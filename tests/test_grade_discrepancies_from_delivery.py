"""Reported against derived CRS grades (`grade_discrepancies`) of a study loaded through the real ingest, and the
Adverse events page's reconciliation that counts them."""
from __future__ import annotations

import itertools

import duckdb
import pandas as pd

from safety.access.reader import Scope, StudyReader
from safety.export.tables import build_table
from safety.ingest import ingest_study
from test_app_pages import _open, serve
from test_dlt_from_delivery import CUT, ae, day, rows
from test_ingest_fixtures import AE, DOMAINS, STUDY, make_study
from test_reported_ae_ungraded import CRS_TERM, crs_row, icans_row


def _hypoxia_study(tmp_path, crs_ae_grade: int):
    """S-001's bedside CRS reads grade 2 (fever on day 1, fever and hypotension without a vasopressor on day 2); its
    CRS AE is reported at ``crs_ae_grade``, beside a hypoxia of grade 4 begun on day 2, a hypotension graded 2, a
    fever graded 3, an acute kidney injury and a hypoxia on day 20. Loaded at CUT: the database file."""
    crs = [crs_row("S-001", 1, 38.6), crs_row("S-001", 2, 39.1, hypotension=True), crs_row("S-001", 3, 37.0),
           crs_row("S-001", 4, 37.0)]
    seq = itertools.count(11)
    reported = [(CRS_TERM, crs_ae_grade, 1, 3), ("Hypoxia", 4, 2, 3), ("Hypotension", 2, 2, 3), ("Pyrexia", 3, 1, 2),
                ("Acute kidney injury", 3, 2, 5), ("Hypoxia", 3, 20, 21)]
    aes = [ae("S-001", next(seq), term, grade, day("S-001", start), day("S-001", end))
           for term, grade, start, end in reported]
    base_ae = AE[AE["AEDECOD"] != "CYTOKINE RELEASE SYNDROME"]   # the fixture's CRS AE has a partial date
    domains = {**DOMAINS, "ae": pd.concat([base_ae, pd.DataFrame(aes)], ignore_index=True),
               "crs_assessments": pd.DataFrame(crs),
               "icans_assessments": pd.DataFrame([icans_row("S-001", n, 10) for n in range(1, 5)])}
    db = tmp_path / "s.duckdb"
    ingest_study(make_study(tmp_path / "study", "csv", domains=domains), db, cutoff=CUT)
    return db


def test_a_hypoxia_graded_above_the_derived_crs_beside_it_is_a_discrepancy_the_ae_page_counts(tmp_path, monkeypatch):
    """ASTCT 2019 grades hypotension and hypoxia as CRS. S-001's bedside CRS reads grade 2 (fever on day 1, fever
    and hypotension without a vasopressor on day 2), as its CRS AE does; a hypoxia AE of grade 4 (intubation) begun
    on day 2 says the CRS was worse than the assessments show, and the DLT evidence names it. It is now a
    discrepancy of the episode, with the site's hypoxia grade beside the derived CRS grade, and the Adverse events
    page counts it. A hypotension graded 2 (not higher), a fever graded 3 (ASTCT grades fever as grade 1 whatever
    its height), an acute kidney injury (an organ toxicity keeps its CTCAE grade) and a hypoxia on day 20 (after the
    episode) are none."""
    db = _hypoxia_study(tmp_path, crs_ae_grade=2)
    con = duckdb.connect(str(db), read_only=True)
    got = rows(con, "SELECT ae_event_key, syndrome, episode_key, aeseq, onset_day, reported_grade, derived_grade, "
                    "discrepancy, reported_grading_system, evidence FROM grade_discrepancies")
    assert list(got) == ["S-001/AE/12"]
    hypoxia = got["S-001/AE/12"]
    assert [hypoxia[k] for k in ("syndrome", "episode_key", "aeseq", "onset_day", "reported_grade", "derived_grade",
                                 "discrepancy", "reported_grading_system")] == \
        ["CRS", "S-001/CRS/1", 12, 1, 4, 2, "hypotension or hypoxia reported higher than derived CRS", "CTCAE v5.0"]
    assert hypoxia["evidence"].startswith("HYPOXIA grade 4 (CTCAE v5.0) from day 2, during the episode: ASTCT 2019 "
                                          "grades hypotension and hypoxia as CRS; derived grade 2 on day 2: ")
    con.close()
    # the Adverse events page counts the sites' grades: it says where they differ from the derived CRS
    for _ in serve(db, monkeypatch):
        at = _open("adverse_events")
        warnings = [w.value for w in at.warning if "count the grade the site reported" in w.value]
        assert len(warnings) == 1 and "For these subjects, 1 CRS event differs" in warnings[0], warnings


def test_one_crs_episode_with_two_kinds_of_discrepancy_is_one_event_on_the_pages_and_in_the_packet(tmp_path,
                                                                                                  monkeypatch):
    """The same CRS episode (derived grade 2) has its CRS AE reported at grade 1, lower, and a hypoxia of grade 4
    begun in it, higher: two rows of grade_discrepancies, one event. The Adverse events page said "2 CRS events
    differ" (it counted rows); it, the CRS & ICANS page and the packet's AE tables now say "1 CRS event differs",
    and the CRS & ICANS page lists the two discrepancies."""
    db = _hypoxia_study(tmp_path, crs_ae_grade=1)
    con = duckdb.connect(str(db), read_only=True)
    try:
        kinds = con.execute("SELECT episode_key, discrepancy FROM grade_discrepancies ORDER BY discrepancy").fetchall()
        reader = StudyReader(con, Scope(STUDY, pd.Timestamp(CUT).date()))
        packet_notes = build_table(reader, "ae_overview").attrs["notes"]
    finally:
        con.close()
    assert kinds == [("S-001/CRS/1", "hypotension or hypoxia reported higher than derived CRS"),
                     ("S-001/CRS/1", "reported lower than derived")]
    one = "1 CRS event differs from the ASTCT grade derived from the bedside assessments (or exists on one side only)"
    assert any(one in n for n in packet_notes), packet_notes
    for _ in serve(db, monkeypatch):
        warnings = [w.value for w in _open("adverse_events").warning if "count the grade the site reported" in w.value]
        assert len(warnings) == 1 and f"For these subjects, {one}" in warnings[0], warnings
        crs_page = [m.value for m in _open("crs_icans").markdown]
        assert f"{one}; 2 discrepancies below." in crs_page, crs_page
