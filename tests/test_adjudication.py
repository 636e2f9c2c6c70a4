"""Committee adjudication: validation, append-only history surviving reloads, re-review, counts, live status."""
from __future__ import annotations

import datetime as dt

import pytest

from safety.access.reader import Scope, StudyReader
from safety.derive.dlt import decisions as adj
from safety.derive.dlt.evaluability import live_evaluability
from safety.review.dlt_status import live_stopping_status
from safety.derive.dlt.screening import derive_dlt
from safety.derive.dlt.stopping import derive_stopping_status
from safety.review.store import ReviewStore
from test_dlt_support import CUT, STUDY, add_ae, add_subject, config, new_db, rows

CUT2 = CUT + dt.timedelta(days=31)


def load(con, cut, store, pneumonitis=(3, 5, 20), cohort2=True, cut_day=60, term="Pneumonitis"):
    """One data cut: S-1 with a related AE (grade, onset, end), S-2 with a non-candidate AE, S-3 early."""
    add_subject(con, "S-1", cut=cut)
    g, on, end = pneumonitis
    add_ae(con, "S-1", 1, term, g, on, end, cut=cut, cut_day=cut_day)
    add_subject(con, "S-2", cut=cut, cohort="C2" if cohort2 else "C1")
    add_ae(con, "S-2", 1, "Rash", 2, 3, 6, cut=cut)
    add_subject(con, "S-3", cut=cut, last_day=10)
    add_ae(con, "S-3", 1, "Colitis", 3, 2, 15, cut=cut)
    derive_dlt(con, STUDY, cut, config(), review_store=store)
    derive_stopping_status(con, STUDY, cut, config(), review_store=store)
    return StudyReader(con, Scope(STUDY, cut))


@pytest.fixture
def env(tmp_path):
    con = new_db(tmp_path / "s.duckdb")
    store = ReviewStore(tmp_path / "s.review.sqlite")
    yield con, store
    con.close()


def by_key(df):
    return {r["event_key"]: r for r in df.astype(object).where(df.notna(), None).to_dict("records")}


def test_record_decision_validates_event_decision_and_rationale(env):
    con, store = env
    r = load(con, CUT, store)
    with pytest.raises(ValueError, match="not a DLT candidate"):
        adj.record_decision(store, r, "S-9/AE/1", "confirmed", "x", "dr a")
    with pytest.raises(ValueError, match="decision must be one of"):
        adj.record_decision(store, r, "S-1/AE/1", "accepted", "x", "dr a")
    with pytest.raises(ValueError, match="rationale"):
        adj.record_decision(store, r, "S-1/AE/1", "confirmed", "  ", "dr a")
    with pytest.raises(ValueError, match="already a screened candidate"):
        adj.record_decision(store, r, "S-1/AE/1", "added", "x", "dr a")
    with pytest.raises(ValueError, match="no adverse event"):
        adj.record_decision(store, r, "S-2/AE/99", "added", "x", "dr a")
    with pytest.raises(ValueError, match="no decision in force"):
        adj.record_decision(store, r, "S-1/AE/1", "withdrawn", "x", "dr a")
    assert store.adjudication_history(STUDY) == []
    adj.record_decision(store, r, "S-2/AE/1", "added", "rash with organ involvement, SRC judgement", "dr b")
    [h] = store.adjudication_history(STUDY)
    assert (h["event_key"], h["decision"], h["usubjid"], h["event_fingerprint"]) == ("S-2/AE/1", "added", "S-2", "2|3|6|4|RASH")


def test_decisions_survive_reload_new_cut_and_rederivation(env):
    con, store = env
    r1 = load(con, CUT, store)
    adj.record_decision(store, r1, "S-1/AE/1", "confirmed", "meets R6, no alternative cause", "dr a")
    adj.record_decision(store, r1, "S-3/AE/1", "rejected", "infectious colitis (C. difficile)", "dr a")
    r2 = load(con, CUT2, store)            # a new cut with the same events
    derive_dlt(con, STUDY, CUT, config(), review_store=store)   # and the old cut re-derived
    for reader in (r1, r2):
        t = by_key(adj.review_table(reader, store))
        assert t["S-1/AE/1"]["status"] == "confirmed" and t["S-1/AE/1"]["needs_rereview"] is False
        assert t["S-1/AE/1"]["reviewer"] == "dr a" and t["S-1/AE/1"]["rationale"] == "meets R6, no alternative cause"
        assert t["S-3/AE/1"]["status"] == "rejected" and t["S-3/AE/1"]["pending"] is False
    assert len(store.adjudication_history(STUDY)) == 2
    ev = {x["usubjid"]: x for x in rows(con, "SELECT * FROM dlt_evaluability WHERE data_cut = $c", {"c": CUT2})}
    assert ev["S-1"]["dlt_confirmed"] is True and ev["S-1"]["reason"] == "DLT candidate confirmed"


def test_correction_is_a_new_row_and_latest_wins(env):
    con, store = env
    r = load(con, CUT, store)
    adj.record_decision(store, r, "S-1/AE/1", "confirmed", "first view", "dr a")
    adj.record_decision(store, r, "S-1/AE/1", "rejected", "source review: grade 2", "dr b")
    hist = store.adjudication_history(STUDY)
    assert [h["decision"] for h in hist] == ["confirmed", "rejected"]
    t = by_key(adj.review_table(r, store))
    assert t["S-1/AE/1"]["decision"] == "rejected" and t["S-1/AE/1"]["counts_as_dlt"] is False
    adj.record_decision(store, r, "S-1/AE/1", "withdrawn", "decision withdrawn pending new data", "dr b")
    t = by_key(adj.review_table(r, store))
    assert t["S-1/AE/1"]["status"] == "pending (earlier decision withdrawn)" and t["S-1/AE/1"]["pending"] is True


def test_a_decision_recorded_later_on_an_earlier_cut_does_not_override_the_later_cuts(env):
    """March confirmed, September rejected, then the March packet issued again with 'confirmed as at March': the
    September view keeps September's rejection (the newest row had won, a DLT again without re-review); the March
    view shows March's decision."""
    con, store = env
    r1 = load(con, CUT, store)
    r2 = load(con, CUT2, store)
    adj.record_decision(store, r1, "S-1/AE/1", "confirmed", "March minutes", "dr a")
    adj.record_decision(store, r2, "S-1/AE/1", "rejected", "September: not a DLT after all", "dr a")
    adj.record_decision(store, r1, "S-1/AE/1", "confirmed", "March packet issued again: confirmed as at March", "dr a")
    september, march = by_key(adj.review_table(r2, store))["S-1/AE/1"], by_key(adj.review_table(r1, store))["S-1/AE/1"]
    assert (september["decision"], september["counts_as_dlt"], september["rationale"]) == (
        "rejected", False, "September: not a DLT after all")
    assert (march["decision"], march["rationale"]) == ("confirmed", "March packet issued again: confirmed as at March")


def test_reload_changing_grade_or_dates_flags_rereview(env):
    con, store = env
    r1 = load(con, CUT, store)
    adj.record_decision(store, r1, "S-1/AE/1", "confirmed", "DLT", "dr a")
    r2 = load(con, CUT2, store, pneumonitis=(4, 5, 20))   # grade corrected 3 -> 4
    t = by_key(adj.review_table(r2, store))
    row = t["S-1/AE/1"]
    assert row["needs_rereview"] is True
    assert row["status"] == "confirmed; event changed since the decision, re-review"
    assert (row["adjudicated_fingerprint"], row["event_fingerprint"]) == ("3|5|20|16|PNEUMONITIS", "4|5|20|16|PNEUMONITIS")
    assert row["counts_as_dlt"] is True  # still counted until the committee decides again
    counts = adj.dlt_counts(r2, store)
    total = counts[counts["cohort"].isna()].iloc[0]
    assert (total["confirmed"], total["needs_rereview"]) == (1, 1)


def test_a_key_that_passes_to_another_event_flags_rereview(env):
    """A corrected delivery drops an AE and numbers the rest again: AESEQ 1 is now another event of the same grade
    and dates. The decision on the old event must not pass silently to the new one: it is flagged for re-review
    (a confirmed DLT still counts until the committee decides again); its fingerprint names the term."""
    con, store = env
    r1 = load(con, CUT, store)
    adj.record_decision(store, r1, "S-1/AE/1", "confirmed", "pneumonitis is a DLT", "dr a")
    r2 = load(con, CUT2, store, term="Colitis")
    row = by_key(adj.review_table(r2, store))["S-1/AE/1"]
    assert (row["needs_rereview"], row["status"]) == (True, "confirmed; event changed since the decision, re-review")
    assert (row["adjudicated_fingerprint"], row["event_fingerprint"]) == ("3|5|20|16|PNEUMONITIS", "3|5|20|16|COLITIS")
    assert row["counts_as_dlt"] is True


def test_a_decision_stored_before_the_term_was_fingerprinted_is_not_flagged_when_the_event_is_unchanged(env):
    """Decisions recorded by an earlier version carry grade|onset|end|duration only: the same event compares equal
    on those four fields, so an upgrade does not send every decision back to the committee; a changed grade does."""
    con, store = env
    load(con, CUT, store)
    key = "S-1/AE/1"
    store.add_adjudication(studyid=STUDY, event_key=key, usubjid="S-1", rule_id="R6", decision="confirmed",
                           rationale="DLT", reviewer="dr a", data_cut=str(CUT), event_fingerprint="3|5|20|16")
    for cut, grade, flagged in ((CUT2, 3, False), (CUT2 + dt.timedelta(days=31), 4, True)):
        row = by_key(adj.review_table(load(con, cut, store, pneumonitis=(grade, 5, 20)), store))[key]
        assert row["needs_rereview"] is flagged, (grade, row["status"])


def test_event_no_longer_screened_is_flagged(env):
    con, store = env
    r1 = load(con, CUT, store)
    adj.record_decision(store, r1, "S-1/AE/1", "confirmed", "DLT", "dr a")
    r2 = load(con, CUT2, store, pneumonitis=(3, 5, 10))   # end date corrected: 6 days, below R6
    t = by_key(adj.review_table(r2, store))
    assert t["S-1/AE/1"]["status"] == "event no longer screened, re-review"
    assert t["S-1/AE/1"]["screened"] is False and t["S-1/AE/1"]["needs_rereview"] is True


def test_ongoing_event_growing_to_the_cut_is_not_a_change(env):
    con, store = env
    r1 = load(con, CUT, store, pneumonitis=(3, 5, None), cut_day=30)
    adj.record_decision(store, r1, "S-1/AE/1", "confirmed", "DLT", "dr a")
    r2 = load(con, CUT2, store, pneumonitis=(3, 5, None), cut_day=61)
    assert by_key(adj.review_table(r2, store))["S-1/AE/1"]["needs_rereview"] is False


def test_counts_per_cohort_and_live_status_versus_table(env):
    con, store = env
    r = load(con, CUT, store)
    before = rows(con, "SELECT * FROM stopping_rule_status")[0]
    assert before["computed_from"] == "adjudicated" and before["events"] == 0 and before["pending"] == 2
    adj.record_decision(store, r, "S-1/AE/1", "confirmed", "DLT", "dr a")
    adj.record_decision(store, r, "S-2/AE/1", "added", "SRC judgement", "dr a")
    counts = {c if isinstance(c, str) else "all": row for c, row in
              zip(adj.dlt_counts(r, store)["cohort"], adj.dlt_counts(r, store).to_dict("records"))}
    assert (counts["C1"]["confirmed"], counts["C1"]["pending"], counts["C1"]["subjects"]) == (1, 1, 2)
    assert (counts["C2"]["confirmed"], counts["C2"]["pending"]) == (1, 0)
    assert counts["all"]["subjects_with_dlt"] == 2
    [live] = live_stopping_status(r, store, config()).to_dict("records")
    assert (live["evaluable_n"], live["events"], live["pending"]) == (2, 2, 1)   # S-3 pending, not evaluable yet
    assert "With the 1 pending candidate confirmed (3 of 3) the decision would still be stop." in live["sentence"]
    assert (live["decision_if_pending_confirmed"], live["pending_changes_decision"]) == ("stop", False)
    # the table keeps the state at load time
    assert rows(con, "SELECT events FROM stopping_rule_status")[0]["events"] == 0
    with pytest.raises(PermissionError):
        live_stopping_status(StudyReader(con, Scope(STUDY, CUT, sites=("S1",))), store, config())


def test_confirmed_dlt_makes_a_short_follow_up_subject_evaluable(env):
    con, store = env
    r = load(con, CUT, store)
    ev = {x["usubjid"]: x for x in live_evaluability(r, store).to_dict("records")}
    assert ev["S-3"]["evaluable"] is False
    adj.record_decision(store, r, "S-3/AE/1", "confirmed", "DLT", "dr a")
    ev = {x["usubjid"]: x for x in live_evaluability(r, store).to_dict("records")}
    assert ev["S-3"]["evaluable"] is True and ev["S-3"]["reason"] == "DLT candidate confirmed"


def test_site_scoped_review_table_hides_other_sites(env):
    con, store = env
    add_subject(con, "S-8", siteid="S2")
    add_ae(con, "S-8", 1, "Pneumonitis", 3, 5, 20)
    r = load(con, CUT, store)
    adj.record_decision(store, r, "S-8/AE/1", "confirmed", "DLT", "dr a")
    site1 = StudyReader(con, Scope(STUDY, CUT, sites=("S1",)))
    assert "S-8/AE/1" not in set(adj.review_table(site1, store)["event_key"])
    assert "S-8/AE/1" in set(adj.review_table(r, store)["event_key"])


def test_a_decided_episode_death_or_lab_event_still_in_the_cut_but_no_longer_screened_shows_its_current_values(
        env):
    """A confirmed CRS grade 4 downgraded to 2, an ANC grade 4 on day 28 now grade 3 and a death now with a fatal AE
    are still in the cut: 'no longer screened' with their current grade, not 'no longer in the data' with blanks
    (as an AE key already was). An episode that is really gone stays 'no longer in the data'."""
    from safety.derive.dlt.vanished import vanished_decisions
    from test_dlt_support import add_episode, add_lab_grade

    con, store = env

    def cut(day_cut, crs_grade, anc_grade, fatal_ae, gone_episode):
        add_subject(con, "S-1", cut=day_cut)
        add_episode(con, "S-1", "CRS", 1, 2, crs_grade, 4, cut=day_cut)
        add_subject(con, "S-2", cut=day_cut)
        add_lab_grade(con, "S-2", "NEUT", 28, anc_grade, cut=day_cut)
        add_subject(con, "S-3", cut=day_cut, death_day=9, death_cause="multi-organ failure")
        if fatal_ae:
            add_ae(con, "S-3", 1, "Multiple organ dysfunction syndrome", 5, 8, 9, cut=day_cut, aesdth="Y")
        add_subject(con, "S-4", cut=day_cut)
        if not gone_episode:
            add_episode(con, "S-4", "ICANS", 1, 3, 4, 2, cut=day_cut)
        derive_dlt(con, STUDY, day_cut, config(), review_store=store)
        return StudyReader(con, Scope(STUDY, day_cut))

    r1 = cut(CUT, 4, 4, False, False)
    for key in ("S-1/CRS/1", "S-2/LB/NEUT-D28", "S-3/DEATH", "S-4/ICANS/1"):
        adj.record_decision(store, r1, key, "confirmed", "DLT", "dr a")
    r2 = cut(CUT2, 2, 3, True, True)
    t = by_key(adj.review_table(r2, store))
    got = {k: (t[k]["status"], t[k]["source"], t[k]["term"], t[k]["grade"], t[k]["onset_day"], t[k]["in_window"],
               t[k]["evidence"])
           for k in ("S-1/CRS/1", "S-2/LB/NEUT-D28", "S-3/DEATH", "S-4/ICANS/1")}
    assert got == {
        "S-1/CRS/1": ("event no longer screened, re-review", "CRS episode", "CRS", 2, 2, True, "CRS grade 2 on days 2-5"),
        "S-2/LB/NEUT-D28": ("event no longer screened, re-review", "lab", "NEUT", 3, 28, True,
                            "NEUT grade 3 on day 28 (first lab on or after day 28)"),
        "S-3/DEATH": ("event no longer screened, re-review", "death", "Death", 5, 9, True,
                      "Death on day 9 (cause: multi-organ failure)"),
        "S-4/ICANS/1": ("event no longer in the data: re-review", None, None, None, None, None,
                        "event not in this data cut"),
    }
    assert all(t[k]["counts_as_dlt"] and t[k]["needs_rereview"] for k in got)
    # the load's warning names only the event really gone
    assert [v["event_key"] for v in vanished_decisions(con, STUDY, CUT2, store)] == ["S-4/ICANS/1"]


def test_a_dlt_added_at_an_earlier_cut_is_not_new_in_the_meeting_view_nor_the_packet(env):
    """An added DLT is never a screened candidate: it was in the previous cut's DLT review through its decision, so
    neither the overview's 'new or pending' list nor the packet's DLT listing calls it new at the next cut."""
    from safety.export.listings import listing_dlt
    from safety.review.meeting import committee_status, dlt_candidate_rows

    con, store = env
    r1 = load(con, CUT, store)
    adj.record_decision(store, r1, "S-2/AE/1", "added", "rash with organ involvement", "dr a")
    load(con, CUT2, store)
    adj.record_decision(store, StudyReader(con, Scope(STUDY, CUT2)), "S-1/AE/1", "confirmed", "meets R6", "dr a")
    r2 = StudyReader(con, Scope(STUDY, CUT2, previous_cut=CUT))
    meeting = dlt_candidate_rows(r2, committee_status(r2, store, None), store).set_index("event_key")
    assert "S-2/AE/1" not in meeting.index  # decided, not pending, not new: not listed
    assert bool(meeting.loc["S-3/AE/1", "new"]) is False  # a candidate at both cuts, still pending
    listed = listing_dlt(r2, store).set_index("event_key")["new_since_previous_cut"].to_dict()
    assert listed == {"S-1/AE/1": False, "S-2/AE/1": False, "S-3/AE/1": False}


def test_added_is_refused_on_the_reported_ae_of_an_episode_that_is_a_candidate_or_decided(env):
    """A reported CRS AE and the episode derived for it are one clinical event: 'added' on the AE would count a
    confirmed CRS twice. Refused with the episode's key, whether the episode is a candidate or only decided."""
    from test_dlt_support import add_episode

    con, store = env
    add_subject(con, "S-1")
    add_ae(con, "S-1", 1, "Cytokine release syndrome", 4, 2, 5)
    add_episode(con, "S-1", "CRS", 1, 2, 4, 4)
    con.execute("UPDATE toxicity_episodes SET ae_event_key = 'S-1/AE/1'")
    derive_dlt(con, STUDY, CUT, config(), review_store=store)
    r = StudyReader(con, Scope(STUDY, CUT))
    assert set(adj.review_table(r, store)["event_key"]) == {"S-1/CRS/1"}
    with pytest.raises(ValueError, match=r"^S-1/AE/1 is the reported AE of episode S-1/CRS/1, already a candidate "
                                         r"or decided: one clinical event, decide on S-1/CRS/1$"):
        adj.record_decision(store, r, "S-1/AE/1", "added", "CRS AE", "dr a")
    adj.record_decision(store, r, "S-1/CRS/1", "confirmed", "CRS grade 4", "dr a")
    con.execute("UPDATE toxicity_episodes SET max_grade = 2")  # the episode no longer screened, still decided
    derive_dlt(con, STUDY, CUT, config(), review_store=store)
    with pytest.raises(ValueError, match="decide on S-1/CRS/1"):
        adj.record_decision(store, r, "S-1/AE/1", "added", "CRS AE", "dr a")
    assert [h["event_key"] for h in store.adjudication_history(STUDY)] == ["S-1/CRS/1"]
    assert adj.dlt_counts(r, store).iloc[-1]["confirmed"] == 1
