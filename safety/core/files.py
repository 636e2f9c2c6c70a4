"""Small file utilities: file hashes (ingest and exports) and the packaged data tables the engines read."""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks (deliveries can be gigabytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_data_csv(path: str | Path, columns: tuple[str, ...], *, exact: bool = True) -> list[tuple[int, dict]]:
    """Rows of a packaged data table as (file line number, {column: stripped text}). The header must be
    ``columns`` exactly (``exact``) or contain them; otherwise it fails loudly, naming the file."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = tuple(reader.fieldnames or ())
        if exact and header != tuple(columns):
            raise ValueError(f"{path}: header must be {','.join(columns)}")
        missing = set(columns) - set(header)
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        return [(i, {c: (r[c] or "").strip() for c in columns}) for i, r in enumerate(reader, start=2)]
