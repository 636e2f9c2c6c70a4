"""Non-relapse deaths without a date are said to be missing from the by-day NRM counts, on the page and in the packet.

A death of unknown day (DM DTHFL Y without DTHDTC, a DS death record without DSSTDTC) is in the deaths and in
"Deaths, any cause", but in no "Non-relapse deaths by day N" count, and the NRM estimate censors it at the last day
known alive (docs/outcomes.md). The Outcomes page and the packet's deaths_nrm table said only how many deaths had no
date, so a committee could read a lower NRM without knowing how many non-relapse deaths it leaves out. Both now say
it, in the same words (safety.derive.outcomes.deaths.UNDATED_NRM_NOTE).
"""
from __future__ import annotations

import pandas as pd

from safety.access.reader import Scope, StudyReader, connect
from safety.derive.outcomes.deaths import UNDATED_DEATHS_NOTE, UNDATED_NRM_NOTE
from safety.export.outcomes import table_deaths_nrm
from safety.ingest import ingest_study
from test_app_pages import _metrics, _open, serve
from test_ingest_fixtures import STUDY
from test_undated_death_dlt import undated_deaths_study

CUT = "2024-03-31"


def _load(tmp_path):
    """S-003 (infused): DM DTHFL Y without DTHDTC, no cause: a non-relapse death of unknown day. S-001 (infused): a
    DS death 'Progressive disease' without DSSTDTC: a relapse death of unknown day. S-002: DS dates its death on day
    39, after a progression on day 29."""
    study = undated_deaths_study(tmp_path / "s", "Progressive disease")
    db = tmp_path / "db.duckdb"
    ingest_study(study, db, cutoff=CUT)
    return db


def test_the_nrm_table_and_page_say_how_many_undated_non_relapse_deaths_the_by_day_counts_leave_out(tmp_path,
                                                                                                  monkeypatch):
    db = _load(tmp_path)
    con = connect(db)
    try:
        deaths = con.execute("SELECT usubjid, death_day, non_relapse, treatment_related FROM deaths "
                             "ORDER BY usubjid").fetchall()
        table = table_deaths_nrm(StudyReader(con, Scope(STUDY, pd.Timestamp(CUT).date())))
    finally:
        con.close()
    assert deaths == [("S-001", None, False, False), ("S-002", 39, False, False), ("S-003", None, True, True)]
    rows = table.set_index("Row")["Statistic"]
    assert rows["Deaths, any cause"] == "3 (100.0)"
    assert rows["Non-relapse deaths by day 28"] == "0"
    # two deaths without a date; one of them non-relapse, left out of the by-day counts, and the table says so
    nrm_note = UNDATED_NRM_NOTE.format(n=1)
    assert UNDATED_DEATHS_NOTE.format(n=2) in table.attrs["notes"]
    assert nrm_note in table.attrs["notes"]
    assert nrm_note.startswith("1 non-relapse death(s) of infused subjects without a recorded date are not in the "
                               "'Non-relapse deaths by day' counts")

    # the Outcomes page says the same words beside the same counts
    app = serve(db, monkeypatch)
    next(app)
    try:
        at = _open("outcomes", session={"outcomes_tab": "Deaths & NRM"})
    finally:
        next(app, None)
    assert _metrics(at)["Non-relapse deaths by day 28"].startswith("0/3")
    warnings = [w.value for w in at.warning]
    assert nrm_note in warnings and UNDATED_DEATHS_NOTE.format(n=2) in warnings
