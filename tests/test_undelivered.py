"""Studies delivered in part (DM and AE alone, no study.yaml title, no AE or CRS/ICANS source, no infused subject):
what the packet and the app say where a domain was not delivered or a denominator is empty."""
from __future__ import annotations

import csv
import datetime as dt
import re
import shutil
from pathlib import Path

import duckdb
import pytest

from safety.export import common as c
from safety.ingest import ingest_study

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "car_itnk"
STUDY = "ITNK-B-01"
KEEP = {"ITNK-B-01-01-001", "ITNK-B-01-02-002", "ITNK-B-01-03-003", "ITNK-B-01-03-007", "ITNK-B-01-02-031",
        "ITNK-B-01-01-015"}  # five infused subjects and the one never infused (031)


def _copy_trimmed(dest: Path, files: tuple[str, ...], subjects: set[str]) -> None:
    for name in files:
        with open(SAMPLE / name, newline="") as fh:
            r = csv.DictReader(fh)
            fields, rows = r.fieldnames, [row for row in r if row["USUBJID"] in subjects]
        with open(dest / name, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)


def build_study(tmp: Path, name: str, files: tuple[str, ...], *, subjects: set[str] = KEEP,
                yaml_edit=lambda y: y, with_yaml: bool = True, cutoff: dt.date | None = None) -> Path:
    """Load a part of the sample study (``files`` of ``subjects``) and return the database path."""
    src = tmp / name
    src.mkdir()
    _copy_trimmed(src, files, subjects)
    if with_yaml:
        (src / "study.yaml").write_text(yaml_edit((SAMPLE / "study.yaml").read_text()))
    db = tmp / f"{name}.duckdb"
    ingest_study(src, db, cutoff=cutoff) if cutoff else ingest_study(src, db)
    return db


def _reader(db: Path):
    con = duckdb.connect(str(db), read_only=True)
    cut = con.execute("SELECT max(data_cut) FROM studies").fetchone()[0]
    return c.make_reader(con, STUDY, cut)


@pytest.fixture(scope="module")
def dm_ae_no_yaml(tmp_path_factory):
    return build_study(tmp_path_factory.mktemp("a"), "dm_ae", ("dm.csv", "ae.csv"), with_yaml=False)


@pytest.fixture(scope="module")
def no_title(tmp_path_factory):
    return build_study(tmp_path_factory.mktemp("h"), "no_title", ("dm.csv", "ex.csv", "ae.csv"),
                       yaml_edit=lambda y: re.sub(r"(?m)^title:.*\n", "", y))


@pytest.mark.parametrize("study", ["dm_ae_no_yaml", "no_title"])
def test_a_study_without_a_title_is_named_by_its_id_alone(study, request, tmp_path):
    meta = c.packet_meta(_reader(request.getfixturevalue(study)))
    assert meta.title == ""
    assert meta.header_lines()[0] == "Study: ITNK-B-01"


# -- the app ---------------------------------------------------------------------------------------------------------

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


def _open(db: Path, monkeypatch, page: str = "overview"):
    import streamlit as st
    from streamlit.testing.v1 import AppTest
    monkeypatch.setenv("CELLTOX_DB", str(db))
    monkeypatch.setenv("CELLTOX_AUTH", "off")
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    if page != "overview":
        at.switch_page(f"views/{page}.py")
        at.run()
        assert not at.exception, [e.value for e in at.exception]
    return at


def _texts(at) -> list[str]:
    out = []
    for kind in ("markdown", "caption", "info", "warning", "success"):
        out += [str(getattr(e, "value", "")) for e in at.get(kind)]
    return out


# -- empty denominators ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def never_infused(tmp_path_factory):
    return build_study(tmp_path_factory.mktemp("c"), "never_infused",
                       ("dm.csv", "ae.csv", "ex.csv", "lb.csv", "ds.csv", "vs.csv", "cm.csv", "mh.csv", "rs.csv"),
                       subjects={"ITNK-B-01-02-031"})


def test_of_n_prints_no_rate_over_nobody():
    from safety.core.numbers import of_n
    assert of_n(2, 5) == "2 / 5" and of_n(0, 5) == "0 / 5" and of_n(3, 7, "/") == "3/7"
    assert of_n(0, 0) == "-" and of_n(0, None) == "-" and of_n(0, 0, missing="none") == "none"


def test_no_infused_subject_gives_no_rate_in_the_packet(never_infused):
    from safety.export import outcomes as eo
    r = _reader(never_infused)
    nrm = dict(eo.table_deaths_nrm(r).itertuples(index=False, name=None))
    assert nrm["Infused subjects (N)"] == "0"
    for h in (28, 100, 365):
        assert nrm[f"NRM cumulative incidence at day {h} (Aalen-Johansen), %"] == "- (no subject infused)"
    notes = " ".join(eo.table_response(r).attrs["notes"])
    assert "ORR - (no subject infused)." in notes and "0/0" not in notes


def test_no_infused_subject_gives_no_rate_on_the_overview(never_infused, monkeypatch):
    metrics = {m.label: m.value for m in _open(never_infused, monkeypatch).metric}
    assert metrics["CRS grade ≥3"] == "-" and metrics["ICANS grade ≥3"] == "-"


# -- domains not delivered -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dm_ex_lb(tmp_path_factory):
    """No AE, no CRS/ICANS file nor any SDTM domain they are built from, no RS."""
    return build_study(tmp_path_factory.mktemp("b"), "dm_ex_lb", ("dm.csv", "ex.csv", "lb.csv"))


def test_one_definition_of_delivered(dm_ex_lb, dm_ae_no_yaml):
    from safety.core.delivery import delivered, domains_present, not_delivered
    b = domains_present(_reader(dm_ex_lb).sql)
    assert b == {"DM", "EX", "LB"}
    assert not_delivered(("AE", "CRS", "ICANS", "RS", "LB"), b) == ["AE", "CRS", "ICANS", "RS"]
    # CRS and ICANS episodes are also read from the reported AEs: with AE they are delivered
    a = domains_present(_reader(dm_ae_no_yaml).sql)
    assert delivered("CRS", a) and delivered("ICANS", a) and not delivered("RS", a)
    assert delivered("ICANS", {"DM", "QS"}) and not delivered("ICANS", {"DM", "VS"}) and delivered("CRS", {"DM", "VS"})
    assert delivered("AE", None)  # a cut with no record of its domains: none is named missing


def test_packet_names_the_crs_icans_assessments_not_delivered(dm_ex_lb):
    from safety.export import tables
    r = _reader(dm_ex_lb)
    for name in ("stopping_rules", "crs_icans_summary"):
        notes = tables.build_table(r, name).attrs["notes"]
        assert "AE not delivered at this data cut: what this output reads from AE cannot be shown." in notes, name
        assert ("CRS assessments not delivered at this data cut (no crs_assessments file, nor the SDTM VS, CM, PR, QS, "
                "FA, CE or AE it is built from): what this output reads from CRS cannot be shown.") in notes, name
        assert any(n.startswith("ICANS assessments not delivered at this data cut (no icans_assessments file")
                   for n in notes), name


def test_overview_says_not_delivered_in_place_of_zero_events(dm_ex_lb, monkeypatch):
    at = _open(dm_ex_lb, monkeypatch)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["SAEs: events (subjects)"] == "not delivered"
    assert metrics["CRS grade ≥3"] == "not delivered" and metrics["ICANS grade ≥3"] == "not delivered"
    assert metrics["DLTs confirmed"] == "not delivered" and metrics["DLT candidates pending"] == "not delivered"
    assert metrics["Infused"] == "5"
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("AE not delivered at this data cut; CRS assessments not delivered") for w in warnings)
    assert any("its 'continue' is no data" in w for w in warnings)


def test_crs_icans_and_ae_pages_say_not_delivered(dm_ex_lb, monkeypatch):
    at = _open(dm_ex_lb, monkeypatch, "crs_icans")
    texts = _texts(at) + [w.value for w in at.warning]
    assert not any("grade 0" in t for t in texts) and not at.metric
    assert any(t.startswith("CRS assessments not delivered at this data cut") for t in texts)
    at = _open(dm_ex_lb, monkeypatch, "adverse_events")
    texts = _texts(at)
    assert "No adverse events match these filters." not in texts and not at.metric
    assert any(t.startswith("AE not delivered at this data cut: the adverse event counts show no data from it")
               for t in texts)


def test_swimmer_gives_no_orr_without_rs(dm_ae_no_yaml, monkeypatch):
    at = _open(dm_ae_no_yaml, monkeypatch, "swimmer")
    assert not [m for m in at.metric if m.label.startswith("ORR")]
    assert any(t.startswith("RS not delivered at this data cut: the response rates show no data from it")
               for t in _texts(at))
    # CRS and ICANS graded from the reported AEs: delivered, counted
    metrics = {m.label: m.value for m in _open(dm_ae_no_yaml, monkeypatch, "crs_icans").metric}
    assert metrics["CRS any grade"] == "3 / 5" and metrics["ICANS any grade"] == "2 / 5"


def test_subject_profile_says_ae_not_delivered_not_no_adverse_events(dm_ex_lb, monkeypatch):
    """Without an AE file at the cut, a subject's profile names the missing domain instead of reading as a subject
    who had no adverse events."""
    at = _open(dm_ex_lb, monkeypatch, "subject_profile")
    texts = _texts(at)
    assert "No adverse events recorded for this subject." not in texts
    assert "AE not delivered at this data cut: no adverse events can be shown for this subject." in texts


@pytest.fixture(scope="module")
def dm_ex_lb_alive(tmp_path_factory):
    """DM, EX and LB of two subjects alive at the cut: no death, no DLT candidate, no toxicity to show."""
    return build_study(tmp_path_factory.mktemp("alive"), "dm_ex_lb_alive", ("dm.csv", "ex.csv", "lb.csv"),
                       subjects={"ITNK-B-01-01-001", "ITNK-B-01-02-002"})


def test_overview_meeting_boxes_name_what_was_not_delivered(dm_ex_lb_alive, monkeypatch):
    """The meeting summary's boxes (grade ≥3 toxicities, deaths, DLT candidates) name the domains not delivered
    instead of saying there was none."""
    at = _open(dm_ex_lb_alive, monkeypatch)
    captions = [str(c.value) for c in at.caption]
    assert "No grade ≥3 CRS, ICANS or infection." not in captions
    assert ("No grade ≥3 CRS, ICANS or infection in what was delivered (AE, CRS assessments, ICANS assessments not "
            "delivered at this data cut).") in captions, captions
    assert "No deaths in what was delivered (DS, AE not delivered at this data cut)." in captions
    assert ("No new or pending DLT candidates in what was delivered (AE, CRS assessments, ICANS assessments not "
            "delivered at this data cut).") in captions


def test_outcomes_tabs_say_which_sources_were_not_delivered(dm_ex_lb_alive, monkeypatch):
    """Deaths, infections, supportive care and secondary malignancies are read from DS, AE, CM and MH: without them
    the Outcomes tabs say so instead of showing zero infections or 'no medication' as findings."""
    at = _open(dm_ex_lb_alive, monkeypatch, "outcomes")
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("DS not delivered at this data cut; AE not delivered at this data cut: the death counts "
                            "below show no data from them") for w in warnings), warnings
    for tab, note in (("Infections", "AE not delivered at this data cut: the infection counts below show no data"),
                      ("TLS & malignancies", "AE not delivered at this data cut; MH not delivered at this data cut: "
                                             "the malignancies listed below show no data")):
        at.session_state["outcomes_tab"] = tab
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert any(w.value.startswith(note) for w in at.warning), (tab, [w.value for w in at.warning])
        texts = _texts(at)
        assert "No infection episodes in days 0-365 in this selection." not in texts
        assert "No new malignancy after infusion in this selection (no follow-up limit applied)." not in texts
    at.session_state["outcomes_tab"] = "Infections"
    at.run()
    assert "CM not delivered at this data cut: no medication can be shown." in _texts(at)


def test_labs_page_says_lb_not_delivered(dm_ae_no_yaml, monkeypatch):
    """Without a lab file at the cut, the Labs page says so before its empty tables (no data, not normal labs)."""
    at = _open(dm_ae_no_yaml, monkeypatch, "labs")
    assert any(w.value.startswith("LB not delivered at this data cut: the lab grades, charts and ICAHT below show no "
                                  "data from it") for w in at.warning), [w.value for w in at.warning]


def test_dlt_review_says_which_dlt_sources_were_not_delivered(dm_ex_lb_alive, monkeypatch):
    """With no AE and no CRS/ICANS assessments, the DLT review page names them instead of reading as no DLT."""
    at = _open(dm_ex_lb_alive, monkeypatch, "dlt_review")
    assert any(w.value.startswith("AE not delivered at this data cut; CRS assessments not delivered")
               and "the candidates and counts below show no data from them" in w.value for w in at.warning), \
        [w.value for w in at.warning]
