"""The response codes of the published criteria (safety/data/response_criteria.csv): rank, what each counts as,
which record progression.

Rows are per criteria (Lugano 2014, IMWG 2016, ELN 2022, iwCLL 2018, NCCN ALL), written as the criteria write
them (sCR, CRi, CRh, VGPR, MLFS). Ranks lie on one ladder (1 best): a study's criteria name is free text, and a
subject counted by 'CR + CRi (acute leukaemia)' is ranked as one counted by ELN 2022, so a code has one rank, one
reading and one spelling in every criteria that names it; the file fails loudly otherwise.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from safety.core.files import read_data_csv

CRITERIA_FILE = Path(__file__).resolve().parents[2] / "data" / "response_criteria.csv"
_COLUMNS = ("criteria", "code", "rank", "counts_as", "progression", "source", "note")
# the codes are spliced into SQL as constants: letters, digits, spaces, '-', '+', '/' only
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 +/-]*$")


class ResponseCode(NamedTuple):
    label: str       # as the criteria write it, e.g. 'sCR'
    rank: int        # 1 best; one ladder across criteria
    counts_as: str   # upper case: the response it counts as (a CMR as CR, an sCR as CR), else itself
    progression: bool
    criteria: tuple[str, ...]


def load_response_codes(path: Path = CRITERIA_FILE) -> tuple[dict[str, ResponseCode], dict[str, str]]:
    """({upper-case code: ResponseCode}, in file order; {criteria: source}). A malformed row, or a code read two
    ways by two criteria, fails with the file and row."""
    codes: dict[str, ResponseCode] = {}
    sources: dict[str, str] = {}
    for i, r in read_data_csv(path, _COLUMNS):
        where = f"{path} row {i}"
        if not _CODE.match(r["code"]) or (r["counts_as"] and not _CODE.match(r["counts_as"])):
            raise ValueError(f"{where}: code and counts_as are letters, digits, spaces, '-', '+' or '/'")
        if r["progression"] not in ("true", "false") or not r["rank"].isdigit() or not r["criteria"]:
            raise ValueError(f"{where}: criteria is named, rank a whole number, progression true or false")
        key = r["code"].upper()
        code = ResponseCode(r["code"], int(r["rank"]), (r["counts_as"] or r["code"]).upper(),
                            r["progression"] == "true", (r["criteria"],))
        seen = codes.get(key)
        if seen and seen[:4] != code[:4]:
            raise ValueError(f"{where}: {r['code']} is read as {seen[:4]} by {', '.join(seen.criteria)}: one rank, "
                             "reading and spelling per code")
        codes[key] = code._replace(criteria=(seen.criteria if seen else ()) + code.criteria)
        if sources.setdefault(r["criteria"], r["source"]) != r["source"]:
            raise ValueError(f"{where}: {r['criteria']} is cited as {sources[r['criteria']]!r} above")
    for needed in ("PD", "NE"):
        if needed not in codes:
            raise ValueError(f"{path}: {needed} must be ranked (the study's other progression codes rank as PD, "
                             "any other code as NE)")
    if any(c.progression and c.rank != codes["PD"].rank for c in codes.values()):
        raise ValueError(f"{path}: a progression code ranks as PD")
    return codes, sources


RESPONSE_CODES, CRITERIA_SOURCES = load_response_codes()
RESPONSE_RANK = {k: c.rank for k, c in RESPONSE_CODES.items()}
# the response a code counts as where the criteria say so (Lugano's CMR as CR, IMWG's sCR as CR)
COUNTS_AS = {k: c.counts_as for k, c in RESPONSE_CODES.items() if c.counts_as != k}
LABELS = {k: c.label for k, c in RESPONSE_CODES.items() if c.label != k}  # 'CRI' -> 'CRi'
PROGRESSION_CODES = tuple(k for k, c in RESPONSE_CODES.items() if c.progression)
