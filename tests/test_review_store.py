"""The review store: append-only decisions and sign-offs, each with its audit entry."""
from __future__ import annotations

import sqlite3
import hashlib
import json
import threading

import pytest

from safety.review.store import ReviewStore, default_review_path, verify_audit_chain


@pytest.fixture
def store(tmp_path):
    return ReviewStore(tmp_path / "study.review.sqlite")


def _adjudicate(store, **kw):
    args = dict(studyid="CTX-001", event_key="CTX-001-101-001/AE/1", usubjid="CTX-001-101-001",
                rule_id="R2", decision="confirmed", rationale="CRS grade 4 on day 3", reviewer="carol",
                data_cut="2024-06-01", event_fingerprint="abc")
    args.update(kw)
    return store.add_adjudication(**args)


def test_default_path_beside_the_database(tmp_path):
    assert default_review_path(tmp_path / "study.duckdb") == tmp_path / "study.review.sqlite"


@pytest.mark.parametrize("table,statement", [
    ("adjudications", "UPDATE adjudications SET decision = 'rejected'"),
    ("adjudications", "DELETE FROM adjudications"),
    ("signoffs", "UPDATE signoffs SET comment = 'x'"),
    ("signoffs", "DELETE FROM signoffs"),
    ("audit_log", "UPDATE audit_log SET username = 'mallory'"),
    ("audit_log", "DELETE FROM audit_log WHERE seq = 1"),
])
def test_triggers_refuse_update_and_delete(store, table, statement):
    _adjudicate(store)
    store.add_signoff(studyid="CTX-001", data_cut="2024-06-01", reviewer="carol", comment="reviewed")
    con = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute(statement)
    con.close()
    assert verify_audit_chain(store.path)[0]


def test_correction_is_a_new_row_and_latest_wins(store):
    first = _adjudicate(store)
    second = _adjudicate(store, decision="rejected", rationale="re-graded: CRS grade 2")
    assert second > first
    assert [r["decision"] for r in store.adjudication_history("CTX-001")] == ["confirmed", "rejected"]
    latest = store.latest_adjudications("CTX-001")
    assert len(latest) == 1 and latest[0]["decision"] == "rejected"
    actions = [e["action"] for e in store.audit_entries("CTX-001")]
    assert actions == ["adjudication", "adjudication"]


@pytest.mark.parametrize("kw,msg", [
    ({"rationale": "   "}, "rationale"),
    ({"decision": "maybe"}, "decision"),
    ({"reviewer": ""}, "reviewer"),
])
def test_invalid_decisions_refused_and_nothing_written(store, kw, msg):
    with pytest.raises(ValueError, match=msg):
        _adjudicate(store, **kw)
    assert store.adjudication_history("CTX-001") == []
    assert store.audit_entries() == []


def test_signoff_needs_comment_and_latest_signed_off_cut(store):
    with pytest.raises(ValueError, match="comment"):
        store.add_signoff(studyid="CTX-001", data_cut="2024-03-01", reviewer="carol", comment=" ")
    store.add_signoff(studyid="CTX-001", data_cut="2024-03-01", reviewer="carol", comment="cut 1 reviewed")
    store.add_signoff(studyid="CTX-001", data_cut="2024-06-01", reviewer="carol", comment="cut 2 reviewed")
    store.add_signoff(studyid="CTX-999", data_cut="2024-09-01", reviewer="carol", comment="other study")
    assert store.last_signoff("CTX-001")["data_cut"] == "2024-06-01"
    assert store.last_signoff("CTX-001", before="2024-06-01")["data_cut"] == "2024-03-01"
    assert store.last_signoff("CTX-001", before="2024-03-01") is None
    entries = store.audit_entries("CTX-001", action="signoff")
    details = [json.loads(e["detail"]) for e in entries]
    assert [(d["data_cut"], d["signoff_id"]) for d in details] == [("2024-03-01", 1), ("2024-06-01", 2)]
    # the comment and time are recorded too (the comment as its SHA-256), so an edit of either is found
    assert details[0]["comment_sha256"] == hashlib.sha256(b"cut 1 reviewed").hexdigest()
    assert details[0]["signed_at"] == store.signoffs("CTX-001")[0]["signed_at"]


INJECTIONS = ["x'); DROP TABLE audit_log; --", "' OR 1=1 --", "CTX-001' --", "\"; DELETE FROM signoffs; --"]


@pytest.mark.parametrize("text", INJECTIONS)
def test_injection_strings_are_stored_as_text(store, text):
    _adjudicate(store, rationale=text, event_key=text, studyid=text)
    store.add_signoff(studyid=text, data_cut="2024-06-01", reviewer=text, comment=text)
    store.append_audit(text, "view_subject", text, {"usubjid": text})
    hist = store.adjudication_history(text)
    assert len(hist) == 1 and hist[0]["rationale"] == text and hist[0]["event_key"] == text
    assert store.signoffs(text)[0]["comment"] == text
    assert store.adjudication_history("CTX-001") == []  # the filter was not widened
    assert len(store.audit_entries()) == 3
    assert [e["action"] for e in store.audit_entries(username=text)] == ["signoff", "view_subject"]
    assert verify_audit_chain(store.path)[0]


def test_audit_entries_filters(store):
    store.append_audit("carol", "sign_in_success", None, {"method": "password"})
    store.append_audit("carol", "view_subject", "CTX-001", {"usubjid": "CTX-001-101-001"})
    store.append_audit("ivan", "view_subject", "CTX-999", {"usubjid": "CTX-999-101-001"})
    assert [e["seq"] for e in store.audit_entries("CTX-001")] == [1, 2]  # study-less sign-in included
    assert [e["seq"] for e in store.audit_entries(username="ivan")] == [3]
    assert [e["seq"] for e in store.audit_entries(action="view_subject", limit=1)] == [3]
    t2 = store.audit_entries()[1]["at"]
    assert [e["seq"] for e in store.audit_entries(since=t2)] == [2, 3]
    assert [e["seq"] for e in store.audit_entries(until=t2)] == [1, 2]


def test_audit_entry_needs_user_and_action(store):
    with pytest.raises(ValueError):
        store.append_audit("", "export")
    with pytest.raises(ValueError):
        store.append_audit("carol", " ")


def test_concurrent_writers_keep_one_chain(tmp_path):
    path = tmp_path / "r.sqlite"
    stores = [ReviewStore(path) for _ in range(4)]  # separate objects, as separate app sessions

    def work(i):
        for j in range(15):
            stores[i].append_audit(f"user{i}", "view_subject", "CTX-001", {"n": j})

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok, msg = verify_audit_chain(path)
    assert ok, msg
    assert len(stores[0].audit_entries()) == 60
