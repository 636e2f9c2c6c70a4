"""Shared pieces of the committee outputs: the packet metadata, scoped readers, table checks, labels.

Every output (listing or table) is a pandas DataFrame whose ``attrs`` carry its ``name``, ``title``,
``reference`` (ICH E3 / FDA STF), ``kind`` ('listing' or 'table') and ``notes`` (list of footnotes,
e.g. why a listing is empty). Writers read only the DataFrame, its attrs and a :class:`PacketMeta`.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Callable

import duckdb
import pandas as pd

import safety
from safety.core import config as study_config
from safety import schema
from safety.access.reader import Scope, StudyReader, previous_cut

CONFIDENTIAL = "Confidential"
GENERATED_LABEL = "Generated (UTC)"

# Columns holding an integer grade 0-5: writers colour these cells with safety.core.palette.
GRADE_COLUMNS = frozenset({"grade", "max_grade", "worst_grade", "baseline_grade", "reported_grade",
                           "ctcae_grade", "icaht_grade"})


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
        if not self.file_hashes:
            return ["Source file SHA-256: none recorded in load_log for this cut"]
        return [f"Source file SHA-256: {name} {sha}" for name, sha in self.file_hashes]

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
    st = reader.sql("SELECT title, load_id FROM studies LIMIT 1")
    title = "" if st.empty or st.iat[0, 0] is None else str(st.iat[0, 0])
    load_id = None if st.empty or st.iat[0, 1] is None else str(st.iat[0, 1])
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
    )


def _as_date(v) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    return pd.Timestamp(v).date()


def study_settings(reader: StudyReader) -> dict:
    """The validated study.yaml of this cut (defaults filled in when the load stored none)."""
    raw = reader.scalar("SELECT config_json FROM studies LIMIT 1")
    cfg = study_config.DEFAULTS
    if raw:
        try:
            loaded = json.loads(raw)
            cfg = _merge(study_config.DEFAULTS, loaded)
        except (TypeError, ValueError):
            pass
    return cfg


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in (over or {}).items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def registered(name: str) -> bool:
    """True when the table is in the schema registry, so the reader scopes it to study, cut and sites.

    A derived table that is not registered is never read, even if present in the file: an unscoped
    read could leak another study or cut.
    """
    return name in {t.name for t in schema.all_tables()}


def table_columns(name: str) -> list[str]:
    return schema.get_table(name).column_names if registered(name) else []


def try_sql(reader: StudyReader, query: str, params: dict | None = None) -> pd.DataFrame | None:
    """Run a query; None when a table it needs is missing from the database (older file, derivation not run)."""
    try:
        return reader.sql(query, params)
    except duckdb.CatalogException:
        return None
    except duckdb.BinderException:
        return None


def has_previous(reader: StudyReader) -> bool:
    return reader.scope.previous_cut is not None


def new_flag_sql(reader: StudyReader, key_expr: str, prev_table: str, prev_key_expr: str | None = None) -> str:
    """SQL for ``new_since_previous_cut``: the key is absent from the previous cut (TRUE at a first cut)."""
    if not has_previous(reader):
        return "TRUE"
    prev_key_expr = prev_key_expr or key_expr
    return f"({key_expr}) NOT IN (SELECT {prev_key_expr} FROM prev_{prev_table} WHERE {prev_key_expr} IS NOT NULL)"


def adjudications_frame(store, studyid: str) -> pd.DataFrame:
    """Latest committee decision per event key from the review store (empty frame without a store)."""
    cols = ["event_key", "adjudication", "adjudicated_by", "adjudicated_at", "adjudication_rationale",
            "adjudication_rule_id", "adjudication_usubjid"]
    if store is None:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
    rows = store.latest_adjudications(studyid)
    df = pd.DataFrame(rows, columns=["event_key", "decision", "reviewer", "decided_at", "rationale",
                                     "rule_id", "usubjid"])
    df.columns = cols
    return df.astype("object")


def adjudicated_dlt(decision) -> str:
    """'Yes' for confirmed/added DLTs, 'No' for rejected/withdrawn, '' when not adjudicated."""
    if decision in ("confirmed", "added"):
        return "Yes"
    if decision in ("rejected", "withdrawn"):
        return "No"
    return ""


def finish(df: pd.DataFrame, *, name: str, title: str, reference: str, kind: str,
           notes: list[str] | None = None) -> pd.DataFrame:
    """Attach the output's identity and footnotes to a frame."""
    df = df.reset_index(drop=True)
    df.attrs = {"name": name, "title": title, "reference": reference, "kind": kind,
                "notes": list(notes or [])}
    return df


def empty(columns: list[str], **kw) -> pd.DataFrame:
    return finish(pd.DataFrame({c: pd.Series(dtype="object") for c in columns}), **kw)


# Human column headers for XLSX, RTF and PDF (CSV keeps the field names).
LABELS: dict[str, str] = {
    "site": "Site", "cohort": "Cohort", "dose_level": "Dose level", "usubjid": "Subject",
    "age": "Age", "sex": "Sex", "aeseq": "AE seq", "event_key": "Event key",
    "verbatim_term": "Verbatim term", "preferred_term": "Preferred term", "system_organ_class": "SOC",
    "onset_date": "Onset date", "onset_day": "Onset day", "end_date": "End date", "end_day": "End day",
    "ongoing": "Ongoing", "duration_days": "Duration (days)", "grading_system": "Grading system",
    "grade": "Grade", "severity": "Severity", "serious": "Serious", "serious_criteria": "Serious criteria",
    "causality": "Causality", "related": "Related", "action_taken": "Action taken", "outcome": "Outcome",
    "in_dlt_window": "In DLT window", "adjudicated_dlt": "Adjudicated DLT",
    "tocilizumab_during_event": "Tocilizumab", "corticosteroid_during_event": "Steroids",
    "treatment_emergent": "TEAE", "new_since_previous_cut": "New since previous cut",
    "death_date": "Death date", "death_day": "Death day", "death_cause": "Cause of death",
    "fatal_ae_terms": "Fatal AEs (PT / verbatim)", "infusions": "Infusions",
    "last_known_alive_day": "Last known alive day", "rule_id": "Rule", "reason": "Reason", "term": "Term",
    "source": "Source", "in_window": "In window", "evidence": "Evidence", "adjudication": "Decision",
    "adjudicated_by": "Reviewer", "adjudicated_at": "Decided at", "adjudication_rationale": "Rationale",
    "syndrome": "Syndrome", "episode_no": "Episode", "last_symptomatic_day": "Last symptomatic day",
    "max_grade": "Max grade", "max_grade_day": "Max grade day", "tocilizumab": "Tocilizumab",
    "tocilizumab_first_day": "Tocilizumab day", "corticosteroid": "Steroids",
    "corticosteroid_first_day": "Steroids day", "anakinra": "Anakinra",
    "icu_level_support": "ICU-level support", "ae_event_key": "AE key", "reported_grade": "Reported grade",
    "lbseq": "Lab seq", "lbtestcd": "Test", "ctcae_term": "CTCAE term", "direction": "Dir",
    "day": "Day", "lab_date": "Lab date", "value": "Value", "unit": "Unit", "lln": "LLN", "uln": "ULN",
    "baseline_value": "Baseline", "grade_reason": "Grade reason", "aesi_category": "AESI category",
    "detail": "Detail", "criterion": "Criterion", "test": "Test", "limit": "Limit",
    # outcomes beyond CRS/ICANS
    "sources": "Recorded in", "cause_category": "Cause category", "delivered_cause": "Cause as delivered",
    "fatal_ae_term": "Fatal AE", "cause_from": "Category from", "cause_conflict": "Sources disagree",
    "progression_day": "Progression day", "non_relapse": "Non-relapse", "treatment_related": "Treatment-related",
    "nrm_by_day28": "NRM by d28", "nrm_by_day100": "NRM by d100", "nrm_by_day365": "NRM by d365",
    "pathogen_class": "Pathogen class", "pathogen": "Pathogen", "invasive_mould": "Invasive mould",
    "ctcae_grade": "Grade", "fatal": "Fatal", "onset_window": "Window", "latency_days": "Latency (days)",
    "latency_months": "Latency (months)", "t_cell_malignancy": "T-cell malignancy",
    "car_transgene_result": "CAR transgene", "pctestcd": "Analyte", "n_samples": "Samples", "cmax": "Cmax",
    "tmax_day": "Tmax (day)", "auc_0_28": "AUC d0-28", "auc_last_day": "AUC to day",
    "last_detectable_day": "Last detectable day", "values_used": "Values used (day:value)",
    "planned_dose": "Planned dose", "actual_dose": "Actual dose", "dose_unit": "Dose unit",
    "pct_of_planned": "% of planned", "infused": "Infused", "not_infused_reason": "Reason not infused",
}


def label(col: str) -> str:
    return LABELS.get(col, col)


def text_value(v) -> str:
    """A cell as text for RTF and PDF: blank for missing, Y/N for booleans, integral floats without '.0'."""
    if v is None or v is pd.NA or v is pd.NaT:
        return ""
    if isinstance(v, bool):
        return "Y" if v else "N"
    if isinstance(v, float):
        if v != v:
            return ""
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else format(v, ".6g")
    if isinstance(v, (dt.datetime, pd.Timestamp)):
        return v.date().isoformat() if (v.hour, v.minute, v.second) == (0, 0, 0) else v.isoformat(sep=" ")
    if isinstance(v, dt.date):
        return v.isoformat()
    try:
        import numpy as np
        if isinstance(v, np.generic):
            return text_value(v.item())
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


@dataclass(frozen=True)
class OutputSpec:
    """A listing or table of the packet: its title, the guideline it follows and the function that builds it."""
    title: str
    reference: str
    builder: Callable[..., pd.DataFrame]
