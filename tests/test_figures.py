"""Figure builders of dashboard/figures.py: pure functions, checked without Streamlit."""
from __future__ import annotations

import re
import numpy as np
import pandas as pd
import pytest

from dashboard import figures as F
from safety.core.palette import GRADE_COLORS
from hover import hover_text


def test_incidence_bar_uses_palette_and_ci_error_bars():
    df = pd.DataFrame({"group": ["All", "All"], "grade": [1, 3], "subjects": [4, 1], "total": [10, 10],
                       "pct": [40.0, 10.0], "ci_low": [12.2, 0.3], "ci_high": [73.8, 44.5]})
    fig = F.incidence_by_grade_bar(df)
    colors = {t.name: t.marker.color for t in fig.data}
    assert colors == {"Grade 1": GRADE_COLORS[1], "Grade 3": GRADE_COLORS[3]}
    g3 = next(t for t in fig.data if t.name == "Grade 3")
    assert g3.error_y.array[0] == pytest.approx(34.5)
    assert g3.error_y.arrayminus[0] == pytest.approx(9.7)
    assert fig.layout.yaxis.title.text == "Subjects (%)"


def test_incidence_hover_says_what_the_packet_table_says():
    # 1 of 16 is 6.25 %: the hover said "6%" (the browser's rounding) beside the page's 6.2 and the packet's 6.3
    from safety.core.numbers import interval, n_pct  # the packet's cells (safety.export.tables)
    df = pd.DataFrame({"group": ["All"], "grade": [3], "subjects": [1], "total": [16], "pct": [6.25],
                       "ci_low": [0.158], "ci_high": [30.225]})
    [bar] = F.incidence_by_grade_bar(df).data
    subjects, total, pct, ci = bar.customdata[0]
    assert (subjects, total, pct, ci) == ("1", "16", "6.3", "0.2-30.2")
    assert n_pct(1, 16) == f"1 ({pct})" and interval(0.158, 30.225) == ci
    assert "(%{customdata[2]}%)" in bar.hovertemplate and "95% CI %{customdata[3]}%" in bar.hovertemplate


def test_swimlane_heatmap_places_grades_by_subject_and_day():
    daily = pd.DataFrame({"usubjid": ["A", "A", "B"], "day": [1, 2, 5], "grade": [1, 3, 2]})
    fig = F.swimlane_heatmap(daily, ["B", "A"], "CRS")
    z = fig.data[0].z
    assert z.shape == (2, 31)  # two subjects, days 0-30
    assert z[1][2] == 3 and z[0][5] == 2  # A day 2 grade 3, B day 5 grade 2
    assert pd.isna(z[0][0])  # no assessment: blank, not grade 0
    assert "CRS" in fig.data[0].hovertemplate and "day" in fig.data[0].hovertemplate
    assert fig.layout.xaxis.title.text.startswith("Days from infusion")


def test_edish_flags_hys_law_quadrant():
    # B: AST 6.5 x ULN with bilirubin 13 x ULN (ALT normal) is in the quadrant, at its AST peak, and says so
    df = pd.DataFrame({"usubjid": ["A", "B", "C"], "peak_aminotransferase_xuln": [5.0, 6.5, 1.2],
                       "aminotransferase": ["ALT", "AST", "ALT"], "peak_bili_xuln": [2.5, 13.0, 0.8]})
    fig = F.edish_figure(df)
    colors = list(fig.data[0].marker.color)
    assert colors[0] == GRADE_COLORS[4] and colors[1] == GRADE_COLORS[4] and colors[2] != GRADE_COLORS[4]
    assert list(fig.data[0].x) == [5.0, 6.5, 1.2]
    assert [c[1] for c in fig.data[0].customdata] == ["ALT", "AST", "ALT"]
    assert "peak %{customdata[1]} %{x:.2f} × ULN" in fig.data[0].hovertemplate
    assert fig.layout.xaxis.title.text == "Peak ALT or AST (× ULN)"
    xs = sorted(s.x0 for s in fig.layout.shapes if s.x0 == s.x1)
    ys = sorted(s.y0 for s in fig.layout.shapes if s.y0 == s.y1)
    assert xs == [3] and ys == [2]


def test_subject_timeline_colours_ae_bars_by_grade_and_marks_sae_and_dlt():
    aes = pd.DataFrame({"event_key": ["S1/AE/1", "S1/AE/2"], "aedecod": ["Cytokine release syndrome", "Pneumonia"],
                        "aetoxgr": [3, 2], "grading_system": ["ASTCT 2019", "CTCAE v5.0"], "onset_day": [1, 20],
                        "end_day": [6, None], "serious": [True, False]})
    daily = pd.DataFrame({"syndrome": ["CRS", "CRS"], "day": [1, 2], "grade": [1, 3]})
    meds = pd.DataFrame({"med_class": ["tocilizumab"], "cmdecod": ["TOCILIZUMAB"], "start_day": [2], "end_day": [2]})
    resp = pd.DataFrame({"day": [28], "response": ["CR"]})
    fig = F.subject_timeline("S1", aes, daily, meds, resp, death_day=None, dlt_window=(0, 28), dlt_keys=["S1/AE/1"],
                             pending_keys=["S1/AE/2"])
    bars = [t for t in fig.data if t.type == "bar" and t.orientation == "h" and t.name and t.name.startswith("Grade")]
    assert {t.name: t.marker.color for t in bars} == {"Grade 3": GRADE_COLORS[3], "Grade 2": GRADE_COLORS[2]}
    crs = next(t for t in bars if t.name == "Grade 3")
    assert crs.base[0] == 0.5 and crs.x[0] == 6  # days 1-6 inclusive, each day a whole cell centred on it
    (mark,) = [t for t in fig.data if t.name == "DLT (? = pending)"]
    assert list(mark.x) == [1, 20] and mark.marker.symbol == "circle-open"  # on the onset day itself
    # the committee's DLT and the candidate awaiting it are told apart, on the mark and in the hover text
    assert list(mark.text) == ["DLT", "DLT?"]
    assert [c[0] for c in mark.customdata] == ["DLT", "DLT candidate, awaiting the committee"]
    pneumonia = next(t for t in bars if t.name == "Grade 2")
    assert "DLT candidate, awaiting the committee" in hover_text(pneumonia)
    assert "DLT candidate" not in hover_text(crs) and "<br>DLT<" in hover_text(crs)
    names = {t.name for t in fig.data}
    assert "Serious (SAE)" in names
    assert "S1" in hover_text(crs) and "Cytokine release syndrome" in hover_text(crs)
    assert any(s.type == "rect" for s in fig.layout.shapes)  # DLT window shaded


def test_swimmer_plot_caps_follow_up_at_month_12():
    subjects = pd.DataFrame({"usubjid": ["A", "B"], "label": ["#1 A", "#2 B"], "end_day": [400, 60],
                             "status": ["completed", "died"], "cohort": ["DL1", "DL1"]})
    events = pd.DataFrame({"usubjid": ["A", "B", "B"], "day": [28, 60, 28], "kind": ["response", "death", "response"],
                           "text": ["CR", "progression", "CRI"], "grade": [None, None, None]})
    fig = F.swimmer_plot(subjects, events)
    bars = [t for t in fig.data if t.type == "bar"]
    assert max(max(t.x) for t in bars) == 365
    assert any(t.name == "Death" for t in fig.data) and any(t.name == "Response CR" for t in fig.data)
    assert any(t.name == "Response CRi" for t in fig.data)  # as the tables print it, not the code CRI


def test_ae_soc_pt_bar_stacks_worst_grades():
    df = pd.DataFrame({"aebodsys": ["Inv", "Inv", "Imm"], "aedecod": ["ALT increased", "ALT increased", "CRS"],
                       "worst_grade": [1, 3, 2], "subjects": [2, 1, 5]})
    fig = F.ae_soc_pt_bar(df)
    assert fig.layout.barmode == "stack"
    assert {t.name for t in fig.data} == {"Grade 1", "Grade 2", "Grade 3"}
    assert fig.layout.xaxis.title.text == "Subjects (n)"


def test_key_labs_draws_ctcae_bands_behind_anc():
    labs = pd.DataFrame({"lbtestcd": ["NEUT"] * 3, "lbtest": ["Neutrophils"] * 3, "day": [0, 5, 10],
                         "value": [3.0, 0.3, 1.2], "unit": ["10^9/L"] * 3, "lln": [2.0] * 3, "uln": [7.5] * 3,
                         "grade": [0, 4, 2]})
    fig = F.key_labs_figure("S1", labs, ["NEUT"], dlt_window=None)
    bands = sorted((s.y0, s.y1, s.fillcolor) for s in fig.layout.shapes)
    assert bands == [(0, 0.5, GRADE_COLORS[4]), (0.5, 1.0, GRADE_COLORS[3]), (1.0, 1.5, GRADE_COLORS[2])]
    assert list(fig.data[0].marker.color) == [GRADE_COLORS[0], GRADE_COLORS[4], GRADE_COLORS[2]]


def test_subject_timeline_marks_dlts_keyed_on_episodes_and_death():
    import pandas as pd
    from dashboard import figures as F
    u = "S-01-001"
    aes = pd.DataFrame({"event_key": [f"{u}/AE/1"], "aedecod": ["Cytokine release syndrome"], "aetoxgr": [3],
                        "grading_system": ["ASTCT"], "onset_day": [2], "end_day": [6], "serious": [True]})
    daily = pd.DataFrame({"syndrome": ["CRS"] * 3 + ["ICANS"], "day": [2, 3, 4, 5], "grade": [1, 3, 2, 2]})
    episodes = pd.DataFrame({"syndrome": ["CRS", "ICANS"], "episode_no": [1, 1], "onset_day": [2, 5]})
    empty_meds = pd.DataFrame(columns=["med_class", "cmdecod", "start_day", "end_day"])
    empty_resp = pd.DataFrame(columns=["day", "response"])
    fig = F.subject_timeline(u, aes, daily, empty_meds, empty_resp, 40, (0, 28),
                             [f"{u}/ICANS/1", f"{u}/DEATH"], episodes=episodes)
    dlt = [t for t in fig.data if t.name == "DLT (? = pending)"]
    marks = {(y, cd[2]) for t in dlt for y, cd in zip(t.y, t.customdata)}
    assert marks == {("ICANS", 5.0), ("Death", 40.0)}  # the AE (not a DLT key) is not marked
    assert {(y, x) for t in dlt for y, x in zip(t.y, t.x)} == marks  # drawn on the event's day
    # no management medications: the row says so instead of showing a bare numeric axis
    assert any("no tocilizumab" in (a.text or "") for a in fig.layout.annotations)
    assert fig.layout.yaxis3.showticklabels is False
    assert {t.yaxis for t in dlt} == {"y2", "y4"}  # on the CRS/ICANS row and the death row
    # an AE key still marks its bar, on the AE row
    fig = F.subject_timeline(u, aes, daily, empty_meds, empty_resp, None, (0, 28), [f"{u}/AE/1"], episodes=episodes)
    (ae_mark,) = [t for t in fig.data if t.name == "DLT (? = pending)"]
    assert ae_mark.yaxis in (None, "y") and [list(c) for c in ae_mark.customdata] == [["DLT", "onset day 2"]]


def test_onset_duration_shows_dots_for_a_trial_and_boxes_only_at_program_scale():
    from dashboard.figures import MAX_EPISODE_DOTS, onset_duration_figure

    def episodes(n):
        return pd.DataFrame({"usubjid": [f"S{i}" for i in range(n)], "syndrome": "CRS",
                             "onset_day": [1 + i % 5 for i in range(n)], "duration_days": [3] * n,
                             "max_grade": [1 + i % 4 for i in range(n)]})
    small = onset_duration_figure(episodes(8))
    assert {t.type for t in small.data} == {"box", "scatter"}
    assert sum(len(t.x) for t in small.data if t.type == "scatter") == 16  # every episode, onset and duration
    large = onset_duration_figure(episodes(MAX_EPISODE_DOTS + 1))
    assert {t.type for t in large.data} == {"box"}


def test_lab_dlts_are_marked_on_the_timeline_and_on_the_lab_value():
    u = "S-01-009"
    key = f"{u}/LB/NEUT-D28"
    aes = pd.DataFrame({"event_key": [f"{u}/AE/1"], "aedecod": ["Neutropenia"], "aetoxgr": [4],
                        "grading_system": ["CTCAE v5.0"], "onset_day": [5], "end_day": [None], "serious": [False]})
    daily = pd.DataFrame({"syndrome": ["CRS"], "day": [1], "grade": [1]})
    empty_meds = pd.DataFrame(columns=["med_class", "cmdecod", "start_day", "end_day"])
    empty_resp = pd.DataFrame(columns=["day", "response"])
    lab_dlts = pd.DataFrame({"event_key": [key], "lbtestcd": ["NEUT"], "day": [28], "label": ["NEUT grade 4 (R7)"]})
    fig = F.subject_timeline(u, aes, daily, empty_meds, empty_resp, None, (0, 28), [key], lab_dlts=lab_dlts)
    (mark,) = [t for t in fig.data if t.name == "DLT (? = pending)"]
    assert list(mark.y) == ["Lab DLT"] and mark.yaxis == "y4" and mark.customdata[0][2] == 28.0
    assert list(mark.customdata[0][:2]) == ["DLT", "NEUT grade 4 (R7)"]
    # not a DLT key (e.g. the committee withdrew it): nothing marked
    fig = F.subject_timeline(u, aes, daily, empty_meds, empty_resp, None, (0, 28), [], lab_dlts=lab_dlts)
    assert not [t for t in fig.data if t.name == "DLT (? = pending)"]

    labs = pd.DataFrame({"lbtestcd": ["NEUT"] * 3 + ["PLAT"], "lbtest": ["Neutrophils"] * 3 + ["Platelets"],
                         "day": [0, 14, 28, 28], "value": [3.0, 0.2, 0.3, 120.0], "unit": ["10^9/L"] * 3 + ["10^9/L"],
                         "lln": [2.0] * 4, "uln": [7.5] * 3 + [400.0], "grade": [0, 4, 4, 0]})
    labs_fig = F.key_labs_figure(u, labs, ["NEUT", "PLAT"], dlt_window=(0, 28), lab_dlts=lab_dlts)
    (lab_mark,) = [t for t in labs_fig.data if t.name == "DLT"]
    assert list(lab_mark.x) == [28] and list(lab_mark.y) == [0.3] and lab_mark.yaxis in (None, "y")  # the NEUT panel


def test_profile_timeline_and_labs_share_one_plot_area():
    """Stacked on the page, the two figures' day axes line up only if their plot areas have the same margins."""
    u = "S1"
    aes = pd.DataFrame({"event_key": [f"{u}/AE/1"], "aedecod": ["A very long preferred term for an adverse event"],
                        "aetoxgr": [2], "grading_system": ["CTCAE v5.0"], "onset_day": [3], "end_day": [9],
                        "serious": [True]})
    daily = pd.DataFrame({"syndrome": ["CRS"], "day": [1], "grade": [2]})
    timeline = F.subject_timeline(u, aes, daily, pd.DataFrame(columns=["med_class", "cmdecod", "start_day", "end_day"]),
                                  pd.DataFrame(columns=["day", "response"]), None, (0, 28), [], day_range=(-10, 35))
    labs = pd.DataFrame({"lbtestcd": ["CRP"], "lbtest": ["C-reactive protein"], "day": [1], "value": [80.0],
                         "unit": ["mg/L"], "lln": [None], "uln": [5.0], "grade": [None]})
    labs_fig = F.key_labs_figure(u, labs, ["CRP"], day_range=(-10, 35))
    for fig in (timeline, labs_fig):
        m = fig.layout.margin
        assert (m.l, m.r, m.autoexpand) == (F.PROFILE_MARGIN["l"], F.PROFILE_MARGIN["r"], False)
        assert all(ax.automargin is False for ax in (fig.layout[k] for k in fig.layout if k.startswith("yaxis")))
        assert list(fig.layout.xaxis.range) == [-10, 35]


def test_program_scale_boxes_carry_five_numbers_per_syndrome_not_every_episode():
    from dashboard.figures import MAX_EPISODE_DOTS, onset_duration_figure

    n = MAX_EPISODE_DOTS + 1001
    onset = [i % 11 for i in range(n)]
    onset[0] = 90  # an outlier beyond 1.5 IQR: the whisker stops at the furthest value inside
    df = pd.DataFrame({"usubjid": [f"S{i}" for i in range(n)], "syndrome": ["CRS", "ICANS"] * (n // 2) + ["CRS"] * (n % 2),
                       "onset_day": onset, "duration_days": [1 + i % 7 for i in range(n)], "max_grade": 1})
    fig = onset_duration_figure(df)
    onset_box = fig.data[0]
    assert onset_box.x is None and list(onset_box.y) == ["CRS", "ICANS"]  # no per-episode values sent
    crs = df.loc[df["syndrome"] == "CRS", "onset_day"].to_numpy(dtype=float)
    q1, med, q3 = np.percentile(crs, [25, 50, 75])
    assert (onset_box.q1[0], onset_box.median[0], onset_box.q3[0]) == (q1, med, q3)
    assert onset_box.upperfence[0] == 10.0 and onset_box.lowerfence[0] == 0.0


def test_row_spanning_shapes_equal_what_plotlys_row_helpers_add():
    # The profile figures add their bands and lines in one assignment; each must be what Plotly's own
    # add_hrect / add_vrect / add_vline would have put on that row.
    from plotly.subplots import make_subplots
    for row in (1, 3):
        ours = make_subplots(rows=3, cols=1, shared_xaxes=True)
        F._add_shapes(ours, [F._band_across(row, 1.0, 1.5, fillcolor="#F0E442", opacity=0.3, line=dict(width=0),
                                            layer="below"),
                             F._band_down(row, -0.5, 28.5, fillcolor="#999", opacity=0.08, line=dict(width=0)),
                             F._line_down(row, 153, line=dict(color="#000", width=2, dash="dot"))])
        plotly = make_subplots(rows=3, cols=1, shared_xaxes=True)
        plotly.add_hrect(y0=1.0, y1=1.5, fillcolor="#F0E442", opacity=0.3, line_width=0, layer="below", row=row, col=1,
                         exclude_empty_subplots=False)
        plotly.add_vrect(x0=-0.5, x1=28.5, fillcolor="#999", opacity=0.08, line_width=0, row=row, col=1,
                         exclude_empty_subplots=False)
        plotly.add_vline(x=153, line=dict(color="#000", width=2, dash="dot"), row=row, col=1, exclude_empty_subplots=False)
        assert ours.to_dict()["layout"]["shapes"] == plotly.to_dict()["layout"]["shapes"]


def test_every_drawn_chart_carries_the_dashboards_template():
    import plotly.io as pio
    import streamlit  # noqa: F401  (importing it makes its own template Plotly's default)

    from dashboard import state  # noqa: F401  (the widgets module is reached through the pages' one import)
    from dashboard.widgets import TEMPLATE, figure_dict
    assert pio.templates.default == "streamlit"
    labs = pd.DataFrame({"lbtestcd": ["NEUT"], "lbtest": ["Neutrophils"], "day": [5], "value": [0.3],
                         "unit": ["10^9/L"], "lln": [2.0], "uln": [7.5], "grade": [4]})
    d = figure_dict(F.key_labs_figure("S1", labs, ["NEUT"], dlt_window=None))
    assert TEMPLATE == "plotly_white"
    assert d["layout"]["template"] == pio.templates["plotly_white"].to_plotly_json()


# -- the stopping-boundary chart (SVG: the overview and the DLT review load no chart library for it) ----------

def test_stopping_boundary_svg_steps_after_each_n_and_marks_the_current_point():
    from dashboard import figures_svg as S

    b = pd.DataFrame({"n": [1, 2, 3, 4], "stop_if_events_ge": [None, 2, 2, 3]})
    svg = S.stopping_boundary_svg(b, points=pd.DataFrame({"label": ["now"], "n": [3], "events": [1]}))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    paths = re.findall(r'<path d="([^"]+)"', svg)
    assert len(paths) == 1  # one rule line: the stop boundary
    moves = re.findall(r"[MHV][\d.]+(?: [\d.]+)?", paths[0])
    # starts at n = 2 (no boundary at n = 1), then right to n = 3, level, right to n = 4, up to 3 events
    assert [m[0] for m in moves] == ["M", "H", "V", "H", "V"]
    x2, y2 = (float(t) for t in moves[0][1:].split())
    x3, x4 = float(moves[1][1:]), float(moves[3][1:])
    assert float(moves[2][1:]) == y2 and x2 < x3 < x4 and float(moves[4][1:]) < y2  # 3 events drawn above 2
    assert "n = 2: stop at or above: DLTs 2" in svg and "n = 4: stop at or above: DLTs 3" in svg  # tooltips
    assert "evaluable n = 3&#10;DLTs = 1" in svg and ">1/3</text>" in svg and "Stop at or above" in svg
    assert "Evaluable subjects (n)" in svg and ">Subjects with DLTs</text>" in svg


def test_stopping_boundary_svg_shows_each_cohort_and_escapes_labels():
    from dashboard import figures_svg as S

    b = pd.DataFrame({"n": [3, 6], "deescalate_if_ge": [2, 3], "escalate_if_le": [0, 1], "eliminate_if_ge": [3, 4]})
    pts = pd.DataFrame({"label": ["DL1", "<b>DL2</b>"], "n": [3, 6], "events": [0, 2]})
    svg = S.stopping_boundary_svg(b, points=pts, event_label="DLTs", title="BOIN <pilot>")
    assert len(re.findall(r"<path ", svg)) == 3
    assert 'stroke-dasharray="10 6"' in svg and 'stroke-dasharray="3 5"' in svg  # de-escalate dashed, escalate dotted
    assert "DL1: 0/3" in svg and "&lt;b&gt;DL2&lt;/b&gt;: 2/6" in svg and "<b>" not in svg
    assert "BOIN &lt;pilot&gt;" in svg
    assert ">Eliminate dose (and higher) at or above</text>" in svg  # the packet's figure names it alike
    assert "<circle" in svg and "<rect" in svg  # each cohort its own symbol (circle, square)


def test_stopping_boundary_svg_names_the_dlt_window_and_keeps_long_labels_inside():
    """The pages pass the event with its DLT window: the title, the y axis and every tooltip say it. A title
    over 110 characters takes the body size and wraps at a word; the y axis wraps at 40 (the plot's height)."""
    from dashboard import figures_svg as S
    from safety.derive.dlt.stopping import chart_title, event_label

    b = pd.DataFrame({"n": [1, 2, 3], "stop_if_events_ge": [None, 2, 2]})
    pts = pd.DataFrame({"label": ["study"], "n": [3], "events": [1]})
    svg = S.stopping_boundary_svg(b, points=pts, event_label=event_label("dlt", (0, 21)),
                                  title=chart_title("boin", "dlt", (0, 21)))
    assert ('<text x="72" y="32" font-size="16">BOIN (Liu &amp; Yuan 2015) on DLT (onset days 0-21): events against '
            'the boundaries</text>') in svg  # 78 characters: one line at the body size
    assert 'font-size="16">Subjects with DLT (onset days 0-21)</text>' in svg
    assert "stop at or above: DLT (onset days 0-21) 2" in svg and "DLT (onset days 0-21) = 1" in svg
    long = S.stopping_boundary_svg(b, points=pts, event_label=event_label("crs_icans_grade3", (0, 21)),
                                   title=chart_title("bayesian_beta_binomial", "crs_icans_grade3", (0, 21)))
    assert ('<text x="72" y="22.4" font-size="16"><tspan x="72" dy="0">Bayesian beta-binomial (Thall, Simon &amp; '
            'Estey 1995) on CRS or ICANS grade &gt;= 3 (onset days 0-21): events</tspan><tspan x="72" dy="19.2">'
            'against the boundaries</tspan></text>') in long
    assert ('<tspan x="0" dy="0">Subjects with CRS or ICANS grade &gt;= 3</tspan>'
            '<tspan x="0" dy="19.2">(onset days 0-21)</tspan>') in long


def test_nice_step_gives_readable_integer_ticks():
    from dashboard.figures_svg import nice_step

    assert nice_step(4) == 1 and nice_step(12) == 2 and nice_step(30) == 5 and nice_step(120) == 20


# -- the response-rate bars beside the swimmer plot (SVG) --------------------------------------------------

def test_response_rate_svg_draws_each_rate_with_its_interval_and_names_what_counts():
    from dashboard import figures_svg as S

    rates = pd.DataFrame({"timepoint": ["Month 3", "Best overall"], "responders": [5, 15], "evaluable": [22, 22],
                          "pct": [100 * 5 / 22, 100 * 15 / 22], "ci_low": [7.8, 45.1], "ci_high": [45.4, 86.1]})
    svg = S.response_rate_svg(rates, "Lugano 2014 (CR + PR) <v2>")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "Objective response rate: Lugano 2014 (CR + PR) &lt;v2&gt;" in svg and "<v2>" not in svg
    assert ">5/22</text>" in svg and ">15/22</text>" in svg
    assert "Month 3: 5 of 22 (23%), 95% CI 8-45% (Clopper-Pearson)" in svg
    assert "Best overall: 15 of 22 (68%), 95% CI 45-86% (Clopper-Pearson)" in svg
    # bar heights follow the rates on the 0-100 axis: the best overall bar is 68/23 times the month-3 bar
    heights = [float(h) for h in re.findall(r'<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)" fill="#009E73"', svg)]
    assert len(heights) == 2 and heights[1] / heights[0] == pytest.approx(15 / 5, rel=0.01)
    # each whisker spans its interval: from the lower to the upper bound, the upper drawn higher
    whiskers = re.findall(r'<path d="M[\d.]+ ([\d.]+) V([\d.]+) ', svg)
    assert len(whiskers) == 2 and all(float(lo) > float(hi) for lo, hi in whiskers)


def test_numbers_at_risk_are_drawn_whole_and_the_competing_event_is_named_under_the_title():
    """The number at risk at day 0 sits on the plot's edge: cut there, 22 read as "2". The competing event, in a
    y title, ran off a plot of trial height; it is named under the title instead."""
    from dashboard import figures_outcomes as FO
    curve = pd.DataFrame({"day": [0, 9, 84, 365], "cumulative_incidence": [0.0, 0.045, 0.093, 0.093],
                          "n_at_risk": [22, 21, 18, 10]})
    risk = pd.DataFrame({"day": [0, 28, 100, 180, 365], "n_at_risk": [22, 21, 18, 16, 10]})
    fig = FO.cumulative_incidence_figure(curve, risk, "Non-relapse mortality",
                                         "death without prior progression/relapse",
                                         "progression/relapse (or death from it)")
    rows = [t for t in fig.data if t.mode == "text"]
    assert len(rows) == 1 and list(rows[0].text) == ["22", "21", "18", "16", "10"] and list(rows[0].x)[0] == 0
    assert rows[0].cliponaxis is False and fig.layout.yaxis2.ticklabelstandoff >= 10
    assert fig.layout.yaxis.title.text == "Cumulative incidence"
    assert fig.layout.title.subtitle.text == "Competing event: progression/relapse (or death from it)"
    km = FO.kaplan_meier_figure([("Duration of response", curve.rename(columns={"cumulative_incidence": "survival"}),
                                  risk)], "From first response", "Probability")
    assert all(t.cliponaxis is False for t in km.data if t.mode == "text") and km.layout.title.subtitle.text is None


def _profile_rows(reader, usubjid: str):
    """The rows the subject profile's timeline draws (dashboard.data's queries, its open_end_day included)."""
    from dashboard.data import OPEN_END_DAY
    p = {"u": usubjid}
    s = reader.sql(f"SELECT s.death_day, {OPEN_END_DAY} FROM subjects s WHERE usubjid = $u", p).iloc[0]
    aes = reader.sql("SELECT event_key, aedecod, aetoxgr, grading_system, aeser = 'Y' AS serious, onset_day, end_day, "
                     "duration_days FROM adverse_events WHERE usubjid = $u ORDER BY onset_day, aeseq", p)
    meds = reader.sql("SELECT med_class, cmdecod, start_day, end_day FROM medications WHERE usubjid = $u "
                      "AND med_class IN ('tocilizumab', 'corticosteroid', 'anakinra', 'vasopressor')", p)
    return s, aes, meds


def test_subject_timeline_draws_an_ongoing_ae_to_the_data_cut_where_the_listing_duration_ends(tmp_path, sample_database):
    """An AE with no end runs to the subject's death, else the data cut, as the AE listing's duration counts.
    ITNK-B-01-03-029's ongoing hypogammaglobulinaemia (day 57) stopped at the last response assessment (day 91),
    the last day charted, not at the cut (day 99, a duration of 43 days)."""
    import datetime as dt
    from safety.access import reader as access

    db = tmp_path / "s.duckdb"
    sample_database(db)
    u = "ITNK-B-01-03-029"
    with access.connect(db) as con:
        reader = access.StudyReader(con, access.Scope("ITNK-B-01", dt.date(2026, 9, 30)))
        s, aes, meds = _profile_rows(reader, u)
        responses = reader.sql("SELECT day, response FROM responses WHERE usubjid = $u", {"u": u})
    assert pd.isna(s["death_day"]) and s["open_end_day"] == 99 and responses["day"].max() == 91
    empty = pd.DataFrame(columns=["syndrome", "day", "grade"])
    fig = F.subject_timeline(u, aes, empty, meds, responses, s["death_day"], (0, 28), open_end_day=s["open_end_day"])
    ongoing = aes[aes["end_day"].isna()]
    assert len(ongoing) == 1
    (bar,) = [t for t in fig.data if t.type == "bar" and "Hypogammaglobulinemia" in hover_text(t)]
    onset, duration = ongoing.iloc[0][["onset_day", "duration_days"]]
    assert (onset, duration) == (57, 43)
    assert (bar.base[0], bar.x[0]) == (onset - 0.5, duration)  # the listing's duration, to the data cut
    assert "days 57 to ongoing (drawn to day 99, the data cut)" in hover_text(bar)


def test_subject_timeline_draws_a_medication_without_an_end_to_the_death(tmp_path, sample_database):
    """CD56-CART-01-01-012's dexamethasone (from day 4, no end recorded; died of ICANS on day 9) was drawn as given
    on day 4 only ("days 4-4"): it runs to the death now, as an ongoing AE does, and the hover says the end is not
    recorded."""
    import datetime as dt
    from safety.access import reader as access

    db = tmp_path / "s.duckdb"
    sample_database(db)
    u = "CD56-CART-01-01-012"
    with access.connect(db) as con:
        s, aes, meds = _profile_rows(access.StudyReader(con, access.Scope("CD56-CART-01", dt.date(2026, 9, 30))), u)
    assert (s["death_day"], s["open_end_day"]) == (9, 9)
    (dex,) = meds[meds["cmdecod"] == "DEXAMETHASONE"].itertuples()
    assert dex.start_day == 4 and pd.isna(dex.end_day)
    fig = F.subject_timeline(u, aes, pd.DataFrame(columns=["syndrome", "day", "grade"]), meds,
                             pd.DataFrame(columns=["day", "response"]), s["death_day"], (0, 28),
                             open_end_day=s["open_end_day"])
    (steroid,) = [t for t in fig.data if t.type == "bar" and list(t.y) == ["corticosteroid"]]
    assert (steroid.base[0], steroid.x[0]) == (3.5, 6)  # days 4 to 9, each a whole cell
    assert hover_text(steroid) == ("DEXAMETHASONE<br>from day 4, end date not recorded "
                                   "(drawn to day 9, the death)<extra></extra>")
    (tocilizumab,) = [t for t in fig.data if t.type == "bar" and list(t.y) == ["tocilizumab"]]
    assert "days 2-2" in hover_text(tocilizumab)  # an end recorded: as given


def test_delivered_text_is_shown_as_written_and_never_read_as_markup_or_placeholder():
    """A site's term "Rash <b>severe</b>" was drawn bold, a medication "100%{x}" showed the day in its name and a
    response written as a link was a link: delivered text is escaped and reaches a hover as data, not template."""
    from dashboard import figures_outcomes as FO

    u, term, med, resp = 'S<1>', "Rash <b>severe</b> & itch", "100%{x}", '<a href="http://x">CR</a>'
    aes = pd.DataFrame({"event_key": [f"{u}/AE/1"], "aedecod": [term], "aetoxgr": [3], "grading_system": ["CTCAE v5.0"],
                        "onset_day": [1], "end_day": [6], "serious": [True]})
    meds = pd.DataFrame({"med_class": ["corticosteroid"], "cmdecod": [med], "start_day": [2], "end_day": [3]})
    timeline = F.subject_timeline(u, aes, pd.DataFrame({"syndrome": ["CRS"], "day": [1], "grade": [2]}), meds,
                                  pd.DataFrame({"day": [28], "response": [resp]}), dlt_keys=[f"{u}/AE/1"])
    bars = pd.DataFrame({"aebodsys": ["Skin <i>disorders</i>"], "aedecod": [term], "worst_grade": [3], "subjects": [1]})
    events = pd.DataFrame({"usubjid": [u, u], "day": [5, 28], "kind": ["toxicity", "response"], "text": [term, resp],
                           "grade": [3, None]})
    swimmer = F.swimmer_plot(pd.DataFrame({"usubjid": [u], "label": [u], "end_day": [40], "status": ["in follow-up"],
                                           "cohort": ["DL1 <br>"]}), events)
    marker = FO.marker_over_time(pd.DataFrame({"usubjid": [u], "day": [30], "value": [3.0]}),
                                 pd.DataFrame({"usubjid": [u], "start_day": [31]}), "IgG", 4.0, "g/L", "low IgG")
    figures = [timeline, F.ae_soc_pt_bar(bars), swimmer, marker]
    hovers = " ".join(hover_text(t, i) for fig in figures for t in fig.data
                      for i in range(max(1, len(t["customdata"]) if t["customdata"] is not None else 1)))
    assert "Rash &lt;b&gt;severe&lt;/b&gt; &amp; itch" in hovers and "S&lt;1&gt;" in hovers
    assert "100%{x}" in hovers  # a name, in the data: Plotly fills no placeholder there
    assert "Skin &lt;i&gt;disorders&lt;/i&gt;" in hovers and "DL1 &lt;br&gt;" in hovers
    assert '&lt;a href="http://x"&gt;CR&lt;/a&gt;' in hovers
    for fig in figures:
        for t in fig.data:
            template = t.hovertemplate or ""
            assert not any(w in template for w in ("Rash", "100%", "href", "S&lt;", "S<1>", "Skin", "DL1")), template
            for labels in (t.y, t.x, t.text, (t.name,)):
                shown = [str(v) for v in (labels if labels is not None else [])]
                assert not any(w in v for v in shown for w in ("<b>", "<a ", "<1>", "<i>", "<br>")), shown
    (row,) = [t for t in timeline.data if t.type == "bar" and t.orientation == "h" and t.name == "Grade 3"]
    assert list(row.y) == ["Rash &lt;b&gt;severe&lt;/b&gt; &amp; itch [1]"]
    assert timeline.layout.title.text == "S&lt;1&gt;: timeline"
    (response,) = [t for t in timeline.data if t.text is not None and len(t.text) and "CR" in str(t.text[0])]
    assert list(response.text) == ['&lt;a href="http://x"&gt;CR&lt;/a&gt;']
