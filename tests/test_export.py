"""Committee packet: listing/table content against the database, file formats, determinism, CLI."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from test_export_fixtures import CUT1, CUT2, STUDY, _ae, _ins, build_db, ensure_derived_tables

from safety.export import csv_writer, rtf_writer, xlsx_writer
from safety.export.common import make_reader, packet_meta
from safety.export.listings import LISTINGS, build_listing
from safety.export.packet import write_outputs
from safety.derive.outcomes.deaths import derive_deaths
from safety.export.tables import DEATHS_ROW, TABLES, build_table
from safety.review import meeting
from safety.review.store import ReviewStore

ROOT = Path(__file__).resolve().parents[1]
FIXED = dt.datetime(2025, 4, 1, 9, 30, tzinfo=dt.timezone.utc)


@pytest.fixture
def db(tmp_path):
    return build_db(tmp_path / "study.duckdb")


@pytest.fixture
def con(db):
    c = duckdb.connect(str(db), read_only=True)
    yield c
    c.close()


@pytest.fixture
def reader(con):
    return make_reader(con, STUDY, CUT2)


@pytest.fixture
def store(tmp_path):
    s = ReviewStore(tmp_path / "study.review.sqlite")
    s.add_adjudication(studyid=STUDY, event_key="CT-001-S03/ICANS/1", usubjid="CT-001-S03", rule_id="R5",
                       decision="confirmed", rationale="grade 3 ICANS for 4 days", reviewer="dr.a",
                       data_cut=str(CUT2), event_fingerprint=None)
    s.add_adjudication(studyid=STUDY, event_key="CT-001-S01/LB/NEUT-D28", usubjid="CT-001-S01", rule_id="R7",
                       decision="rejected", rationale="marrow disease", reviewer="dr.a",
                       data_cut=str(CUT2), event_fingerprint=None)
    return s


def _count(con, sql, cut=CUT2):
    return con.execute(sql, {"s": STUDY, "c": cut}).fetchone()[0]


# -- listings: content against the database -------------------------------------------------

def test_listing_row_counts_match_the_database(con, reader):
    expected = {
        "ae": "SELECT count(*) FROM adverse_events WHERE studyid=$s AND data_cut=$c",
        "sae": "SELECT count(*) FROM adverse_events WHERE studyid=$s AND data_cut=$c AND aeser='Y'",
        "deaths": "SELECT count(*) FROM deaths WHERE studyid=$s AND data_cut=$c",
        "dlt": "SELECT count(*) FROM dlt_candidates WHERE studyid=$s AND data_cut=$c",
        "crs_icans_episodes": "SELECT count(*) FROM toxicity_episodes WHERE studyid=$s AND data_cut=$c",
        "lab_grade3": "SELECT count(*) FROM lab_toxicity WHERE studyid=$s AND data_cut=$c AND grade >= 3",
        "eligibility_deviations": "SELECT count(*) FROM eligibility_deviations WHERE studyid=$s AND data_cut=$c",
    }
    for name, sql in expected.items():
        n = _count(con, sql)
        assert n > 0, name
        assert len(build_listing(reader, name)) == n, name


def test_ae_listing_known_subject_row(reader):
    df = build_listing(reader, "ae")
    assert list(df["usubjid"]) == sorted(df["usubjid"])  # sorted by subject, then onset
    row = df[df["event_key"] == "CT-001-S01/AE/1"].iloc[0]
    assert (row["site"], row["cohort"], row["dose_level"], row["sex"]) == ("101", "DL1", "1e6 cells/kg", "F")
    assert row["age"] == 54 and row["onset_day"] == 1 and row["end_day"] == 5 and row["duration_days"] == 5
    assert row["grading_system"] == "ASTCT 2019" and row["grade"] == 2
    assert row["in_dlt_window"] and row["tocilizumab_during_event"] and not row["corticosteroid_during_event"]
    assert row["onset_date"] == dt.date(2024, 12, 2)
    s01 = df[df["usubjid"] == "CT-001-S01"]
    assert list(s01["onset_day"]) == [1, 3, 60]
    late = df[df["event_key"] == "CT-001-S01/AE/3"].iloc[0]
    assert not late["in_dlt_window"]
    sae = df[df["event_key"] == "CT-001-S03/AE/1"].iloc[0]
    assert sae["serious_criteria"] == "hospitalisation" and not sae["related"]


def test_new_since_previous_cut_flags(con, reader):
    ae = build_listing(reader, "ae").set_index("event_key")["new_since_previous_cut"]
    assert ae.to_dict() == {"CT-001-S01/AE/1": False, "CT-001-S01/AE/2": False, "CT-001-S01/AE/3": True,
                            "CT-001-S02/AE/1": True, "CT-001-S03/AE/1": False, "CT-001-S03/AE/2": True}
    assert build_listing(reader, "deaths")["new_since_previous_cut"].tolist() == [True]
    ep = build_listing(reader, "crs_icans_episodes").set_index("event_key")["new_since_previous_cut"]
    assert ep.to_dict() == {"CT-001-S01/CRS/1": False, "CT-001-S03/ICANS/1": True}
    # at the first cut everything is new
    first = build_listing(make_reader(con, STUDY, CUT1), "ae")
    assert len(first) == 3 and first["new_since_previous_cut"].all()


def test_dlt_listing_carries_adjudication(reader, store):
    df = build_listing(reader, "dlt", store).set_index("event_key")
    assert df.loc["CT-001-S03/ICANS/1", "adjudication"] == "confirmed"
    assert df.loc["CT-001-S03/ICANS/1", "adjudicated_dlt"] == "Yes"
    assert df.loc["CT-001-S01/LB/NEUT-D28", "adjudicated_dlt"] == "No"
    assert df.loc["CT-001-S03/ICANS/1", "adjudicated_by"] == "dr.a"
    ep = build_listing(reader, "crs_icans_episodes", store).set_index("event_key")
    assert ep.loc["CT-001-S03/ICANS/1", "adjudicated_dlt"] == "Yes"


def test_committee_added_dlt_appears(reader, store):
    store.add_adjudication(studyid=STUDY, event_key="CT-001-S01/AE/2", usubjid="CT-001-S01", rule_id=None,
                           decision="added", rationale="prolonged neutropenia judged DLT", reviewer="dr.b",
                           data_cut=str(CUT2), event_fingerprint=None)
    df = build_listing(reader, "dlt", store)
    added = df[df["event_key"] == "CT-001-S01/AE/2"]
    assert len(added) == 1 and added.iloc[0]["source"] == "committee" and added.iloc[0]["cohort"] == "DL1"
    assert build_listing(reader, "ae", store).set_index("event_key").loc["CT-001-S01/AE/2", "adjudicated_dlt"] == "Yes"


def test_aesi_categories(reader):
    df = build_listing(reader, "aesi")
    cats = df.groupby("aesi_category")["event_key"].apply(sorted).to_dict()
    assert cats["Infection"] == ["CT-001-S02/AE/1", "CT-001-S03/AE/1"]
    assert cats["Hypogammaglobulinaemia"] == ["CT-001-S01/AE/3"]
    assert cats["Prolonged cytopenia (R7)"] == ["CT-001-S01/LB/NEUT-D28"]
    assert "new_since_previous_cut" in df.columns
    r7 = df.set_index("event_key").loc["CT-001-S01/LB/NEUT-D28"]
    assert (r7["term"], r7["onset_day"]) == ("Prolonged cytopenia (NEUT grade 4 at day 28)", 28)


def test_site_scope_limits_listings(con):
    from safety.access.reader import Scope, StudyReader
    r = StudyReader(con, Scope(STUDY, CUT2, ("102",), CUT1))
    assert set(build_listing(r, "ae")["usubjid"]) == {"CT-001-S03"}
    assert build_listing(r, "deaths").empty


def test_missing_derived_tables_give_empty_listing_with_note(tmp_path):
    path = build_db(tmp_path / "bare.duckdb", derived=False)
    with duckdb.connect(str(path), read_only=True) as c:
        r = make_reader(c, STUDY, CUT2)
        for name in ("dlt", "crs_icans_episodes", "lab_grade3", "eligibility_deviations", "icaht", "car_hematotox"):
            df = build_listing(r, name)
            assert df.empty and "not" in df.attrs["notes"][0].lower(), name
        for name in ("icaht", "car_hematotox"):
            assert build_listing(r, name).attrs["notes"][0] == \
                f"Not available: the derived table {name} is not in this database file."
        assert len(build_listing(r, "ae")) == 6
        for name in TABLES:
            build_table(r, name)  # never raises
        assert len(build_listing(r, "aesi")) == 3  # AE-based categories still listed


# -- tables -------------------------------------------------------------------------------------

def test_ae_overview_counts(reader):
    df = build_table(reader, "ae_overview").set_index("Category")
    assert list(df.columns) == ["Cohort DL1 (N=2) n (%)", "Cohort DL2 (N=1) n (%)", "Overall (N=3) n (%)"]
    assert df.loc["Any adverse event", "Overall (N=3) n (%)"] == "3 (100.0)"
    assert df.loc["Any serious adverse event", "Overall (N=3) n (%)"] == "2 (66.7)"
    assert df.loc["  Serious: results in death", "Cohort DL1 (N=2) n (%)"] == "1 (50.0)"
    assert df.loc["  Serious: hospitalisation (initial or prolonged)", "Cohort DL2 (N=1) n (%)"] == "1 (100.0)"
    assert df.loc["Adverse event leading to death", "Cohort DL2 (N=1) n (%)"] == "0"
    assert df.loc["Any related adverse event", "Overall (N=3) n (%)"] == "2 (66.7)"



def _derive_deaths(con):
    for cut in (CUT1, CUT2):
        cfg = json.loads(con.execute("SELECT config_json FROM studies WHERE data_cut = $c", {"c": cut}).fetchone()[0])
        derive_deaths(con, STUDY, cut, cfg)


def test_fixture_deaths_rows_are_what_the_derivation_writes(db):
    with duckdb.connect(str(db)) as w:
        by_hand = w.execute("SELECT * FROM deaths ORDER BY data_cut, usubjid").fetchall()
        assert by_hand  # S02's death at the second cut
        _derive_deaths(w)
        assert w.execute("SELECT * FROM deaths ORDER BY data_cut, usubjid").fetchall() == by_hand


def test_death_recorded_only_as_a_grade_5_ae_is_in_the_packet_as_in_the_app(db, tmp_path):
    # S03 (cohort DL2) dies of a grade 5 haemorrhage on day 41 at the second cut: no DM death date, no DS record
    with duckdb.connect(str(db)) as w:
        _ins(w, "adverse_events", [_ae(CUT2, "CT-001-S03", 3, "Brain bleed", "Intracranial haemorrhage",
                                       "Nervous system disorders", 5, 40, 41, ser="Y", aesdth="Y", aeout="FATAL",
                                       rel=False)])
        # the subject's death as the load writes it for a death recorded only as a fatal AE
        w.execute("""UPDATE subjects SET death_date = DATE '2025-01-11', death_day = 41, death_source = 'AE',
                     status = 'died', last_known_alive_day = 41
                     WHERE studyid = $s AND data_cut = $c AND usubjid = 'CT-001-S03'""", {"s": STUDY, "c": CUT2})
        _derive_deaths(w)  # the real derivation writes the deaths table the app reads
    with duckdb.connect(str(db), read_only=True) as con:
        r = make_reader(con, STUDY, CUT2)
        # the disposition (the overview's tiles, the packet's table) counts S03 among the dead
        died = build_table(r, "disposition").set_index("Status").loc["Died"]
        assert died.tolist() == ["1 (50.0)", "1 (50.0)", "2 (50.0)"]
        listing = build_listing(r, "deaths").set_index("usubjid")
        assert list(listing.index) == ["CT-001-S02", "CT-001-S03"]
        s03 = listing.loc["CT-001-S03"]
        assert (s03["death_date"], s03["death_day"], s03["sources"], s03["cause_category"], s03["event_key"]) == \
            (dt.date(2025, 1, 11), 41, "AE", "haemorrhage", "CT-001-S03/DEATH")
        assert pd.isna(s03["death_cause"]) and s03["fatal_ae_terms"] == "Intracranial haemorrhage / Brain bleed"
        assert s03["new_since_previous_cut"] and s03["cohort"] == "DL2" and s03["site"] == "102"
        s02 = listing.loc["CT-001-S02"]
        assert (s02["death_day"], s02["death_cause"], s02["cause_category"], s02["sources"]) == \
            (81, "Sepsis", "infection", "DM, AE")

        overview = build_table(r, "ae_overview").set_index("Category")
        assert overview.loc[DEATHS_ROW].tolist() == ["1 (50.0)", "1 (100.0)", "2 (66.7)"]
        nrm = dict(build_table(r, "deaths_nrm")[["Row", "Statistic"]].values)
        assert nrm["Deaths, any cause"] == "2 (66.7)"

        # the app's overview: deaths since the previous cut, and its count of new deaths
        summary = meeting.meeting_summary(r, None, None)
        assert summary.deaths["usubjid"].tolist() == ["CT-001-S03", "CT-001-S02"]  # by day of death
        assert summary.counts["deaths"] == 2

        # the written packet says the same
        write_outputs(r, tmp_path / "out", formats=("csv",), only=["deaths", "ae_overview"], generated_at=FIXED)
        csv = csv_writer.read_export_csv(tmp_path / "out" / f"{STUDY}_{CUT2}_deaths.csv")
        assert csv["usubjid"].tolist() == ["CT-001-S02", "CT-001-S03"] and csv["sources"].tolist() == ["DM, AE", "AE"]
        table = csv_writer.read_export_csv(tmp_path / "out" / f"{STUDY}_{CUT2}_ae_overview.csv").set_index("Category")
        assert table.loc[DEATHS_ROW, "Overall (N=3) n (%)"] == "2 (66.7)"

        # and the packet's swimmer plot marks both deaths
        from safety.export.figures import fig_swimmer
        fig, note = fig_swimmer(r)
        marks = [t for t in fig.data if t.name == "Death"][0]
        assert list(zip(marks.y, marks.x)) == [("CT-001-S02 (DL1)", 81), ("CT-001-S03 (DL2)", 41)] and note == ""

        # the site-102 committee sees S03's death, not S02's
        from safety.access.reader import Scope, StudyReader
        site = StudyReader(con, Scope(STUDY, CUT2, ("102",), CUT1))
        assert build_listing(site, "deaths")["usubjid"].tolist() == ["CT-001-S03"]
        assert build_table(site, "ae_overview").set_index("Category").loc[DEATHS_ROW].tolist() == \
            ["1 (100.0)", "1 (100.0)"]


def test_ae_by_soc_pt_counts_worst_grade(reader):
    df = build_table(reader, "ae_by_soc_pt")
    row = df[df["Preferred term"] == "Sepsis"].iloc[0]
    assert row["Overall (N=3) grade >= 3 n (%)"] == "1 (33.3)" and row["Overall worst grade 5 n"] == 1
    soc = df[(df["System organ class"] == "Infections and infestations") & (df["Preferred term"] == "Any event in SOC")]
    assert soc.iloc[0]["Overall (N=3) any grade n (%)"] == "2 (66.7)"
    assert df.iloc[0]["System organ class"] == "Infections and infestations"  # most frequent SOC first
    sae = build_table(reader, "sae_by_soc_pt")
    assert set(sae["Preferred term"]) == {"Any event in SOC", "Pneumonia", "Sepsis"}


def test_crs_icans_and_dlt_tables(reader, store):
    crs = build_table(reader, "crs_icans_summary").set_index("Category")
    assert crs.loc["CRS: maximum grade 2", "Cohort DL1 (N=2) n (%)"] == "1 (50.0)"
    assert crs.loc["ICANS: grade >= 3", "Overall (N=3) n (%)"] == "1 (33.3)"
    assert crs.loc["CRS: tocilizumab", "Overall (N=3) n (%)"] == "1 (33.3)"
    assert crs.loc["ICANS: day of first onset, median (range)", "Overall (N=3) n (%)"] == "8 (8-8)"
    dlt = build_table(reader, "dlt_summary", store).set_index("Category")
    assert dlt.loc["Subjects with an adjudicated DLT", "Cohort DL2 (N=1) n (%)"] == "1 (100.0)"
    assert dlt.loc["Subjects with an adjudicated DLT", "Cohort DL1 (N=2) n (%)"] == "0"
    stop = build_table(reader, "stopping_rules", store)
    assert stop.iloc[0]["Decision"] == "continue" and stop.iloc[0]["Events"] == 1
    # the monitored event as the pages name it, with the study's DLT window, not the code 'dlt'
    assert stop.iloc[0]["Monitored event"] == "DLT (onset days 0-28)"


def test_lab_tables(reader):
    wg = build_table(reader, "lab_worst_grade")
    g4 = wg[(wg["CTCAE term"] == "Neutrophil count decreased (L)") & (wg["Worst grade"] == "Grade 4")]
    assert g4.iloc[0]["Overall (N=3) n (%)"] == "1 (33.3)"
    shift = build_table(reader, "lab_shift").set_index(["CTCAE term", "Baseline grade"])
    r = shift.loc[("Neutrophil count decreased (L)", "0")]
    assert (r["Worst grade 4 n"], r["Worst grade 2 n"], r["Total n"]) == (1, 1, 2)


def test_lab_tables_cite_the_stf_displays_they_are_shaped_after(reader):
    # STF T52-53 count the last on-treatment value >= Level 2 and F15 is a figure: neither is a CTCAE grade table
    from safety.export.tables import TABLES
    wg, shift = build_table(reader, "lab_worst_grade"), build_table(reader, "lab_shift")
    assert wg.attrs["reference"] == TABLES["lab_worst_grade"].reference == (
        "Shaped after FDA STF T52-53 (2025; worst post-baseline CTCAE grade, not last value >= Level 2)")
    assert shift.attrs["reference"] == TABLES["lab_shift"].reference == (
        "Shaped after FDA STF F15 (2025; a baseline vs max/min post-baseline figure there, CTCAE grades here)")


def test_unknown_names_raise(reader):
    with pytest.raises(KeyError):
        build_listing(reader, "nope")
    with pytest.raises(KeyError):
        build_table(reader, "nope")


# -- files ------------------------------------------------------------------------------------

def test_csv_round_trip_and_metadata(reader, tmp_path):
    meta = packet_meta(reader, FIXED)
    df = build_listing(reader, "ae")
    p = csv_writer.write_csv(df, meta, tmp_path / "ae.csv")
    text = p.read_text()
    assert "# Study: CT-001" in text and "# Data cut: 2025-03-31 (previous cut: 2025-01-31)" in text
    assert "# Generated (UTC): 2025-04-01 09:30:00 UTC" in text and "celltox version: " in text
    assert "# Source file SHA-256: dm.xpt " in text
    back = csv_writer.read_export_csv(p)
    assert len(back) == 6 and back.loc[0, "event_key"] == "CT-001-S01/AE/1" and back.loc[0, "end_day"] == "5"


def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_written_as_text(reader, tmp_path):
    """Verbatim terms reach the listings as the site typed them: a cell starting like a formula gets a leading
    apostrophe in the file (a spreadsheet shows it as text), numbers and ordinary text are written as they are,
    and reading the file back gives every cell as delivered."""
    import csv as csv_module

    df = build_listing(reader, "ae").head(1)
    terms = ['=HYPERLINK("http://x.example","click")', "+1+2", "@SUM(A1)", "-2+3", "\tTab", "'quoted", "-5",
             "-0.5", "-", "1e-3", "Pyrexia - fever", "Headache"]
    df = df.loc[df.index.repeat(len(terms))].reset_index(drop=True)
    df["aeterm"] = terms
    df["onset_day"] = [-5] * len(terms)
    p = csv_writer.write_csv(df, packet_meta(reader, FIXED), tmp_path / "ae.csv")
    lines = [line for line in p.read_text().splitlines() if not line.startswith("#")]
    rows = list(csv_module.DictReader(lines))
    assert [r["aeterm"] for r in rows] == ['\'=HYPERLINK("http://x.example","click")', "'+1+2", "'@SUM(A1)", "'-2+3",
                                           "'\tTab", "''quoted", "-5", "-0.5", "-", "1e-3", "Pyrexia - fever", "Headache"]
    assert {r["onset_day"] for r in rows} == {"-5"}
    back = csv_writer.read_export_csv(p)
    assert back["aeterm"].tolist() == terms and set(back["onset_day"]) == {"-5"}


def test_xlsx_opens_with_sheets_frozen_header_and_grade_colour(reader, tmp_path):
    import openpyxl
    paths = write_outputs(reader, tmp_path / "out", formats=("xlsx",), generated_at=FIXED)
    wb = openpyxl.load_workbook(paths[0])
    assert wb.sheetnames[0] == "Cover" and {"ae", "ae_overview", "dlt", "aesi"} <= set(wb.sheetnames)
    ws = wb["ae"]
    assert ws.freeze_panes == "A7"
    heads = [c.value for c in ws[6]]
    assert heads[:4] == ["Site", "Cohort", "Dose level", "Subject"]
    gcol = heads.index("Grade") + 1
    cell = ws.cell(row=8, column=gcol)  # CT-001-S01/AE/2, grade 4
    assert cell.value == 4 and cell.fill.fgColor.rgb.endswith("D55E00")
    assert ws.column_dimensions["H"].width > 10
    # dates are Excel dates (filters and date arithmetic work), shown as the CSV writes them
    onset = ws.cell(row=8, column=heads.index("Onset date") + 1)
    assert onset.is_date and onset.value.date() == build_listing(reader, "ae")["onset_date"].iloc[1]
    assert onset.number_format == "yyyy-mm-dd"
    cover = "\n".join(str(c.value) for c in wb["Cover"]["A"] if c.value)
    assert "Data cut: 2025-03-31" in cover and "Generated (UTC): 2025-04-01 09:30:00 UTC" in cover


def test_rtf_is_structurally_valid(reader, tmp_path):
    meta = packet_meta(reader, FIXED)
    text = rtf_writer.rtf_text(build_listing(reader, "ae"), meta)
    assert text.startswith("{\\rtf1")
    depth = 0
    for i, ch in enumerate(text):
        if ch in "{}" and (i == 0 or text[i - 1] != "\\" or text[i - 2:i] == "\\\\"):
            depth += 1 if ch == "{" else -1
            assert depth >= 0
    assert depth == 0
    assert "\\landscape" in text and "\\paperw15840\\paperh12240" in text and "\\trhdr" in text
    assert "CT-001-S01/AE/1\\cell" in text and "Septic shock\\cell" in text
    assert "Confidential" in text and "NUMPAGES" in text
    assert text.count("\\row") == 7  # header + 6 AEs
    assert rtf_writer.esc("a{b}\\ é") == "a\\{b\\}\\\\ \\u233?"


def test_pdf_packet_pages_and_text(reader, tmp_path, store):
    pypdf = pytest.importorskip("pypdf")
    paths = write_outputs(reader, tmp_path / "out", formats=("pdf",), store=store, user="dm", generated_at=FIXED)
    pdf = pypdf.PdfReader(paths[0])
    assert len(pdf.pages) >= 2 + 3 + len(TABLES) + len(LISTINGS)
    text = "\n".join(p.extract_text() for p in pdf.pages)
    assert "Safety Review Committee packet" in text and "Contents" in text
    assert "Listing of all adverse events by subject" in text and "Septic shock" in text
    last = pdf.pages[-1].extract_text()
    assert "Confidential" in last and f"Page {len(pdf.pages)} of {len(pdf.pages)}" in last
    assert len(pdf.pages[2].images) + len(pdf.pages[3].images) + len(pdf.pages[4].images) >= 1 or \
        "figure unavailable" in text


def test_same_cut_gives_same_bytes_apart_from_generation_time(reader, tmp_path):
    a = write_outputs(reader, tmp_path / "a", generated_at=FIXED)
    b = write_outputs(reader, tmp_path / "b", generated_at=FIXED)
    assert [p.name for p in a] == [p.name for p in b]
    for pa, pb in zip(a, b):
        assert pa.read_bytes() == pb.read_bytes(), pa.name
    later = write_outputs(reader, tmp_path / "c", formats=("csv", "rtf"),
                          generated_at=FIXED + dt.timedelta(hours=5))
    for pc in later:
        old = (tmp_path / "a" / pc.name).read_text().splitlines()
        new = pc.read_text().splitlines()
        diff = [(x, y) for x, y in zip(old, new) if x != y]
        assert len(old) == len(new) and len(diff) <= 2 and all("Generated (UTC)" in x for x, _ in diff), pc.name


def test_write_outputs_audits_and_leaves_nothing_on_failure(reader, tmp_path, store, monkeypatch):
    out = tmp_path / "out"
    paths = write_outputs(reader, out, formats=("csv",), only=["ae", "deaths"], store=store, user="dm")
    assert sorted(p.name for p in paths) == ["CT-001_2025-03-31_ae.csv", "CT-001_2025-03-31_deaths.csv"]
    entry = [e for e in store.audit_entries(STUDY) if e["action"] == "export"][-1]
    assert entry["username"] == "dm" and "CT-001_2025-03-31_ae.csv" in entry["detail"]
    from safety.export import packet
    monkeypatch.setattr(packet.rtf_writer, "write_rtf", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("disk")))
    with pytest.raises(RuntimeError):
        write_outputs(reader, tmp_path / "fail", formats=("csv", "rtf"))
    assert list((tmp_path / "fail").iterdir()) == []


# -- CLI ------------------------------------------------------------------------------------

def _cli(*args, password: str | None = None, **env_extra):
    """The command; ``password``: the --user account's password on standard input (with --password-stdin)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), **env_extra)
    extra = ("--password-stdin",) if password is not None else ()
    return subprocess.run([sys.executable, "-m", "safety", "export", *args, *extra], cwd=ROOT, env=env,
                          input=(password + "\n") if password is not None else "", capture_output=True, text=True,
                          timeout=300)


def test_cli_refuses_in_one_line_what_the_machine_or_the_file_refuses(db, tmp_path):
    """No traceback: an --out that is a file, a DuckDB file no load wrote; and --only naming an output twice
    writes it once (it failed half-way, leaving partial files)."""
    taken = tmp_path / "run.sh"
    taken.write_text("x")
    r = _cli("--db", str(db), "--study", STUDY, "--out", str(taken), "--format", "csv", "--only", "ae")
    assert (r.returncode, r.stderr.strip()) == (2, f"python -m safety export: error: {taken}: a file, not a folder")
    r = _cli("--db", str(db), "--study", STUDY, "--out", str(taken / "packet"), "--format", "csv", "--only", "ae")
    assert (r.returncode, r.stderr.strip()) == (
        2, f"python -m safety export: error: {taken / 'packet'}: {taken} is a file, not a folder")
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).execute("CREATE TABLE x (a INTEGER)").close()
    r = _cli("--db", str(other), "--study", STUDY, "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and r.stderr.strip().endswith(
        f"{other}: not a celltox database (it has no studies table); give the file the loads wrote")
    csv_file = tmp_path / "dm.csv"  # no DuckDB file at all: it answered with DuckDB's 'Catalog Error: ...'
    csv_file.write_text("USUBJID\nS-001\n")
    r = _cli("--db", str(csv_file), "--study", STUDY, "--out", str(tmp_path / "o4"))
    assert (r.returncode, r.stderr.strip()) == (2, f"python -m safety export: error: {csv_file}: not a DuckDB "
                                                   "database, not a celltox database; give the file the loads wrote")
    r = _cli("--db", str(db), "--study", STUDY, "--out", str(tmp_path / "o3"), "--pdf-max-rows", "-3")
    assert r.returncode == 2 and r.stderr.strip().endswith(
        "argument --pdf-max-rows: invalid row count (1 or more) value: '-3'")
    r = _cli("--db", str(db), "--study", STUDY, "--out", str(tmp_path / "o2"), "--only", "ae,sae,ae",
             "--format", "csv,rtf,csv")
    assert r.returncode == 0, r.stderr
    assert sorted(p.suffix for p in (tmp_path / "o2").iterdir()) == [".csv", ".csv", ".rtf", ".rtf"]


def test_cli_refuses_an_out_folder_or_review_store_it_cannot_write_before_any_work(db, tmp_path, unwritable_folder):
    """It exited 1 (as for a full disk) naming its temporary folder inside --out, and a review store it could not
    write failed after the files were written, so no audit entry recorded them. Exit 2, one line naming the path
    given, nothing written."""
    for out in (unwritable_folder, unwritable_folder / "packet"):
        r = _cli("--db", str(db), "--study", STUDY, "--out", str(out), "--format", "csv", "--only", "ae")
        why = "the folder is not writable" if out == unwritable_folder else f"the folder {unwritable_folder} is not writable"
        assert (r.returncode, r.stderr.strip()) == (2, f"python -m safety export: error: {out}: {why}")
    review = unwritable_folder / "study.review.sqlite"
    r = _cli("--db", str(db), "--study", STUDY, "--out", str(tmp_path / "o"), "--format", "csv", "--only", "ae",
             "--review-db", str(review))
    assert (r.returncode, r.stderr.strip()) == (
        2, f"python -m safety export: error: {review}: the folder {unwritable_folder} is not writable")
    assert not (tmp_path / "o").exists() and list(unwritable_folder.iterdir()) == []


def test_cli_refuses_a_folder_in_the_way_of_a_file_before_replacing_any(db, tmp_path):
    """A folder with the name of one of the packet's files: refused in one line naming it, exit 2, before any other
    file of the packet is replaced (the AE listing was replaced and the SAE one failed, exit 1, naming the export's
    temporary copy, with no audit entry for the file replaced)."""
    out = tmp_path / "o"
    r = _cli("--db", str(db), "--study", STUDY, "--out", str(out), "--format", "csv", "--only", "ae,sae")
    assert r.returncode == 0, r.stderr
    ae, sae = sorted(out.glob("*_ae.csv")) + sorted(out.glob("*_sae.csv"))
    before = ae.read_bytes()
    sae.unlink()
    sae.mkdir()
    r = _cli("--db", str(db), "--study", STUDY, "--out", str(out), "--format", "csv", "--only", "ae,sae")
    assert (r.returncode, r.stderr.strip()) == (
        2, f"python -m safety export: error: {sae}: a folder has the name of a file the export writes; remove or "
           "rename it")
    assert ae.read_bytes() == before and sae.is_dir() and sorted(p.name for p in out.iterdir()) == [ae.name, sae.name]


def test_cli_errors_and_success(db, tmp_path):
    r = _cli("--db", str(db), "--study", "NOPE", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "unknown study 'NOPE'" in r.stderr and "CT-001" in r.stderr
    r = _cli("--db", str(db), "--study", STUDY, "--cutoff", "2025-02-01", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "2025-01-31, 2025-03-31" in r.stderr
    r = _cli("--db", str(db), "--study", STUDY, "--only", "ae,bogus", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "unknown output bogus" in r.stderr and "deaths" in r.stderr
    r = _cli("--db", str(db), "--study", STUDY, "--format", "csv,docx", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "unknown format docx" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = _cli("--help")
    assert r.returncode == 0 and "all-sites" in r.stdout
    r = _cli("--db", str(db), "--study", STUDY, "--cutoff", "2025-01-31", "--format", "csv", "--only", "ae",
             "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    out = tmp_path / "o" / "CT-001_2025-01-31_ae.csv"
    assert out.exists() and len(csv_writer.read_export_csv(out)) == 3


def test_icaht_aesi_term_and_day_name_the_worse_phase():
    from safety.export.listings import _icaht_day, _icaht_term
    con = duckdb.connect()
    con.execute("""CREATE TABLE t AS SELECT * FROM (VALUES ('ANC', 3, 1, 4, 40), ('PLT', 1, 3, 2, 60), ('ANC', 3, 3, 6, 45))
                   v(lineage, early_grade, late_grade, first_day_le_500, late_nadir_day)""")
    have = {"lineage", "early_grade", "late_grade", "first_day_le_500", "late_nadir_day"}
    rows = con.sql(f"SELECT {_icaht_term(have)}, {_icaht_day(have)} FROM t").fetchall()
    assert rows == [("Early ICAHT grade 3 (ANC)", 4), ("Late ICAHT grade 3 (platelets)", 60),
                    ("Early ICAHT grade 3 (ANC)", 6)]


def test_cli_pdf_export_leaves_stderr_empty_and_no_browser_folders(db, tmp_path, figure_browser):
    """Clean output: a successful PDF export prints only the written paths (no summary or Chromium clean-up
    error on stderr) and the figure renderer's temporary folders are gone when the command returns."""
    import shutil
    import tempfile
    # a short TMPDIR of its own (Chromium cannot start when its profile path is too long for its sockets)
    tmp = Path(tempfile.mkdtemp(prefix="ctxt"))
    try:
        r = _cli("--db", str(db), "--study", STUDY, "--format", "pdf", "--only", "ae", "--out", str(tmp_path / "o"),
                 TMPDIR=str(tmp))
        assert r.returncode == 0 and r.stderr == ""
        pdf = tmp_path / "o" / "CT-001_2025-03-31_committee_packet.pdf"
        assert r.stdout.splitlines() == [str(pdf)] and pdf.stat().st_size > 10_000
        assert sorted(p.name for p in tmp.iterdir()) == []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_cli_pdf_export_without_a_browser_says_so_at_once(db, tmp_path):
    """A machine without Chromium: the packet is written with the reason in each figure's place and one warning
    line, without waiting out the renderer's time limit (kaleido's own thread dies finding no browser, and
    every render used to wait for it)."""
    pypdf = pytest.importorskip("pypdf")
    from safety.export._render import NO_BROWSER
    r = _cli("--db", str(db), "--study", STUDY, "--format", "pdf", "--only", "ae", "--out", str(tmp_path / "o"),
             BROWSER_PATH=str(tmp_path / "no-such-browser"), CELLTOX_RENDER_TIMEOUT="60")
    pdf = tmp_path / "o" / "CT-001_2025-03-31_committee_packet.pdf"
    assert r.returncode == 0 and r.stdout.splitlines() == [str(pdf)]
    assert r.stderr == ("python -m safety export: warning: the PDF packet has 3 figure(s) not drawn: "
                        + NO_BROWSER.removeprefix("figure unavailable: ") + "\n")
    text = " ".join("\n".join(p.extract_text() for p in pypdf.PdfReader(pdf).pages).split())
    assert text.count("no Chromium or Chrome on this machine") == 3 and "did not answer" not in text


def test_pdf_packet_is_written_when_the_figure_browser_never_answers(reader, tmp_path, store, monkeypatch):
    pypdf = pytest.importorskip("pypdf")
    browser = tmp_path / "hanging-chromium"
    browser.write_text("#!/bin/sh\nsleep 600\n")
    browser.chmod(0o755)
    monkeypatch.setenv("BROWSER_PATH", str(browser))  # what kaleido's browser finder reads first
    monkeypatch.setenv("CELLTOX_RENDER_TIMEOUT", "5")
    paths = write_outputs(reader, tmp_path / "out", formats=("pdf",), store=store, user="dm", generated_at=FIXED)
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(paths[0]).pages)
    assert "did not answer within 5 s" in " ".join(text.split())
    assert "Listing of all adverse events by subject" in text  # the rest of the packet is there
    # the stuck browser was stopped with the renderer, not left behind
    left = [p for p in Path("/proc").glob("[0-9]*/cmdline") if str(browser).encode() in _read_or_empty(p)]
    assert left == []


_SLOW_RENDERER = """
import json, sys, time
request = json.load(sys.stdin)
for i, _ in enumerate(request["figures"]):
    if i == HANG_AT:
        time.sleep(600)  # a browser that stops answering
    time.sleep(3)  # a slow but working browser: each figure takes 3 s
    sys.stdout.write(json.dumps({"png": "UE5H", "note": ""}) + "\\n")
    sys.stdout.flush()
"""


@pytest.mark.parametrize("hang_at", [None, 1])
def test_renderer_waits_for_a_slow_browser_that_keeps_answering(tmp_path, monkeypatch, hang_at):
    """The time limit counts from the last figure answered: on a loaded machine a packet keeps its figures
    (the same bytes as on an idle one); a browser that stops answering is stopped, the figures drawn kept."""
    from safety.export import renderer as R
    fake = tmp_path / "slow_render.py"
    fake.write_text(_SLOW_RENDERER.replace("HANG_AT", repr(hang_at)))
    monkeypatch.setattr(R, "_RENDERER", fake)
    r = R.Renderer()
    try:
        out = r.render(["{}", "{}", "{}"], timeout=7.5)  # 9 s in all, 3 s between answers
    finally:
        r.close()
    if hang_at is None:  # all three figures arrive although the batch took longer than the limit
        assert out == [(b"PNG", "")] * 3
    else:
        assert out[0] == (b"PNG", "") and out[1:] == [(None, "figure unavailable: the renderer (kaleido with "
                                                            "Chromium) did not answer within 7.5 s")] * 2
    assert r.proc.poll() is not None and not Path(r.folder).exists()

_FAILING_RENDERER = """
import os, sys, time
sys.stdin.read()
sys.stderr.write(f"[{os.getpid()}:1:1203/{time.time():.6f}:ERROR:chrome.cc(7)] browser process {os.getpid()} "
                 f"could not open {sys.argv[1]}/SingletonLock\\n")
sys.exit(3)
"""


def test_a_failed_renderer_gives_the_same_words_in_every_packet(tmp_path, monkeypatch):
    """The reason printed for a missing figure carries no process id, log time or temporary folder: the same
    failure gives the same PDF bytes."""
    from safety.export import renderer as R
    fake = tmp_path / "failing_render.py"
    fake.write_text(_FAILING_RENDERER)
    monkeypatch.setattr(R, "_RENDERER", fake)
    notes = []
    for _ in range(2):
        r = R.Renderer()
        try:
            notes.append(r.render(["{}", "{}"], timeout=60))
        finally:
            r.close()
    assert notes[0] == notes[1] == [(None, "figure unavailable: the renderer failed (browser process could not "
                                           "open <renderer folder>/SingletonLock)")] * 2


def _read_or_empty(path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def test_every_page_shows_the_audit_head_at_export(reader, tmp_path, store):
    """The committee records the head printed on the packet and checks the log against it later."""
    from safety.review.store import verify_audit_chain
    store.append_audit("carol", "view_subject", STUDY, {"usubjid": "x"})
    head = store.head()
    line = f"Audit log head: entry {head['seq']} {head['entry_hash']}"
    paths = write_outputs(reader, tmp_path / "out", formats=("csv", "rtf", "xlsx", "pdf"), only=["ae", "deaths"],
                          store=store, user="dm", generated_at=FIXED, figures=False)
    by_ext = {p.suffix: p for p in paths}
    assert "# " + line in by_ext[".csv"].read_text().splitlines()[:12]
    assert line in by_ext[".rtf"].read_text() and "\\footer" in by_ext[".rtf"].read_text()
    import openpyxl
    wb = openpyxl.load_workbook(by_ext[".xlsx"])
    assert all(line in (ws.oddFooter.center.text or "") for ws in wb.worksheets[1:])
    pypdf = pytest.importorskip("pypdf")
    pages = pypdf.PdfReader(by_ext[".pdf"]).pages
    assert all(line in p.extract_text() for p in pages)
    assert verify_audit_chain(store.path, expect_heads=[head["entry_hash"]])[0]
    entry = store.audit_entries(action="export")[-1]
    assert json.loads(entry["detail"])["audit_head_shown"] == head["entry_hash"]


def test_cli_export_user_refuses_an_account_file_others_may_write(db, tmp_path):
    """Whoever may write the account file could give an account a password of theirs: `export --user` refuses it
    in one line naming the file and the fix, and writes nothing."""
    from access_fixtures import PASSWORD, make_users
    users = tmp_path / "users.yaml"
    make_users(users)
    users.chmod(0o660)
    base = ("--db", str(db), "--study", STUDY, "--format", "csv", "--only", "ae", "--review-db",
            str(tmp_path / "review.sqlite"), "--users", str(users), "--user", "dana")
    r = _cli(*base, "--out", str(tmp_path / "dm"), password=PASSWORD)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert r.stderr.strip().endswith(f"--user dana: {users} can be written by its group: anyone who can write it "
                                     f"can give themselves any role. Run: chmod 600 {users}")
    assert not (tmp_path / "dm").exists() or not list((tmp_path / "dm").iterdir())
    users.chmod(0o600)
    assert _cli(*base, "--out", str(tmp_path / "dm"), password=PASSWORD).returncode == 0


def test_cli_export_user_takes_the_accounts_role_and_scope(db, tmp_path):
    """`export --user NAME` is audited as NAME only when NAME may export; the scope is the account's."""
    from access_fixtures import PASSWORD, make_users
    users = tmp_path / "users.yaml"
    make_users(users)
    investigator, admin, manager = "ivan", "adam", "dana"  # access_fixtures.ACCOUNTS
    review = tmp_path / "review.sqlite"
    base = ("--db", str(db), "--study", STUDY, "--format", "csv", "--only", "ae", "--review-db", str(review),
            "--users", str(users))
    for name, says in ((investigator, "the site investigator role may not export"),
                       (admin, "the administrator role may not export"),
                       ("nobody", "no enabled account 'nobody'")):
        r = _cli(*base, "--user", name, "--out", str(tmp_path / name), password=PASSWORD)
        assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not (tmp_path / name).exists() or not list((tmp_path / name).iterdir())
    # the name alone does not export as the account: its password proves it
    for password, says in ((None, "--password-stdin"), ("wrong", "--user dana: wrong password")):
        r = _cli(*base, "--user", manager, "--out", str(tmp_path / "dm"), password=password)
        assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not (tmp_path / "dm").exists() or not list((tmp_path / "dm").iterdir())
    r = _cli(*base, "--user", manager, "--out", str(tmp_path / "dm"), password=PASSWORD)
    assert r.returncode == 0, r.stderr
    store = ReviewStore(review)
    entry = store.audit_entries(action="export")[-1]
    assert entry["username"] == manager and json.loads(entry["detail"])["scope"] == "all sites"
    assert all(e["username"] != investigator for e in store.audit_entries(action="export"))
    r = _cli(*base[:-2], "--out", str(tmp_path / "login"), CELLTOX_USER="")
    assert r.returncode == 0, r.stderr
    assert store.audit_entries(action="export")[-1]["username"].startswith("cli:")


def test_a_packet_shows_the_decisions_of_one_moment_in_every_file(reader, tmp_path, store, monkeypatch):
    """The DLT state is computed once per packet: a decision recorded while the packet is being written shows
    in none of its files (and in the next packet), never in some outputs and not in others."""
    from safety.export import common
    real, calls = common.dlt_status, []

    def dlt_status_then_a_decision(*args, **kwargs):
        calls.append(1)
        status = real(*args, **kwargs)
        store.add_adjudication(studyid=STUDY, event_key="CT-001-S01/AE/2", usubjid="CT-001-S01", rule_id=None,
                               decision="added", rationale="prolonged neutropenia judged DLT", reviewer="dr.b",
                               data_cut=str(CUT2), event_fingerprint=None)
        return status

    class Renderer:  # no browser needed: the figure is checked from the request it would render
        def __init__(self):
            self.specs = []

        def submit(self, specs):
            self.specs = specs  # each figure's data, as the renderer's process receives it

        def result(self):
            return [(None, "not rendered in this test")] * len(self.specs)

        def close(self):
            pass

    monkeypatch.setattr(common, "dlt_status", dlt_status_then_a_decision)
    renderer = Renderer()
    paths = write_outputs(reader, tmp_path / "out", formats=("csv", "pdf"), store=store, user="dm",
                          generated_at=FIXED, renderer=renderer)
    assert len(calls) == 1
    read = {p.stem.split(f"{CUT2}_", 1)[1]: p for p in paths if p.suffix == ".csv"}
    dlt = csv_writer.read_export_csv(read["dlt"])
    assert "CT-001-S01/AE/2" not in set(dlt["event_key"])  # the added decision came after the packet's moment
    ae = csv_writer.read_export_csv(read["ae"]).set_index("event_key")
    not_a_candidate = ae.loc["CT-001-S01/AE/2", "adjudicated_dlt"]
    assert pd.isna(not_a_candidate) or not_a_candidate == ""
    episodes = csv_writer.read_export_csv(read["crs_icans_episodes"]).set_index("event_key")
    assert episodes.loc["CT-001-S03/ICANS/1", "adjudicated_dlt"] == "Yes"  # the decision made before the packet
    summary = csv_writer.read_export_csv(read["dlt_summary"]).set_index("Category")
    assert summary.loc["Subjects with an adjudicated DLT", "Cohort DL1 (N=2) n (%)"] in (0, "0")
    stop = csv_writer.read_export_csv(read["stopping_rules"])
    assert int(stop.iloc[0]["Events"]) == 1
    import plotly.graph_objects as go
    from safety.export.figure_plots import PLOTS
    figs = [go.Figure(PLOTS[s["plot"]](s["data"])) for s in renderer.specs]  # as the renderer's process draws them
    (boundary,) = [f for f in figs if "Observed" in [t.name for t in f.data]]
    observed = next(t for t in boundary.data if t.name == "Observed").y
    assert [int(v) for v in observed] == [1]  # the figure shows the same count as the stopping table
    # the next packet shows the decision everywhere
    monkeypatch.setattr(common, "dlt_status", real)
    paths = write_outputs(reader, tmp_path / "next", formats=("csv",), only=["dlt", "ae"], store=store, user="dm",
                          generated_at=FIXED)
    read = {p.stem.split(f"{CUT2}_", 1)[1]: p for p in paths}
    assert "CT-001-S01/AE/2" in set(csv_writer.read_export_csv(read["dlt"])["event_key"])
    assert csv_writer.read_export_csv(read["ae"]).set_index("event_key").loc["CT-001-S01/AE/2",
                                                                              "adjudicated_dlt"] == "Yes"


def test_lab_grade3_episodes_run_from_the_first_to_the_last_result_at_grade_3_or_more(db):
    """One row per run of graded results at grade >= 3 of one term in one subject; a graded result below 3 ends
    it, an ungraded one neither ends nor starts one; a term never at grade >= 3 has no episode."""
    con = duckdb.connect(str(db))
    con.execute("DELETE FROM lab_toxicity_records WHERE usubjid = 'CT-001-S02' AND lab_term_id IN "
                "(SELECT lab_term_id FROM lab_toxicity_terms WHERE studyid = $s AND data_cut = $c)",
                {"s": STUDY, "c": CUT2})
    plat = [(1, 901, 2, 60.0), (3, 902, 3, 40.0), (5, 903, 4, 20.0), (6, 904, None, None), (7, 905, 2, 70.0),
            (9, 906, 3, 45.0), (9, 907, 4, 15.0)]
    rows = [{"studyid": STUDY, "data_cut": CUT2, "usubjid": "CT-001-S02", "lbseq": seq, "lbtestcd": "PLAT",
             "ctcae_term": "Platelet count decreased", "direction": "L", "value": value, "unit": "10^9/L",
             "grade": grade, "day": day} for day, seq, grade, value in plat]
    rows.append({"studyid": STUDY, "data_cut": CUT2, "usubjid": "CT-001-S02", "lbseq": 950, "lbtestcd": "HGB",
                 "ctcae_term": "Anemia", "direction": "L", "value": 95.0, "unit": "g/L", "grade": 2, "day": 2})
    _ins(con, "lab_toxicity", rows)
    con.close()
    c = duckdb.connect(str(db), read_only=True)
    try:
        ep = build_listing(make_reader(c, STUDY, CUT2), "lab_grade3_episodes")
    finally:
        c.close()
    mine = ep[ep["usubjid"] == "CT-001-S02"]
    cols = ["ctcae_term", "first_day", "last_day", "worst_grade", "worst_day", "worst_value", "n_values",
            "recovered_day", "ongoing", "days_at_grade3_plus"]
    got = [tuple(None if pd.isna(x) else x for x in r) for r in mine[cols].itertuples(index=False)]
    assert got == [("Platelet count decreased", 3, 5, 4, 5, 20.0, 2, 7, False, 3),
                   ("Platelet count decreased", 9, 9, 4, 9, 15.0, 2, None, True, 1)]


def test_cli_export_refuses_a_review_store_that_is_another_file(db, tmp_path):
    """A --review-db that is no review store (text, another program's SQLite database) is named in one line,
    exit 2 (unusable input), before anything is written; it was 'file is not a database', exit 1."""
    from access_fixtures import files_that_are_no_review_store
    for review, why in files_that_are_no_review_store(tmp_path):
        r = _cli("--db", str(db), "--study", STUDY, "--format", "csv", "--only", "ae", "--review-db", str(review),
                 "--out", str(tmp_path / "out"))
        assert (r.returncode, r.stderr) == (
            2, f"python -m safety export: error: {review}: not a celltox review store ({why})\n")
        assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
