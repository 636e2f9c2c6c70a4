"""Committee sign-off and 'changed since the last signed-off cut', on two cuts, inside the site scope."""
from __future__ import annotations

import pytest

from access_fixtures import CUT1, CUT2, STUDY, two_site_db, two_site_users  # noqa: F401
from safety.access.reader import Scope, StudyReader, connect
from safety.access.auth import scope_for
from safety.review.changes import CHANGE_COLUMNS, changes_since, changes_summary, last_signed_off_cut
from safety.review.store import ReviewStore


@pytest.fixture(scope="module")
def con(two_site_db):
    c = connect(two_site_db)
    yield c
    c.close()


def _rows(df, category):
    return {(r.usubjid, r.event_key, r.change) for r in df[df.category == category].itertuples()}


def test_sign_off_then_changes_since_last_signed_off_cut(con, two_site_users, tmp_path):
    store = ReviewStore(tmp_path / "r.sqlite")
    assert last_signed_off_cut(store, STUDY) is None
    store.add_signoff(studyid=STUDY, data_cut=CUT1, reviewer="carol", comment="cut 1 reviewed, no DLT")
    assert last_signed_off_cut(store, STUDY) == CUT1
    assert last_signed_off_cut(store, STUDY, before=CUT1) is None

    since = last_signed_off_cut(store, STUDY, before=CUT2)
    reader = StudyReader(con, scope_for(two_site_users["committee"], STUDY, CUT2))
    df = changes_since(reader, since)
    assert list(df.columns) == CHANGE_COLUMNS
    assert _rows(df, "adverse_event") == {
        ("CTX-001-101-001", "CTX-001-101-001/AE/1", "changed"),
        ("CTX-001-101-001", "CTX-001-101-001/AE/2", "new"),
        ("CTX-001-101-002", "CTX-001-101-002/AE/1", "removed"),
        ("CTX-001-102-001", "CTX-001-102-001/AE/2", "new"),
        ("CTX-001-102-002", "CTX-001-102-002/AE/1", "new"),
    }
    changed = df[(df.event_key == "CTX-001-101-001/AE/1")].iloc[0]
    assert list(changed.changed_fields) == ["aetoxgr", "aeser"]
    assert changed.changes == "aetoxgr: 2 → 3; aeser: N → Y"
    assert changed.siteid == "101"
    death = df[df.category == "death"]
    assert death.usubjid.tolist() == ["CTX-001-102-001"]
    assert death.description.iloc[0] == "death on day 110: Pneumonia"
    assert _rows(df, "subject") == {("CTX-001-102-002", None, "new")}
    # the unchanged neutropenia event is not reported
    assert "CTX-001-102-001/AE/1" not in set(df.event_key)
    # deaths come first
    assert df.category.iloc[0] == "death"


def test_changes_are_site_scoped(con, two_site_users):
    r101 = StudyReader(con, scope_for(two_site_users["investigator_101"], STUDY, CUT2, CUT1))
    df = changes_since(r101)
    assert set(df.siteid) == {"101"}
    assert df[df.category == "death"].empty  # the death is at site 102
    r102 = StudyReader(con, scope_for(two_site_users["investigator_102"], STUDY, CUT2, CUT1))
    df102 = changes_since(r102)
    assert set(df102.siteid) == {"102"} and df102[df102.category == "death"].usubjid.tolist() == ["CTX-001-102-001"]
    admin = StudyReader(con, scope_for(two_site_users["admin"], STUDY, CUT2, CUT1))
    assert changes_since(admin).empty


def test_other_scope_refused(con, two_site_users):
    r101 = StudyReader(con, scope_for(two_site_users["investigator_101"], STUDY, CUT2))
    with pytest.raises(ValueError):
        changes_since(r101, Scope(STUDY, CUT1, None))  # an all-sites 'then' would widen the comparison
    with pytest.raises(ValueError):
        changes_since(r101)  # no cut to compare with
    same = changes_since(r101, Scope(STUDY, CUT1, ("101",)))
    assert set(same.siteid) == {"101"}


def test_no_changes_between_a_cut_and_itself(con, two_site_users):
    r = StudyReader(con, scope_for(two_site_users["committee"], STUDY, CUT2, CUT2))
    df = changes_since(r)
    assert df.empty and list(df.columns) == CHANGE_COLUMNS


def test_summary_counts(con, two_site_users):
    r = StudyReader(con, scope_for(two_site_users["committee"], STUDY, CUT2, CUT1))
    s = changes_summary(changes_since(r)).set_index("category")
    assert s.loc["adverse_event"].tolist() == [3, 1, 1]
    assert s.loc["death"].tolist() == [1, 0, 0]


def test_a_regenerated_ae_dataset_numbered_again_is_read_by_term_not_key(tmp_path):
    """The corrected delivery drops S-001's fever (AESEQ 1) and numbers the rest again: the CRS (AESEQ 2) is now
    AESEQ 1, and a new AE after the first cut, pruritus, takes AESEQ 2. Read by key, the pruritus was the CRS
    'changed' and not new, and the CRS the fever 'changed'. The fever is removed, the pruritus is new in the AE
    listing and the CRS is not, and no AE is 'changed' into another term."""
    import duckdb
    import pandas as pd
    from safety.export.common import make_reader
    from safety.export.listings import build_listing
    from safety.ingest import ingest_study
    from test_ingest_fixtures import AE, DOMAINS, make_study

    db = tmp_path / "db.duckdb"
    ingest_study(make_study(tmp_path / "c1", "csv"), db, cutoff="2024-02-25", run_derivations=False)
    crs = AE[(AE.USUBJID == "S-001") & (AE.AESEQ == 2)].assign(AESEQ=1)
    new = crs.assign(AESEQ=2, AETERM="Pruritus", AEDECOD="PRURITUS", AESTDTC="2024-03-05", AEENDTC="")
    ae = pd.concat([AE[AE.USUBJID != "S-001"], crs, new])
    ingest_study(make_study(tmp_path / "c2", "csv", domains=dict(DOMAINS, ae=ae)), db, cutoff="2024-03-31",
                 run_derivations=False)
    con = duckdb.connect(str(db), read_only=True)
    try:
        reader = make_reader(con, "CT-TEST-01", pd.Timestamp("2024-03-31").date())
        listing = build_listing(reader, "ae")
        changes = changes_since(reader)
    finally:
        con.close()
    s001 = listing[listing.usubjid == "S-001"].set_index("preferred_term")["new_since_previous_cut"].to_dict()
    assert s001 == {"CYTOKINE RELEASE SYNDROME": False, "PRURITUS": True}
    ae_changes = changes[(changes.category == "adverse_event") & (changes.usubjid == "S-001")]
    assert ("S-001/AE/1", "removed") in set(zip(ae_changes.event_key, ae_changes.change))
    assert [d for d, c in zip(ae_changes.description, ae_changes.change) if c == "removed" and "PYREXIA" in d.upper()]
    assert not [t for t in ae_changes.changes.dropna() if "aedecod" in t], ae_changes.changes.tolist()


def test_a_death_the_corrected_delivery_no_longer_records_is_reported_removed(tmp_path):
    """S-001's death in DM at the first cut is gone from the corrected delivery: the death count dropped with no
    word in 'What is new'; it is listed as a death removed, and not counted as a new death."""
    import duckdb
    import pandas as pd
    from safety.export.common import make_reader
    from safety.ingest import ingest_study
    from safety.review.meeting import new_counts
    from test_ingest_fixtures import DM, DOMAINS, make_study

    db = tmp_path / "db.duckdb"
    dead = DM.assign(DTHDTC=["2024-02-20", "", "", "", ""], DTHFL=["Y", "", "", "", ""])
    ingest_study(make_study(tmp_path / "c1", "csv", domains=dict(DOMAINS, dm=dead)), db, cutoff="2024-02-25",
                 run_derivations=True)
    ingest_study(make_study(tmp_path / "c2", "csv"), db, cutoff="2024-03-31", run_derivations=True)
    con = duckdb.connect(str(db), read_only=True)
    try:
        changes = changes_since(make_reader(con, "CT-TEST-01", pd.Timestamp("2024-03-31").date()))
    finally:
        con.close()
    deaths = changes[changes.category == "death"]
    assert sorted((u, c, d) for u, c, d in zip(deaths.usubjid, deaths.change, deaths.description)) == [
        ("S-001", "removed", "death no longer recorded (was on day 19)"),
        ("S-002", "new", "death on day 39: Multi-organ failure")]   # S-002 died after the first cut
    assert new_counts(deaths.assign(grade=None, serious=False, in_window=None))["deaths"] == 1
