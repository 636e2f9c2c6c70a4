"""Audit log (committee and admin): the tamper-evident record of sign-ins, views, exports and decisions."""
import pandas as pd
import streamlit as st

from dashboard import state
from dashboard.tables import audited_download
from safety.review.store import audit_csv, verify_audit_chain

v = state.view()
user = state.user()
st.title("Audit log")
if not state.can(user, "can_view_audit"):
    st.error("The audit log is open to committee members and administrators.")
    st.stop()
store = state.review_store(v.db_path)
recorded = st.text_input("Check against a head hash recorded earlier (minutes, a packet's footer)",
                         key="audit_expect_head", placeholder="64 hex digits").strip()
ok, message = verify_audit_chain(store.path, expect_heads=[recorded] if recorded else ())
(st.success if ok else st.error)(message)
rows = pd.DataFrame(store.audit_entries(v.studyid))
if rows.empty:
    state.empty("No audit entries yet.")
    st.stop()
c1, c2 = st.columns(2)
actions = c1.multiselect("Action", sorted(rows["action"].unique()))
users = c2.multiselect("User", sorted(rows["username"].unique()))
if actions:
    rows = rows[rows["action"].isin(actions)]
if users:
    rows = rows[rows["username"].isin(users)]
st.metric("Entries shown", len(rows))
st.caption(f"Entries about study {state.plain_text(v.studyid)} (sign-ins, views, exports and decisions on it); the check above covers "
           "every entry of the store.")
state.table(rows.sort_values("seq", ascending=False), subject_col=None)
# the store's CSV (a cell that reads as a formula is quoted), audited as every other download
entries = [{k: (None if pd.isna(val) else val) for k, val in r.items()} for r in rows.to_dict("records")]
audited_download(None, "Download audit log (CSV)", lambda view: audit_csv(entries).encode(), "audit_log", "csv",
                 len(entries), f"{v.studyid}_audit_log.csv", "text/csv", key="dl_audit_log")
