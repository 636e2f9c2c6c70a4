"""Listings & export: the committee listings of safety.export, previewed and downloadable (audited)."""
import hashlib
import io
import tempfile
import zipfile
from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import state, tables
from safety.export import listings
from safety.export.packet import write_outputs

MAX_PREVIEW_ROWS = 1000  # listing rows drawn on the page; downloads always hold every row
BUILD_ON_DEMAND_ROWS = 20_000  # above this, CSV/XLSX are written when asked for, not on every rerun

v = state.view()
user = state.user()
st.title("Listings & export")
st.caption(state.filter_caption(v))

names = list(listings.LISTINGS)
name = st.selectbox("Listing", names, format_func=lambda n: f"{listings.LISTINGS[n].title} ({n})", key="listing_name")
spec = listings.LISTINGS[name]
try:
    df = state.call_cached(listings.build_listing, name, state.STORE)
except Exception as exc:  # one broken listing must not take the page down
    st.error(f"The listing '{name}' could not be built: {type(exc).__name__}: {tables.text(exc)}")
    st.stop()
if v.filtered and "usubjid" in df.columns:
    flt, fp = state.subject_filter(v)
    df = spec.subset(df, state.q(f"SELECT usubjid FROM subjects WHERE {flt}", fp)["usubjid"])
st.markdown(f"**{spec.title}** · {spec.reference} · {tables.plural(len(df), 'row')}")
for note in (df.attrs.get("notes") or []):
    st.caption(tables.text(note))  # the listing's notes name delivered values (terms, cohorts, sites)
if df.empty:
    state.empty(f"The listing '{spec.title}' has no rows for this selection.")
elif len(df) > MAX_PREVIEW_ROWS:
    st.caption(f"Showing the first {MAX_PREVIEW_ROWS:,} of {len(df):,} rows in listing order; "
               "the downloads hold every row.")
    state.table(df.head(MAX_PREVIEW_ROWS), height=600)
else:
    state.table(df, height=min(600, 40 + 35 * len(df)))


def _audit_export(fmt: str, payload: bytes) -> None:
    state.audit("export", {"listing": name, "format": fmt, "rows": int(len(df)), "data_cut": v.data_cut.isoformat(),
                           "sha256": hashlib.sha256(payload).hexdigest(), "filters": state.filter_caption(v)})


def _build_packet(write_outputs) -> tuple[str, bytes, list[str]]:
    """Write the packet through safety.export (audited there) into a temp dir; return (zip name, bytes, files)."""
    with tempfile.TemporaryDirectory(prefix="celltox-packet-") as tmp:
        paths = write_outputs(state.reader(v), Path(tmp), store=state.review_store(v.db_path),
                              user=getattr(user, "username", "unknown"))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for p in paths:
                zf.write(p, arcname=p.name)
    files = sorted(p.name for p in paths)
    suffix = "" if v.sites is None else "_sites_" + "-".join(v.sites)
    return f"{v.studyid}_{v.data_cut.isoformat()}{suffix}_committee_packet.zip", buf.getvalue(), files


def _listing_csv(view: state.View) -> bytes:
    return tables.csv_export(df, df.attrs.get("title") or spec.title, df.attrs.get("reference") or spec.reference,
                             v=view)


def _listing_xlsx(view: state.View) -> bytes:
    return tables.xlsx_export(df, name, df.attrs.get("title") or spec.title,
                              df.attrs.get("reference") or spec.reference, v=view)


def _listing_files() -> tuple[bytes, bytes]:
    return _listing_csv(v), _listing_xlsx(v)


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
if state.can(user, "can_export"):
    stem = f"{v.studyid}_{v.data_cut.isoformat()}_{name}"
    files = None
    if len(df) <= BUILD_ON_DEMAND_ROWS:
        # written when clicked (and audited then), not on every rerun of the page
        c1, c2, _ = st.columns([1, 1, 3])
        tables.audited_download(c1, "Download CSV", _listing_csv, name, "csv", len(df), f"{stem}.csv", "text/csv")
        tables.audited_download(c2, "Download XLSX", _listing_xlsx, name, "xlsx", len(df),
                                f"{stem}.xlsx", XLSX)
    else:
        # Writing hundreds of thousands of rows takes a while: only when asked, and kept for this view.
        files_key = (v.username, v.db_path, v.stamp, v.studyid, v.data_cut.isoformat(), v.sites,
                     state.filter_caption(v), name)
        if st.button(f"Prepare CSV and XLSX ({len(df):,} rows)", key="prepare_listing"):
            with st.spinner("Writing the listing..."):
                st.session_state["celltox_listing_files"] = (files_key, _listing_files())
        kept = st.session_state.get("celltox_listing_files")
        if kept and kept[0] == files_key:  # never offer files written for another listing, cut or filter
            files = kept[1]
    if files is not None:
        csv_bytes, xlsx_bytes = files
        c1, c2, _ = st.columns([1, 1, 3])
        c1.download_button("Download CSV", csv_bytes, f"{stem}.csv", "text/csv",
                           on_click=_audit_export, args=("csv", csv_bytes))
        c2.download_button("Download XLSX", xlsx_bytes, f"{stem}.xlsx", XLSX,
                           on_click=_audit_export, args=("xlsx", xlsx_bytes))
    st.subheader("Committee packet")
    scope = "all sites" if v.sites is None else "sites " + tables.text(", ".join(v.sites))
    st.markdown(f"Every listing and table of this data cut ({scope}) in CSV, XLSX, RTF and PDF, as one zip. "
                "The sidebar's cohort / dose / product filters do not apply: the packet covers the whole cut. "
                "Each build is recorded in the audit log with the SHA-256 of every file.")
    packet_key = (v.username, v.db_path, v.stamp, v.studyid, v.data_cut.isoformat(), v.sites)
    if st.button("Build committee packet", key="build_packet", type="primary"):
        with st.spinner("Writing the packet (the PDF's figures take a few seconds)..."):
            try:
                st.session_state["celltox_packet"] = (packet_key, _build_packet(write_outputs))
            except Exception as exc:  # a failed build leaves no file behind (write_outputs is atomic)
                st.session_state.pop("celltox_packet", None)
                st.error(f"The packet could not be built: {type(exc).__name__}: {tables.text(exc)}")
    built = st.session_state.get("celltox_packet")
    if built and built[0] == packet_key:  # never offer a packet built for another cut or scope
        zip_name, zip_bytes, files = built[1]
        st.download_button(f"Download {zip_name}", zip_bytes, zip_name, "application/zip", key="download_packet")
        st.caption(f"{len(files)} files: " + ", ".join(files))
else:
    st.caption("Downloads are open to committee members and data managers.")
