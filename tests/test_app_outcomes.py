"""The Outcomes page through AppTest on the sample database: numbers equal the derived tables."""
from __future__ import annotations

import html
import json

import pytest

from test_app_pages import (_latest, _metrics, _open, _sql, app_db, app_env, ingest_itnk_with,  # noqa: F401
                            serve)  # app_db, app_env: fixtures
from test_meeting_view import _values


TABS = ["Deaths & NRM", "Infections", "Cumulative incidence", "Response", "Immune reconstitution",
        "Cellular kinetics", "TLS & malignancies", "Off-tumour watch list", "Dose given"]
# One metric each tab shows when it runs (None: the tab shows no metric on the sample study)
TAB_METRIC = {"Deaths & NRM": "Deaths", "Infections": "Invasive mould infections", "Cumulative incidence": None,
              "Response": "Objective response rate", "Immune reconstitution": None, "Cellular kinetics": None,
              "TLS & malignancies": "Laboratory TLS", "Off-tumour watch list": None, "Dose given": "Enrolled"}


def _every_tab(page_query: dict | None = None):
    """Open the Outcomes page on each tab in turn (only the open tab runs); yields (tab, AppTest after the run)."""
    at = _open("outcomes", query=page_query)
    for tab in TABS:
        at.session_state["outcomes_tab"] = tab
        at.run()
        assert not at.exception, (tab, [e.value for e in at.exception])
        assert at.title[0].value == "Outcomes beyond CRS and ICANS"
        yield tab, at


def test_outcomes_page_runs_only_the_open_tab(app_env):
    for tab, at in _every_tab():
        metrics = set(_metrics(at))
        if TAB_METRIC[tab]:
            assert TAB_METRIC[tab] in metrics, f"{tab} shows its numbers"
        others = {m for t, m in TAB_METRIC.items() if m and t != tab}
        assert not others & metrics, f"{tab}: another tab's content ran"


def test_outcomes_page_deaths_nrm_response_and_dose(app_env):
    db = app_env
    studyid, cut = _latest(db)
    m, dataframes, markdown, captions, charts = {}, [], [], [], 0
    for _, at in _every_tab():
        m.update(_metrics(at))
        dataframes += [d.value for d in at.dataframe]
        markdown += [t.value for t in at.markdown]
        captions += [c.value for c in at.caption]
        charts += len(at.get("plotly_chart"))
    n_inf = _sql(db, "SELECT count(*) FROM subjects WHERE studyid = $s AND data_cut = $c AND infused", s=studyid, c=cut)
    deaths = _sql(db, "SELECT count(*) FROM deaths WHERE studyid = $s AND data_cut = $c", s=studyid, c=cut)
    nrm100 = _sql(db, "SELECT count(*) FROM deaths WHERE studyid = $s AND data_cut = $c AND nrm_by_day100",
                  s=studyid, c=cut)
    assert m["Deaths"] == str(deaths)
    assert m["Non-relapse deaths by day 100"].startswith(f"{nrm100}/{n_inf} ")
    if studyid == "CD56-CART-01":  # the sample study: fungal death by day 100, ICANS death day 9; ORR 15/22
        assert (deaths, nrm100, n_inf) == (4, 2, 22)
        # named and rounded as the packet's deaths_nrm row 'Non-relapse deaths by day 28': 1 (4.5)
        assert m["Non-relapse deaths by day 28"] == "1/22 (4.5%)"
        assert m["Objective response rate"] == "15/22 (68.2%)"
        orr_text = [t for t in markdown if t.startswith("ORR ")]
        assert orr_text and "Lugano 2014 (CR + PR) 10/17" in orr_text[0] and "CR + CRi (acute leukaemia) 5/5" in orr_text[0]
        assert "(CR + CRi) 5/5" not in orr_text[0]  # the criteria name says what counts once
        assert (m["Enrolled"], m["Infused"], m["Never infused"]) == ("23", "22", "1")
        # 022 (urate and potassium on day 1) and 014 (calcium on day 3; urate 280 on day 3, +27 % of its day -8
        # screening value 220, the last before lymphodepletion on day -5)
        assert m["Laboratory TLS"].startswith("2/22")
        assert m["Invasive mould infections"] == "1"
    # incidence density for the whole study and per dose level
    dens = [d for d in dataframes if "Per 100 patient-days" in d.columns]
    assert dens and set(dens[0]["Dose level"]) == {"all"}
    assert any("Per dose level" in t for t in markdown)
    texts = " ".join(captions)
    assert "Aalen-Johansen" in texts and "denominator" in texts.lower()
    # every curve has its numbers at risk
    assert charts >= 3


def test_outcomes_page_cumulative_incidence_endpoints(app_env):
    at = _open("outcomes", session={"outcomes_tab": "Cumulative incidence"})
    radio = [r for r in at.radio if r.key == "ci_event"][0]
    for name in ("CRS", "ICANS", "infection_g3", "NRM"):
        radio.set_value(name).run()
        assert not at.exception, [e.value for e in at.exception]
        assert any("competing event" in c.value for c in at.caption)


def _risk_rows(at) -> dict[str, tuple[list, list, str]]:
    """Each chart's numbers-at-risk rows: {row label: (days, numbers, the chart's x axis title)}."""
    out = {}
    for c in at.get("plotly_chart"):
        spec = json.loads(c.proto.spec)
        x_title = spec["layout"].get("xaxis2", {}).get("title", {}).get("text")
        for t in spec["data"]:
            if (t.get("name") or "").endswith(": number at risk"):
                out[_values(t["y"])[0]] = (_values(t["x"]), _values(t["text"]), x_title)
    return out


def test_outcomes_at_risk_rows_say_whose_they_are_and_from_when(app_env):
    """Under a curve timed from infusion the row of numbers at risk is "Infused subjects", from all of them at
    day 0; the Kaplan-Meier curves from the first response are timed from it, and their axis says so."""
    db = app_env
    studyid, cut = _latest(db)
    n_inf = _sql(db, "SELECT count(*) FROM subjects WHERE studyid = $s AND data_cut = $c AND infused "
                     "AND first_infusion_date IS NOT NULL", s=studyid, c=cut)
    for tab in ("Deaths & NRM", "Cumulative incidence"):
        rows = _risk_rows(_open("outcomes", session={"outcomes_tab": tab}))
        assert list(rows) == ["Infused subjects"], tab
        days, numbers, x_title = rows["Infused subjects"]
        assert days[0] == 0 and numbers[0] == str(n_inf) and x_title == "Days from infusion (day 0)", tab
    rows = _risk_rows(_open("outcomes", session={"outcomes_tab": "Response"}))
    responders = _sql(db, "SELECT count(*) FROM response_outcomes WHERE studyid = $s AND data_cut = $c "
                          "AND first_response_day IS NOT NULL", s=studyid, c=cut)
    assert set(rows) == {"Duration of response", "DFS/PFS from first response"}
    for days, numbers, x_title in rows.values():
        assert days[0] == 0 and numbers[0] == str(responders) and x_title == "Days from first response"
    assert responders < n_inf  # responders only: not the infused subjects' row


def test_outcomes_page_itnk_b_cell_aplasia(app_env):
    m, warnings, frames, expanders = {}, [], [], []
    for _, at in _every_tab({"studyid": "ITNK-B-01"}):
        m.update(_metrics(at))
        warnings += [w.value for w in at.warning]
        frames += [d.value for d in at.dataframe]
        expanders += [e.label for e in at.expander]
    assert "B-cell aplasia (CD19+ < 10 cells/uL)" in m
    assert "hypogammaglobulinaemia (IgG < 4 g/L)" in m
    # the sponsor's PP beside celltox's kinetics: the re-assayed Cmax of 02-009 (and its AUC) flagged
    assert any("2 sponsor value(s) differ from celltox's beyond the tolerance (1 subject(s))" in w for w in warnings)
    pp = [f for f in frames if "sponsor_value" in f.columns]
    assert pp and pp[0]["status"].head(2).tolist() == ["differs", "differs"]
    # a malignancy reported as medical history after infusion is new; the prior one is context
    sm = [f for f in frames if "latency_months" in f.columns][0]
    assert "Squamous cell carcinoma of skin" in set(sm["term"]) and "MH" in set(sm["source"])
    assert any(e.startswith("Prior malignancies in medical history (1)") for e in expanders)


def test_subject_profile_shows_car_expansion_beside_grades(app_env):
    at = _open("subject_profile", query={"usubjid": "CD56-CART-01-01-005"},
               session={"profile_view_tab": "CAR expansion and persistence"})
    assert not at.exception, [e.value for e in at.exception]
    assert [c.proto.spec.count("CAR expansion") > 0 for c in at.get("plotly_chart")] == [True]
    kin = next(d.value for d in at.dataframe if "pctestcd" in d.value.columns)
    assert list(kin["pctestcd"]) == ["CARTGDNA"] and kin["cmax"].iloc[0] > 0


def test_swimmer_orr_follows_study_criteria(app_env):
    """Issue of record: CR + CRi alone gave 10/22 for the NK/T-cell lymphoma study; Lugano 2014 counts PR (15/22)."""
    studyid, _ = _latest(app_env)
    at = _open("swimmer")
    assert not at.exception, [e.value for e in at.exception]
    if studyid == "CD56-CART-01":
        assert _metrics(at)["ORR Best overall"] == "15 / 22"
        assert any("Lugano 2014 (CR + PR)" in c.value for c in at.caption)


def test_swimmer_draws_the_swimmer_plot_and_only_the_open_tab_beneath(app_env):
    studyid, _ = _latest(app_env)
    at = _open("swimmer")
    assert not at.exception, [e.value for e in at.exception]
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert len(titles) == 1 and titles[0].startswith("Follow-up to month 12"), titles
    # the response rates: bars drawn as SVG, titled with what the study counts as a response
    rates = [html.unescape(m.value) for m in at.markdown
             if m.value.startswith("<svg") and "Objective response rate" in m.value]
    assert len(rates) == 1
    if studyid == "CD56-CART-01":  # Lugano 2014 counts PR for the lymphomas, and the chart says so
        assert ("Objective response rate: Lugano 2014 (CR + PR) or CR + CRi (acute leukaemia), by each subject's "
                "diagnosis") in rates[0] and ">15/22</text>" in rates[0]
    assert any(m.label == "ORR Best overall" for m in at.metric)

    at.session_state["swimmer_view_tab"] = "Kaplan-Meier"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert len(titles) == 2 and "Overall survival and DFS/PFS from first response" in titles[1], titles
    # OS runs from infusion, DFS/PFS from the first response: the shared axis names both starts
    rows = _risk_rows(at)
    assert set(rows) == {"Overall survival (from infusion)", "DFS/PFS from first response"}
    assert {x for _, _, x in rows.values()} == {"Days from infusion (OS) or from first response (DFS/PFS)"}
    # the response rates are metrics and a chart of their own tab only
    assert not any(m.label == "ORR Best overall" for m in at.metric)
    assert not any(m.value.startswith("<svg") and "Objective response rate" in m.value for m in at.markdown)


def _headers(element) -> list[str]:
    """What a reader sees heading a table: a column's configured label, else its name; the index level names."""
    config = json.loads(element.proto.columns or "{}")
    df = element.value
    shown = [str((config.get(str(c)) or config.get(f"_pos:{i}") or {}).get("label") or c)
             for i, c in enumerate(df.columns)]
    return shown + [str(n) for n in df.index.names if n is not None]


def test_no_table_of_the_outcomes_page_is_headed_by_a_raw_column_name(app_env):
    """Crosstabs and pivots are drawn as they are: their columns, index levels and axis names take the one label
    table's headers too ('Pathogen class', not pathogen_class; 'Parameter', not Pptestcd)."""
    from safety.schema.labels import COLUMN_LABELS
    raw = {name for name, label in COLUMN_LABELS.items() if label != name}
    for tab, at in _every_tab():
        for element in at.dataframe:
            headers = _headers(element)
            assert not [h for h in headers if "_" in h or h in raw or h.lower() in {"ppseq", "pptestcd"}], (tab, headers)


# ---- the charts draw the values the tables are computed from ----------------------------------------------------

_MARROW_PC = ("ITNK-B-01,PC,ITNK-B-01-01-001,99,CARCELLS,CAR+ cells (flow cytometry),400,cells/uL,400,400,cells/uL,0.5,"
              "BONE MARROW,DAY 10,2024-11-30\n")
_CSF_IGG_AND_CD19_PERCENT = "".join(
    [f"ITNK-B-01,LB,ITNK-B-01-01-001,{5440 + i},CD19,CD19+ B cells,IMMUNOLOGY,BLOOD,12,%,0.1,0.5,12,12,%,0.1,0.5,"
     f"NORMAL,,{visit},{date},\n" for i, (visit, date) in enumerate([("DAY 14", "2024-12-04"), ("DAY 28", "2024-12-18")])]
    + ["ITNK-B-01,LB,ITNK-B-01-01-001,9999,IGG,Immunoglobulin G,IMMUNOLOGY,CSF,0.03,g/L,7,16,0.03,0.03,g/L,7,16,"
       "NORMAL,,DAY 28,2024-12-18,\n"])


@pytest.fixture(scope="module")
def itnk_with_marrow_csf_and_percent(tmp_path_factory):
    """The CAR-ITNK sample study with, for 01-01-001, a bone-marrow CAR level of 400 on day 10, a CSF IgG of 0.03 g/L
    on day 28 and CD19 as 12 % of lymphocytes on days 14 and 28: none of them goes into the tables."""
    return ingest_itnk_with(tmp_path_factory.mktemp("itnk_charts"),
                            {"pc.csv": _MARROW_PC, "lb.csv": _CSF_IGG_AND_CD19_PERCENT})


@pytest.fixture
def charts_env(itnk_with_marrow_csf_and_percent, monkeypatch):
    yield from serve(itnk_with_marrow_csf_and_percent, monkeypatch)


def _charts(at) -> dict[str, list[dict]]:
    """{chart title: its traces}."""
    out = {}
    for c in at.get("plotly_chart"):
        spec = json.loads(c.proto.spec)
        out[spec["layout"]["title"]["text"]] = spec["data"]
    return out


def test_immune_marker_charts_draw_the_blood_results_in_the_markers_unit(charts_env):
    """A CSF IgG of 0.03 was drawn as a serum IgG dip below 4 g/L, and CD19 as 12 % of lymphocytes on the 10^9/L
    axis (1200 times the aplasia threshold) while the table left both out; the chart now draws the table's values."""
    at = _open("outcomes", session={"outcomes_tab": "Immune reconstitution"})
    charts = _charts(at)
    igg = next(t for t in charts["IgG over time"] if t.get("name") == "ITNK-B-01-01-001")
    assert list(zip(_values(igg["x"]), _values(igg["y"]))) == [(-8, 11.4), (28, 7.0), (60, 4.0), (86, 3.8), (174, 4.1)]
    cd19 = next(t for t in charts["CD19+ B cells over time"] if t.get("name") == "ITNK-B-01-01-001")
    assert 12.0 not in _values(cd19["y"]) and max(_values(cd19["y"])) == pytest.approx(0.19)
    table = next(d.value for d in at.dataframe if "nadir" in d.value.columns and "IGG" in set(d.value["test"]))
    assert table.set_index("usubjid").loc["ITNK-B-01-01-001", "nadir"] == pytest.approx(3.8)


_BLOOD_CURVE = [(0, 0.25), (1, 0.25), (4, 3.29), (7, 9.095), (10, 16.7), (14, 10.98), (21, 3.469), (28, 1.816),
                (60, 0.6014), (90, 0.25), (180, 0.25)]  # BLQ drawn at LLOQ / 2


def test_car_expansion_charts_draw_the_blood_samples_the_parameters_use(charts_env):
    """A bone-marrow CAR level of 400 on day 10 was drawn as a spike on the blood curve of the Outcomes page and the
    subject profile, while Cmax (16.7) left it out; both charts now draw the samples the parameters use and say
    how many they leave out."""
    at = _open("outcomes", session={"outcomes_tab": "Cellular kinetics"})
    lines = _charts(at)["CAR expansion and persistence by maximum CRS grade"]
    subject = next(t for t in lines if _values(t.get("text"))[:1] == ["ITNK-B-01-01-001"])
    assert list(zip(_values(subject["x"]), _values(subject["y"]))) == _BLOOD_CURVE
    assert any(c.value.startswith("1 sample of another specimen") for c in at.caption)

    at = _open("subject_profile", query={"usubjid": "ITNK-B-01-01-001"},
               session={"profile_view_tab": "CAR expansion and persistence"})
    [traces] = _charts(at).values()
    car = next(t for t in traces if t.get("name") == "CARCELLS (cells/uL)")
    assert list(zip(_values(car["x"]), _values(car["y"]))) == _BLOOD_CURVE
    assert any(c.value.startswith("1 sample of another specimen") for c in at.caption)
    kin = next(d.value for d in at.dataframe if "pctestcd" in d.value.columns)
    assert kin["cmax"].iloc[0] == pytest.approx(16.7)


# 01-01-001 (infused 2024-11-20): a pneumonia from day -3, grade 2, recorded again at grade 3 from day 2 (one episode)
_PNEUMONIA_BEFORE_INFUSION = "".join(
    f"ITNK-B-01,AE,ITNK-B-01-01-001,{seq},Pneumonia,Pneumonia,Infections and infestations,{sev},{grade},N,N,N,N,N,N,N,"
    f"NOT RELATED,NOT APPLICABLE,{out},{start},{end},{stdy}\n"
    for seq, sev, grade, out, start, end, stdy in [
        (901, "MODERATE", 2, "NOT RECOVERED/NOT RESOLVED", "2024-11-17", "2024-11-21", 3),
        (902, "SEVERE", 3, "RECOVERED/RESOLVED", "2024-11-22", "2024-11-30", 8)])


@pytest.fixture
def pneumonia_env(tmp_path, monkeypatch):
    yield from serve(ingest_itnk_with(tmp_path, {"ae.csv": _PNEUMONIA_BEFORE_INFUSION}), monkeypatch)


def test_a_grade3_infection_counts_from_the_day_it_turned_grade3_as_the_packet_counts_it(pneumonia_env):
    """An infection that began before the infusion and turned grade 3 on day 2 is a grade >= 3 infection of days
    0-30 in the packet's infections_by_window and the cumulative incidence; the page's metric left it out (it read
    the episode's onset day). Both now count it by the day its grade >= 3 record began."""
    db = pneumonia_env
    studyid, cut = _latest(db)
    where = "studyid = $s AND data_cut = $c"
    assert _sql(db, f"SELECT onset_window || ' / ' || grade3_onset_window FROM infection_episodes WHERE {where} "
                    "AND usubjid = 'ITNK-B-01-01-001' AND term = 'Pneumonia' AND onset_day = -3",
                s=studyid, c=cut) == "before day 0 / day 0-30"
    n_inf = _sql(db, f"SELECT count(*) FROM subjects WHERE {where} AND infused", s=studyid, c=cut)
    severe = "(ctcae_grade >= 3 OR fatal)"
    by_grade3 = _sql(db, f"SELECT count(DISTINCT usubjid) FROM infection_episodes WHERE {where} AND {severe} "
                         "AND grade3_onset_window LIKE 'day %'", s=studyid, c=cut)
    by_onset = _sql(db, f"SELECT count(DISTINCT usubjid) FROM infection_episodes WHERE {where} AND {severe} "
                        "AND onset_window LIKE 'day %'", s=studyid, c=cut)
    assert by_grade3 == by_onset + 1
    at = _open("outcomes", session={"outcomes_tab": "Infections"})
    assert not at.exception, [e.value for e in at.exception]
    assert _metrics(at)["Subjects with grade ≥ 3 infection"].startswith(f"{by_grade3}/{n_inf} ")
