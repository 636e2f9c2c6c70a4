"""A fatal AE without any date is a death at the cut, its day unknown, flagged and counted.

The load withheld the fatal outcome (and the results-in-death flag) of an AE with no end when DM and DS recorded
no death, since such a death may have come after the cut; a grade 5 alone with no end read the same way. An AE with
no date at all (no AESTDTC, no AEENDTC) was caught by it too: the death vanished from the deaths table, the
subject read alive, non-relapse mortality and the treatment-related deaths of the stopping rules never saw it, and
nothing said so. A record without any date is known at the cut it came in (as an undated DS death record), so such
an AE is a death at the cut of unknown day, as DM and DS deaths without a date already were (docs/outcomes.md), and
the best date the data allow dates it (DM, DS); a DM death date after the cut still makes it a later death.
"""
from __future__ import annotations

import duckdb
import pandas as pd

from safety.access.reader import Scope, StudyReader
from safety.derive.outcomes.deaths import UNDATED_DEATHS_NOTE
from safety.export.listings import build_listing
from safety.export.outcomes import table_deaths_nrm
from safety.ingest import ingest_study
from test_ingest_fixtures import AE, DM, DOMAINS, STUDY, STUDY_YAML, make_study

CUT = "2024-03-31"


def _ae(usubjid: str, seq: int, term: str, grade: str, rel: str, out: str = "", sdth: str = "") -> dict:
    return {**AE.iloc[0].to_dict(), "USUBJID": usubjid, "AESEQ": seq, "AETERM": term, "AEDECOD": term.upper(),
            "AEBODSYS": "GEN", "AETOXGR": grade, "AESER": "Y", "AESDTH": sdth, "AEREL": rel, "AEOUT": out,
            "AESTDTC": "", "AEENDTC": ""}


def _load(tmp_path):
    """S-003 (infused 2024-03-12, last known alive day 3): a related multiple organ failure, grade 5, FATAL, AESDTH Y,
    no dates, no death in DM or DS. S-001 (infused 2024-02-01, known alive on day 29): an unrelated grade 5 cardiac
    arrest, nothing else, no dates. S-002: an undated unrelated fatal sepsis beside its DS death of 2024-03-20 (after
    a progression on day 29). S-004: an undated fatal stroke, and DM dates the death 2024-04-10, after the cut."""
    ae = pd.DataFrame([_ae("S-003", 7, "Multiple organ dysfunction syndrome", "5", "POSSIBLE", "FATAL", "Y"),
                       _ae("S-001", 8, "Cardiac arrest", "5", "NOT RELATED"),
                       _ae("S-002", 9, "Sepsis", "5", "NOT RELATED", "FATAL", "Y"),
                       _ae("S-004", 2, "Stroke", "5", "NOT RELATED", "FATAL", "Y")])
    dm = DM.assign(DTHDTC=["", "", "", "2024-04-10", ""])
    yaml = STUDY_YAML + "stopping_rule: {event: treatment_related_death, min_n: 1}\n"
    study = make_study(tmp_path / "s", domains=dict(DOMAINS, dm=dm, ae=pd.concat([AE, ae], ignore_index=True)),
                       study_yaml=yaml)
    db = tmp_path / "db.duckdb"
    result = ingest_study(study, db, cutoff=CUT)
    return db, result


def test_a_fatal_ae_without_dates_is_a_death_of_unknown_day_in_deaths_nrm_and_the_stopping_rule(tmp_path):
    db, result = _load(tmp_path)
    con = duckdb.connect(str(db), read_only=True)
    try:
        q = lambda sql: con.execute(sql).fetchall()  # noqa: E731
        ae = {r[0]: r[1:] for r in q("SELECT event_key, aeout, aesdth, ongoing FROM adverse_events "
                                     "WHERE aest_date IS NULL AND aeen_date IS NULL AND aetoxgr = 5")}
        subj = {r[0]: r[1:] for r in q("SELECT usubjid, status, death_date, death_day, death_source FROM subjects")}
        deaths = {r[0]: r[1:] for r in q(
            "SELECT usubjid, death_date, death_day, sources, fatal_ae_key, non_relapse, treatment_related, "
            "nrm_by_day28 FROM deaths")}
        candidates = {r[0]: r[1:] for r in q("SELECT event_key, rule_id, in_window, evidence FROM dlt_candidates")}
        ev = {r[0]: r[1:] for r in q("SELECT usubjid, treatment_related_death, evaluable, reason FROM dlt_evaluability")}
        rule = q("SELECT evaluable_n, events FROM stopping_rule_status")
        notes = q("SELECT string_agg(notes, ' ') FROM load_log")[0][0] or ""
    finally:
        con.close()

    # S-003: the AE keeps its outcome and flag, ended in the death (not ongoing); the subject died, day unknown
    assert ae["S-003/AE/7"] == ("FATAL", "Y", False)
    assert subj["S-003"] == ("died", None, None, "AE")
    assert deaths["S-003"] == (None, None, "AE", "S-003/AE/7", True, True, None)
    # flagged: the load's note names it, the day is blank wherever the death is shown
    assert "S-003 (fatal AE without AESTDTC or AEENDTC)" in notes
    # the DLT screening sees a fatal event (R1, not the grade >= 4 rule R9), in the window by its unknown onset
    assert candidates["S-003/AE/7"][:2] == ("R1", True)
    assert "fatal outcome; onset date unknown" in candidates["S-003/AE/7"][2]
    # a treatment-related death of unknown day, in the window (known alive only to day 3): the rule counts it
    assert ev["S-003"][0] is True
    assert ev["S-003"][2].startswith("died on a day not recorded (known alive on day 3)")

    # S-001: grade 5 alone, undated, unrelated: a non-relapse death of unknown day; known alive on day 29, so not
    # one the rule can place in the window (days 0-28), and the subject stays followed through it
    assert ae["S-001/AE/8"] == (None, None, False)
    assert subj["S-001"] == ("died", None, None, "AE")
    assert deaths["S-001"][:6] == (None, None, "AE", "S-001/AE/8", True, True)
    assert ev["S-001"][:3] == (False, True, "followed through day 28")

    # S-002: the best date the data allow, DS's; the undated fatal AE is the same death
    assert str(subj["S-002"][1]) == "2024-03-20" and subj["S-002"][3] == "DS"
    assert deaths["S-002"][2:4] == ("DS, AE", "S-002/AE/9")
    assert str(deaths["S-002"][0]) == "2024-03-20"

    # S-004: DM dates the death after the cut: no death at the cut, the AE's outcome withheld and ongoing
    assert ae["S-004/AE/2"] == (None, None, True)
    assert subj["S-004"][0] != "died" and "S-004" not in deaths

    # the stopping rule on treatment-related deaths: 1 of 3 evaluable (S-001, S-002 followed through, S-003)
    assert rule == [(3, 1)]

    # the packet: the death listing and the deaths/NRM table count it, with the day blank and the note
    con = duckdb.connect(str(db), read_only=True)
    try:
        reader = StudyReader(con, Scope(STUDY, pd.Timestamp(CUT).date()))
        listing = build_listing(reader, "deaths").set_index("usubjid")
        table = table_deaths_nrm(reader)
    finally:
        con.close()
    assert pd.isna(listing.loc["S-003", "death_day"]) and listing.loc["S-003", "sources"] == "AE"
    assert table.set_index("Row").loc["Deaths, any cause", "Statistic"] == "3 (100.0)"
    assert UNDATED_DEATHS_NOTE.format(n=2) in table.attrs["notes"]
