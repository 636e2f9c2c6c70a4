"""Listings & export: the committee listings of safety.export, previewed and downloadable (audited)."""
import hashlib
import io

import pandas as pd
import streamlit as st

from dashboard import state

v = state.view()
user = state.user()
st.title("Listings & export")
st.caption(state.filter_caption(v))
listings = state.domain("safety.export.listings")
if listings is None or not hasattr(listings, "LISTINGS"):
    state.empty("The listings module (safety.export.listings) is not installed in this version.")
    st.stop()

names = list(listings.LISTINGS)
name = st.selectbox("Listing", names, format_func=lambda n: f"{listings.LISTINGS[n].title} ({n})")
spec = listings.LISTINGS[name]
try:
    df = state.call_cached("safety.export.listings", "build_listing", name, state.STORE)
except Exception as exc:  # one broken listing must not take the page down
    st.error(f"The listing '{name}' could not be built: {type(exc).__name__}: {exc}")
    st.stop()
if v.filtered and "usubjid" in df.columns:
    flt, fp = state.subject_filter(v)
    keep = set(state.q(f"SELECT usubjid FROM subjects WHERE {flt}", fp)["usubjid"])
    df = df[df["usubjid"].isin(keep)]
st.markdown(f"**{spec.title}** · {spec.reference} · {len(df)} rows")
for note in (df.attrs.get("notes") or []):
    st.caption(note)
if df.empty:
    state.empty(f"The listing '{spec.title}' has no rows for this selection.")
else:
    state.table(df, height=min(600, 40 + 35 * len(df)))


def _audit_export(fmt: str, payload: bytes) -> None:
    state.audit("export", {"listing": name, "format": fmt, "rows": int(len(df)), "data_cut": v.data_cut.isoformat(),
                           "sha256": hashlib.sha256(payload).hexdigest(), "filters": state.filter_caption(v)})


if state.can(user, "can_export"):
    stem = f"{v.studyid}_{v.data_cut.isoformat()}_{name}"
    csv_bytes = df.to_csv(index=False).encode("utf-8")
    buf = io.BytesIO()
    with pd.ExcelWriter(buf, engine="xlsxwriter") as xw:
        df.to_excel(xw, sheet_name=name[:31], index=False)
    xlsx_bytes = buf.getvalue()
    c1, c2, _ = st.columns([1, 1, 3])
    c1.download_button("Download CSV", csv_bytes, f"{stem}.csv", "text/csv",
                       on_click=_audit_export, args=("csv", csv_bytes))
    c2.download_button("Download XLSX", xlsx_bytes, f"{stem}.xlsx",
                       "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                       on_click=_audit_export, args=("xlsx", xlsx_bytes))
    packet = state.domain("safety.export.packet", "write_outputs")
    st.subheader("Committee packet")
    if packet is None:
        state.empty("The committee packet writer (safety.export.packet) is not installed; "
                    "use `python -m safety export` when it is.")
    else:
        st.markdown("The full packet (all listings and tables in CSV, XLSX, RTF and PDF) is written by "
                    "`python -m safety export`; downloads here cover one listing at a time.")
else:
    st.caption("Downloads are open to committee members and data managers.")
