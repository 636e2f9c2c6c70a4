"""Load into a private copy of the database and switch it in atomically, so a load never interrupts readers.

DuckDB allows one writing process per file, and a reader holding the file blocks a writer. A load therefore
never writes the database file the app reads: it copies it to ``<db>.loading-<pid>-<random>`` (the first load starts an
empty one), loads and derives there, and renames the finished copy over ``<db>`` (``os.replace``: atomic on
POSIX file systems). Readers that opened the old file keep reading it until they reopen; a reader that opens
the path afterwards gets the new file. A crash, a kill or an error before the rename leaves ``<db>``
exactly as it was (the next load removes the stale copy), and a first load that fails leaves no file behind.

Loads into one database run one at a time (``<db>.lock``, an advisory lock the operating system releases
when the loading process ends, however it ends).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import glob
import re
import uuid
from pathlib import Path

from safety.core import interrupt
from safety.ingest.errors import IngestError

LOADING_SUFFIX = ".loading"  # <db>.loading-<pid>-<random>, and DuckDB's .wal beside it
LOCK_SUFFIX = ".lock"


def staging_path(db_path: Path) -> Path:
    """A name of its own per load: DuckDB keeps one instance per open path in a process, and a reused name
    could reach an instance still bound to the file that became ``db_path``."""
    return db_path.with_name(f"{db_path.name}{LOADING_SUFFIX}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _stale_copies(db_path: Path) -> list[Path]:
    return [p for p in db_path.parent.glob(glob.escape(db_path.name + LOADING_SUFFIX) + "-*")]


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + LOCK_SUFFIX)


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def _remove(*paths: Path) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _copy(src_fd: int, dst: Path) -> None:
    """Copy the open file ``src_fd`` to ``dst`` (copy_file_range: a reflink on file systems that have them)."""
    size = os.fstat(src_fd).st_size
    out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        offset = 0
        while offset < size:
            n = os.copy_file_range(src_fd, out, size - offset, offset, offset)
            if n == 0:
                break
            offset += n
        os.fsync(out)
    finally:
        os.close(out)


@contextlib.contextmanager
def load_lock(db_path: Path):
    """Hold ``<db>.lock`` for one load; a second load into the same database is refused in one line."""
    lp = lock_path(db_path)
    fd = os.open(lp, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IngestError(f"{db_path.name}: another load into this database is running "
                              f"({_lock_owner(lp)}); load again when it has finished") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race with the next load)


def _lock_owner(lp: Path) -> str:
    try:
        pid, since = lp.read_text().split()[:2]
        return f"process {pid}, started {since}"
    except (OSError, ValueError):
        return "process unknown"


def load_running(db_path: str | Path) -> bool:
    """True while a load into ``db_path`` holds its lock (for the app's message)."""
    lp = lock_path(Path(db_path))
    if not lp.exists():
        return False
    fd = os.open(lp, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


@contextlib.contextmanager
def new_snapshot(db_path: str | Path):
    """Yield the path of a private copy of ``db_path`` to load into; on a clean exit it replaces ``db_path``.

    While the copy is loaded, the original is held with a shared lock (as DuckDB's readers hold it), so no
    other program can write it in the meantime and lose its change at the switch. On an error the copy is
    removed and ``db_path`` is untouched.
    """
    db_path = Path(db_path)
    staging = staging_path(db_path)
    with load_lock(db_path):
        _remove(*_stale_copies(db_path))  # left by a load that was killed (we hold the lock: none is running)
        src = None
        try:
            if db_path.exists():
                src = os.open(db_path, os.O_RDONLY)
                try:
                    fcntl.lockf(src, fcntl.LOCK_SH | fcntl.LOCK_NB, 0, 0)
                except OSError:
                    raise IngestError(f"{db_path.name}: the database is open for writing in another program; "
                                      "close it and load again") from None
                _copy(src, staging)
                if _wal(db_path).exists():  # changes a writer left unmerged: the copy replays them
                    wal = os.open(_wal(db_path), os.O_RDONLY)
                    try:
                        _copy(wal, _wal(staging))
                    finally:
                        os.close(wal)
            yield staging
            if _wal(staging).exists():
                raise IngestError(f"{db_path.name}: the new snapshot was not written completely "
                                  f"({_wal(staging).name} remains); the database is unchanged")
            # Ctrl-C during the load: DuckDB may have taken it for its own and the load gone on; not switched in
            interrupt.check()
            _fsync(staging)
            _remove(_wal(db_path))  # merged into the new file; it must never be replayed onto it
            os.replace(staging, db_path)
            _fsync_dir(db_path.parent)
        except BaseException:
            _remove(staging, _wal(staging))
            raise
        finally:
            if src is not None:
                os.close(src)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        _fsync(path)


def file_version(db_path: str | Path) -> tuple[int, int] | None:
    """(inode, mtime in ns) of the database file: changes exactly when a load switched a new file in."""
    try:
        st = os.stat(db_path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


_LOCK_HOLDER = re.compile(r"\(PID (\d+)\)")


def open_problem(db_path: str | Path, exc: BaseException) -> str:
    """One sentence for a reader that cannot open ``db_path`` (instead of DuckDB's lock message and paths)."""
    name = Path(db_path).name
    text = " ".join(str(exc).split())
    if not Path(db_path).exists():
        if load_running(db_path):
            return (f"The first data load into {name} is running; the app opens the database when it has "
                    "finished (reload this page in a minute).")
        return f"There is no celltox database {name} yet: load a study with `python -m safety ingest` first."
    if "lock" in text.lower():
        holder = _LOCK_HOLDER.search(text)
        who = f"process {holder.group(1)}" if holder else "another program"
        return (f"The database {name} is open for writing in {who}; the app can read it once that program "
                "has closed it (data loads never do this: they switch in a new file).")
    return f"The database {name} cannot be opened: {text[:200]}"
