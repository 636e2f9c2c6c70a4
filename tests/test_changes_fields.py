"""'What changed' compares the columns the schema registry declares: a corticosteroid started during a CRS
episode and a DLT candidate moving out of the DLT window are reported."""
from __future__ import annotations

import duckdb
import pytest
from test_export_fixtures import CUT1, CUT2, STUDY, build_db

from safety.access.reader import Scope, StudyReader
from safety.review import changes


@pytest.fixture
def con(tmp_path):
    path = build_db(tmp_path / "study.duckdb")
    c = duckdb.connect(str(path))
    # between the cuts: dexamethasone recorded for S01's CRS episode; the R7 candidate re-dated out of the window
    c.execute("UPDATE toxicity_episodes SET corticosteroid = true, corticosteroid_first_day = 3 "
              "WHERE data_cut = $c AND event_key = 'CT-001-S01/CRS/1'", {"c": CUT2})
    c.execute("UPDATE dlt_candidates SET in_window = false WHERE data_cut = $c "
              "AND event_key = 'CT-001-S01/LB/NEUT-D28'", {"c": CUT2})
    yield c
    c.close()


def test_corticosteroid_and_in_window_changes_are_reported(con):
    df = changes.changes_since(StudyReader(con, Scope(STUDY, CUT2)), CUT1)
    crs = df[(df["event_key"] == "CT-001-S01/CRS/1") & (df["change"] == "changed")].iloc[0]
    assert crs["category"] == "crs_episode" and "corticosteroid" in list(crs["changed_fields"])
    assert "corticosteroid: false → true" in crs["changes"]
    dlt = df[(df["event_key"] == "CT-001-S01/LB/NEUT-D28") & (df["category"] == "dlt_candidate")].iloc[0]
    assert dlt["change"] == "changed" and list(dlt["changed_fields"]) == ["in_window"]
    assert dlt["changes"] == "in_window: true → false"


def test_a_field_list_that_drifts_from_the_schema_fails_loudly(con, monkeypatch):
    monkeypatch.setattr(changes, "_EPISODE_FIELDS", changes._EPISODE_FIELDS + ["corticosteroids"])
    with pytest.raises(KeyError, match="corticosteroids"):
        changes.changes_since(StudyReader(con, Scope(STUDY, CUT2)), CUT1)


def test_a_candidate_that_moves_to_another_rule_is_changed_not_new_and_removed(con):
    """A corrected delivery moves S01's cytopenia candidate to another rule (R7 to R8, as a grade correction moves a
    CRS from R2 to R3): the list had the same event once as new and once as removed, and the committee questions
    counted a new DLT candidate; it is one candidate changed, its rule among the changed fields."""
    key = "CT-001-S01/LB/NEUT-D28"
    con.execute("UPDATE dlt_candidates SET rule_id = 'R8', reason = 'moved' WHERE data_cut = $c AND event_key = $k",
                {"c": CUT2, "k": key})
    df = changes.changes_since(StudyReader(con, Scope(STUDY, CUT2)), CUT1)
    rows = df[(df["event_key"] == key) & (df["category"] == "dlt_candidate")]
    assert rows["change"].tolist() == ["changed"]
    assert {"rule_id", "reason"} <= set(rows.iloc[0]["changed_fields"])
    assert "rule_id: R7 → R8" in rows.iloc[0]["changes"]
