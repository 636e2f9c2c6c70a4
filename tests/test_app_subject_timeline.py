"""The subject profile's timeline and the swimmer plot through AppTest, on the CAR-ITNK sample study with records
added: an AE and a medication with no start date, a second CAR infusion and a late event (values by hand)."""
from __future__ import annotations

import json

import pytest

from test_app_pages import _metrics, _open, _plotly_values, ingest_itnk_with, serve
from hover import hover_text

# 01-01-005 (infused 2025-02-19): a grade 4 serious pneumonia with no start date, ended 2025-03-11 (day 20), an
# in-window DLT candidate awaiting the committee; tocilizumab with no start date, ended 2025-03-01 (day 10).
# 01-02-002 (infused 2024-12-15): a grade 4 MDS from 2026-03-10 (day 450), ongoing.
_AE = ("ITNK-B-01,AE,ITNK-B-01-01-005,96,Pneumonia,Pneumonia,Infections and infestations,MILD,4,Y,N,N,N,N,N,N,"
       "PROBABLY RELATED,NOT APPLICABLE,RECOVERED/RESOLVED,,2025-03-11,\n"
       "ITNK-B-01,AE,ITNK-B-01-02-002,97,Myelodysplastic syndrome,Myelodysplastic syndrome,\"Neoplasms benign, "
       "malignant and unspecified (incl cysts and polyps)\",MILD,4,Y,N,N,N,N,N,N,POSSIBLY RELATED,NOT APPLICABLE,"
       "NOT RECOVERED/NOT RESOLVED,2026-03-10,,\n")
_CM = ("ITNK-B-01,CM,ITNK-B-01-01-005,99,Tocilizumab,TOCILIZUMAB,CRS MANAGEMENT,Cytokine release syndrome,8,mg/kg,"
       "INTRAVENOUS,,2025-03-01\n")
# 01-03-003 (infused 2025-01-07, lymphodepletion days -5 to -3 in CM): a second CAR infusion on day 60
_EX = ("ITNK-B-01,EX,ITNK-B-01-03-003,2,CAR-ITNK cells,CELL THERAPY,1,10^6 cells/kg,ONCE,INTRAVENOUS,"
       "2025-03-08T10:00,2025-03-08T10:30,\n")


@pytest.fixture(scope="module")
def crafted_db(tmp_path_factory):
    return ingest_itnk_with(tmp_path_factory.mktemp("timeline"), {"ae.csv": _AE, "cm.csv": _CM, "ex.csv": _EX})


@pytest.fixture
def crafted_env(crafted_db, monkeypatch):
    yield from serve(crafted_db, monkeypatch)


def _figure(at) -> dict:
    [chart] = at.get("plotly_chart")
    return json.loads(chart.proto.spec)


def _traces(spec: dict, name: str) -> list[dict]:
    return [t for t in spec["data"] if t.get("name") == name]


def _profile(usubjid: str, whole: bool = False):
    at = _open("subject_profile", query={"usubjid": usubjid})
    if whole:
        [days] = [r for r in at.radio if r.label == "Days shown"]
        days.set_value(days.options[1]).run()
        assert not at.exception, [e.value for e in at.exception]
    return at


def test_an_ae_and_a_medication_without_a_start_date_are_marked_at_their_end_with_the_pending_dlt(crafted_env):
    """The pneumonia with no start date was drawn as a bar from day 0 ("days 0 to 20") and its SAE star and DLT?
    mark had no day (x = NaN), on the profile and the swimmer: it is now marked at its end, day 20, saying that
    its onset is unknown, and its SAE and DLT? marks stand there too. Tocilizumab with no start: the same."""
    spec = _figure(_profile("ITNK-B-01-01-005"))
    label = "Pneumonia [96]"
    assert not [t for t in spec["data"] if t.get("type") == "bar" and _plotly_values(t["y"]) == [label]]
    [unknown] = [t for t in _traces(spec, "Start date unknown (marked at its end)") if _plotly_values(t["y"]) == [label]]
    assert _plotly_values(unknown["x"]) == [20]
    assert "onset unknown, ended day 20" in hover_text(unknown)
    assert "DLT candidate, awaiting the committee" in hover_text(unknown)
    [sae] = _traces(spec, "Serious (SAE)")
    assert dict(zip(_plotly_values(sae["y"]), _plotly_values(sae["x"])))[label] == 20
    [dlt] = [t for t in _traces(spec, "DLT (? = pending)") if label in _plotly_values(t["y"])]
    assert (_plotly_values(dlt["x"]), dlt["text"]) == ([20], ["DLT?"])
    assert dlt["customdata"][0][1] == "onset unknown, marked at day 20 (its end)"
    [toci] = [t for t in spec["data"] if _plotly_values(t["y"]) == ["tocilizumab"]]
    assert toci["type"] == "scatter" and _plotly_values(toci["x"]) == [10]
    assert "start date not recorded, ended day 10" in hover_text(toci)

    swim = _figure(_open("swimmer"))
    [pending] = _traces(swim, "DLT candidate pending")
    mine = [(x, c) for x, c in zip(_plotly_values(pending["x"]), pending["customdata"]) if c[0] == "ITNK-B-01-01-005"]
    assert [(x, c[2]) for x, c in mine] == [(20, "onset unknown, marked at its end, day")]
    grade4 = [(x, c[1], c[2]) for t in _traces(swim, "Toxicity grade 4")
              for x, c in zip(_plotly_values(t["x"]), t["customdata"]) if c[0] == "ITNK-B-01-01-005"]
    assert (20, "Pneumonia", "onset unknown, marked at its end, day") in grade4


def test_the_profile_shows_every_car_infusion_and_the_lymphodepletion(crafted_env):
    """01-03-003's second CAR infusion (day 60) and the lymphodepletion (days -5 to -3) appeared nowhere on the
    profile: the timeline now marks both infusions, numbered, with a dashed line down every row, and the
    lymphodepleting doses as bars; the metrics say 2 infusions and the summary line their days."""
    at = _profile("ITNK-B-01-03-003", whole=True)
    assert _metrics(at)["CAR infusions"] == "2"
    assert any("**CAR infusions:** day 0, day 60 · **Lymphodepletion:** days -5 to -3 (CYCLOPHOSPHAMIDE, "
               "FLUDARABINE)" in m.value for m in at.markdown)
    spec = _figure(at)
    [car] = _traces(spec, "CAR infusion")
    assert (_plotly_values(car["x"]), car["text"]) == ([0, 60], ["#1", "#2"])
    ld = [t for t in spec["data"] if t.get("type") == "bar" and _plotly_values(t["y"]) == ["Lymphodepletion"]]
    assert sorted((_plotly_values(t["base"])[0], _plotly_values(t["x"])[0]) for t in ld) == [(-5.5, 3), (-5.5, 3)]
    lines = [sh for sh in spec["layout"]["shapes"] if sh["type"] == "line" and sh["x0"] == 60]
    assert len(lines) == 4 and all(sh["line"]["dash"] == "dash" for sh in lines)  # down the four rows


def test_whole_follow_up_reaches_the_last_event_and_the_swimmer_gives_the_real_follow_up(crafted_env):
    """01-02-002's grade 4 MDS began on day 450, its last known alive day: "Whole follow-up (to day 400)" drew
    days -10 to 400 and left it out, and the swimmer's hover said "followed to day 365". The profile's range now
    reaches day 450, the swimmer's hover gives day 450 and a caption names the event beyond its month-12 edge."""
    at = _profile("ITNK-B-01-02-002", whole=True)
    [days] = [r for r in at.radio if r.label == "Days shown"]
    assert days.value == "Whole follow-up (to day 450)"
    spec = _figure(at)
    [mds] = [t for t in spec["data"] if t["type"] == "bar" and _plotly_values(t["y"]) == ["Myelodysplastic syndrome [97]"]]
    assert _plotly_values(mds["base"]) == [449.5]
    assert spec["layout"]["xaxis"]["range"] == [-10, 460]

    at = _open("swimmer")
    swim = _figure(at)
    followed = {c[0]: c[2] for t in swim["data"] if t.get("type") == "bar" for c in t["customdata"]}
    assert followed["ITNK-B-01-02-002"] == "day 450 (beyond day 365, where the bar stops)"
    assert followed["ITNK-B-01-01-005"].startswith("day ") and "beyond" not in followed["ITNK-B-01-01-005"]
    assert "After month 12 (day 365), not drawn: ITNK-B-01-02-002 Myelodysplastic syndrome day 450. The subject " \
           "profile shows them." in [c.value.replace("\\", "") for c in at.caption]  # Markdown escapes taken off
