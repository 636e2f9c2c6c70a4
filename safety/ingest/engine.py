"""The ingest engine: staged text rows -> typed, validated rows in SQL, one pass per domain.

For each domain the staged files are combined (UNION ALL BY NAME, so split domains and missing optional
columns just work), SUPP-- qualifiers are joined on, and one CREATE TABLE AS computes every parsed value
and the first reason (if any) the row cannot be loaded. Good rows go to the domain table, bad rows to
``quarantine`` with the raw record, rows dated after the cut are counted and left out.
"""
from __future__ import annotations

import csv
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

from safety.core.files import install_time_units, time_units, unit_conversions
from safety.core.sql import infusion_time_sql, run_sql, temp_table
from safety.core.vocabulary import (BELOW_LIMIT_TEXTS, CRS_TERMS, ICANS_TERMS, LYMPHODEPLETION_PATTERN,
                                    OVERALL_RESPONSE_ROW, fatal_ae, lymphodepleting_ex_sql, open_end,
                                    overall_response_params, syndrome_term_sql)
from safety.schema.source import enrollment_order_sql
from safety.ingest.domains import (
    LAB_NEGATIVE_ALLOWED, LIMITS, NOT_CAR_PATTERN, RELATED_PATTERN, SPECS,
    UNASSESSED_CAUSALITY, DomainSpec,
)
from safety.ingest.readers import StagedFile, columns_with_control_characters, control_character_check

DATA_DIR = Path(__file__).resolve().parents[1] / "data"


def q(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


@dataclass
class Ctx:
    """Everything one load knows: the connection, the key, and SQL parameters shared by every statement."""
    con: object
    studyid: str
    data_cut: object
    load_id: str
    config: dict
    counts: dict = field(default_factory=dict)  # file index -> [loaded, quarantined, after_cut]
    # The STUDYIDs a record may carry: the study's, and DM's when study.yaml names the study otherwise. Empty when
    # neither DM nor study.yaml names the study (it is named after its folder): no record's STUDYID is checked.
    studyids: tuple[str, ...] = ()

    @property
    def params(self) -> dict:
        # The cut is bound as its ISO text, which DuckDB types from where $cut stands (a DATE beside a date
        # column or in an insert into one). A Python date parameter makes DuckDB's client look at pandas, and
        # while the derivations' libraries import beside the load (pandas among them, 0.3 s) each statement of
        # the subjects' DM and EX records that binds one waited for that import to finish.
        return {"studyid": self.studyid, "cut": self.data_cut.isoformat(), "studyids": list(self.studyids)}

    def run(self, sql: str, extra: dict | None = None):
        p = dict(self.params)
        if extra:
            p.update(extra)
        return run_sql(self.con, sql, p)


class Cols:
    """Column references over the combined files of a domain: present -> cleaned text, absent -> NULL.

    Columns in ``native`` are staged with their numeric Parquet type; their text (for messages, raw records and
    text-valued outputs) is ``CAST(x AS VARCHAR)``, exactly what staging as text would have produced.
    """

    def __init__(self, files: list[StagedFile], extra: tuple[str, ...] = (), native: dict[str, str] | None = None):
        self.present = set(extra)
        for f in files:
            self.present |= set(f.columns)
        self.native = dict(native or {})

    def has(self, c: str) -> bool:
        return c in self.present

    def __call__(self, c: str) -> str:
        if c in self.native:
            return f"CAST({q(c)} AS VARCHAR)"
        return f"ct_nz({q(c)})" if c in self.present else "CAST(NULL AS VARCHAR)"

    def num(self, c: str) -> str:
        """Finite DOUBLE or NULL (ct_num of the text)."""
        return f"ct_num_d({q(c)})" if c in self.native else f"ct_num({self(c)})"

    def int(self, c: str) -> str:
        """Whole number as INTEGER or NULL (ct_int of the text)."""
        return f"ct_int_d({q(c)})" if c in self.native else f"ct_int({self(c)})"

    def notnull(self, c: str) -> str:
        return f"{q(c)} IS NOT NULL" if c in self.native else f"{self(c)} IS NOT NULL"

    def seqtext(self, c: str, prefix: str = "") -> str:
        """The key text of an IDVAR column on the column as staged: a --SEQ compares as a number ('03' is 3),
        other variables as text ('1.0' and '1' are one key)."""
        fn = "ct_seqnum" if is_seq(c) else "ct_seqtext"
        if c in self.native:
            return f"{fn}(CAST({prefix}{q(c)} AS VARCHAR))"
        return f"{fn}({prefix}{q(c)})" if c in self.present else "CAST(NULL AS VARCHAR)"

    def seqkey(self, c: str) -> list[str]:
        """Expressions that group rows exactly as ``ct_seqtext`` of the text would (-0.0 and 0.0 differ as text)."""
        if c in self.native:
            return [q(c), f"signbit(CAST({q(c)} AS DOUBLE))"]
        return [f"ct_seqtext({self(c)})"]

    def raw(self, c: str) -> str:
        """The value as delivered text, for the quarantine raw record."""
        return f"CAST({q(c)} AS VARCHAR)" if c in self.native else q(c)


class CleanedCols(Cols):
    """``Cols`` for the staging statement: each delivered text column is cleaned (``ct_nz``) once, in a layer of its
    own, and every expression refers to that column. Written out in place, the nested macros (``ct_int(ct_nz(x))``
    and the like) made expression trees whose planning took longer than running them on a study's rows."""

    def __init__(self, cols: Cols):
        self.present, self.native, self.used = cols.present, cols.native, {}

    def __call__(self, c: str) -> str:
        if c in self.native or c not in self.present:
            return super().__call__(c)
        return self.used.setdefault(c, q(f"_z_{c}"))

    def layer(self) -> str:
        """The select-list addition that computes the cleaned columns used so far."""
        return "".join(f", ct_nz({q(c)}) AS {name}" for c, name in self.used.items())


def is_seq(variable: str) -> bool:
    """An SDTM --SEQ variable (AESEQ, LBSEQ, ...): a number, so its values compare as numbers."""
    return re.fullmatch(r"[A-Z]{2}SEQ", variable or "") is not None


def install_reference_tables(con) -> None:
    """Unit conversions, units of time and medication classes (safety/data/*.csv) as temp tables."""
    install_time_units(con)
    con.execute("CREATE OR REPLACE TEMP TABLE _units (u_testcd VARCHAR, u_from VARCHAR, u_norm VARCHAR, "
                "u_to VARCHAR, u_factor DOUBLE)")
    rows = unit_conversions()
    cols = [list(c) for c in zip(*rows)]
    con.execute("INSERT INTO _units SELECT t, f, ct_unit(f), u, x FROM (SELECT unnest(CAST($1 AS VARCHAR[])) AS t, "
                "unnest(CAST($2 AS VARCHAR[])) AS f, unnest(CAST($3 AS VARCHAR[])) AS u, "
                "unnest(CAST($4 AS DOUBLE[])) AS x)", cols)
    con.execute("CREATE OR REPLACE TEMP TABLE _unit_tests AS SELECT DISTINCT u_testcd AS ut_testcd FROM _units")
    rows = []
    with open(DATA_DIR / "medication_classes.csv", newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            rows.append((r["pattern"].strip().lower(), r["med_class"].strip(), int(r["priority"]),
                         r["drug"].strip().lower()))
    temp_table(con, "_med_classes", {"pattern": "VARCHAR", "med_class": "VARCHAR", "priority": "INTEGER",
                                     "drug": "VARCHAR"}, rows)


def med_drug_sql(name: str) -> str:
    """SQL: the drug that the lower-case medication text ``name`` (CMDECOD + CMTRT, as classed) names, by the
    ``drug`` column of safety/data/medication_classes.csv, so spellings, salts and brands of one drug are one
    (noradrenaline, Levophed, norepinephrine bitartrate: norepinephrine). Of the patterns it contains, those of its
    class (the lowest priority) and of those the longest: 'epinephrine' is in 'norepinephrine' too. NULL when it
    contains none. Reads the temp table ``_med_classes`` (install_reference_tables)."""
    return (f"(SELECT arg_min(mc.drug, [mc.priority, -length(mc.pattern)]) FROM _med_classes mc "
            f"WHERE contains({name}, mc.pattern))")


def studyid_check(ctx: Ctx, cols: Cols) -> tuple[str, str, str] | None:
    """(bad condition, field, reason) of a record of another study: a STUDYID given that is not the study's. The
    delivered text is compared once per row (millions of lab rows); only a row where it differs is cleaned and
    compared again (' ITNK-B-01' is the study). None when the files give no STUDYID or the study has none."""
    if not ctx.studyids or not cols.has("STUDYID"):
        return None
    raw = q("STUDYID")
    other = (f"ct_nz({raw}) <> $studyid" if ctx.studyids == (ctx.studyid,)
             else f"NOT list_contains($studyids, ct_nz({raw}))")
    return (f"{raw} <> $studyid AND {other}", "'STUDYID'",
            f"'STUDYID ''' || ct_nz({raw}) || ''' is not this study''s (' || $studyid || ')'")


def _age_unit_params() -> dict:
    """$year_days (the days of a year, by which an age in days is one in years) and $age_terms (the CDISC units of
    age, named by the reason of an AGEU that is none of them), from safety/data/time_units.csv."""
    rows = time_units()
    return {"year_days": next(days for unit, days, _ in rows if unit == "YEARS"),
            "age_terms": ", ".join(dict.fromkeys(term for _, _, term in rows))}


# ------------------------------------------------------------------------------------------------
# SUPP-- qualifiers
# ------------------------------------------------------------------------------------------------

def _sanitize(name: str) -> str:
    s = re.sub(r"[^a-z0-9_]", "_", name.strip().lower())
    return s[:60] or "unnamed"


@dataclass
class SuppInfo:
    """The pivoted qualifiers of one parent domain: supp_<qnam> columns and the IDVARs they join on."""
    columns: list[str]
    idvars: list[str | None]


def prepare_supp(ctx: Ctx, parent: str, files: list[StagedFile], parent_files: list[StagedFile]) -> SuppInfo | None:
    """Validate SUPP rows of one parent and pivot them (one column per QNAM); orphans are marked later."""
    if not files:
        return None
    parent_cols = Cols(parent_files)
    c = CleanedCols(Cols(files))
    union = " UNION ALL BY NAME ".join(f"SELECT * FROM {f.relation}" for f in files)
    params = {k: v for f in files for k, v in f.params.items()}
    missing = []
    for f in files:
        for col in ("USUBJID", "QNAM", "QVAL"):
            if col not in f.columns:
                missing.append(f"WHEN _file = {f.index} THEN '{col}'")
    miss = ("CASE " + " ".join(missing) + " END") if missing else "CAST(NULL AS VARCHAR)"
    other_study = studyid_check(ctx, c)
    other_field = f"WHEN {other_study[0]} THEN {other_study[1]}" if other_study else ""
    other_reason = f"WHEN {other_study[0]} THEN {other_study[2]}" if other_study else ""
    parsed = (f"{miss} AS _miss, {c('USUBJID')} AS _usubjid, upper({c('IDVAR')}) AS _idvar, "
              f"CASE WHEN regexp_full_match(upper({c('IDVAR')}), '[A-Z]{{2}}SEQ') THEN ct_seqnum({c('IDVARVAL')}) "
              f"ELSE ct_seqtext({c('IDVARVAL')}) END AS _idvarval, {c('QNAM')} AS _qnam, {c('QVAL')} AS _qval")
    cleaned = f" EXCLUDE ({', '.join(c.used.values())})" if c.used else ""
    ctx.run(f"""
        CREATE OR REPLACE TEMP TABLE _t_SUPP{parent} AS
        WITH b AS ({union}),
        z AS (SELECT b.*{c.layer()} FROM b),
        t AS (SELECT z.*{cleaned}, {parsed} FROM z)
        SELECT t.*,
          CASE WHEN _reject IS NOT NULL THEN NULL WHEN _miss IS NOT NULL THEN _miss {other_field}
               WHEN _usubjid IS NULL THEN 'USUBJID'
               WHEN _qnam IS NULL THEN 'QNAM'
               WHEN _idvar IS NULL AND _idvarval IS NOT NULL THEN 'IDVAR'
               WHEN row_number() OVER (PARTITION BY _usubjid, _idvar, _idvarval, upper(_qnam) ORDER BY _file, _row) > 1
               THEN 'QNAM' END AS _qfield,
          CASE WHEN _reject IS NOT NULL THEN _reject
               WHEN _miss IS NOT NULL THEN 'required column ' || _miss || ' missing from file' {other_reason}
               WHEN _usubjid IS NULL THEN 'missing USUBJID'
               WHEN _qnam IS NULL THEN 'missing QNAM'
               -- which variable the value keys is unknown: read as subject-level, it would qualify every record
               WHEN _idvar IS NULL AND _idvarval IS NOT NULL
               THEN 'IDVARVAL ''' || _idvarval || ''' given without IDVAR: the parent record it names is unknown'
               WHEN row_number() OVER (PARTITION BY _usubjid, _idvar, _idvarval, upper(_qnam) ORDER BY _file, _row) > 1
               THEN 'duplicate qualifier ' || _qnam || ' for the same parent record (the first is kept)' END AS _qreason,
          FALSE AS _after_cut
        FROM t""", params)
    idvars = [r[0] for r in ctx.run(f"SELECT DISTINCT _idvar FROM _t_SUPP{parent} WHERE _qreason IS NULL").fetchall()]
    # supp_join takes the first IDVAR that gives a record a value: the most specific first
    idvars.sort(key=lambda v: (SUPP_LEVEL_BLANK, "") if v is None else (0 if is_seq(v) else 1, v))
    # an IDVAR that is not a column of the parent cannot be joined: its rows are quarantined, not pivoted
    bad = [v for v in idvars if v is not None and not (re.fullmatch(r"[A-Z][A-Z0-9_]*", v) and parent_cols.has(v))]
    idvars = [v for v in idvars if v not in bad]
    if bad:
        ctx.run(f"""UPDATE _t_SUPP{parent} SET _qfield = 'IDVAR',
                    _qreason = 'IDVAR ' || _idvar || ' is not a column of the ' || $parent || ' dataset'
                    WHERE _qreason IS NULL AND list_contains($bad, _idvar)""", {"bad": bad, "parent": parent})
    # in file order: of two QNAMs that make one column, the one delivered first is kept
    qnams = [r[0] for r in ctx.run(f"""SELECT _qnam FROM _t_SUPP{parent} WHERE _qreason IS NULL GROUP BY _qnam
                                       ORDER BY min((_file, _row))""").fetchall()]
    by_column: dict[str, list[str]] = {}
    for qn in qnams:
        by_column.setdefault("supp_" + _sanitize(qn), []).append(qn)
    for col, same in by_column.items():
        # two QNAMs that make one column (GR-1, GR_1, gr 1) would overwrite each other's values: the first is kept
        if len(same) > 1:
            ctx.run(f"""UPDATE _t_SUPP{parent} SET _qfield = 'QNAM',
                        _qreason = 'QNAM ' || _qnam || ' becomes column ' || $col || ' as QNAM ' || $first
                                   || ' does (the first is kept): give the qualifiers distinct names'
                        WHERE _qreason IS NULL AND list_contains($others, _qnam)""",
                    {"col": col, "first": same[0], "others": same[1:]})
    _resolve_supp_levels(ctx, parent, files, parent_files, parent_cols, [v for v in idvars if v is not None])
    names, sel, qp = [], [], {}
    for i, (col, same) in enumerate(by_column.items()):
        names.append(col)
        qp[f"qn{i}"] = same[0]
        sel.append(f"max(_qval) FILTER (WHERE _qnam = $qn{i}) AS {q(col)}")
    if not names:
        return SuppInfo([], [])
    ctx.run(f"""CREATE OR REPLACE TEMP TABLE _sp_{parent} AS
        SELECT _usubjid, _idvar, _idvarval, {', '.join(sel)} FROM _t_SUPP{parent}
        WHERE _qreason IS NULL GROUP BY _usubjid, _idvar, _idvarval""", qp)
    return SuppInfo(names, idvars)


SUPP_LEVEL_BLANK = 2  # the specificity of a qualifier with no IDVAR (every record of the subject); --SEQ 0, others 1


def _resolve_supp_levels(ctx: Ctx, parent: str, files: list[StagedFile], parent_files: list[StagedFile],
                         parent_cols: Cols, idvars: list[str], shown: int = 5) -> None:
    """One QNAM given for one parent record at two levels: the subject's (no IDVAR), a group's (AEGRPID) or the
    record's own (AESEQ). The most specific value is the record's (supp_join reads the IDVARs in that order); a
    value it replaces on every record it qualifies is lost, so its row is quarantined; replaced on some of them
    only, it is noted on its file. Two values of equal specificity (AEGRPID and AESPID) that differ on one record:
    the later row is quarantined (the first is kept), as a duplicate qualifier is. Only the subjects and QNAMs
    given with more than one IDVAR are looked at (usually none)."""
    t = f"_t_SUPP{parent}"
    level = (f"CASE WHEN _idvar IS NULL THEN {SUPP_LEVEL_BLANK} "
             f"WHEN regexp_full_match(_idvar, '[A-Z]{{2}}SEQ') THEN 0 ELSE 1 END")
    ctx.run(f"""CREATE OR REPLACE TEMP TABLE _supp_lv AS
        SELECT rowid AS rid, _file, _row, _usubjid, _idvar, _idvarval, _qnam, _qval, {level} AS _level FROM {t} s
        SEMI JOIN (SELECT _usubjid, _qnam FROM {t} WHERE _qreason IS NULL AND _qval IS NOT NULL GROUP BY ALL
                   HAVING count(DISTINCT coalesce(_idvar, '')) > 1) g USING (_usubjid, _qnam)
        WHERE s._qreason IS NULL AND s._qval IS NOT NULL""")  # an empty QVAL gives no record a value
    if not ctx.con.execute("SELECT count(*) FROM _supp_lv").fetchone()[0]:
        ctx.con.execute("DROP TABLE _supp_lv")
        return
    # the parent records each row qualifies (every parent row delivered: which of them load is decided later)
    params = {k: v for f in parent_files for k, v in f.params.items()}
    union = " UNION ALL BY NAME ".join(f"SELECT * FROM {f.relation}" for f in parent_files)
    keys = "".join(f", {parent_cols.seqtext(iv)} AS _k{i}" for i, iv in enumerate(idvars))
    joins = ["SELECT l.*, p._file AS p_file, p._row AS p_row FROM _supp_lv l JOIN p "
             "ON l._idvar IS NULL AND p._usubjid = l._usubjid"]
    for i, iv in enumerate(idvars):
        params[f"iv{i}"] = iv
        joins.append(f"SELECT l.*, p._file AS p_file, p._row AS p_row FROM _supp_lv l JOIN p "
                     f"ON l._idvar = $iv{i} AND p._usubjid = l._usubjid AND p._k{i} = l._idvarval")
    ctx.run(f"""CREATE OR REPLACE TEMP TABLE _supp_reach AS
        WITH p AS (SELECT _file, _row, {parent_cols("USUBJID")} AS _usubjid{keys} FROM ({union}))
        {" UNION ALL ".join(joins)}""", params)
    ctx.con.execute("DROP TABLE _supp_lv")
    names = {f.index: f.name for f in files}

    def where(iv, ivv) -> str:
        return "no IDVAR: every record of the subject" if iv is None else f"{iv} {ivv}"

    def other(o) -> str:
        return f"{names[o['f']]} row {o['r']} ({where(o['iv'], o['ivv'])}, {o['v']!r})"

    row = "struct_pack(f := _file, r := _row, v := _qval, lv := _level, iv := _idvar, ivv := _idvarval)"
    # equally specific, different values, one record: every row after the first (file order) is a contradiction
    clash = ctx.run(f"""WITH b AS (SELECT * FROM _supp_reach
                                   QUALIFY _level = min(_level) OVER (PARTITION BY p_file, p_row, _qnam)),
        f AS (SELECT *, first_value({row}) OVER (PARTITION BY p_file, p_row, _qnam ORDER BY _file, _row) AS _first
              FROM b)
        SELECT rid, any_value(_qnam), any_value(_qval), any_value(_idvar), any_value(_idvarval), min(_first)
        FROM f WHERE _qval IS DISTINCT FROM _first.v GROUP BY rid""").fetchall()
    quarantine = {rid: f"{qn} {qv!r} for {where(iv, ivv)} contradicts {other(first)} on the same {parent} record, "
                       "neither more specific (the first is kept)" for rid, qn, qv, iv, ivv, first in clash}
    # a more specific value replaces this row's on some or all of the records it qualifies
    replaced = ctx.run(f"""WITH r AS (SELECT * FROM _supp_reach WHERE NOT list_contains($clash, rid)),
        k AS (SELECT p_file, p_row, _qnam, arg_min({row}, (_level, _file, _row)) AS _kept FROM r GROUP BY ALL)
        SELECT rid, any_value(_file), any_value(_row), any_value(_qnam), any_value(_qval), any_value(_idvar),
               any_value(_idvarval), count(*) AS n,
               count(*) FILTER (WHERE _level > _kept.lv AND _qval IS DISTINCT FROM _kept.v) AS n_replaced,
               min(_kept) FILTER (WHERE _level > _kept.lv AND _qval IS DISTINCT FROM _kept.v) AS by_row
        FROM r JOIN k USING (p_file, p_row, _qnam) GROUP BY rid HAVING n_replaced > 0 ORDER BY 2, 3""",
                       {"clash": list(quarantine) or [-1]}).fetchall()
    notes: dict[int, list[str]] = {}
    for rid, fi, r, qn, qv, iv, ivv, n, n_replaced, by in replaced:
        if n_replaced == n:
            quarantine[rid] = (f"{qn} {qv!r} for {where(iv, ivv)} is replaced on every {parent} record it qualifies "
                               f"by a more specific value, which the record keeps: {other(by)}")
        else:
            notes.setdefault(fi, []).append(f"row {r} {qn} ({where(iv, ivv)}) on {n_replaced} of {n} {parent} "
                                            f"records, by {other(by)}")
    for f in files:
        if f.index in notes:
            rows = notes[f.index]
            more = f", and {len(rows) - shown} more" if len(rows) > shown else ""
            f.add_note(f"{len(rows)} qualifier row{'s' if len(rows) != 1 else ''} replaced on some records by a more "
                       "specific value, which those records keep: " + "; ".join(rows[:shown]) + more)
    if quarantine:
        ctx.run(f"""UPDATE {t} SET _qfield = 'QVAL', _qreason = u.reason
                    FROM (SELECT unnest($rids) AS rid, unnest($reasons) AS reason) u WHERE {t}.rowid = u.rid""",
                {"rids": list(quarantine), "reasons": list(quarantine.values())})
    ctx.con.execute("DROP TABLE _supp_reach")


def supp_join(parent: str, info: SuppInfo | None, cols: "Cols | None" = None) -> tuple[str, str, dict]:
    """(select-list addition, joins, params) that put supp_ columns on parent rows."""
    if not info or not info.columns:
        return "", "", {}
    joins, params = [], {}
    for i, iv in enumerate(info.idvars):
        a = f"_sp{i}"
        if iv is None:
            joins.append(f"LEFT JOIN _sp_{parent} {a} ON {a}._idvar IS NULL AND {a}._usubjid = ct_nz(b.USUBJID)")
        else:
            params[f"iv{i}"] = iv
            joins.append(f"LEFT JOIN _sp_{parent} {a} ON {a}._idvar = $iv{i} AND {a}._usubjid = ct_nz(b.USUBJID) "
                         f"AND {a}._idvarval = {cols.seqtext(iv, 'b.') if cols else f'ct_seqtext(b.{q(iv)})'}")
    sel = "".join(
        f", coalesce({', '.join(f'_sp{i}.{q(col)}' for i in range(len(info.idvars)))}) AS {q(col)}" for col in info.columns)
    return sel, " ".join(joins), params


def mark_supp_by_parent(ctx: Ctx, parent: str, info: SuppInfo | None, cols: "Cols | None" = None) -> None:
    """A SUPP row follows the parent record it qualifies: none in the delivery, or every one quarantined, puts it in
    quarantine with that reason; a parent loaded only after the cut makes it an after-cut row. Its value lives
    on the parent's row, so a row counted as loaded with no loaded parent would be lost while the counts agree."""
    if info is None:
        return
    parts = []
    for iv in info.idvars:
        if iv is None:
            cond = "s._idvar IS NULL AND p._usubjid = s._usubjid"
        else:
            pv = cols.seqtext(iv, "p.") if cols else f"ct_seqtext(p.{q(iv)})"
            cond = f"s._idvar = '{iv}' AND p._usubjid = s._usubjid AND {pv} = s._idvarval"
        parts.append(f"SELECT s.rowid AS rid, p._qreason IS NULL AS valid, p._qreason IS NULL AND NOT p._after_cut "
                     f"AS loaded FROM _t_SUPP{parent} s JOIN _t_{parent} p ON {cond} WHERE s._qreason IS NULL")
    matched = " UNION ALL ".join(parts) if parts else "SELECT NULL::BIGINT AS rid, FALSE AS valid, FALSE AS loaded"
    label = f"{parent} record"
    # m.valid is NULL when no parent record matches
    ctx.run(f"""UPDATE _t_SUPP{parent} s
        SET _qfield = CASE WHEN NOT coalesce(m.valid, FALSE) THEN CASE WHEN s._idvar IS NULL THEN 'USUBJID' ELSE 'IDVARVAL' END END,
            _qreason = CASE WHEN m.valid IS NULL THEN 'no matching {label} for this qualifier'
                            WHEN NOT m.valid THEN 'the {label} it qualifies is quarantined' END,
            _after_cut = coalesce(m.valid AND NOT m.loaded, FALSE)
        FROM (SELECT x.rid, g.valid, g.loaded
              FROM (SELECT rowid AS rid FROM _t_SUPP{parent} WHERE _qreason IS NULL) x
              LEFT JOIN (SELECT rid, bool_or(valid) AS valid, bool_or(loaded) AS loaded FROM ({matched}) GROUP BY rid) g
                ON g.rid = x.rid) m
        WHERE s.rowid = m.rid""")


# ------------------------------------------------------------------------------------------------
# Typing and validation
# ------------------------------------------------------------------------------------------------

EARLIEST_DATE = "1900-01-01"  # no date of a cell-therapy trial's record lies before it


def install_date_lookup(con, by_domain: dict[str, list[StagedFile]]) -> None:
    """TEMP TABLE _dates: every distinct date text of the delivery, parsed once (kind, first and last day).

    A study has a few thousand distinct dates over millions of rows; staging joins this table instead of
    parsing each row's text.
    """
    parts, params = [], {}
    for dom, files in by_domain.items():
        spec = SPECS.get(dom)
        if spec is None:
            continue
        for f in files:
            for d in dict.fromkeys(spec.start_dates + spec.end_dates):
                if d in f.columns:
                    parts.append(f"SELECT DISTINCT {q(d)} AS x FROM {f.relation}")
                    params.update(f.params)
    values = " UNION ".join(parts) if parts else "SELECT CAST(NULL AS VARCHAR) AS x"
    # the kind in a query of its own: written into ct_lo and ct_hi, its macro took longer to plan than to run
    # a date before EARLIEST_DATE is a typing error (0000-01-01 read as 1 BC, which no later step can print): its
    # kind is 'X' as an unparseable date's, with its first day kept for the quarantine reason
    con.execute(f"""CREATE OR REPLACE TEMP TABLE _dates AS
        SELECT raw, CASE WHEN lo < DATE '{EARLIEST_DATE}' THEN 'X' ELSE k END AS k, lo, hi
        FROM (SELECT raw, k, ct_lo(raw, k) AS lo, ct_hi(raw, k) AS hi
              FROM (SELECT raw, ct_kind(raw) AS k FROM (SELECT DISTINCT ct_nz(x) AS raw FROM ({values}))
                    WHERE raw IS NOT NULL))""", params)


def _lit_list(values) -> str:
    # fixed code lists from domains.py (our own constants, not input)
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _native_columns(spec: DomainSpec, files: list[StagedFile]) -> dict[str, str]:
    """Numeric columns of the spec that every file delivering them has with one numeric Parquet type."""
    wanted = list(spec.numbers) + [col for col, _, _ in spec.integers if col != "AETOXGR"]
    out = {}
    for col in dict.fromkeys(wanted):
        types = {f.native.get(col) for f in files if col in f.columns}
        if len(types) == 1 and None not in types:
            out[col] = types.pop()
    return out


def _kept_texts(spec: DomainSpec, files: list[StagedFile], studyid_checked: bool) -> list[str]:
    """The delivered text columns the load keeps as text, the ones a control character could hide in: a column
    the load reads that is not parsed as a date, number, whole number, Y/N flag or code (a control character fails
    those parses, and the row is quarantined for it already), nor a key checked against another table (USUBJID
    outside DM against DM, STUDYID against the study): on a lab file these are about half of its text
    (docs/performance-history.md, thirty-first pass)."""
    parsed = {*spec.start_dates, *spec.end_dates, *spec.full_dates_only, *spec.numbers, *spec.flags,
              *(col for col, _, _ in spec.integers), *(col for col, _ in spec.codes)}
    if spec.code != "DM":
        parsed.add("USUBJID")
    if studyid_checked:
        parsed.add("STUDYID")
    read = spec.variables_read
    return sorted({col for f in files for col in f.columns if col in read and col not in parsed})


def build_typed(ctx: Ctx, spec: DomainSpec, files: list[StagedFile], supp: SuppInfo | None) -> Cols:
    """CREATE TEMP TABLE _t_<domain>: staged rows + parsed values + _qfield/_qreason/_after_cut.

    Every date and number is parsed once here (``_k_/_lo_/_hi_`` dates, ``_n_`` numbers, ``_i_`` whole
    numbers); the loaders read those columns instead of parsing again.
    """
    _note_missing_columns(spec, files)
    native = _native_columns(spec, files)
    c = Cols(files, tuple(supp.columns) if supp else (), native)
    keep = set(native)
    union = " UNION ALL BY NAME ".join(f"SELECT * FROM {f.typed_relation(keep)}" for f in files)
    params = {k: v for f in files for k, v in f.params.items()}
    supp_sel, supp_joins, supp_params = supp_join(spec.code, supp, c)
    params.update(supp_params)
    delivered, c = c, CleanedCols(c)

    # numbers and whole numbers, parsed once
    pre_cols: dict[str, str] = {}
    for col in spec.numbers:
        pre_cols[f"_n_{col}"] = c.num(col)
    for col, _, _ in spec.integers:
        pre_cols[f"_i_{col}"] = f"ct_grade({c(col)})" if col == "AETOXGR" else c.int(col)
    for col in spec.flags:  # Y/N flags as their NY code, once
        pre_cols[f"_y_{col}"] = f"ct_ny({c(col)})" if delivered.has(col) else "CAST(NULL AS VARCHAR)"
    if spec.code == "LB":
        for x in ("LBSTRESN", "LBSTRESC", "LBORRES"):
            pre_cols.setdefault(f"_n_{x}", c.num(x))
            # a number is never censored: the pattern runs on the non-numeric texts only
            pre_cols[f"_c_{x}"] = ("CAST(NULL AS VARCHAR)" if x in native
                                   else f"CASE WHEN _n_{x} IS NULL THEN ct_cens({c(x)}) END")
    parsed = [f"{c('USUBJID')} AS _usubjid"]
    checks: list[tuple[str, str, str]] = []  # (bad condition, field SQL literal, reason SQL)

    # a delivered line that is not a row of the table (a ragged CSV line): quarantined with its line number
    checks.append(("_reject IS NOT NULL", "CAST(NULL AS VARCHAR)", "_reject"))
    other_study = studyid_check(ctx, delivered)
    texts = _kept_texts(spec, files, studyid_checked=other_study is not None)
    numeric_texts = {col: f"_n_{col}" for col in texts if f"_n_{col}" in pre_cols}
    # a result column (a number or a text) is read row by row where it is not a number; any other column only
    # when one of its distinct values holds a control character (every row is then read, to name the row)
    plain = [col for col in texts if col not in numeric_texts]
    if plain:
        found = ctx.run(columns_with_control_characters(plain, f"({union})"), params).fetchone()
        texts = [col for col in texts if col in numeric_texts or found[plain.index(col)]]
    if texts:
        checks.append(control_character_check(texts, numeric_texts))
    # required columns missing from a file: every row of that file is quarantined
    for f in files:
        for group in spec.required:
            if not any(g in f.columns for g in group):
                label = " or ".join(group)
                checks.append((f"_file = {f.index}", f"'{group[0]}'", f"'required column {label} missing from file'"))
    if other_study:
        checks.append(other_study)
    checks.append(("_usubjid IS NULL", "'USUBJID'", "'missing USUBJID'"))
    for col in spec.required_values:
        checks.append((f"NOT ({c.notnull(col)})", f"'{col}'", f"'missing {col}'"))
    date_joins = ""
    for i, d in enumerate(dict.fromkeys(spec.start_dates + spec.end_dates)):
        parsed += [f"_d{i}.k AS _k_{d}", f"_d{i}.lo AS _lo_{d}", f"_d{i}.hi AS _hi_{d}"]
        date_joins += f" LEFT JOIN _dates _d{i} ON _d{i}.raw = {c(d)}"
        checks.append((f"_k_{d} = 'X'", f"'{d}'",
                       f"CASE WHEN _lo_{d} < DATE '{EARLIEST_DATE}' THEN 'date ''' || {c(d)} || ''' is before "
                       f"{EARLIEST_DATE[:4]} (a typing error?)' ELSE 'unparseable date ''' || {c(d)} || '''' END"))
        # a date after the day of the load cannot have happened: without this check it would only fall after
        # the cut, and the record would leave the review with a count and no reason
        checks.append((f"_lo_{d} > current_date", f"'{d}'",
                       f"'date ''' || {c(d)} || ''' is after the day of the load (a typing error?)'"))
    for d in spec.full_dates_only:
        checks.append((f"_k_{d} IN ('D', 'M')", f"'{d}'", f"'incomplete date ''' || {c(d)} || ''' (a full date is required)'"))
    for col in spec.numbers:
        checks.append((f"{c.notnull(col)} AND _n_{col} IS NULL", f"'{col}'",
                       f"'non-numeric value ''' || {c(col)} || ''''"))
    if spec.code == "DM":
        # AGE in years by its AGEU (safety/data/time_units.csv; an empty AGEU is years): stored so and checked so
        date_joins += f" LEFT JOIN _time_units _au ON _au.unit = upper(coalesce({c('AGEU')}, 'YEARS'))"
        parsed.append("_n_AGE * _au.days / $year_days AS _age_years")
        params.update(_age_unit_params())
        checks.append(("_n_AGE IS NOT NULL AND _age_years IS NULL", "'AGEU'",
                       f"'AGEU ''' || {c('AGEU')} || ''' is not a unit of age (' || $age_terms || ')'"))
    for col, lo, hi in LIMITS.get(spec.code, ()):
        val = "_age_years" if col == "AGE" else f"_n_{col}"
        bad = " OR ".join(x for x in (f"{val} < {float(lo)!r}" if lo is not None else "",
                                      f"{val} > {float(hi)!r}" if hi is not None else "") if x)
        span = f"{lo}-{hi}" if lo is not None and hi is not None else (f">= {lo}" if lo is not None else f"<= {hi}")
        unit = " years" if col == "AGE" else ""
        checks.append((f"coalesce({bad}, FALSE)", f"'{col}'", f"'implausible {col} ' || {c(col)} || ' (plausible: {span}{unit})'"))
    for col, lo, hi in spec.integers:
        # the reason only runs for the failing rows: a whole number past the integer range is named as such
        checks.append((f"{c.notnull(col)} AND _i_{col} IS NULL", f"'{col}'",
                       f"CASE WHEN {c.num(col)} = round({c.num(col)}) THEN 'whole number ''' || {c(col)} || "
                       f"''' beyond the largest kept (2,000,000,000)' "
                       f"ELSE 'not a whole number: ''' || {c(col)} || '''' END"))
        if lo is not None or hi is not None:
            rng = " OR ".join(x for x in (f"_i_{col} < {lo}" if lo is not None else "",
                                          f"_i_{col} > {hi}" if hi is not None else "") if x)
            span = f"{lo}-{hi}" if lo is not None and hi is not None else (f">= {lo}" if lo is not None else f"<= {hi}")
            checks.append((rng, f"'{col}'", f"'{col} ' || {c(col)} || ' outside {span}'"))
    for col in spec.flags:
        if delivered.has(col):
            checks.append((f"{c(col)} IS NOT NULL AND _y_{col} IS NULL", f"'{col}'",
                           f"'''' || {c(col)} || ''' is not a Y/N flag (Y, N, U or NA)'"))
    for col, allowed in spec.codes:
        checks.append((f"{c(col)} IS NOT NULL AND NOT list_contains({_lit_list(allowed)}, upper({c(col)}))", f"'{col}'",
                       f"'''' || {c(col)} || ''' is not one of {', '.join(allowed)}'"))

    joins = ""

    def ends_before_start(pre: str) -> str:
        # the end's latest reading before the start's earliest; on the same day, both times given and the end's
        # earlier (a start 10:00 and an end 08:00 loaded as a one-day event)
        st, en = c(f"{pre}STDTC"), c(f"{pre}ENDTC")
        return (f"(_hi_{pre}ENDTC < _lo_{pre}STDTC OR (_lo_{pre}ENDTC = _lo_{pre}STDTC AND _k_{pre}ENDTC = 'F' "
                f"AND _k_{pre}STDTC = 'F' AND length({en}) > 10 AND length({st}) > 10 "
                f"AND ct_time({en}, 'F') < ct_time({st}, 'F')))")
    if spec.code == "AE":
        checks.append((ends_before_start("AE"), "'AEENDTC'",
                       f"'AE end ' || {c('AEENDTC')} || ' before start ' || {c('AESTDTC')}"))
    if spec.code in ("EX", "CM", "PR", "CE"):
        pre = spec.code
        checks.append((ends_before_start(pre), f"'{pre}ENDTC'",
                       f"'end ' || {c(pre + 'ENDTC')} || ' before start ' || {c(pre + 'STDTC')}"))
    if spec.code == "LB":
        parsed += _lab_parsed(c)
        # unit spellings are normalised once per distinct (test, unit), not once per row
        # the delivered (test, units) once, in one read of the file: cleaned then, on their few distinct values
        codes = ", ".join(q(col) for col in ("LBTESTCD", "LBSTRESU", "LBORRESU") if delivered.has(col)) or "1 AS _none"
        ctx.run(f"""CREATE OR REPLACE TEMP TABLE _lbu AS
            WITH x AS MATERIALIZED (SELECT DISTINCT {codes} FROM ({union}) b),
            d AS (SELECT DISTINCT upper(t) AS t, raw
                  FROM (SELECT {delivered('LBTESTCD')} AS t, {delivered('LBSTRESU')} AS raw FROM x
                        UNION SELECT {delivered('LBTESTCD')}, {delivered('LBORRESU')} FROM x)
                  WHERE raw IS NOT NULL)
            SELECT d.t AS lbu_testcd, d.raw AS lbu_raw, u.u_factor AS lbu_factor, u.u_to AS lbu_to,
                   ' x ' || CAST(u.u_factor AS VARCHAR) AS lbu_times
            FROM d JOIN _units u ON u.u_testcd = d.t AND u.u_norm = ct_unit(d.raw)""", params)
        joins = ("LEFT JOIN _lbu _u ON _u.lbu_testcd = _testcd AND _u.lbu_raw = _raw_unit "
                 "LEFT JOIN _lbu _uo ON _uo.lbu_testcd = _testcd AND _uo.lbu_raw = " + c("LBORRESU") + " "
                 "LEFT JOIN _unit_tests _ut ON _ut.ut_testcd = _testcd")
        checks.append(("_raw_val IS NULL AND _result_text IS NOT NULL AND upper(coalesce(" + c("LBSTAT") + ", '')) <> 'NOT DONE' "
                       "AND (_ut.ut_testcd IS NOT NULL OR _raw_unit IS NOT NULL)",
                       "CASE WHEN " + c("LBSTRESC") + " IS NOT NULL THEN 'LBSTRESC' ELSE 'LBORRES' END",
                       "'non-numeric result ''' || _result_text || ''''"))
        checks.append(("_raw_unit IS NOT NULL AND _ut.ut_testcd IS NOT NULL AND _u.lbu_factor IS NULL",
                       "CASE WHEN _src = 'LBORRES' THEN 'LBORRESU' ELSE 'LBSTRESU' END",
                       "'unknown unit ''' || _raw_unit || ''' for ' || _testcd || ' (see safety/data/unit_conversions.csv)'"))
        # 1e308 mg/dL is a number, but not once converted: it would load as inf and grade 4
        checks.append(("NOT isfinite(_raw_val * _u.lbu_factor)", "_src",
                       "'result ' || CAST(_raw_val AS VARCHAR) || ' ' || _raw_unit || ' is beyond any number once "
                       "converted to ' || _unit"))
    if spec.code == "LB":
        checks.append((f"_raw_val < 0 AND NOT list_contains({_lit_list(LAB_NEGATIVE_ALLOWED)}, _testcd)", "_src",
                       "'implausible negative result ''' || CASE _src WHEN 'LBSTRESN' THEN " + c("LBSTRESN")
                       + " WHEN 'LBSTRESC' THEN " + c("LBSTRESC") + " ELSE " + c("LBORRES")
                       + " END || ''' for ' || _testcd"))
    if spec.code == "VS":
        checks.append((f"NOT ({c.notnull('VSSTRESN')}) AND {c('VSORRES')} IS NOT NULL AND ct_num({c('VSORRES')}) IS NULL "
                       f"AND {c('VSSTRESC')} IS NULL", "'VSORRES'", f"'non-numeric result ''' || {c('VSORRES')} || ''''"))

    if spec.code == "PC":
        # a concentration that is neither a number nor below the LLOQ ('1,000', '>ULOQ') would load without a
        # value and leave the kinetics silently
        txt = pc_result_text(c)
        checks.append((f"NOT ({c.notnull('PCSTRESN')}) AND {txt} IS NOT NULL AND {pc_result_value(c)} IS NULL "
                       f"AND NOT {pc_below_lloq_text(c)} AND upper(coalesce({c('PCSTAT')}, '')) <> 'NOT DONE'",
                       f"CASE WHEN {c('PCSTRESC')} IS NOT NULL THEN 'PCSTRESC' ELSE 'PCORRES' END",
                       f"'non-numeric result ''' || {txt} || ''''"))

    if spec.code != "DM":
        joins += f" LEFT JOIN {_dm_lookup(spec)} _dm ON _dm.dm_usubjid = _usubjid"
        checks.append(("_dm.dm_usubjid IS NULL", "'USUBJID'", "'subject ' || _usubjid || ' not in DM'"))
        checks.append(("_dm.dm_state = 'quarantined'", "'USUBJID'",
                       "'subject ' || _usubjid || ' has a quarantined DM record'"))

    # the conditions are evaluated once (first failing check wins); field and reason only for failing rows.
    # The duplicate-key check, always the last one, is applied afterwards (see _mark_duplicates).
    idx = "CASE " + " ".join(f"WHEN {cond} THEN {i}" for i, (cond, _, _) in enumerate(checks)) + " END"
    fld = "CASE _qidx " + " ".join(f"WHEN {i} THEN {f}" for i, (_, f, _) in enumerate(checks)) + " END"
    rsn = "CASE _qidx " + " ".join(f"WHEN {i} THEN {r}" for i, (_, _, r) in enumerate(checks)) + " END"
    cut_cond = f"_lo_{spec.cut_date} > $cut" if spec.cut_date else "FALSE"
    if spec.code != "DM":
        cut_cond = f"({cut_cond} OR _dm_state = 'after_cut')"
    dm_state = ", _dm.dm_state AS _dm_state" if spec.code != "DM" else ""
    dm_state += "".join(f", _dm.{name}" for name in STAGED_SUBJECT.get(spec.code, {}))
    pre_sel = "".join(f", {expr} AS {name}" for name, expr in pre_cols.items())

    # helpers of the checks only: not materialised (the staging table is the largest thing ingest holds)
    # _reject and _raw are read by the checks only (quarantine takes the raw record from the file again)
    drop = ["_qidx", "_reject", "_raw"] + (["_dm_state"] if spec.code != "DM" else [])
    if spec.code == "LB":
        drop += ["_result_text", "_n_LBSTRESN", "_n_LBSTRESC", "_n_LBORRES", "_c_LBSTRESN", "_c_LBSTRESC", "_c_LBORRES",
                 "_raw_val", "_raw_unit", "_src", "_n_LBSTNRLO", "_n_LBSTNRHI", "_n_LBORNRLO", "_n_LBORNRHI"]
    if spec.staged is not None:
        needed = set(spec.staged) | {spec.seq} | {iv for iv in (supp.idvars if supp else []) if iv}
        drop += sorted({col for f in files for col in f.columns} - needed)
    drop += c.used.values()  # every expression is written by now: the cleaned columns they use
    ctx.run(f"""
        CREATE OR REPLACE TEMP TABLE _t_{spec.code} AS
        WITH b AS ({union}),
        s AS (SELECT b.*{supp_sel} FROM b {supp_joins}),
        z AS (SELECT s.*{c.layer()} FROM s),
        s2 AS (SELECT z.*{pre_sel} FROM z),
        p AS (SELECT s2.*, {', '.join(parsed)} FROM s2{date_joins}),
        v AS (SELECT p.*, {idx} AS _qidx{_lab_values(spec)}{dm_state} FROM p {joins})
        SELECT v.* EXCLUDE ({', '.join(dict.fromkeys(drop))}), {fld} AS _qfield, {rsn} AS _qreason,
               _qidx IS NULL AND coalesce({cut_cond}, FALSE) AS _after_cut FROM v""", params)
    if spec.code == "DM" or (spec.seq and delivered.has(spec.seq)):
        _mark_duplicates(ctx, spec, delivered, files)
    else:
        _mark_copies(ctx, spec, files)
    _note_flag_spellings(ctx, spec, files, delivered)
    if spec.code == "LB":
        _note_lab_stres(ctx, files)
    return delivered


# The subject's values a domain's loader reads, staged on its rows by the DM join the staging makes anyway: the
# loader then reads its staging table alone, whose row order DuckDB keeps (load_ae). _subj is final by then: AE is
# staged after DM, EX, DS and CM, and only its own fatal AEs change _subj later (set_ae_deaths).
STAGED_SUBJECT = {"AE": {"_inf": "inf_date", "_inf_dtc": "inf_dtc", "_death": "death_date", "_ld": "ld_date",
                         "_death_after_cut": "death_after_cut"}}


def _dm_lookup(spec: DomainSpec) -> str:
    """The table staging joins on USUBJID for the subject's DM state (_dm_ids), with STAGED_SUBJECT's values."""
    carried = STAGED_SUBJECT.get(spec.code)
    if not carried:
        return "_dm_ids"
    sel = ", ".join(f"s.{col} AS {name}" for name, col in carried.items())
    return f"(SELECT d.*, {sel} FROM _dm_ids d LEFT JOIN _subj s ON s.usubjid = d.dm_usubjid)"


def _note_missing_columns(spec: DomainSpec, files: list[StagedFile]) -> None:
    """Note on each file the columns of ``spec.expected`` it does not deliver: its rows load without them (every
    AE with no start date, every lab undated), which no row's quarantine would show. A delivered header the load
    does not read, close to the missing name (AESTDT for AESTDTC) or beginning with it (AESERIOUS for AESER), is
    named as the likely misspelling; a header read as a variable of its own (AESEQ) never is."""
    for f in files:
        unread = [k for k in f.columns if k not in spec.variables_read]
        for col in spec.expected:
            if col in f.columns:
                continue
            near = (difflib.get_close_matches(col, unread, n=1, cutoff=0.8)
                    or sorted((k for k in unread if k.startswith(col)), key=len)[:1])
            hint = f" ({f.columns[near[0]]!r} is delivered: a misspelling of {col}?)" if near else ""
            f.add_note(f"no {col} column: every row loads without it{hint}")


def _note_flag_spellings(ctx: Ctx, spec: DomainSpec, files: list[StagedFile], c: Cols) -> None:
    """Note on each file the Y/N flag spellings read as their code ('Yes' as Y), with their row counts."""
    flags = [col for col in spec.flags if c.has(col)]
    if not flags:
        return
    parts = " UNION ALL ".join(f"SELECT _file, '{col}' AS col, {c(col)} AS raw, _y_{col} AS code FROM _t_{spec.code} "
                               f"WHERE _qreason IS NULL AND _y_{col} IS NOT NULL AND {c(col)} <> _y_{col}"
                               for col in flags)
    by_file: dict[int, list[str]] = {}
    for idx, col, raw, code, n in ctx.run(f"SELECT _file, col, raw, code, count(*) FROM ({parts}) GROUP BY ALL "
                                          "ORDER BY _file, col, raw").fetchall():
        by_file.setdefault(idx, []).append(f"{col} {raw!r} as {code} ({n} row{'s' if n != 1 else ''})")
    for f in files:
        if f.index in by_file:
            f.add_note("Y/N flags read as their code: " + ", ".join(by_file[f.index]))


def _note_lab_stres(ctx: Ctx, files: list[StagedFile], shown: int = 5) -> None:
    """Note on each LB file the loaded rows whose LBSTRESN and LBSTRESC give two numbers (LBSTRESC 17.1, LBSTRESN
    99; '<25' with LBSTRESN 99), the first ``shown`` with their values: the value is LBSTRESN, which may be the
    wrong one of the two."""
    by_file: dict[int, list[tuple[int, str]]] = {}
    for idx, row, pair in ctx.run("""SELECT _file, _row, _stres_differ FROM _t_LB
                                     WHERE _stres_differ IS NOT NULL AND _qreason IS NULL AND NOT _after_cut
                                     ORDER BY _file, _row""").fetchall():
        by_file.setdefault(idx, []).append((row, pair))
    for f in files:
        rows = by_file.get(f.index)
        if rows:
            more = f", and {len(rows) - shown} more" if len(rows) > shown else ""
            f.add_note(f"LBSTRESN is not the number of LBSTRESC in {len(rows)} row{'s' if len(rows) != 1 else ''}, "
                       "loaded with the value of LBSTRESN: "
                       + ", ".join(f"row {r} ({pair})" for r, pair in rows[:shown]) + more)


def _mark_duplicates(ctx: Ctx, spec: DomainSpec, c: Cols, files: list[StagedFile]) -> None:
    """Duplicate key (USUBJID + --SEQ; USUBJID in DM): every record after the first in file order is quarantined,
    with a reason that says whether the first was loaded or is quarantined as well.

    Equal neighbours in the sorted hashes of the key are the candidates (usually none); the exact grouping and
    the window that orders the records run over those only.
    """
    table = f"_t_{spec.code}"
    # --SEQ is a number in SDTM: the parsed whole number is the key ('03' and '3' are one record)
    seq_parsed = spec.seq in {col for col, _, _ in spec.integers}
    keys = ["_usubjid"] if spec.code == "DM" else ["_usubjid"] + ([f"_i_{spec.seq}"] if seq_parsed else c.seqkey(spec.seq))
    notnull = "TRUE" if spec.code == "DM" else c.notnull(spec.seq)
    what = "USUBJID" if spec.code == "DM" else f"USUBJID + {spec.seq}"
    _quarantine_repeats(ctx, table, files, keys, notnull, spec.seq or "USUBJID",
                        kept=f"duplicate key ({what}) of {{first}}; the first record is kept",
                        both=f"duplicate key ({what}) of {{first}}; the first record is quarantined too, so neither "
                             "is loaded: deliver the record once")


def _mark_copies(ctx: Ctx, spec: DomainSpec, files: list[StagedFile]) -> None:
    """Rows equal in every delivered column, in a domain whose files give no --SEQ to tell records apart (the celltox
    assessment files, an SDTM domain delivered without its --SEQ): every copy after the first in file order is
    quarantined. A dataset delivered twice would otherwise load twice, each assessment or result counted twice."""
    table = f"_t_{spec.code}"
    delivered = [r[0] for r in ctx.con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = $t AND NOT starts_with(column_name, '_') "
        "ORDER BY column_index", {"t": table}).fetchall()]
    if not delivered:
        return
    # one text key, NULL-safe (an empty column equals an empty column): the row's values as a JSON list
    row = "to_json(list_value(" + ", ".join(f'CAST("{col}" AS VARCHAR)' for col in delivered) + "))"
    _quarantine_repeats(ctx, table, files, ["_usubjid", row], "_usubjid IS NOT NULL", "USUBJID",
                        kept="an exact copy of {first} (every column equal, and no --SEQ to tell them apart); "
                             "the first is kept",
                        both="an exact copy of {first}, which is quarantined itself; deliver the record once")


def _quarantine_repeats(ctx: Ctx, table: str, files: list[StagedFile], keys: list[str], notnull: str, field: str,
                        kept: str, both: str) -> None:
    """Quarantine every row of ``table`` after the first (file order) with the same ``keys``: reason ``kept`` when
    the first is loaded, ``both`` when it is quarantined itself; ``{first}`` in them names the first record's file
    and row (of ``files``), so the data manager can compare the two."""
    names = [f"_k{i}" for i in range(len(keys))]
    ksel = ", ".join(f"{k} AS {n}" for k, n in zip(keys, names))
    klist = ", ".join(names)
    # Sorting one hash and comparing neighbours is cheaper than grouping millions of text keys; hash collisions
    # are weeded out by the exact grouping that follows.
    hashed = f"hash({', '.join(keys)})"
    if not ctx.run(f"""SELECT count(*) FROM (SELECT _h, lag(_h) OVER (ORDER BY _h) AS _prev
                       FROM (SELECT {hashed} AS _h FROM {table} WHERE {notnull})) WHERE _h = _prev""").fetchone()[0]:
        return  # no two keys share a hash, so none is duplicated (the usual case: one short statement)
    ctx.run(f"""CREATE OR REPLACE TEMP TABLE _dup AS
        WITH hs AS (SELECT {hashed} AS _h FROM {table} WHERE {notnull}),
        h AS (SELECT DISTINCT _h FROM (SELECT _h, lag(_h) OVER (ORDER BY _h) AS _prev FROM hs) WHERE _h = _prev),
        k AS (SELECT _file, _row, _qreason, {ksel} FROM {table} WHERE {notnull} AND {hashed} IN (SELECT _h FROM h)),
        d AS (SELECT {klist} FROM k GROUP BY ALL HAVING count(*) > 1),
        r AS (SELECT k.*, row_number() OVER w AS _rn, first_value(_qreason IS NULL) OVER w AS _first_kept,
                     first_value(_file) OVER w AS _first_file, first_value(_row) OVER w AS _first_row
              FROM k SEMI JOIN d USING ({klist})
              WINDOW w AS (PARTITION BY {klist} ORDER BY _file, _row))
        SELECT _file AS d_file, _row AS d_row, _first_kept AS d_first_kept, _first_file AS d_first_file,
               _first_row AS d_first_row FROM r WHERE _rn > 1 AND _qreason IS NULL""")
    if ctx.con.execute("SELECT count(*) FROM _dup").fetchone()[0]:
        # the first record of the key owns it even when it is quarantined itself (a ragged line, a bad value):
        # which of the two is right is the sender's to say, and the reason says that neither was loaded
        names = [""] * (max(f.index for f in files) + 1)
        for f in files:
            names[f.index] = f.name
        (kept_a, kept_b), (both_a, both_b) = kept.split("{first}"), both.split("{first}")
        ctx.run(f"""UPDATE {table} SET _qfield = $field, _after_cut = FALSE,
                   _qreason = CASE WHEN _dup.d_first_kept THEN $kept_a ELSE $both_a END
                              || $names[_dup.d_first_file + 1] || ' row ' || CAST(_dup.d_first_row AS VARCHAR)
                              || CASE WHEN _dup.d_first_kept THEN $kept_b ELSE $both_b END
            FROM _dup WHERE {table}._file = _dup.d_file AND {table}._row = _dup.d_row""",
                {"field": field, "names": names, "kept_a": kept_a, "kept_b": kept_b, "both_a": both_a,
                 "both_b": both_b})


def _lab_values(spec: DomainSpec) -> str:
    """LB value, unit and reference range in SI units, computed while staging so that the loader only copies."""
    if spec.code != "LB":
        return ""
    f, fo = "coalesce(_u.lbu_factor, 1.0)", "coalesce(_uo.lbu_factor, 1.0)"
    return f""", _raw_val * {f} AS _value, coalesce(_u.lbu_to, _raw_unit) AS _unit,
        CASE WHEN _src <> 'LBORRES' AND _n_LBSTNRLO IS NOT NULL THEN _n_LBSTNRLO * {f} ELSE _n_LBORNRLO * {fo} END AS _lln,
        CASE WHEN _src <> 'LBORRES' AND _n_LBSTNRHI IS NOT NULL THEN _n_LBSTNRHI * {f} ELSE _n_LBORNRHI * {fo} END AS _uln,
        CASE WHEN {f} = 1 THEN _src ELSE _src || _u.lbu_times END AS _value_source"""


def _lab_parsed(c: Cols) -> list[str]:
    """LB value selection: LBSTRESN, else numeric LBSTRESC, else LBORRES (censored text keeps its bound)."""
    return [
        f"upper({c('LBTESTCD')}) AS _testcd",
        f"coalesce({c('LBSTRESC')}, {c('LBORRES')}, {c('LBSTRESN')}) AS _result_text",
        """CASE WHEN _n_LBSTRESN IS NOT NULL THEN 'LBSTRESN'
                 WHEN _n_LBSTRESC IS NOT NULL OR _c_LBSTRESC IS NOT NULL THEN 'LBSTRESC'
                 WHEN _n_LBORRES IS NOT NULL OR _c_LBORRES IS NOT NULL THEN 'LBORRES' END AS _src""",
        f"""CASE WHEN _n_LBSTRESN IS NOT NULL THEN _n_LBSTRESN
                 WHEN _n_LBSTRESC IS NOT NULL THEN _n_LBSTRESC
                 WHEN _c_LBSTRESC IS NOT NULL THEN ct_censval({c('LBSTRESC')})
                 WHEN _n_LBORRES IS NOT NULL THEN _n_LBORRES
                 WHEN _c_LBORRES IS NOT NULL THEN ct_censval({c('LBORRES')}) END AS _raw_val""",
        # sponsors often copy the bound of '<25' into LBSTRESN (SDTMIG leaves it empty): read as exactly 25, a
        # platelet count was graded one grade too low
        f"""CASE WHEN _n_LBSTRESN IS NOT NULL
                      THEN CASE WHEN _c_LBSTRESC IS NOT NULL AND ct_censval({c('LBSTRESC')}) = _n_LBSTRESN
                                THEN _c_LBSTRESC END
                 WHEN _n_LBSTRESC IS NOT NULL OR _c_LBSTRESC IS NOT NULL THEN _c_LBSTRESC
                 WHEN _n_LBORRES IS NOT NULL THEN NULL ELSE _c_LBORRES END AS _cens""",
        # LBSTRESN and LBSTRESC giving two numbers: the value is LBSTRESN, and the file is noted (_note_lab_stres)
        f"""CASE WHEN _n_LBSTRESN <> coalesce(_n_LBSTRESC, ct_censval({c('LBSTRESC')}))
                 THEN 'LBSTRESC ''' || {c('LBSTRESC')} || ''', LBSTRESN ' || {c('LBSTRESN')} END AS _stres_differ""",
        f"""CASE WHEN _n_LBSTRESN IS NULL AND _n_LBSTRESC IS NULL AND _c_LBSTRESC IS NULL
                      AND (_n_LBORRES IS NOT NULL OR _c_LBORRES IS NOT NULL) THEN {c('LBORRESU')}
                 WHEN _n_LBSTRESN IS NOT NULL OR _n_LBSTRESC IS NOT NULL OR _c_LBSTRESC IS NOT NULL THEN {c('LBSTRESU')}
                 ELSE coalesce({c('LBSTRESU')}, {c('LBORRESU')}) END AS _raw_unit""",
    ]


def count_and_quarantine(ctx: Ctx, domain: str, table: str, files: list[StagedFile], cols: Cols | None = None) -> None:
    """Record per-file counts and insert the quarantined rows of each file (raw record as JSON built only for them)."""
    for idx, loaded, quar, after in ctx.run(f"""SELECT _file, count(*) FILTER (WHERE _qreason IS NULL AND NOT _after_cut),
            count(*) FILTER (WHERE _qreason IS NOT NULL), count(*) FILTER (WHERE _after_cut)
            FROM {table} GROUP BY _file""").fetchall():
        ctx.counts[idx] = [loaded, quar, after]
    for f in files:
        if not ctx.counts.get(f.index, [0, 0, 0])[1]:
            continue
        pairs, jp = [], {}
        for i, (canon, orig) in enumerate(f.columns.items()):
            jp[f"k{i}"] = orig
            pairs.append(f"$k{i}, {cols.raw(canon) if cols else q(canon)}")
        # json_object takes at most so many arguments comfortably; chunk and merge
        chunks = [pairs[i:i + 40] for i in range(0, len(pairs), 40)] or [[]]
        raw = "json_merge_patch(" + ", ".join(f"json_object({', '.join(ch)})" for ch in chunks) + ")" \
            if len(chunks) > 1 else f"json_object({', '.join(chunks[0])})"
        # The raw record is re-read from the file: a staging table may hold only the columns its loader needs.
        relation = f.typed_relation(set(cols.native)) if cols else f.relation
        ctx.run(f"""INSERT INTO quarantine BY NAME
            SELECT $studyid AS studyid, $cut AS data_cut, $load_id AS load_id, $domain AS domain,
                   $source_file AS source_file, CAST(_row AS INTEGER) AS row_number, _q_usubjid AS usubjid,
                   _q_field AS field, _q_reason AS reason,
                   coalesce(r._raw, CAST({raw} AS VARCHAR)) AS raw_record
            FROM {relation} r
            JOIN (SELECT _row AS _q_row, _usubjid AS _q_usubjid, _qfield AS _q_field, _qreason AS _q_reason
                  FROM {table} WHERE _file = {f.index} AND _qreason IS NOT NULL) t ON r._row = t._q_row
            ORDER BY _row""",
                {**jp, **f.params, "load_id": ctx.load_id, "domain": domain, "source_file": f.name})


def drop_staging(ctx: Ctx, domain: str) -> None:
    """Drop a domain's staging tables once its rows are loaded, quarantined and counted.

    They live in memory until dropped (the staged rows, their SUPP-- rows and the qualifiers pivoted onto them):
    LB's held 0.4-0.5 GB of a delivery of 2-5 million lab rows to the end of the load (docs/performance-history.md,
    tenth pass).
    DM's is kept: the deaths, the SDTM-built assessments and the subjects table read it after the other domains."""
    if domain == "DM":
        return
    for table in (f"_t_{domain}", f"_t_SUPP{domain}", f"_sp_{domain}"):
        ctx.con.execute(f"DROP TABLE IF EXISTS {table}")


def add_supp_columns(ctx: Ctx, table: str, supp: SuppInfo | None) -> None:
    if supp:
        for col in supp.columns:
            ctx.con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {q(col)} VARCHAR")


def supp_select(supp: SuppInfo | None) -> str:
    return "".join(f", t.{q(col)}" for col in (supp.columns if supp else []))


# ------------------------------------------------------------------------------------------------
# Domain tables
# ------------------------------------------------------------------------------------------------

KEYSEL = "$studyid AS studyid, $cut AS data_cut, t._usubjid AS usubjid"
OK = "t._qreason IS NULL AND NOT t._after_cut"


def file_order(ctx: Ctx, table: str) -> str:
    """The ORDER BY that an insert selecting from ``table`` alone (no join) needs to write its rows in file order:
    none when the table's rows are in file order already, else ``ORDER BY _file, _row``.

    A select from one table, filtered and projected, keeps the table's row order while DuckDB preserves insertion
    order (its default, which the load keeps), and so does a window with an empty OVER (DuckDB's "order
    preservation"): the check reads the rows in the order the insert will. A staging table is in file order when
    DuckDB staged its rows on one thread (one file of one row group: pyarrow writes up to a million rows in one),
    which the staging's joins do not guarantee: hence the check, a few ms against about 0.13 CPU s for sorting
    500,000 AEs (docs/performance-history.md, thirty-sixth pass)."""
    ordered = ctx.run(f"""SELECT current_setting('preserve_insertion_order') AND count(*) = 0
        FROM (SELECT _file, _row, lag(_file) OVER () AS _prev_file, lag(_row) OVER () AS _prev_row FROM {table})
        WHERE _file < _prev_file OR (_file = _prev_file AND _row < _prev_row)""").fetchone()[0]
    return "" if ordered else " ORDER BY _file, _row"


def start_date(col: str, end: str = "NULL", inf: str = "s.inf_date", ld: str = "NULL") -> str:
    """SQL of a start-type date: a partial one imputed by ct_start, never after the record's own ``end``
    (``ld``: the start of lymphodepletion, the second date an AE's partial start may take)."""
    return f"ct_start(t._k_{col}, t._lo_{col}, t._hi_{col}, {inf}, {ld}, {end})"


def end_date(col: str, death: str = "s.death_date") -> str:
    """SQL of an end-type date: a partial one imputed by ct_end (its period's last day, not after death or the cut)."""
    return f"ct_end(t._k_{col}, t._lo_{col}, t._hi_{col}, {death}, $cut)"


def dated(c: Cols, col: str, prefix: str, end: str = "NULL") -> str:
    """dtc / _date / _date_flag for a start-type date (imputed not before day 0, never after ``end``)."""
    return (f"{c(col)} AS {prefix}dtc, {start_date(col, end)} AS {prefix}_date, "
            f"ct_flag(t._k_{col}) AS {prefix}_date_flag")


def insert_dm_ids(ctx: Ctx, c_dm: Cols | None = None) -> None:
    """Every USUBJID of DM with its state: loaded, quarantined, or enrolled after the cut; and ``_subj``, the loaded
    ones, with ``death_after_cut`` set when DM dates the death after the cut (DTHDTC): an AE with no date that
    records the death is then that later death, not one at the cut (load_ae)."""
    ctx.run("""CREATE OR REPLACE TEMP TABLE _dm_ids AS
        SELECT _usubjid AS dm_usubjid,
               CASE WHEN bool_or(_qreason IS NULL AND NOT _after_cut) THEN 'ok'
                    WHEN bool_or(_after_cut) THEN 'after_cut' ELSE 'quarantined' END AS dm_state
        FROM _t_DM WHERE _usubjid IS NOT NULL GROUP BY _usubjid""")
    ctx.run("""CREATE OR REPLACE TEMP TABLE _subj AS
        SELECT dm_usubjid AS usubjid, CAST(NULL AS DATE) AS inf_date, CAST(NULL AS VARCHAR) AS inf_dtc,
               CAST(NULL AS VARCHAR) AS inf_source, 0 AS infusions, CAST(NULL AS VARCHAR) AS inf_extrt,
               CAST(NULL AS VARCHAR) AS inf_dose, CAST(NULL AS DATE) AS death_date,
               CAST(NULL AS VARCHAR) AS death_source, CAST(NULL AS VARCHAR) AS death_date_flag,
               CAST(NULL AS VARCHAR) AS death_cause, CAST(NULL AS DATE) AS ld_date,
               CAST(NULL AS VARCHAR) AS inf_date_flag, false AS death_after_cut
        FROM _dm_ids WHERE dm_state = 'ok'""")
    if c_dm is not None and c_dm.has("DTHDTC"):
        ctx.run("""UPDATE _subj SET death_after_cut = true FROM _t_DM t
            WHERE _subj.usubjid = t._usubjid AND t._qreason IS NULL AND t._lo_DTHDTC > $cut""")


# subjects.infusion_source of a subject whose first CAR infusion in EX is a partial date and DM.RFXSTDTC a complete
# date inside its period: RFXSTDTC, the first exposure to the day, is day 0
INFUSION_FROM_RFXSTDTC = "DM.RFXSTDTC (EXSTDTC partial)"


def set_infusions(ctx: Ctx, c_dm: Cols, have_ex: bool, c_ex: Cols | None) -> None:
    """Day 0 per subject: the first CAR infusion in EX (on or before the cut), else DM.RFXSTDTC. When that EX date
    is partial ('2026-03') and RFXSTDTC a complete date inside its period, RFXSTDTC; a day 0 still imputed (the
    period's first day) has its flag in ``_subj.inf_date_flag``."""
    rfx_ok = "t._qreason IS NULL AND NOT t._after_cut AND t._lo_RFXSTDTC <= $cut"
    if have_ex:
        # the first infusion: by date, then by time on one day (a split dose at 08:00 and 10:00 starts at 08:00; a
        # record without a time after a timed one), then in file order; hi: the earliest latest reading of any CAR
        # infusion, so the first infusion was on or before it
        stdtc = c_ex("EXSTDTC")
        time = f"CASE WHEN length({stdtc}) > 10 THEN ct_time({stdtc}, _k_EXSTDTC) END"
        first = f"(_lo_EXSTDTC, _hi_EXSTDTC, {time} IS NULL, coalesce({time}, TIMESTAMP '1970-01-01'), _file, _row)"
        ctx.run(f"""CREATE OR REPLACE TEMP TABLE _inf_ex AS
            SELECT _usubjid AS u, min(_lo_EXSTDTC) AS d, min(_hi_EXSTDTC) AS hi,
                   arg_min({stdtc}, {first}) AS dtc, ct_flag(arg_min(_k_EXSTDTC, {first})) AS flag,
                   count(*) AS n, arg_min({c_ex('EXTRT')}, {first}) AS extrt,
                   arg_min(nullif(concat_ws(' ', {c_ex('EXDOSE')}, {c_ex('EXDOSU')}), ''), {first}) AS dose
            FROM _t_EX t WHERE {OK} AND _is_car AND _lo_EXSTDTC IS NOT NULL GROUP BY _usubjid""")
        ctx.run("""UPDATE _subj SET inf_date = e.d, inf_dtc = e.dtc, inf_source = 'EX', infusions = e.n,
                    inf_extrt = e.extrt, inf_dose = e.dose, inf_date_flag = CASE WHEN e.d < e.hi THEN e.flag END
            FROM _inf_ex e WHERE _subj.usubjid = e.u""")
        if c_dm.has("RFXSTDTC"):
            ctx.run(f"""UPDATE _subj SET inf_date = t._lo_RFXSTDTC, inf_dtc = ct_nz(t.RFXSTDTC), inf_source = $src,
                        inf_date_flag = NULL
                FROM _t_DM t, _inf_ex e
                WHERE _subj.usubjid = t._usubjid AND _subj.usubjid = e.u AND _subj.inf_date_flag IS NOT NULL
                  AND t._k_RFXSTDTC = 'F' AND t._lo_RFXSTDTC BETWEEN e.d AND e.hi AND {rfx_ok}""",
                    {"src": INFUSION_FROM_RFXSTDTC})
    if c_dm.has("RFXSTDTC"):
        ctx.run(f"""UPDATE _subj SET inf_date = t._lo_RFXSTDTC, inf_dtc = ct_nz(t.RFXSTDTC), inf_source = 'DM.RFXSTDTC',
                    infusions = 1, inf_date_flag = ct_flag(t._k_RFXSTDTC)
            FROM _t_DM t WHERE _subj.usubjid = t._usubjid AND _subj.inf_date IS NULL AND {rfx_ok}""")


def _subject_list(rows, limit: int = 10) -> str:
    """'S-001 (...), S-002 (...)' of (usubjid, detail) rows, the first ``limit`` and how many more."""
    shown = ", ".join(f"{u} ({detail})" for u, detail in rows[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def note_day0_imputed(ctx: Ctx, dm_files: list[StagedFile], ex_files: list[StagedFile]) -> None:
    """Note a day 0 taken from a partial date: on EX when RFXSTDTC stood in for a partial EXSTDTC or the EX date's
    first day was taken, on DM when a partial RFXSTDTC was; every study day of those subjects rests on it."""
    rows = ctx.run("""SELECT inf_source, inf_date_flag IS NOT NULL, usubjid, inf_dtc, CAST(inf_date AS VARCHAR)
                      FROM _subj WHERE inf_source = $src OR inf_date_flag IS NOT NULL ORDER BY usubjid""",
                   {"src": INFUSION_FROM_RFXSTDTC}).fetchall()
    from_rfx = [(u, f"DM.RFXSTDTC {dtc!r}") for src, _, u, dtc, _ in rows if src == INFUSION_FROM_RFXSTDTC]
    ex_imputed = [(u, f"{dtc!r} -> {d}") for src, imp, u, dtc, d in rows if imp and src == "EX"]
    dm_imputed = [(u, f"{dtc!r} -> {d}") for src, imp, u, dtc, d in rows if imp and src == "DM.RFXSTDTC"]
    if from_rfx and ex_files:
        ex_files[0].add_note(f"{len(from_rfx)} subject(s) whose first CAR infusion has a partial EXSTDTC take day 0 "
                             f"from DM.RFXSTDTC, a complete date inside its period (subjects.infusion_source "
                             f"'{INFUSION_FROM_RFXSTDTC}'): {_subject_list(from_rfx)}")
    if ex_imputed and ex_files:
        ex_files[0].add_note(f"day 0 imputed for {len(ex_imputed)} subject(s): their first CAR infusion has a "
                             "partial EXSTDTC and no complete DM.RFXSTDTC inside its period, so day 0 is the "
                             f"period's first day and every study day of theirs rests on it: {_subject_list(ex_imputed)}")
    if dm_imputed and dm_files:
        dm_files[0].add_note(f"day 0 imputed for {len(dm_imputed)} subject(s) with no CAR infusion in EX: their "
                             "DM.RFXSTDTC is partial, so day 0 is the period's first day and every study day of "
                             f"theirs rests on it: {_subject_list(dm_imputed)}")


def load_ex(ctx: Ctx, c: Cols, supp) -> None:
    add_supp_columns(ctx, "exposures", supp)
    en = end_date("EXENDTC", "NULL")
    ctx.run(f"""INSERT INTO exposures BY NAME SELECT {KEYSEL},
        _i_EXSEQ AS exseq, {c('EXTRT')} AS extrt, {c('EXCAT')} AS excat, _n_EXDOSE AS exdose,
        {c('EXDOSU')} AS exdosu, {c('EXROUTE')} AS exroute,
        {c('EXSTDTC')} AS exstdtc,
        -- a partial CAR infusion whose period holds the day 0 RFXSTDTC gave it is on day 0, not on its first day
        CASE WHEN t._is_car AND s.inf_source = $src THEN {start_date('EXSTDTC')}
             ELSE t._lo_EXSTDTC END AS exst_date, ct_flag(t._k_EXSTDTC) AS exst_date_flag,
        CASE WHEN {en} <= $cut THEN {c('EXENDTC')} END AS exendtc,
        CASE WHEN {en} <= $cut THEN {en} END AS exen_date,
        datediff('day', s.inf_date, exst_date) AS day, _i_EXSTDY AS exdy, t._is_car AS is_car_infusion
        {supp_select(supp)}
        FROM _t_EX t LEFT JOIN _subj s ON s.usubjid = t._usubjid WHERE {OK} ORDER BY t._file, t._row""",
            {"src": INFUSION_FROM_RFXSTDTC})


def add_is_car(ctx: Ctx, c: Cols) -> None:
    ctx.run(f"""ALTER TABLE _t_EX ADD COLUMN _is_car BOOLEAN""")
    ctx.run(f"""UPDATE _t_EX SET _is_car = NOT regexp_matches(lower(concat_ws(' ', {c('EXCAT')}, {c('EXTRT')})),
                $pat)""", {"pat": NOT_CAR_PATTERN})


def load_ds(ctx: Ctx, c: Cols, supp) -> None:
    add_supp_columns(ctx, "disposition", supp)
    ctx.run(f"""INSERT INTO disposition BY NAME SELECT {KEYSEL},
        _i_DSSEQ AS dsseq, {c('DSTERM')} AS dsterm, upper({c('DSDECOD')}) AS dsdecod, upper({c('DSCAT')}) AS dscat,
        {dated(c, 'DSSTDTC', 'dsst')}, datediff('day', s.inf_date, {start_date('DSSTDTC')}) AS day
        {supp_select(supp)}
        FROM _t_DS t LEFT JOIN _subj s ON s.usubjid = t._usubjid WHERE {OK} ORDER BY t._file, t._row""")


def set_deaths(ctx: Ctx, c_dm: Cols) -> None:
    """Death on or before the cut: DM.DTHDTC, else the DS death record (with its DSTERM as the cause). A partial
    DTHDTC ('2025-09') whose period holds the DS death date is that date; otherwise it is the period's first day,
    flagged in death_date_flag. A death recorded without any date (a DS death record without DSSTDTC, else DM
    DTHFL Y without DTHDTC) is a death known at the cut it was delivered in, on a day not known: death_source
    set, death_date NULL (a fatal AE may date it later); a DTHDTC after the cut keeps it a death after the cut."""
    ctx.run("""UPDATE _subj SET death_date = d.dd, death_source = 'DS', death_cause = d.cause
        FROM (SELECT usubjid AS u, min(dsst_date) AS dd,
                     arg_min(CASE WHEN upper(dsterm) <> 'DEATH' THEN dsterm END, dsst_date) AS cause
              FROM disposition WHERE studyid = $studyid AND data_cut = $cut AND dsdecod = 'DEATH' AND dsst_date <= $cut
              GROUP BY usubjid) d WHERE _subj.usubjid = d.u""")
    if c_dm.has("DTHDTC"):
        ctx.run("""UPDATE _subj SET death_date = t._lo_DTHDTC, death_source = 'DM', death_date_flag = ct_flag(t._k_DTHDTC)
            FROM _t_DM t
            WHERE _subj.usubjid = t._usubjid AND t._qreason IS NULL AND t._lo_DTHDTC <= $cut
              AND NOT coalesce(t._k_DTHDTC IN ('D', 'M') AND _subj.death_source = 'DS'
                               AND _subj.death_date BETWEEN t._lo_DTHDTC AND t._hi_DTHDTC, FALSE)""")
    dated_later = ("AND NOT EXISTS (SELECT 1 FROM _t_DM t WHERE t._usubjid = d.u AND t._lo_DTHDTC > $cut)"
                   if c_dm.has("DTHDTC") else "")
    ctx.run(f"""UPDATE _subj SET death_source = 'DS', death_cause = d.cause
        FROM (SELECT usubjid AS u, arg_min(CASE WHEN upper(dsterm) <> 'DEATH' THEN dsterm END, dsseq) AS cause
              FROM disposition WHERE studyid = $studyid AND data_cut = $cut AND dsdecod = 'DEATH' AND dsst_date IS NULL
              GROUP BY usubjid) d
        WHERE _subj.usubjid = d.u AND _subj.death_date IS NULL AND _subj.death_source IS NULL {dated_later}""")
    if c_dm.has("DTHFL"):
        no_date = f"AND {c_dm('DTHDTC')} IS NULL" if c_dm.has("DTHDTC") else ""
        ctx.run(f"""UPDATE _subj SET death_source = 'DM'
            FROM _t_DM t
            WHERE _subj.usubjid = t._usubjid AND t._qreason IS NULL AND ct_ny({c_dm('DTHFL')}) = 'Y' {no_date}
              AND _subj.death_date IS NULL AND _subj.death_source IS NULL""")


def note_undated_deaths(ctx: Ctx, dm_files: list[StagedFile]) -> None:
    """Note each subject recorded as dead with no date of death: counted as dead, the day not known."""
    rows = ctx.run("""SELECT usubjid, death_source FROM _subj WHERE death_date IS NULL AND death_source IS NOT NULL
                      ORDER BY usubjid""").fetchall()
    if rows:
        what = {"DS": "DS death record without DSSTDTC", "DM": "DM DTHFL Y without DTHDTC",
                "AE": "fatal AE without AESTDTC or AEENDTC"}
        dm_files[0].add_note(f"{len(rows)} subject(s) recorded as dead without a date of death: counted as deaths "
                             "(status 'died', the deaths table) with the day unknown, censored at last known alive "
                             f"in NRM and the cumulative incidences: {_subject_list([(u, what[s]) for u, s in rows])}")


def ae_duration_sql(start: str, end: str, death: str) -> str:
    """SQL of adverse_events.duration_days: days from the start to the end, else to the subject's death (an AE
    not ended by a death runs to the death, not to the cut), else to the cut; both days counted."""
    return f"datediff('day', {start}, coalesce({end}, {open_end(death, '$cut')})) + 1"


def set_ae_deaths(ctx: Ctx) -> None:
    """A death recorded only as a fatal AE (safety.core.vocabulary.fatal_ae) is the subject's death: dated at
    the latest such AE's end, as the deaths table dates it. Such an AE has an end on or before the cut (the load
    withholds a fatal outcome with no end when DM and DS record no death), or no date at all: then, when DM and DS
    record no death either, the subject died at the cut on a day not known (death_source 'AE', death_date NULL), as
    for a DS death record without a date. The subject's other AEs still ongoing then run to a dated death, and the
    medications' partial end dates (loaded before the AEs) end no later than it, as they do for a death recorded in
    DM or DS."""
    ctx.run(f"""UPDATE _subj SET death_date = f.d, death_source = 'AE', death_date_flag = f.flag
        FROM (SELECT usubjid AS u, max(coalesce(aeen_date, aest_date)) AS d,
                     arg_max(CASE WHEN aeen_date IS NOT NULL THEN aeen_date_flag ELSE aest_date_flag END,
                             coalesce(aeen_date, aest_date)) AS flag FROM adverse_events
              WHERE studyid = $studyid AND data_cut = $cut AND {fatal_ae('')} GROUP BY usubjid) f
        -- an undated fatal AE leaves a death DM or DS records without a date as it is (source and cause)
        WHERE _subj.usubjid = f.u AND _subj.death_date IS NULL AND (f.d IS NOT NULL OR _subj.death_source IS NULL)""")
    dated = ctx.run("SELECT count(*) FROM _subj WHERE death_source = 'AE' AND death_date IS NOT NULL").fetchone()[0]
    if dated:
        ctx.run(f"""UPDATE adverse_events SET duration_days = {ae_duration_sql('aest_date', 'aeen_date', 's.death_date')}
            FROM _subj s WHERE s.death_source = 'AE' AND s.death_date IS NOT NULL AND adverse_events.usubjid = s.usubjid
              AND adverse_events.studyid = $studyid AND adverse_events.data_cut = $cut AND adverse_events.aeen_date IS NULL""")
        # ct_end's cap: a partial end date's imputed end never after the death (a full date is kept as delivered)
        ctx.run("""UPDATE medications SET cmen_date = s.death_date, end_day = datediff('day', s.inf_date, s.death_date)
            FROM _subj s WHERE s.death_source = 'AE' AND medications.usubjid = s.usubjid
              AND medications.studyid = $studyid AND medications.data_cut = $cut
              AND length(medications.cmendtc) < 10 AND medications.cmen_date > s.death_date""")


def load_cm(ctx: Ctx, c: Cols, supp) -> None:
    add_supp_columns(ctx, "medications", supp)
    en = end_date("CMENDTC", "t.death_date")
    ctx.run(f"""INSERT INTO medications BY NAME
        WITH m AS (SELECT t.*, s.inf_date, s.death_date, lower(concat_ws(' ', {c('CMDECOD')}, {c('CMTRT')})) AS _name
                   FROM _t_CM t LEFT JOIN _subj s ON s.usubjid = t._usubjid WHERE {OK}),
        cls AS (SELECT m._file, m._row, arg_min(mc.med_class, mc.priority) AS med_class
                FROM m JOIN _med_classes mc ON contains(m._name, mc.pattern) GROUP BY m._file, m._row)
        SELECT $studyid AS studyid, $cut AS data_cut, t._usubjid AS usubjid,
        _i_CMSEQ AS cmseq, {c('CMTRT')} AS cmtrt, {c('CMDECOD')} AS cmdecod, {c('CMCAT')} AS cmcat,
        {c('CMINDC')} AS cmindc, _n_CMDOSE AS cmdose, {c('CMDOSU')} AS cmdosu, {c('CMROUTE')} AS cmroute,
        coalesce(cls.med_class, 'other') AS med_class,
        {c('CMSTDTC')} AS cmstdtc, {start_date('CMSTDTC', en, inf='t.inf_date')} AS cmst_date,
        ct_flag(t._k_CMSTDTC) AS cmst_date_flag,
        CASE WHEN {en} <= $cut THEN {c('CMENDTC')} END AS cmendtc,
        CASE WHEN {en} <= $cut THEN {en} END AS cmen_date,
        datediff('day', t.inf_date, cmst_date) AS start_day, datediff('day', t.inf_date, cmen_date) AS end_day,
        CASE WHEN length({c('CMSTDTC')}) > 10 THEN ct_time({c('CMSTDTC')}, t._k_CMSTDTC) END AS start_time,
        {c('CMDOSFRM')} AS cmdosfrm
        {supp_select(supp)}
        FROM m t LEFT JOIN cls ON cls._file = t._file AND cls._row = t._row ORDER BY t._file, t._row""")


def set_lymphodepletion(ctx: Ctx) -> None:
    """First lymphodepleting dose: EX rows that are not the cell product and name a lymphodepleting drug, or CM."""
    ctx.run(f"""UPDATE _subj SET ld_date = l.d FROM (
        SELECT usubjid AS u, min(d) AS d FROM (
          SELECT usubjid, exst_date AS d FROM exposures WHERE studyid = $studyid AND data_cut = $cut
            AND {lymphodepleting_ex_sql()}
          UNION ALL
          SELECT usubjid, cmst_date FROM medications WHERE studyid = $studyid AND data_cut = $cut
            AND med_class = 'lymphodepletion') x
        WHERE d IS NOT NULL GROUP BY usubjid) l WHERE _subj.usubjid = l.u""", {"ld_pattern": LYMPHODEPLETION_PATTERN})


# SUPPAE qualifiers that carry the grading scale of AETOXGR (e.g. 'CTCAE v5.0', 'Lee 2014', 'ASTCT 2019').
AE_SCALE_QNAMS = ("supp_aetoxgrs", "supp_gradscal")


def _ae_scale_sql(supp) -> str:
    """A WHEN branch taking the grading scale from a SUPPAE qualifier when delivered (else the study setting)."""
    cols = [f"nullif(trim(a.{q(col)}), '')" for col in AE_SCALE_QNAMS if supp and col in supp.columns]
    return f"WHEN coalesce({', '.join(cols)}) IS NOT NULL THEN coalesce({', '.join(cols)})" if cols else ""


def load_ae(ctx: Ctx, c: Cols, supp) -> None:
    add_supp_columns(ctx, "adverse_events", supp)
    ctx_version = ctx.config.get("ctcae_version", "5.0")
    ctx.run(f"""INSERT INTO adverse_events BY NAME
        WITH a AS (SELECT t.*, {end_date('AEENDTC', 't._death')} AS _en_raw,
            -- lymphodepletion, the reference of treatment_emergent, as the second date a partial start may take
            {start_date('AESTDTC', '_en_raw', inf='t._inf', ld='t._ld')} AS _st,
            CASE WHEN _en_raw <= $cut THEN _en_raw END AS _en,
            _i_AETOXGR AS _gr, {syndrome_term_sql(c('AEDECOD'), c('AETERM'))} AS _syndrome_term,
            {c('AEOUT')} AS _out,
            -- no start and no end: a record without any date is known at the cut it came in (as DS's undated death
            -- record), unless DM dates the subject's death after the cut
            (_st IS NULL AND _en_raw IS NULL AND NOT coalesce(_death_after_cut, false)) AS _undated_at_cut,
            -- such an AE recording a death (grade 5, outcome FATAL, results in death): a death at the cut, its day
            -- not known; not ongoing (safety.core.vocabulary.fatal_ae reads it so)
            (_undated_at_cut AND (_gr = 5 OR upper(coalesce(_out, '')) = 'FATAL' OR _y_AESDTH = 'Y')) AS _undated_death
            FROM _t_AE t WHERE {OK})
        SELECT $studyid AS studyid, $cut AS data_cut, _usubjid AS usubjid,
          _i_AESEQ AS aeseq, _usubjid || '/AE/' || CAST(_i_AESEQ AS VARCHAR) AS event_key,
          {c('AETERM')} AS aeterm, {c('AEDECOD')} AS aedecod, {c('AEBODSYS')} AS aebodsys,
          _gr AS aetoxgr, {c('AESEV')} AS aesev,
          CASE WHEN _gr IS NULL THEN CASE WHEN {c('AESEV')} IS NOT NULL THEN 'severity' END
               {_ae_scale_sql(supp)}
               WHEN list_contains({_lit_list(CRS_TERMS)}, _syndrome_term) THEN $crs_grading
               WHEN list_contains({_lit_list(ICANS_TERMS)}, _syndrome_term) THEN $icans_grading
               ELSE 'CTCAE v' || $ctcae END AS grading_system,
          _y_AESER AS aeser,
          -- "results in death" is withheld as the outcome is: a death after the cut was not known at the cut
          CASE WHEN _en_raw IS NOT NULL AND _en IS NULL THEN NULL
               WHEN _y_AESDTH = 'Y' AND _death IS NULL AND _en IS NULL AND NOT _undated_at_cut THEN NULL
               ELSE _y_AESDTH END AS aesdth,
          _y_AESLIFE AS aeslife,
          _y_AESHOSP AS aeshosp, _y_AESDISAB AS aesdisab, _y_AESCONG AS aescong,
          _y_AESMIE AS aesmie, {c('AEREL')} AS aerel,
          CASE WHEN {c('AEREL')} IS NULL THEN NULL WHEN regexp_full_match(lower({c('AEREL')}), $relpat) THEN TRUE
               WHEN list_contains($unassessed, lower({c('AEREL')})) THEN NULL ELSE FALSE END AS related,
          {c('AEACN')} AS aeacn,
          -- an end (and so an outcome) after the cut was not known at the cut; nor a fatal outcome without an end
          -- when DM and DS date no death (it may have come after the cut), unless the AE has no date at all
          CASE WHEN _en_raw IS NOT NULL AND _en IS NULL THEN NULL
               WHEN upper(_out) = 'FATAL' AND _death IS NULL AND _en IS NULL AND NOT _undated_at_cut THEN NULL
               ELSE _out END AS aeout,
          {c('AESTDTC')} AS aestdtc, _st AS aest_date, ct_flag(_k_AESTDTC) AS aest_date_flag,
          CASE WHEN _en IS NOT NULL THEN {c('AEENDTC')} END AS aeendtc, _en AS aeen_date,
          CASE WHEN _en IS NOT NULL THEN ct_flag(_k_AEENDTC) END AS aeen_date_flag,
          datediff('day', _inf, _st) AS onset_day, datediff('day', _inf, _en) AS end_day,
          _en IS NULL AND NOT _undated_death AS ongoing,
          -- over before the cells were given: an end on day 0 whose time, and the infusion's, are known
          -- (the times are parsed for the few AEs ending on day 0 only: CASE, not AND, decides what runs)
          coalesce(CASE WHEN _en = _inf AND _k_AEENDTC = 'F' AND length({c('AEENDTC')}) > 10
                        THEN ct_time({c('AEENDTC')}, 'F') < {infusion_time_sql('_inf_dtc')} END, false) AS ended_before_infusion,
          {ae_duration_sql("_st", "_en", "_death")} AS duration_days,
          _i_AESTDY AS aestdy,
          -- no start date: treatment-emergent unless it ended before treatment began (docs/dlt.md "Onset unknown")
          CASE WHEN least(_ld, _inf) IS NULL THEN FALSE WHEN _st IS NULL THEN NOT coalesce(_en_raw < least(_ld, _inf), FALSE)
               ELSE _st >= least(_ld, _inf) END AS treatment_emergent
          {supp_select(supp).replace('t.', 'a.')}
        FROM a{file_order(ctx, '_t_AE')}""",
            {"crs_grading": ctx.config.get("crs_grading"), "icans_grading": ctx.config.get("icans_grading"),
             "ctcae": ctx_version, "relpat": RELATED_PATTERN,
             "unassessed": list(UNASSESSED_CAUSALITY)})


def load_lb(ctx: Ctx, c: Cols, supp) -> None:
    add_supp_columns(ctx, "labs", supp)
    ctx.run(f"""INSERT INTO labs BY NAME SELECT {KEYSEL},
        _i_LBSEQ AS lbseq, t._testcd AS lbtestcd, {c('LBTEST')} AS lbtest, {c('LBCAT')} AS lbcat,
        {c('LBSPEC')} AS lbspec, {c('LBORRES')} AS lborres, {c('LBORRESU')} AS lborresu, {c('LBSTRESC')} AS lbstresc,
        t._value AS value, t._unit AS unit, t._lln AS lln, t._uln AS uln, t._value_source AS value_source,
        t._cens AS censored, upper({c('LBNRIND')}) AS lbnrind, _y_LBBLFL AS lbblfl,
        upper({c('LBSTAT')}) AS lbstat, {c('VISIT')} AS visit,
        {dated(c, 'LBDTC', 'lb')}, datediff('day', s.inf_date, lb_date) AS day,
        _i_LBDY AS lbdy
        {supp_select(supp)}
        FROM _t_LB t LEFT JOIN _subj s ON s.usubjid = t._usubjid WHERE {OK}""")


def load_vs(ctx: Ctx, c: Cols, supp) -> None:
    add_supp_columns(ctx, "vitals", supp)
    ctx.run(f"""INSERT INTO vitals BY NAME SELECT {KEYSEL},
        _i_VSSEQ AS vsseq, upper({c('VSTESTCD')}) AS vstestcd, {c('VSTEST')} AS vstest,
        {c('VSORRES')} AS vsorres, coalesce(_n_VSSTRESN, {c.num('VSSTRESC')}, {c.num('VSORRES')}) AS value,
        coalesce({c('VSSTRESU')}, {c('VSORRESU')}) AS unit, _y_VSBLFL AS vsblfl, {c('VISIT')} AS visit,
        {dated(c, 'VSDTC', 'vs')},
        datediff('day', s.inf_date, {start_date('VSDTC')}) AS day
        {supp_select(supp)}
        FROM _t_VS t LEFT JOIN _subj s ON s.usubjid = t._usubjid WHERE {OK} ORDER BY t._file, t._row""")


def load_rs(ctx: Ctx, c: Cols, supp) -> None:
    add_supp_columns(ctx, "responses", supp)
    ctx.run(f"""INSERT INTO responses BY NAME SELECT {KEYSEL},
        _i_RSSEQ AS rsseq, upper({c('RSTESTCD')}) AS rstestcd, {c('RSORRES')} AS rsorres,
        upper(coalesce({c('RSSTRESC')}, {c('RSORRES')})) AS response, upper({c('RSEVAL')}) AS rseval, {c('VISIT')} AS visit,
        {dated(c, 'RSDTC', 'rs')},
        -- a partial date whose month or year holds the infusion date has no day: imputed to day 0 (as an AE onset
        -- is) a screening PD would become a progression after infusion; its timing is unknown, so it is neither
        CASE WHEN t._k_RSDTC IN ('D', 'M') AND s.inf_date BETWEEN t._lo_RSDTC AND t._hi_RSDTC THEN NULL
             ELSE datediff('day', s.inf_date, {start_date('RSDTC')}) END AS day
        {supp_select(supp)}
        FROM _t_RS t LEFT JOIN _subj s ON s.usubjid = t._usubjid WHERE {OK} ORDER BY t._file, t._row""")


def note_rs_not_read(ctx: Ctx, files: list[StagedFile]) -> None:
    """Note on the first RS file the loaded records that response and progression do not read: a partial date
    holding the infusion date (no day), another test than the overall response (RSTESTCD), another assessor than
    the study's (RSEVAL, study.yaml response.assessor)."""
    p = overall_response_params(ctx.config)
    rows = ctx.run(f"""SELECT NOT (rstestcd IS NULL OR list_contains($rs_tests, rstestcd)) AS other_test,
                              CASE WHEN rstestcd IS NULL OR list_contains($rs_tests, rstestcd) THEN rseval
                                   ELSE rstestcd END AS code, count(*)
                       FROM responses WHERE studyid = $studyid AND data_cut = $cut AND NOT ({OVERALL_RESPONSE_ROW})
                       GROUP BY ALL ORDER BY ALL""", p).fetchall()
    undated = ctx.run("""SELECT coalesce(r.visit, 'no VISIT') AS visit, count(*) FROM responses r
                         JOIN _subj s ON s.usubjid = r.usubjid
                         WHERE r.studyid = $studyid AND r.data_cut = $cut AND r.day IS NULL
                           AND r.rs_date_flag IS NOT NULL AND s.inf_date IS NOT NULL
                         GROUP BY ALL ORDER BY ALL""").fetchall()
    if undated and files:
        files[0].add_note(f"{sum(n for _, n in undated)} RS record(s) with a partial RSDTC whose period holds the "
                          "infusion date have no study day and are read as neither a response nor a progression "
                          "(before or after infusion unknown): VISIT "
                          + ", ".join(f"{v!r} ({n})" for v, n in undated))
    if not rows or not files:
        return
    tests = [f"{code!r} ({n})" for other, code, n in rows if other]
    evals = [f"{code!r} ({n})" for other, code, n in rows if not other]
    parts = ([f"RSTESTCD {', '.join(tests)} is not the overall response ({', '.join(p['rs_tests'])})"] if tests else [])
    parts += ([f"RSEVAL {', '.join(evals)} is not the study's assessor {p['rs_assessor']} (study.yaml "
               "response.assessor)"] if evals else [])
    files[0].add_note(f"{sum(n for *_, n in rows)} RS record(s) not read as a response or progression: "
                      + "; ".join(parts))


def load_crs(ctx: Ctx, c: Cols, supp) -> None:
    ctx.run(f"""INSERT INTO crs_assessments BY NAME SELECT {KEYSEL},
        CAST(row_number() OVER (ORDER BY t._file, t._row) AS INTEGER) AS assessment_id,
        {c('CRSDTC')} AS crsdtc, ct_time({c('CRSDTC')}, t._k_CRSDTC) AS assessment_time, t._lo_CRSDTC AS assessment_date,
        datediff('day', s.inf_date, t._lo_CRSDTC) AS day, _n_TEMP_C AS temp_c,
        upper({c('HYPOTENSION')}) = 'Y' AS hypotension, _i_VASOPRESSORS AS vasopressors,
        upper({c('VASOPRESSIN')}) = 'Y' AS vasopressin, upper({c('OXYGEN')}) AS oxygen,
        _n_O2_FLOW_LMIN AS o2_flow_lmin, coalesce({c('COMMENT')}, {c('CRSCOM')}) AS comment
        FROM _t_CRS t LEFT JOIN _subj s ON s.usubjid = t._usubjid WHERE {OK} ORDER BY t._file, t._row""")


def load_icans(ctx: Ctx, c: Cols, supp) -> None:
    ctx.run(f"""INSERT INTO icans_assessments BY NAME SELECT {KEYSEL},
        CAST(row_number() OVER (ORDER BY t._file, t._row) AS INTEGER) AS assessment_id,
        {c('ICANSDTC')} AS icansdtc, ct_time({c('ICANSDTC')}, t._k_ICANSDTC) AS assessment_time,
        t._lo_ICANSDTC AS assessment_date, datediff('day', s.inf_date, t._lo_ICANSDTC) AS day,
        _i_ICE_SCORE AS ice_score, upper({c('CONSCIOUSNESS')}) AS consciousness,
        upper({c('SEIZURE')}) AS seizure, upper({c('MOTOR_WEAKNESS')}) AS motor_weakness,
        upper({c('CEREBRAL_EDEMA')}) AS cerebral_edema, coalesce({c('COMMENT')}, {c('ICANSCOM')}) AS comment,
        _i_CAPD_SCORE AS capd_score
        FROM _t_ICANS t LEFT JOIN _subj s ON s.usubjid = t._usubjid WHERE {OK} ORDER BY t._file, t._row""")


LOADERS = {"EX": load_ex, "DS": load_ds, "CM": load_cm, "AE": load_ae, "LB": load_lb, "VS": load_vs,
           "RS": load_rs, "CRS": load_crs, "ICANS": load_icans}


def pc_result_text(c: Cols) -> str:
    """PC's result as text: PCSTRESC, else PCORRES."""
    return f"coalesce({c('PCSTRESC')}, {c('PCORRES')})"


def pc_result_value(c: Cols) -> str:
    """The number in PC's text result, a leading '<' or '>' set aside ('<5' is 5)."""
    return f"ct_num(regexp_replace({pc_result_text(c)}, '^[<>]\\s*', ''))"


def pc_below_lloq_text(c: Cols) -> str:
    """PC's text result says 'below the LLOQ' (BELOW_LIMIT_TEXTS, or any text starting with '<')."""
    txt = pc_result_text(c)
    return f"(upper({txt}) IN {tuple(BELOW_LIMIT_TEXTS)!r} OR starts_with(coalesce({txt}, ''), '<'))"


def load_pc(ctx: Ctx, c: Cols, supp) -> None:
    """PC: one cellular-kinetics sample per row; a result below the LLOQ ('<LLOQ', 'BLQ', '<5') keeps its bound, and
    so does one above the assay's upper limit ('>100000', above_uloq)."""
    add_supp_columns(ctx, "pc_concentrations", supp)
    ctx.run(f"""INSERT INTO pc_concentrations BY NAME SELECT {KEYSEL},
        _i_PCSEQ AS pcseq, upper({c('PCTESTCD')}) AS pctestcd, {c('PCTEST')} AS pctest, {c('PCORRES')} AS pcorres,
        coalesce({c('PCSTRESU')}, {c('PCORRESU')}) AS unit, upper({c('PCSPEC')}) AS pcspec, _n_PCLLOQ AS lloq,
        coalesce(_n_PCSTRESN, {pc_result_value(c)}) AS value,
        ({pc_below_lloq_text(c)}
         OR (_n_PCSTRESN IS NOT NULL AND _n_PCLLOQ IS NOT NULL AND _n_PCSTRESN < _n_PCLLOQ)) AS below_lloq,
        starts_with(trim(coalesce({pc_result_text(c)}, '')), '>') AS above_uloq,
        {c('VISIT')} AS visit, {dated(c, 'PCDTC', 'pc')},
        datediff('day', s.inf_date, {start_date('PCDTC')}) AS day
        {supp_select(supp)}
        FROM _t_PC t LEFT JOIN _subj s ON s.usubjid = t._usubjid WHERE {OK} ORDER BY t._file, t._row""")


def load_mb(ctx: Ctx, c: Cols, supp) -> None:
    """MB: microbiology findings; the organism is MBSTRESC (else MBORRES), 'NEGATIVE'/'NO GROWTH' kept as found."""
    add_supp_columns(ctx, "microbiology", supp)
    ctx.run(f"""INSERT INTO microbiology BY NAME SELECT {KEYSEL},
        _i_MBSEQ AS mbseq, upper({c('MBTESTCD')}) AS mbtestcd, {c('MBTEST')} AS mbtest,
        {c('MBORRES')} AS mborres, upper(coalesce({c('MBSTRESC')}, {c('MBORRES')})) AS organism,
        upper({c('MBSPEC')}) AS mbspec, {c('VISIT')} AS visit, {dated(c, 'MBDTC', 'mb')},
        datediff('day', s.inf_date, {start_date('MBDTC')}) AS day
        {supp_select(supp)}
        FROM _t_MB t LEFT JOIN _subj s ON s.usubjid = t._usubjid WHERE {OK} ORDER BY t._file, t._row""")


LOADERS.update({"PC": load_pc, "MB": load_mb})


def load_subjects(ctx: Ctx, c: Cols, supp) -> None:
    """subjects: DM + day 0 + death + disposition + last known alive + status at the cut."""
    add_supp_columns(ctx, "subjects", supp)
    sc = supp.columns if supp else []
    cohort = "coalesce(" + ", ".join(([f't.{q("supp_cohort")}'] if "supp_cohort" in sc else []) +
                                      [c("ACTARMCD"), c("ARMCD")]) + ")"
    dose = "coalesce(" + ", ".join(([f't.{q("supp_doselvl")}'] if "supp_doselvl" in sc else []) +
                                    ["s.inf_dose", cohort]) + ")"
    diag = f't.{q("supp_diagnosis")}' if "supp_diagnosis" in sc else "CAST(NULL AS VARCHAR)"
    dated_tables = [("adverse_events", "aest_date"), ("adverse_events", "aeen_date"), ("labs", "lb_date"),
                    ("vitals", "vs_date"), ("exposures", "exst_date"), ("medications", "cmst_date"),
                    ("medications", "cmen_date"), ("responses", "rs_date"), ("disposition", "dsst_date"),
                    ("crs_assessments", "assessment_date"), ("icans_assessments", "assessment_date"),
                    ("questionnaires", "qs_date"), ("procedures", "prst_date"), ("findings_about", "fa_date"),
                    ("clinical_events", "cest_date"), ("pc_concentrations", "pc_date"), ("microbiology", "mb_date")]
    lka = " UNION ALL ".join(f"SELECT usubjid, {col} AS d FROM {tbl} WHERE studyid = $studyid AND data_cut = $cut"
                             for tbl, col in dated_tables)
    ctx.run(f"""INSERT INTO subjects BY NAME
        WITH lka AS (SELECT usubjid AS u, max(d) AS d FROM ({lka}) x WHERE d <= $cut GROUP BY usubjid),
        disp AS (SELECT usubjid AS u, arg_max(dsdecod, (dsst_date, dsseq)) AS dsdecod, arg_max(day, (dsst_date, dsseq)) AS day
                 FROM disposition WHERE studyid = $studyid AND data_cut = $cut
                   AND coalesce(dscat, 'DISPOSITION EVENT') NOT IN ('PROTOCOL MILESTONE', 'OTHER EVENT')
                 GROUP BY usubjid),
        base AS (SELECT t.*, s.* EXCLUDE (usubjid), lka.d AS _lka, disp.dsdecod AS _disp, disp.day AS _disp_day
                 FROM _t_DM t JOIN _subj s ON s.usubjid = t._usubjid
                 LEFT JOIN lka ON lka.u = t._usubjid LEFT JOIN disp ON disp.u = t._usubjid
                 WHERE t._qreason IS NULL AND NOT t._after_cut)
        SELECT $studyid AS studyid, $cut AS data_cut, _usubjid AS usubjid, {c('SUBJID')} AS subjid,
          {c('SITEID')} AS siteid, _age_years AS age, {c('SEX')} AS sex, {c('RACE')} AS race,
          {c('COUNTRY')} AS country, coalesce({c('ACTARM')}, {c('ARM')}) AS arm,
          {cohort.replace('t.', '')} AS cohort, {dose.replace('t.', '').replace('s.', '')} AS dose_level,
          coalesce(inf_extrt, $product) AS product, {diag.replace('t.', '')} AS diagnosis,
          {c('RFICDTC')} AS rficdtc, _lo_RFICDTC AS consent_date,
          inf_dtc AS first_infusion_dtc, inf_date AS first_infusion_date, inf_source AS infusion_source,
          CAST(infusions AS INTEGER) AS infusions, datediff('day', inf_date, ld_date) AS lymphodepletion_start_day,
          inf_date IS NOT NULL AS infused, death_date, datediff('day', inf_date, death_date) AS death_day,
          death_source, death_date_flag, death_cause,
          coalesce(death_date, greatest(_lka, inf_date)) AS last_known_alive_date,
          datediff('day', inf_date, last_known_alive_date) AS last_known_alive_day,
          _disp AS disposition, _disp_day AS disposition_day,
          CASE WHEN death_date IS NOT NULL OR death_source IS NOT NULL THEN 'died'  -- a death of unknown date too
               WHEN inf_date IS NULL THEN 'screened'
               WHEN _disp = 'COMPLETED' THEN 'completed'
               WHEN _disp IS NOT NULL AND _disp NOT IN ('DEATH', 'COMPLETED') THEN 'discontinued'
               WHEN datediff('day', inf_date, $cut) >= 365 THEN 'completed'
               ELSE 'in follow-up' END AS status,
          {enrollment_order_sql("inf_date", "_usubjid")} AS enrollment_order
          {''.join(f', {q(col)}' for col in sc)}
        FROM base ORDER BY _file, _row""", {"product": ctx.config.get("product")})
