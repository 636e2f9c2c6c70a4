"""Lab grading rules as data: read a rule file (``safety/rules/ctcae_v<version>.csv``) and the
LBTESTCD -> term map (``safety/data/lab_terms.csv``), and turn them into one SQL CASE expression.

A rule file has one row per term, direction and grade arm, in evaluation order (R ``case_when``
semantics, as pharmaverse admiral: the first arm whose criterion is TRUE gives the grade; an arm
whose criterion is NULL is not met). Columns:

- ``term``, ``direction`` ('L' or 'H')
- ``grade``: 0-4, or ``NA`` for an arm that makes the record not gradable (``missing(LLN)`` ...)
- ``baseline``: empty, ``BL_NORMAL`` or ``BL_HIGH`` (arm applies only on that baseline branch)
- ``unit_check``: the SI unit the record must carry when the term uses absolute values (same on
  every row of a term; empty = no unit check)
- ``criterion``: ``TRUE``, ``missing(VAR)`` or comparisons ``[n *] VAR [+|- n] op [n *] VAR [+|- n]``
  (either side may be a number) joined by ``&`` (binds first) and ``|``. VAR is AVAL, LLN, ULN, BASE
  or PCHG; op is <, <=, > or >=.
- ``comment``: free text (CTCAE wording, worst-case assumptions).

Comparisons round both sides to 15 significant digits as admiral's ``signif(x, 15)`` does.
"""
from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from safety.core.files import unit_conversions

PACKAGE_DIR = Path(__file__).resolve().parents[2]
RULES_DIR = PACKAGE_DIR / "rules"
LAB_TERMS_PATH = PACKAGE_DIR / "data" / "lab_terms.csv"

SIGNIF_DIGITS = 15
VARIABLES = {"AVAL": "value", "LLN": "lln", "ULN": "uln", "BASE": "base", "PCHG": "pchg"}
VAR_WORDS = {"AVAL": "value", "LLN": "LLN", "ULN": "ULN", "BASE": "baseline", "PCHG": "% change from baseline"}
MISSING_REASON = {"AVAL": "missing value", "LLN": "missing LLN", "ULN": "missing ULN",
                  "BASE": "missing baseline", "PCHG": "missing baseline"}
BASELINE_BRANCHES = {"": None, "BL_NORMAL": "BL_NORMAL", "BL_HIGH": "BL_HIGH"}


class RuleError(ValueError):
    """A rule file or term map that cannot be used; the message names the file and line."""


# ---------------------------------------------------------------------------------------------
# Criterion expressions


@dataclass(frozen=True)
class Operand:
    """``coef * VAR + offset``, or a constant when ``var`` is None."""
    var: str | None
    coef: float | None = None
    offset: float | None = None
    const: float | None = None


@dataclass(frozen=True)
class Compare:
    left: Operand
    op: str
    right: Operand


@dataclass(frozen=True)
class Missing:
    var: str


@dataclass(frozen=True)
class Always:
    pass


Clause = Compare | Missing | Always
# A criterion is an OR of AND-groups of clauses.
Criterion = tuple[tuple[Clause, ...], ...]

_TOKEN = re.compile(r"""\s*(?:
    (?P<missing>missing\s*\(\s*(?P<mvar>[A-Za-z]+)\s*\))
  | (?P<true>TRUE\b)
  | (?P<op><=|>=|<|>)
  | (?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)
  | (?P<var>[A-Za-z]+)
  | (?P<sym>[&|*+\-])
)""", re.VERBOSE)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos, text = [], 0, text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise RuleError(f"cannot read criterion {text!r} at {text[pos:]!r}")
        pos = m.end()
        kind = m.lastgroup if m.lastgroup != "mvar" else "missing"
        if kind == "missing":
            out.append(("missing", m.group("mvar").upper()))
        else:
            out.append((kind, m.group(kind)))
    return out


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self, k: int = 0):
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else (None, None)

    def take(self):
        tok = self.peek()
        self.i += 1
        return tok

    def fail(self, what: str):
        raise RuleError(f"criterion {self.text!r}: {what}")

    def number(self) -> float:
        sign = 1.0
        if self.peek() == ("sym", "-"):
            self.take()
            sign = -1.0
        kind, val = self.take()
        if kind != "num":
            self.fail(f"expected a number, got {val!r}")
        return sign * float(val)

    def operand(self) -> Operand:
        kind, val = self.peek()
        coef = None
        if kind == "num" or (kind, val) == ("sym", "-"):
            num = self.number()
            if self.peek() != ("sym", "*"):
                return Operand(None, const=num)
            self.take()
            coef = num
        kind, val = self.take()
        if kind != "var" or val.upper() not in VARIABLES:
            self.fail(f"expected one of {', '.join(VARIABLES)}, got {val!r}")
        var = val.upper()
        offset = None
        if self.peek() in (("sym", "+"), ("sym", "-")):
            sign = 1.0 if self.take()[1] == "+" else -1.0
            offset = sign * self.number()
        return Operand(var, coef=coef, offset=offset)

    def clause(self) -> Clause:
        kind, val = self.peek()
        if kind == "missing":
            self.take()
            if val not in VARIABLES:
                self.fail(f"missing() takes one of {', '.join(VARIABLES)}, got {val!r}")
            return Missing(val)
        if kind == "true":
            self.take()
            return Always()
        left = self.operand()
        kind, op = self.take()
        if kind != "op":
            self.fail(f"expected a comparison operator, got {op!r}")
        right = self.operand()
        if left.var is None and right.var is None:
            self.fail("a comparison needs a variable on one side")
        return Compare(left, op, right)

    def parse(self) -> Criterion:
        groups, group = [], [self.clause()]
        while self.i < len(self.toks):
            kind, val = self.take()
            if (kind, val) == ("sym", "&"):
                group.append(self.clause())
            elif (kind, val) == ("sym", "|"):
                groups.append(tuple(group))
                group = [self.clause()]
            else:
                self.fail(f"unexpected {val!r}")
        groups.append(tuple(group))
        return tuple(groups)


def parse_criterion(text: str) -> Criterion:
    """Parse a criterion such as ``AVAL < LLN & PCHG <= -25`` into OR-of-AND clauses."""
    if not text or not text.strip():
        raise RuleError("empty criterion")
    return _Parser(text).parse()


# ---------------------------------------------------------------------------------------------
# Rule files


@dataclass(frozen=True)
class Arm:
    """One row of a rule file: an arm of the term's case_when."""
    rule_id: int
    term: str
    direction: str
    grade: int | None  # None = not gradable (NA arm)
    baseline: str | None
    criterion_text: str
    criterion: Criterion
    comment: str
    line: int

    @property
    def reason(self) -> str:
        """Text stored in grade_reason when this arm decides the grade."""
        if self.grade is None:
            (clause,), = self.criterion
            return MISSING_REASON[clause.var]
        if self.grade == 0:
            return "no grade 1-4 criterion met"
        text = describe(self.criterion)
        if self.baseline == "BL_HIGH":
            text += " (baseline high)"
        elif self.baseline == "BL_NORMAL":
            text += " (baseline not high)"
        return text


@dataclass(frozen=True)
class TermRules:
    term: str
    direction: str
    unit_check: str | None
    arms: tuple[Arm, ...]


@dataclass(frozen=True)
class RuleSet:
    version: str
    path: Path
    terms: dict[tuple[str, str], TermRules]
    arms: tuple[Arm, ...]

    def term_rules(self, term: str, direction: str) -> TermRules:
        return self.terms[(term.upper(), direction.upper())]


def _fmt_num(x: float) -> str:
    return f"{x:g}" if abs(x) < 1e15 else repr(x)


def _describe_operand(o: Operand) -> str:
    if o.var is None:
        return _fmt_num(o.const)
    s = VAR_WORDS[o.var]
    if o.coef is not None:
        s = f"{_fmt_num(o.coef)} x {s}"
    if o.offset is not None:
        s += f" {'+' if o.offset >= 0 else '-'} {_fmt_num(abs(o.offset))}"
    return s


def describe(criterion: Criterion) -> str:
    """Human-readable text of a criterion: 'value > 3 x ULN'."""
    parts = []
    for group in criterion:
        items = []
        for c in group:
            if isinstance(c, Missing):
                items.append(f"{VAR_WORDS[c.var]} missing")
            elif isinstance(c, Always):
                items.append("always")
            else:
                items.append(f"{_describe_operand(c.left)} {c.op} {_describe_operand(c.right)}")
        parts.append(" and ".join(items))
    return " or ".join(parts)


def rule_file(version: str) -> Path:
    """The rule file for a CTCAE version: ctcae_v<version>.csv, '5.0' also as ctcae_v5.csv."""
    v = str(version).strip()
    candidates = [RULES_DIR / f"ctcae_v{v}.csv"]
    if v.endswith(".0"):
        candidates.append(RULES_DIR / f"ctcae_v{v[:-2]}.csv")
    for p in candidates:
        if p.exists():
            return p
    raise RuleError(f"no CTCAE rule file for version {version!r} (looked for "
                    f"{', '.join(str(p.name) for p in candidates)} in {RULES_DIR})")


def terms_file(version: str) -> Path:
    """The CTCAE term list of a version with the grades each term defines: ctcae_v<major>_terms.csv (written by
    safety/rules/make_ctcae_terms.py from NCI's workbook)."""
    p = RULES_DIR / f"ctcae_v{str(version).strip().split('.')[0]}_terms.csv"
    if not p.exists():
        raise RuleError(f"no CTCAE term list for version {version!r} (looked for {p.name} in {RULES_DIR})")
    return p


@lru_cache(maxsize=16)
def _load_rules_cached(path: str, mtime: float, version: str) -> RuleSet:
    p = Path(path)
    terms: dict[tuple[str, str], list[Arm]] = {}
    units: dict[tuple[str, str], str | None] = {}
    names: dict[tuple[str, str], str] = {}
    arms: list[Arm] = []
    with p.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        need = {"term", "direction", "grade", "baseline", "unit_check", "criterion"}
        if not need <= set(reader.fieldnames or []):
            raise RuleError(f"{p}: columns must include {', '.join(sorted(need))}")
        for row in reader:
            line = reader.line_num
            where = f"{p.name} line {line}"
            term = (row["term"] or "").strip()
            direction = (row["direction"] or "").strip().upper()
            if not term or direction not in ("L", "H"):
                raise RuleError(f"{where}: term must be given and direction must be L or H")
            g = (row["grade"] or "").strip().upper()
            if g == "NA":
                grade = None
            elif g in {"0", "1", "2", "3", "4"}:
                grade = int(g)
            else:
                raise RuleError(f"{where}: grade must be 0-4 or NA, got {g!r}")
            bl = (row["baseline"] or "").strip().upper()
            if bl not in BASELINE_BRANCHES:
                raise RuleError(f"{where}: baseline must be empty, BL_NORMAL or BL_HIGH, got {bl!r}")
            try:
                crit = parse_criterion(row["criterion"] or "")
            except RuleError as exc:
                raise RuleError(f"{where}: {exc}") from None
            if grade is None and not (len(crit) == 1 and len(crit[0]) == 1 and isinstance(crit[0][0], Missing)):
                raise RuleError(f"{where}: an NA arm must be a single missing(VAR)")
            key = (term.upper(), direction)
            unit = (row["unit_check"] or "").strip() or None
            if key in units and units[key] != unit:
                raise RuleError(f"{where}: unit_check differs from earlier rows of {term} {direction}")
            units[key] = unit
            names.setdefault(key, term)
            arm = Arm(len(arms), names[key], direction, grade, BASELINE_BRANCHES[bl],
                      (row["criterion"] or "").strip(), crit, (row.get("comment") or "").strip(), line)
            arms.append(arm)
            terms.setdefault(key, []).append(arm)
    out = {}
    for key, term_arms in terms.items():
        last = term_arms[-1]
        if last.grade != 0 or not isinstance(last.criterion[0][0], Always):
            raise RuleError(f"{p.name} line {last.line}: the last row of {last.term} {last.direction} "
                            "must be grade 0 with criterion TRUE, so every gradable record gets a grade")
        graded = [a.grade for a in term_arms if a.grade is not None]
        if graded != sorted(graded, reverse=True):
            raise RuleError(f"{p.name}: rows of {last.term} {last.direction} must go from grade 4 down to 0")
        out[key] = TermRules(names[key], key[1], units[key], tuple(term_arms))
    return RuleSet(version, p, out, tuple(arms))


def load_rules(version: str = "5.0", path: str | Path | None = None) -> RuleSet:
    """Read (once, cached by file modification time) the rule file of a CTCAE version."""
    p = Path(path) if path else rule_file(version)
    return _load_rules_cached(str(p), p.stat().st_mtime, str(version))


@dataclass(frozen=True)
class TermMapRow:
    lbtestcd: str
    ctcae_term: str
    direction: str


def load_lab_terms(rules: RuleSet, extra_path: str | Path | None = None) -> list[TermMapRow]:
    """The LBTESTCD -> (term, direction) map: the packaged ``safety/data/lab_terms.csv`` plus an
    optional study file with the same columns. A test code listed in the study file replaces the
    packaged rows for that code (so a study can remap or add tests). Terms of the study file must
    exist in ``rules``; packaged rows whose term the rule file lacks (another CTCAE version) are skipped."""
    def read(path: Path, strict: bool) -> dict[str, list[TermMapRow]]:
        out: dict[str, list[TermMapRow]] = {}
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not {"lbtestcd", "ctcae_term"} <= set(reader.fieldnames or []):
                raise RuleError(f"{path}: columns must include lbtestcd, ctcae_term (and direction)")
            for row in reader:
                code = (row["lbtestcd"] or "").strip().upper()
                term = (row["ctcae_term"] or "").strip()
                direction = (row.get("direction") or "").strip().upper()
                if not code or not term:
                    continue
                matches = [k for k in rules.terms if k[0] == term.upper() and (not direction or k[1] == direction)]
                if not matches and not strict:
                    continue
                if not matches:
                    raise RuleError(f"{path.name} line {reader.line_num}: no {rules.path.name} rule for term "
                                    f"{term!r}{' direction ' + direction if direction else ''}")
                if len(matches) > 1:
                    raise RuleError(f"{path.name} line {reader.line_num}: give the direction for {term!r}")
                tr = rules.terms[matches[0]]
                out.setdefault(code, []).append(TermMapRow(code, tr.term, tr.direction))
        return out

    merged = read(LAB_TERMS_PATH, strict=False)
    if extra_path:
        merged.update(read(Path(extra_path), strict=True))
    rows, seen = [], set()
    for code in sorted(merged):
        for r in merged[code]:
            if (r.lbtestcd, r.ctcae_term, r.direction) not in seen:
                seen.add((r.lbtestcd, r.ctcae_term, r.direction))
                rows.append(r)
    return rows


# ---------------------------------------------------------------------------------------------
# CTCAE's own cut-offs in conventional units. CTCAE prints a term's cut-offs in SI and in conventional units, and
# the two are not exact conversions of each other (hypermagnesemia grade 3: > 3.0 mg/dL, > 1.23 mmol/L; 3.0 mg/dL is
# 1.234 mmol/L). A result delivered in mg/dL and converted to SI by the load is graded with the mg/dL cut-offs,
# converted by the same factor, so that 3.0 mg/dL is grade 1 as CTCAE (and admiral's US-unit grading) gives it.
@dataclass(frozen=True)
class Variant:
    """How one test's results delivered in a conventional unit are graded for one term: the dense form of the
    term's arms with its conventional cut-offs times the load's conversion factor (in the SI unit of the values),
    with reason texts in the conventional unit."""
    lbtestcd: str
    key: tuple[str, str]
    unit: str
    factor: float
    dense: DenseTerm


def conventional_rule_file(version: str) -> Path | None:
    """ctcae_v<version>_conventional.csv beside the version's rule file, when there is one."""
    p = rule_file(version)
    c = p.with_name(f"{p.stem}_conventional.csv")
    return c if c.exists() else None


def _scaled(c, factor: float):
    """A clause with its value-against-constant comparison in SI: the constant times ``factor``, and so is a constant
    added to a limit ('AVAL > ULN + 1.2411', an amount in the conventional unit); a multiple of a limit has no unit."""
    if isinstance(c, Compare) and c.left == Operand("AVAL") and c.right.var is None:
        return Compare(c.left, c.op, Operand(None, const=c.right.const * factor))
    if isinstance(c, Compare) and c.left == Operand("AVAL") and c.right.offset is not None:
        return Compare(c.left, c.op, replace(c.right, offset=c.right.offset * factor))
    return c


def load_variants(rules: RuleSet, term_map: list[TermMapRow], version: str = "5.0") -> list[Variant]:
    """The conventional-unit variants of the terms ``term_map`` grades: one per test and term whose conventional
    unit the load converts (safety/data/unit_conversions.csv). A test converted from that unit has a variant for
    every term it maps to, or none (it fails loudly otherwise: its results would be graded half in one unit)."""
    path = conventional_rule_file(version)
    if path is None:
        return []
    conv = load_rules(version, path)
    factors = {(code, frm, to): factor for code, frm, to, factor in unit_conversions()}
    out = []
    for m in term_map:
        key = (m.ctcae_term.upper(), m.direction)
        ct = conv.terms.get(key)
        si = rules.terms.get(key)
        if ct is None or si is None:
            continue
        factor = factors.get((m.lbtestcd, ct.unit_check, si.unit_check))
        if factor is None:
            continue  # the load does not convert this test from that unit: no result of it comes in that unit
        arms = tuple(replace(a, criterion=tuple(tuple(_scaled(c, factor) for c in g) for g in a.criterion))
                     for a in ct.arms)
        dense = compile_dense(TermRules(si.term, si.direction, si.unit_check, arms))
        if dense is None or any(a.extra for a in dense.arms):
            raise RuleError(f"{path.name}: the arms of {ct.term} {ct.direction} do not have the dense shape")
        # the reasons name the cut-offs as CTCAE prints them in the unit delivered, not as scaled
        reasons = {k: (f"{t} ({ct.unit_check} as delivered)" if t and k[0] > 0 else t)
                   for k, t in compile_dense(ct).reasons.items()}
        out.append(Variant(m.lbtestcd, key, ct.unit_check, factor, replace(dense, reasons=reasons)))
    by_unit = {}
    for v in out:
        by_unit.setdefault((v.lbtestcd, v.unit), set()).add(v.key)
    for (code, unit), keys in by_unit.items():
        every = {(m.ctcae_term.upper(), m.direction) for m in term_map if m.lbtestcd == code}
        if keys != every:
            raise RuleError(f"{path.name}: {code} in {unit} has conventional cut-offs for "
                            f"{', '.join(sorted(k[0] for k in keys))} but not for "
                            f"{', '.join(sorted(k[0] for k in every - keys))}")
    return out


# ---------------------------------------------------------------------------------------------
# SQL generation


def signif(x: float | None, digits: int = SIGNIF_DIGITS) -> float | None:
    """R's ``signif(x, digits)`` (nmath fprec) for one number, for constants and test oracles."""
    if x is None or x == 0 or not math.isfinite(x):
        return x
    sgn = -1.0 if x < 0 else 1.0
    x = abs(x)
    l10 = math.log10(x)
    e10 = digits - 1 - math.floor(l10)
    if abs(l10) >= 306:  # outside any lab range; R switches algorithm here
        return sgn * x
    if e10 > 0:
        p = 10.0 ** e10
        return sgn * (round(x * p) / p)  # Python's round() on a float is round-half-even, as nearbyint
    p = 10.0 ** (-e10)
    return sgn * (round(x / p) * p)


def signif_sql(x: str) -> str:
    """SQL for R's signif(x, 15): round half to even at 15 significant digits; NULL stays NULL.

    Kept small on purpose (DuckDB pays per expression node for every vector). Same result as R for
    |x| < 1e14, i.e. every lab value; 0 stays 0 (log10 of the 1e-200 floor keeps it finite)."""
    e = f"(14 - floor(log10(greatest(abs({x}), 1e-200))))"
    return f"(round_even({x} * pow(10, {e}), 0) / pow(10, {e}))"


def _lit(x: float) -> str:
    # A string cast parses the decimal text exactly once (a bare 2.5 would be a DECIMAL).
    return f"CAST('{x!r}' AS DOUBLE)"


def _operand_sql(o: Operand, exact: str) -> str:
    if o.var is None:
        return _lit(signif(o.const) if exact != "raw" else o.const)
    s = VARIABLES[o.var]
    if o.coef is not None:
        s = f"({_lit(o.coef)} * {s})"
    if o.offset is not None:
        s = f"({s} + {_lit(o.offset)})"
    return s


def _compare_sql(c: Compare, exact: str) -> str:
    a, b = _operand_sql(c.left, exact), _operand_sql(c.right, exact)
    if exact == "raw":
        return f"({a} {c.op} {b})"
    sa = a if c.left.var is None else signif_sql(a)
    sb = b if c.right.var is None else signif_sql(b)
    if exact == "signif":
        return f"({sa} {c.op} {sb})"
    # guarded: identical result to signif on both sides. Rounding to 15 significant digits moves a
    # value by at most 5e-15 of itself, so outside b +- 1e-13 |b| the plain comparison already has the
    # rounded answer; only values in that band pay for the rounding. No CASE here: inside a WHEN
    # condition DuckDB evaluates the right side of AND/OR only on the rows that reach it.
    if c.right.var is None:
        tol = 1e-13 * abs(b_const := (signif(c.right.const)))
        hi, lo = _lit(b_const + tol), _lit(b_const - tol)
    else:
        hi, lo = f"({b} + 1e-13 * abs({b}))", f"({b} - 1e-13 * abs({b}))"
    if c.op in (">", ">="):
        return f"(({a} > {hi}) OR ({a} >= {lo} AND {sa} {c.op} {sb}))"
    return f"(({a} < {lo}) OR ({a} <= {hi} AND {sa} {c.op} {sb}))"


def criterion_sql(criterion: Criterion, exact: str = "guarded") -> str:
    """SQL boolean for a parsed criterion; NULL where R's case_when would see NA (not met)."""
    groups = []
    for group in criterion:
        items = []
        for c in group:
            if isinstance(c, Missing):
                items.append(f"({VARIABLES[c.var]} IS NULL)")
            elif isinstance(c, Always):
                items.append("TRUE")
            else:
                items.append(_compare_sql(c, exact))
        groups.append(" AND ".join(items) if len(items) == 1 else "(" + " AND ".join(items) + ")")
    return groups[0] if len(groups) == 1 else "(" + " OR ".join(groups) + ")"


# Outcome codes: arm rule_id * CODE_STRIDE + grade (0-4) or + NA_SLOT; engine-level reasons negative.
CODE_STRIDE = 8
NA_SLOT = 5
CODE_MISSING_VALUE = -1
CODE_UNIT_MISSING = -2
CODE_UNIT_OTHER = -3


def outcome_case_sql(rules: RuleSet, term_ids: dict[tuple[str, str], int], exact: str = "guarded") -> str:
    """One CASE giving an outcome code per row (columns term_id, value, unit_uc, lln, uln, base,
    pchg, baseline_high), for every term in ``term_ids``."""
    branches = []
    for key, tid in sorted(term_ids.items(), key=lambda kv: kv[1]):
        tr = rules.terms[key]
        arms = []
        if tr.unit_check:
            arms.append(f"WHEN unit_uc IS NULL THEN {CODE_UNIT_MISSING}")
            arms.append(f"WHEN unit_uc <> '{tr.unit_check.upper()}' THEN {CODE_UNIT_OTHER}")
        for arm in tr.arms:
            cond = criterion_sql(arm.criterion, exact)
            if arm.baseline == "BL_HIGH":
                cond = f"baseline_high AND {cond}"
            elif arm.baseline == "BL_NORMAL":
                cond = f"NOT baseline_high AND {cond}"
            slot = NA_SLOT if arm.grade is None else arm.grade
            arms.append(f"WHEN {cond} THEN {arm.rule_id * CODE_STRIDE + slot}")
        branches.append(f"WHEN {tid} THEN (CASE {' '.join(arms)} END)")
    return (f"CASE WHEN value IS NULL THEN {CODE_MISSING_VALUE} "
            f"ELSE (CASE term_id {' '.join(branches)} END) END")


# ---------------------------------------------------------------------------------------------
# Dense compilation. DuckDB pays per expression node for every vector it evaluates, so one CASE
# branch per term (40 branches, each seeing a few rows of every vector) costs ~10x the work itself.
# Terms whose arms have the usual shape are therefore compiled into per-term parameters (columns
# of the term table joined to every lab row) of ONE expression evaluated on dense vectors:
#   value compared, in the term's direction, with thresholds const | k*LLN | k*ULN + o | k*BASE,
#   optionally gated by the baseline branch, optionally AND-ed with 'PCHG op const';
#   at most one missing(VAR) arm. Per row, grade = highest grade whose arms hold (first match of
#   case_when, as grades are listed 4 -> 0), and missing(VAR) placed before the grade-p block gives
#   NULL when VAR is missing and no grade >= p holds. Other terms fall back to the per-term CASE.

DENSE_KINDS = ("CONST", "LLN", "ULN", "BASE")
NA_CODES = {"AVAL": -14, "LLN": -10, "ULN": -11, "BASE": -12, "PCHG": -13}


@dataclass(frozen=True)
class DenseArm:
    grade: int
    kind: str              # CONST, LLN, ULN, BASE
    coef: float            # constant for CONST
    offset: float
    inclusive: bool
    gate: str | None       # None, BL_NORMAL, BL_HIGH
    extra: tuple[str, str, float] | None  # (VAR, op, const) AND-ed, e.g. ('PCHG', '<=', -25)

    @property
    def slot(self):
        return (self.grade, self.kind, self.inclusive, self.gate, self.extra[:2] if self.extra else None)


@dataclass(frozen=True)
class DenseTerm:
    sign: int                                  # +1 for 'H' (value > threshold), -1 for 'L'
    arms: tuple[DenseArm, ...]
    na: tuple[str, int] | None                 # (VAR, p): NULL when VAR missing and grade < p
    reasons: dict[tuple[int, bool], str]       # (grade, baseline_high) -> reason text


def _main_compare(c: Compare, direction: str, grade: int, gate) -> DenseArm | None:
    if c.left != Operand("AVAL"):
        return None
    ops = {"H": {">": False, ">=": True}, "L": {"<": False, "<=": True}}[direction]
    if c.op not in ops:
        return None
    r = c.right
    if r.var is None:
        return DenseArm(grade, "CONST", r.const, 0.0, ops[c.op], gate, None)
    if r.var not in ("LLN", "ULN", "BASE"):
        return None
    return DenseArm(grade, r.var, 1.0 if r.coef is None else r.coef, r.offset or 0.0, ops[c.op], gate, None)


def _extra_compare(c: Compare):
    if c.left.var is None or c.left.coef is not None or c.left.offset is not None or c.right.var is not None:
        return None
    if c.left.var == "AVAL":
        return None
    return (c.left.var, c.op, c.right.const)


def _refs(arm: DenseArm) -> set[str]:
    refs = set() if arm.kind == "CONST" else {arm.kind}
    if arm.extra:
        refs.add(arm.extra[0])
    return refs


def compile_dense(tr: TermRules) -> DenseTerm | None:
    """The dense form of a term's arms, or None when they do not have the supported shape."""
    arms: list[DenseArm] = []
    na = None
    current = 5
    pending_na_grade = None  # grade block that an NA arm interrupted
    for arm in tr.arms:
        if arm.grade is None:
            if na is not None:
                return None
            (clause,), = arm.criterion
            na = (clause.var, current)
            pending_na_grade = current
            continue
        if arm.grade == 0:
            break  # validated: the last arm, TRUE
        if arm.grade > current:
            return None
        for group in arm.criterion:
            compares = [c for c in group if isinstance(c, Compare)]
            if len(compares) != len(group) or not 1 <= len(group) <= 2:
                return None
            main = _main_compare(compares[0], tr.direction, arm.grade, arm.baseline)
            extra = None
            if len(group) == 2:
                extra = _extra_compare(compares[1])
                if main is None:  # written the other way round
                    main = _main_compare(compares[1], tr.direction, arm.grade, arm.baseline)
                    extra = _extra_compare(compares[0])
                if extra is None:
                    return None
            if main is None:
                return None
            main = DenseArm(main.grade, main.kind, main.coef, main.offset, main.inclusive, main.gate, extra)
            if pending_na_grade == arm.grade and na[0] not in _refs(main):
                return None  # an arm after missing(VAR) in the same grade must need VAR
            arms.append(main)
        current = arm.grade
    if len({a.slot for a in arms}) != len(arms):
        return None  # two arms in one slot: keep the general path
    reasons = {}
    for g in range(5):
        for high in (False, True):
            texts = [a.reason for a in tr.arms if a.grade == g
                     and (a.baseline is None or (a.baseline == "BL_HIGH") == high)]
            reasons[(g, high)] = " or ".join(dict.fromkeys(texts)) if texts else ""
    return DenseTerm(1 if tr.direction == "H" else -1, tuple(arms), na, reasons)


class _Params:
    """Per-term parameters of the dense expression, as columns of the term table (one value per
    term_id). Joined once with the labs, they cost a column reference per row, where a list literal
    indexed by term_id cost a list_extract per row and use."""

    def __init__(self, n_terms: int):
        self.n_terms = n_terms
        self.columns: dict[tuple, str] = {}

    def __call__(self, entries: dict[int, float]) -> str:
        values = tuple(None if entries.get(i) is None else float(entries[i]) for i in range(self.n_terms))
        if values not in self.columns:
            self.columns[values] = f"_k{len(self.columns) + 1}"
        return self.columns[values]


def _guarded(x: str, op: str, t: str, exact: str) -> str:
    """x op t, with x and t plain columns, as R's signif(x, 15) op signif(t, 15)."""
    if exact == "raw":
        return f"({x} {op} {t})"
    if exact == "signif":
        return f"({signif_sql(x)} {op} {signif_sql(t)})"
    hi, lo = f"({t} + 1e-13 * abs({t}))", f"({t} - 1e-13 * abs({t}))"
    if op in (">", ">="):
        return f"(({x} > {hi}) OR ({x} >= {lo} AND {signif_sql(x)} {op} {signif_sql(t)}))"
    return f"(({x} < {lo}) OR ({x} <= {hi} AND {signif_sql(x)} {op} {signif_sql(t)}))"


# The value's tolerance band, computed once per row: _xl = _x - 1e-13 |_x|, _xh = _x + 1e-13 |_x|.
# signif(., 15) moves a number by at most 5e-15 of itself, so when _xl > t (x exceeds t by more than
# 1e-13 |x|) signif(x) > signif(t) already, and when _xh < t, signif(x) < signif(t): a comparison
# with a threshold costs one plain comparison for a row below it and two for a row above it; only
# rows within the band pay for the rounding.
_BAND_COLS = "_x - 1e-13 * abs(_x) AS _xl, _x + 1e-13 * abs(_x) AS _xh"


def _x_exceeds(op: str, t: str, exact: str) -> str:
    """_x op t (op '>' or '>='), as R's signif(_x, 15) op signif(t, 15) unless exact='raw'."""
    if exact == "raw":
        return f"(_x {op} {t})"
    if exact == "signif":
        return f"({signif_sql('_x')} {op} {signif_sql(t)})"
    return f"(_xh >= {t} AND (_xl > {t} OR {signif_sql('_x')} {op} {signif_sql(t)}))"


@dataclass(frozen=True)
class DensePlan:
    row_cols: str            # SQL select-list items: _x (value signed so that 'worse' is 'greater'), gates
    threshold_cols: str      # SQL select-list items: thresholds, tolerance band of _x (uses row_cols)
    grade_expr: str          # SQL for the grade from the arms (second layer, uses the columns)
    na_expr: str             # SQL CASE arms (WHEN ... THEN code) for missing(VAR) checks (third layer)
    params: dict[str, tuple[float | None, ...]]  # term-table column -> value by term_id


def dense_reasons(dense: dict[int, DenseTerm], n_terms: int) -> tuple[str, ...]:
    """The reason texts of the dense terms by (term_id * 5 + grade) * 2 + baseline_high ('' for other terms)."""
    return tuple(dense[i].reasons[(g, high)] if i in dense else ""
                 for i in range(n_terms) for g in range(5) for high in (False, True))


def dense_plan(dense: dict[int, DenseTerm], n_terms: int, exact: str = "guarded") -> DensePlan:
    """SQL pieces evaluating every dense term in one expression (see compile_dense). The per-term
    parameters (``params``) must be columns of the joined term table."""
    by_term = _Params(n_terms)
    sign = by_term({i: d.sign for i, d in dense.items()})
    row_cols = [f"{sign} * value AS _x",
                "CASE WHEN baseline_high THEN 1.0 END AS _gate_high",
                "CASE WHEN baseline_high THEN NULL ELSE 1.0 END AS _gate_normal"]
    cols = []
    var_sql = {"LLN": "lln", "ULN": "uln", "BASE": "base"}
    # a gated threshold is NULL off its baseline branch, and least() ignores NULLs
    gate_sql = {None: "", "BL_NORMAL": " * _gate_normal", "BL_HIGH": " * _gate_high"}
    # A gated limit is the limit NULL off its branch, taken once per row: k x limit + o is then the number the
    # gate's 1.0 would leave, or NULL, without a multiplication per threshold
    gate_case = {"BL_NORMAL": "CASE WHEN baseline_high THEN NULL ELSE {} END",
                 "BL_HIGH": "CASE WHEN baseline_high THEN {} END"}
    gated_limits = {}

    def limit(kind, gate):
        if gate is None:
            return var_sql[kind]
        if (kind, gate) not in gated_limits:
            gated_limits[(kind, gate)] = f"_{var_sql[kind]}_{gate.lower()}"
            row_cols.append(f"{gate_case[gate].format(var_sql[kind])} AS {gated_limits[(kind, gate)]}")
        return gated_limits[(kind, gate)]
    block_sql = {}
    n_col = 0
    for g in (4, 3, 2, 1):
        slots = sorted({a.slot for d in dense.values() for a in d.arms if a.grade == g}, key=repr)
        ors = []
        simple = {False: [], True: []}
        for slot in slots:
            _, kind, incl, gate, extra_key = slot
            members = {i: a for i, d in dense.items() for a in d.arms if a.slot == slot}
            if kind == "CONST":
                # sign * constant folded into one parameter
                thr = f"({by_term({i: a.coef * d.sign for i, a in members.items() for d in (dense[i],)})}{gate_sql[gate]})"
            else:
                coef = by_term({i: a.coef * dense[i].sign for i, a in members.items()})
                expr = f"{coef} * {limit(kind, gate)}"
                if any(a.offset for a in members.values()):
                    expr = f"({expr} + {by_term({i: a.offset * dense[i].sign for i, a in members.items()})})"
                thr = f"({expr})"
            if extra_key is not None:
                # 'x > t AND PCHG op p' as a threshold that is NULL unless the PCHG condition holds:
                # x > least(a, b) = x > a OR x > b, also after rounding (signif is monotone).
                # The condition is tested only on the rows of the terms that have it.
                ev, eop = extra_key
                p = by_term({i: a.extra[2] for i, a in members.items()})
                cond = _guarded(var_sql.get(ev, ev.lower()), eop, p, exact)
                thr = f"({thr} * (CASE WHEN {p} IS NOT NULL AND {cond} THEN 1.0 END))"
            simple[incl].append(thr)
        for incl, thrs in simple.items():
            if not thrs:
                continue
            n_col += 1
            t = thrs[0] if len(thrs) == 1 else f"least({', '.join(thrs)})"
            cols.append(f"{t} AS _t{n_col}")
            ors.append(_x_exceeds(">=" if incl else ">", f"_t{n_col}", exact))
        block_sql[g] = " OR ".join(ors) if ors else "FALSE"
    grade_expr = ("CASE " + " ".join(f"WHEN {block_sql[g]} THEN {g}" for g in (4, 3, 2, 1)) + " ELSE 0 END")
    na_parts = []
    for var in ("AVAL", "LLN", "ULN", "BASE", "PCHG"):
        ps = {i: d.na[1] for i, d in dense.items() if d.na and d.na[0] == var}
        if ps:
            col = {"AVAL": "value", "PCHG": "pchg"}.get(var, var_sql.get(var))
            na_parts.append(f"WHEN {col} IS NULL AND _g < {by_term(ps)} THEN {NA_CODES[var]}")
    params = {name: values for values, name in by_term.columns.items()}
    if exact == "guarded":
        cols.append(_BAND_COLS)
    return DensePlan(", ".join(row_cols), ", ".join(cols), grade_expr, " ".join(na_parts), params)
