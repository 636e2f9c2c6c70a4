"""What changed since the last signed-off data cut, per subject and event, inside the reader's site scope.

The committee signs off a cut (ReviewStore.add_signoff); the overview of a later cut then lists what is
new, changed or removed since that cut: subjects, deaths, AEs (by event_key, with grade and date
changes), DLT candidates and CRS/ICANS episodes. Every read goes through StudyReader with
``Scope.previous_cut`` (the ``prev_<table>`` CTEs), so an investigator sees only their sites' changes.
"""
from __future__ import annotations

import datetime as dt

import pandas as pd

from safety import schema
from safety.access.reader import Scope, StudyReader
from safety.core.vocabulary import ae_term_sql

CHANGE_COLUMNS = ["category", "change", "usubjid", "siteid", "event_key", "description",
                  "changed_fields", "changes"]

# per keyed table: category, key columns beyond event_key, fields compared, description columns
_AE_FIELDS = ["aetoxgr", "aesev", "aedecod", "aeterm", "aest_date", "aeen_date", "ongoing", "aeser",
              "aesdth", "aerel", "aeout", "aeacn"]
_EPISODE_FIELDS = ["max_grade", "onset_day", "last_symptomatic_day", "duration_days", "ongoing", "tocilizumab",
                   "corticosteroid", "anakinra", "source"]
# a candidate is one row per event (its first rule; the others in also_matches): a grade correction that moves it
# from R2 to R3 is that candidate changed, not one new and one removed
_DLT_FIELDS = ["rule_id", "reason", "grade", "onset_day", "end_day", "duration_days", "ongoing", "in_window"]
# per table: the column that names the event and the one that holds its grade
_LABEL = {"adverse_events": "aedecod", "toxicity_episodes": "syndrome", "dlt_candidates": "term"}
_GRADE = {"adverse_events": "aetoxgr", "toxicity_episodes": "max_grade", "dlt_candidates": "grade"}


def last_signed_off_cut(store, studyid: str, before: dt.date | str | None = None) -> dt.date | None:
    """The latest data cut of ``studyid`` the committee signed off (only cuts before ``before`` if given)."""
    row = store.last_signoff(studyid, before=before)
    return dt.date.fromisoformat(str(row["data_cut"])[:10]) if row else None


def _reader_since(reader: StudyReader, since) -> StudyReader:
    if since is None:
        if reader.scope.previous_cut is None:
            raise ValueError("changes_since needs a cut to compare with (Scope.previous_cut or since=)")
        return reader
    if isinstance(since, StudyReader):
        since = since.scope
    if isinstance(since, Scope):
        if since.studyid != reader.scope.studyid or since.sites != reader.scope.sites:
            raise ValueError("both cuts must be read in the same study and site scope")
        since = since.data_cut
    if isinstance(since, str):
        since = dt.date.fromisoformat(since)
    if not isinstance(since, dt.date):
        raise TypeError("since must be a date, a Scope, a StudyReader or None")
    if reader.scope.previous_cut == since:
        return reader
    return reader.with_previous_cut(since)


def _keyed_changes(reader: StudyReader, table: schema.Table, category: str, fields: list[str],
                   category_sql: str | None = None) -> pd.DataFrame:
    """New / changed / removed rows of ``table`` between the two cuts, matched on event_key (AEs also on their term)."""
    cols = table.column_names
    unknown = [f for f in fields if f not in cols]
    if unknown:  # a field list that drifted from the schema would hide every change of that field
        raise KeyError(f"{table.name} has no column(s) {', '.join(unknown)}")
    keys = ["event_key"]
    fields = [f for f in fields if f not in keys]
    t, pt = table.name, f"prev_{table.name}"
    on = " AND ".join(f"n.{k} IS NOT DISTINCT FROM p.{k}" for k in keys)
    if table.name == "adverse_events":  # a key passed to another event: the old one removed, the new one new
        on += f" AND {ae_term_sql('n')} IS NOT DISTINCT FROM {ae_term_sql('p')}"
    diff = " OR ".join(f"n.{f} IS DISTINCT FROM p.{f}" for f in fields) or "FALSE"
    field_names = ", ".join(f"CASE WHEN n.{f} IS DISTINCT FROM p.{f} THEN '{f}' END" for f in fields)
    field_texts = ", ".join(
        f"CASE WHEN n.{f} IS DISTINCT FROM p.{f} THEN '{f}: ' || coalesce(CAST(p.{f} AS VARCHAR), '—') "
        f"|| ' → ' || coalesce(CAST(n.{f} AS VARCHAR), '—') END" for f in fields)
    label, grade = _LABEL[table.name], _GRADE[table.name]
    label_sql = f"coalesce(n.{label}, p.{label})"
    grade_sql = (f"CASE WHEN coalesce(n.{grade}, p.{grade}) IS NOT NULL THEN ' grade ' || "
                 f"CAST(coalesce(n.{grade}, p.{grade}) AS VARCHAR) ELSE '' END")
    cat = category_sql or f"'{category}'"
    q = f"""
    SELECT {cat} AS category,
           CASE WHEN p.event_key IS NULL THEN 'new' WHEN n.event_key IS NULL THEN 'removed' ELSE 'changed' END AS change,
           coalesce(n.usubjid, p.usubjid) AS usubjid,
           coalesce(n.event_key, p.event_key) AS event_key,
           trim(coalesce(CAST({label_sql} AS VARCHAR), '') || {grade_sql}) AS description,
           CASE WHEN n.event_key IS NOT NULL AND p.event_key IS NOT NULL
                THEN list_filter([{field_names or 'NULL'}], lambda x: x IS NOT NULL) ELSE []::VARCHAR[] END AS changed_fields,
           CASE WHEN n.event_key IS NOT NULL AND p.event_key IS NOT NULL
                THEN concat_ws('; ', {field_texts or 'NULL'}) ELSE NULL END AS changes
    FROM {t} n FULL OUTER JOIN {pt} p ON {on}
    WHERE p.event_key IS NULL OR n.event_key IS NULL OR ({diff})
    """
    return reader.sql(q)


def changes_since(reader: StudyReader, since=None) -> pd.DataFrame:
    """Per subject and event, what is new / changed / removed in ``reader``'s cut compared with ``since``.

    ``since``: a date, a Scope or StudyReader of the earlier cut (same study and sites), or None to use
    ``reader.scope.previous_cut``. Columns: category (subject, death, adverse_event, dlt_candidate,
    crs_episode, icans_episode), change (new, changed, removed), usubjid, siteid, event_key (NULL for
    subject rows), description, changed_fields (list), changes ('field: before → after; ...').
    """
    r = _reader_since(reader, since)
    frames = [r.sql("""
        SELECT 'subject' AS category,
               CASE WHEN p.usubjid IS NULL THEN 'new' ELSE 'removed' END AS change,
               coalesce(n.usubjid, p.usubjid) AS usubjid, NULL::VARCHAR AS event_key,
               CASE WHEN p.usubjid IS NULL THEN 'new subject' ELSE 'subject no longer in the data' END
                 || coalesce(' (' || coalesce(n.cohort, p.cohort) || ')', '') AS description,
               []::VARCHAR[] AS changed_fields, NULL::VARCHAR AS changes
        FROM subjects n FULL OUTER JOIN prev_subjects p USING (usubjid)
        WHERE n.usubjid IS NULL OR p.usubjid IS NULL
        UNION ALL
        SELECT 'death', 'new', n.usubjid, NULL,
               'death' || coalesce(' on day ' || CAST(n.death_day AS VARCHAR), '')
                 || coalesce(': ' || coalesce(n.delivered_cause, n.fatal_ae_term), ''),
               []::VARCHAR[], NULL
        FROM deaths n LEFT JOIN prev_deaths p USING (usubjid)
        WHERE p.usubjid IS NULL
        UNION ALL
        -- a death the corrected delivery no longer records, of a subject still in the data (one who left it
        -- is said so above): the count of deaths drops, and the committee is told why
        SELECT 'death', 'removed', p.usubjid, NULL,
               'death no longer recorded (was' || coalesce(' on day ' || CAST(p.death_day AS VARCHAR), '')
                 || coalesce(': ' || coalesce(p.delivered_cause, p.fatal_ae_term), '') || ')',
               []::VARCHAR[], NULL
        FROM prev_deaths p LEFT JOIN deaths n USING (usubjid)
        WHERE n.usubjid IS NULL AND p.usubjid IN (SELECT usubjid FROM subjects)
    """)]
    frames.append(_keyed_changes(r, schema.ADVERSE_EVENTS, "adverse_event", _AE_FIELDS))
    frames.append(_keyed_changes(r, schema.DLT_CANDIDATES, "dlt_candidate", _DLT_FIELDS))
    # the episode's syndrome column says which: CRS or ICANS
    cat = ("CASE WHEN upper(coalesce(n.syndrome, p.syndrome)) = 'ICANS' THEN 'icans_episode' "
           "ELSE 'crs_episode' END")
    frames.append(_keyed_changes(r, schema.TOXICITY_EPISODES, "episode", _EPISODE_FIELDS, category_sql=cat))
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in CHANGE_COLUMNS})
    out = pd.concat(frames, ignore_index=True)
    sites = r.sql("SELECT usubjid, siteid FROM subjects UNION SELECT usubjid, siteid FROM prev_subjects")
    out = out.merge(sites.drop_duplicates("usubjid"), on="usubjid", how="left")
    order = {"death": 0, "dlt_candidate": 1, "crs_episode": 2, "icans_episode": 3, "adverse_event": 4, "subject": 5}
    out["_o"] = out["category"].map(order).fillna(9)
    out = out.sort_values(["_o", "usubjid", "event_key", "change"], na_position="first").drop(columns="_o")
    out = out[CHANGE_COLUMNS].reset_index(drop=True)
    for c in ("siteid", "event_key", "description", "changes"):
        out[c] = out[c].astype(object).where(out[c].notna(), None)  # None, not NaN, for "no value"
    return out


def changes_summary(changes: pd.DataFrame) -> pd.DataFrame:
    """Counts of changes per category and kind (new / changed / removed), for an overview tile."""
    if changes.empty:
        return pd.DataFrame(columns=["category", "new", "changed", "removed"])
    s = changes.pivot_table(index="category", columns="change", values="usubjid", aggfunc="count", fill_value=0)
    for c in ("new", "changed", "removed"):
        if c not in s.columns:
            s[c] = 0
    return s[["new", "changed", "removed"]].reset_index()
