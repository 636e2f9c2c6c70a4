"""Shared pieces of the committee outputs: the packet metadata, scoped readers, table checks, labels.

Every output (listing or table) is a pandas DataFrame whose ``attrs`` carry its ``name``, ``title``,
``reference`` (ICH E3 / FDA STF), ``kind`` ('listing' or 'table') and ``notes`` (list of footnotes,
e.g. why a listing is empty). Writers read only the DataFrame, its attrs and a :class:`PacketMeta`.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable

import duckdb
import pandas as pd

import safety
from safety.core import config as study_config
from safety.core.delivery import domains_present, not_delivered, not_delivered_note
from safety import schema
from safety.core.vocabulary import ae_term_sql
from safety.schema.labels import COLUMN_LABELS, column_label
from safety.access.reader import Scope, StudyReader, previous_cut
from safety.review.dlt_status import DltStatus, dlt_status

CONFIDENTIAL = "Confidential"
GENERATED_LABEL = "Generated (UTC)"

# ADaM's date imputation flag in words: which part of the date (of a partial 2025-08 or 2025, or of none: 'Y') the
# listed date filled in
IMPUTED_DATE_SQL = "CASE {flag} WHEN 'D' THEN 'day' WHEN 'M' THEN 'month and day' WHEN 'Y' THEN 'whole date' END"

# Columns holding an integer grade 0-5: writers colour these cells with safety.core.palette.
GRADE_COLUMNS = frozenset({"grade", "max_grade", "worst_grade", "baseline_grade", "reported_grade",
                           "ctcae_grade", "icaht_grade", "early_grade", "late_grade"})


@dataclass(frozen=True)
class PacketMeta:
    """What every output states about itself: study, cut, version and the source files' hashes."""
    studyid: str
    title: str
    data_cut: dt.date
    previous_cut: dt.date | None
    generated_at: dt.datetime
    version: str
    load_id: str | None
    file_hashes: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # (source_file, sha256)
    scope_label: str = "all sites"
    # SHA-256 of the settings the cut was derived with (studies.config_json: study.yaml validated, with defaults)
    settings_sha256: str | None = None
    # The review store's audit head when the packet was made (seq, entry hash): a committee records it and
    # later checks the log against it (`python -m safety audit verify --expect-head HASH`).
    audit_head: tuple[int, str] | None = None

    @property
    def audit_line(self) -> str | None:
        """'Audit log head: entry N <hash>' for every page footer, or None without a review store."""
        if not self.audit_head:
            return None
        return f"Audit log head: entry {self.audit_head[0]} {self.audit_head[1]}"

    @property
    def generated_text(self) -> str:
        return self.generated_at.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")

    @property
    def generated_line(self) -> str:
        """The one line that varies between two exports of the same cut (tests mask it)."""
        return f"{GENERATED_LABEL}: {self.generated_text}"

    def header_lines(self) -> list[str]:
        """Stable header lines (the generation time is kept apart in :attr:`generated_line`)."""
        prev = self.previous_cut.isoformat() if self.previous_cut else "none (first data cut)"
        return [
            f"Study: {self.studyid}" + (f" - {self.title}" if self.title else ""),
            f"Data cut: {self.data_cut.isoformat()} (previous cut: {prev})",
            f"Scope: {self.scope_label}",
            f"celltox version: {safety.__version__ if not self.version else self.version}",
            f"Load: {self.load_id or 'unknown'}",
        ]

    def hash_lines(self) -> list[str]:
        files = ([f"Source file SHA-256: {name} {sha}" for name, sha in self.file_hashes] if self.file_hashes
                 else ["Source file SHA-256: none recorded in load_log for this cut"])
        settings = ([f"Study settings SHA-256 (study.yaml as validated, with its defaults): {self.settings_sha256}"]
                    if self.settings_sha256 else [])
        return files + settings

    @property
    def short_label(self) -> str:
        return f"{self.studyid} | data cut {self.data_cut.isoformat()}"


def make_reader(con: duckdb.DuckDBPyConnection, studyid: str, data_cut: dt.date,
                sites: tuple[str, ...] | None = None) -> StudyReader:
    """A reader for one study and cut whose scope also knows the previous cut (for 'new since')."""
    return StudyReader(con, Scope(studyid, data_cut, sites, previous_cut(con, studyid, data_cut)))


def packet_meta(reader: StudyReader, generated_at: dt.datetime | None = None) -> PacketMeta:
    """Collect the header/footer facts for one reader's study and cut."""
    sc = reader.scope
    st = reader.sql("SELECT title, load_id, config_json FROM studies LIMIT 1")
    # a NULL column comes back as NaN (not None) when every row is NULL: str() of it would print "nan"
    title = "" if st.empty or pd.isna(st.iat[0, 0]) else str(st.iat[0, 0]).strip()
    load_id = None if st.empty or pd.isna(st.iat[0, 1]) else str(st.iat[0, 1])
    hashes = reader.sql(
        "SELECT source_file, sha256 FROM load_log "
        "WHERE ($load_id IS NULL OR load_id = $load_id) ORDER BY source_file, sha256",
        {"load_id": load_id},
    )
    return PacketMeta(
        studyid=sc.studyid, title=title, data_cut=_as_date(sc.data_cut),
        previous_cut=_as_date(sc.previous_cut) if sc.previous_cut else None,
        generated_at=generated_at or dt.datetime.now(dt.timezone.utc),
        version=safety.__version__, load_id=load_id,
        file_hashes=tuple((str(a), str(b)) for a, b in hashes.itertuples(index=False)),
        scope_label="all sites" if sc.all_sites else "sites " + ", ".join(sc.sites),
        settings_sha256=(None if st.empty or pd.isna(st.iat[0, 2])
                         else hashlib.sha256(str(st.iat[0, 2]).encode("utf-8")).hexdigest()),
    )


def site_scoped_boundary_note(reader: StudyReader) -> str | None:
    """What a site-scoped packet says where the stopping boundary stands (the rule table and the boundary
    figure): the protocol's rule is for the whole trial, so no events are counted against it for some sites
    alone; None for an all-sites packet, which counts them."""
    sc = reader.scope
    if sc.all_sites:
        return None
    return (f"Site-scoped packet (sites {', '.join(sc.sites)}): the protocol's stopping rule is for the whole "
            "trial, so no events are counted against its boundary here (these sites' subjects alone are not the "
            "rule's count); the all-sites packet shows them.")


def ae_grading_note(reader: StudyReader) -> str:
    """The footnote on reported AE grades, naming the scales the AEs in scope were graded on (each AE's
    ``grading_system``: the study setting or the site's SUPPAE qualifier), most used first."""
    scales = reader.sql("SELECT grading_system, count(*) AS n FROM adverse_events WHERE aetoxgr IS NOT NULL "
                        "AND grading_system IS NOT NULL GROUP BY ALL ORDER BY n DESC, grading_system")
    named = "; ".join(str(s) for s in scales["grading_system"])
    return ("Grade: AETOXGR as reported, on the grading system recorded with each AE"
            + (f" (in this data cut: {named})" if named else "") + "; events with severity only have no grade.")


def grade_discrepancy_events_sql(where: str = "true") -> str:
    """SQL: per syndrome, how many CRS and ICANS events have a grade discrepancy (grade_discrepancies ``d``, rows
    kept by ``where``): an event is the derived episode, else the reported AE without one, so an episode with two
    kinds of discrepancy (its AE graded lower, a hypoxia graded higher) is one event. Rows (syndrome, n) for
    :func:`grade_discrepancy_sentence`; the page and the packet count with this one query."""
    return ("SELECT syndrome, count(DISTINCT coalesce(episode_key, ae_event_key)) AS n FROM grade_discrepancies d "
            f"WHERE {where} GROUP BY ALL ORDER BY syndrome")


def grade_discrepancy_sentence(differ: pd.DataFrame) -> str:
    """How many CRS and ICANS events' reported grades differ from the derived ASTCT grades, from rows of
    (syndrome, n) of :func:`grade_discrepancy_events_sql`, e.g. "1 CRS event and 2 ICANS events differ from the
    ASTCT grade ..."."""
    counts = " and ".join(f"{int(n)} {syndrome} event{'s' if int(n) != 1 else ''}"
                          for syndrome, n in zip(differ["syndrome"], differ["n"]))
    one = int(differ["n"].sum()) == 1
    return (f"{counts} {'differs' if one else 'differ'} from the ASTCT grade derived from the bedside assessments "
            f"(or {'exists' if one else 'exist'} on one side only)")


def grade_discrepancy_note(reader: StudyReader) -> list[str]:
    """The note of an AE table whose CRS and ICANS rows count reported grades that differ from the derived
    ones (none when they agree, or the file has no grade_discrepancies)."""
    if not reader.has_tables("grade_discrepancies"):
        return []
    differ = reader.sql(grade_discrepancy_events_sql())
    if differ.empty:
        return []
    return [f"CRS and ICANS rows count the grade the site reported: {grade_discrepancy_sentence(differ)}. The CRS "
            "and ICANS summary counts the derived grades; the listing of derived against reported grades names "
            "each event."]


def _as_date(v) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    return pd.Timestamp(v).date()


def study_settings(reader: StudyReader) -> dict:
    """The validated study.yaml this cut was loaded with (defaults filled in when the load stored none)."""
    return study_config.stored_config(reader.scalar("SELECT config_json FROM studies LIMIT 1"))


def current_dlt_status(reader: StudyReader, store) -> DltStatus | None:
    """The reader's DLT state with the decisions in ``store`` in force now (:func:`dlt_status`, the one
    computation), or None in a file written before the DLT derivations existed. A packet calls it once and
    hands the result to every output and figure that shows DLT facts, so they all show the same moment."""
    if not reader.has_tables("dlt_candidates", "dlt_evaluability"):
        return None
    return dlt_status(reader, store, study_settings(reader))


def table_columns(name: str) -> list[str]:
    """The columns of a registered table (KeyError names an unknown table)."""
    return schema.get_table(name).column_names


def has_previous(reader: StudyReader) -> bool:
    return reader.scope.previous_cut is not None


def new_flag_sql(reader: StudyReader, key_expr: str, prev_table: str, prev_key_expr: str | None = None) -> str:
    """SQL for ``new_since_previous_cut``: the key is absent from the previous cut (TRUE at a first cut)."""
    if not has_previous(reader):
        return "TRUE"
    prev_key_expr = prev_key_expr or key_expr
    return f"({key_expr}) NOT IN (SELECT {prev_key_expr} FROM prev_{prev_table} WHERE {prev_key_expr} IS NOT NULL)"


def new_ae_flag_sql(reader: StudyReader, alias: str = "a") -> str:
    """SQL for an AE's ``new_since_previous_cut``: no AE of the subject at the previous cut has its term and either
    its key or its start date. A key is built on AESEQ, which a regenerated dataset numbers again: an AE whose key
    now names another term is new, and one whose key changed with its term and start date kept is not."""
    if not has_previous(reader):
        return "TRUE"
    return (f"NOT EXISTS (SELECT 1 FROM prev_adverse_events p WHERE p.usubjid = {alias}.usubjid "
            f"AND {ae_term_sql('p')} IS NOT DISTINCT FROM {ae_term_sql(alias)} "
            f"AND (p.event_key = {alias}.event_key OR p.aest_date IS NOT DISTINCT FROM {alias}.aest_date))")


def finish(df: pd.DataFrame, *, name: str, title: str, reference: str, kind: str,
           notes: list[str] | None = None) -> pd.DataFrame:
    """Attach the output's identity and footnotes to a frame."""
    df = df.reset_index(drop=True)
    df.attrs = {"name": name, "title": title, "reference": reference, "kind": kind,
                "notes": list(notes or [])}
    return df


def empty(columns: list[str], **kw) -> pd.DataFrame:
    return finish(pd.DataFrame({c: pd.Series(dtype="object") for c in columns}), **kw)


# Human column headers for XLSX, RTF and PDF (CSV keeps the field names): the one label table.
LABELS = COLUMN_LABELS


def label(col: str) -> str:
    return column_label(col)


def text_value(v, float_format: str = ".6g") -> str:
    """A cell as text for RTF and PDF: blank for missing, Y/N for booleans, integral floats without '.0', other
    floats to ``float_format`` (6 significant digits on a printed page)."""
    if v is None or v is pd.NA or v is pd.NaT:
        return ""
    if isinstance(v, bool):
        return "Y" if v else "N"
    if isinstance(v, float):
        if v != v:
            return ""
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else format(v, float_format)
    if isinstance(v, (dt.datetime, pd.Timestamp)):
        return v.date().isoformat() if (v.hour, v.minute, v.second) == (0, 0, 0) else v.isoformat(sep=" ")
    if isinstance(v, dt.date):
        return v.isoformat()
    try:
        import numpy as np
        if isinstance(v, np.generic):
            return text_value(v.item(), float_format)
    except ImportError:  # pragma: no cover
        pass
    return str(v)


def text_frame(df: pd.DataFrame) -> list[list[str]]:
    """Every cell of ``df`` as text (row-major)."""
    cols = [[text_value(v) for v in df[col].tolist()] for col in df.columns]
    return [list(r) for r in zip(*cols)] if cols else []


def grade_of(text: str):
    """The integer grade in a grade cell's text, else None."""
    return int(text) if text in ("0", "1", "2", "3", "4", "5") else None


def file_stem(meta: "PacketMeta") -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in meta.studyid)
    return f"{safe}_{meta.data_cut.isoformat()}"


def source_notes(reader: StudyReader, domains: tuple[str, ...]) -> list[str]:
    """What an output could not read of the SDTM ``domains`` it reads: each one not delivered at this cut (an
    empty listing then means "no data", not "no events"; CRS and ICANS as :mod:`safety.core.delivery` defines it),
    and the input rows of them the load quarantined (counted for all-sites scopes only, which alone may read the
    quarantine)."""
    notes = [f"{not_delivered_note(d)}: what this output reads from {d} cannot be shown."
             for d in not_delivered(domains, domains_present(reader.sql))]
    if reader.has_tables("quarantine"):
        rows = reader.sql("""SELECT source_file, count(*) AS n FROM quarantine
                             WHERE domain IN (SELECT unnest($d::VARCHAR[]))
                                OR domain IN (SELECT 'SUPP' || unnest($d::VARCHAR[]))
                             GROUP BY source_file ORDER BY source_file""", {"d": list(domains)})
        notes += [f"{n} row{'' if n == 1 else 's'} of {f} not loaded (quarantined, each with its reason: Data quality "
                  "page)." for f, n in zip(rows["source_file"], rows["n"])]
    return notes


# SDTM domains behind outputs that several share (OutputSpec.reads)
DEATH_SOURCES = ("DM", "DS", "AE")
SYNDROME_SOURCES = ("CRS", "ICANS", "AE")
DLT_SOURCES = ("AE", "LB", "CRS", "ICANS")


@dataclass(frozen=True)
class OutputSpec:
    """A listing or table of the packet: its title, the guideline it follows and the function that builds it,
    ``builder(reader, store)``; with ``takes_dlt_status`` also ``live=`` the packet's :class:`DltStatus`
    (or None: the builder computes it). ``reads``: the SDTM domains its rows come from; the output's notes say
    which of them were not delivered and how many of their rows were quarantined (:func:`source_notes`).
    ``counts(df)``: the notes that count the listing's rows (a page's metric), made again for a subset of them
    (:meth:`subset`)."""
    title: str
    reference: str
    builder: Callable[..., pd.DataFrame]
    takes_dlt_status: bool = False
    reads: tuple[str, ...] = ()
    counts: Callable[[pd.DataFrame], list[str]] | None = None

    def build(self, reader: StudyReader, store=None, live: DltStatus | None = None) -> pd.DataFrame:
        df = self.builder(reader, store, live=live) if self.takes_dlt_status else self.builder(reader, store)
        notes = list(df.attrs.get("notes", []))
        return self._with_counts(df, notes, source_notes(reader, self.reads) if self.reads else [])

    def subset(self, df: pd.DataFrame, usubjids) -> pd.DataFrame:
        """The rows of ``df`` (built by :meth:`build`) of these subjects, with the notes that count rows counted
        over them: a filtered listing must not state the whole cut's count as its own."""
        part = df[df["usubjid"].isin(set(usubjids))].copy()
        part.attrs = dict(df.attrs)
        notes, at, n = list(df.attrs.get("notes", [])), df.attrs.get("count_at", 0), len(df.attrs.get("count_notes", []))
        return self._with_counts(part, notes[:at], notes[at + n:])

    def _with_counts(self, df: pd.DataFrame, before: list[str], after: list[str]) -> pd.DataFrame:
        """Notes: the builder's, the counts of the rows (none without rows), the sources'."""
        counted = self.counts(df) if self.counts is not None and len(df) else []
        df.attrs.update(notes=before + counted + after, count_notes=counted, count_at=len(before))
        return df
