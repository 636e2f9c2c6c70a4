"""Write the committee packet for one reader (study, cut, sites): CSV and RTF per output, one XLSX
workbook and one PDF packet, all carrying the same metadata block.

Files are written into a temporary folder beside ``out_dir`` and moved into place only when every
file is complete, so a failure leaves nothing half-written. With a review store, an 'export' audit
entry records the user, cut and SHA-256 of every file.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable

import pandas as pd

from safety.access.reader import StudyReader
from safety.export import PDF_MAX_ROWS, csv_writer, rtf_writer
from safety.export.csv_writer import read_export_csv  # noqa: F401 - re-exported for callers of the packet API
from safety.export.common import current_dlt_status, file_stem, packet_meta
from safety.export.listings import LISTINGS
from safety.export.renderer import Renderer
from safety.export.tables import TABLES
from safety.core.files import sha256_file

from safety.export import FORMATS  # noqa: E402,F401 - defined once, light enough for the CLI help


def output_names() -> list[str]:
    """Every output name: tables first, then listings."""
    return list(TABLES) + list(LISTINGS)


def _specs(only=None):
    names = output_names() if not only else list(only)
    unknown = [n for n in names if n not in TABLES and n not in LISTINGS]
    if unknown:
        raise KeyError(f"unknown output(s) {', '.join(unknown)}; valid: {', '.join(output_names())}")
    return [TABLES[n] if n in TABLES else LISTINGS[n] for n in names]


def build_outputs(reader: StudyReader, only=None, store=None, live=None) -> list[pd.DataFrame]:
    """Build the requested outputs (all when ``only`` is None) in packet order.

    The DLT state (:func:`~safety.review.dlt_status.dlt_status`, decisions in ``store`` applied) is computed
    once, when an output needs it, and every output shows that same state; ``live`` passes one computed before."""
    specs = _specs(only)
    if live is None and any(s.takes_dlt_status for s in specs):
        live = current_dlt_status(reader, store)
    return [s.build(reader, store, live) for s in specs]


def pdf_document_ahead() -> Callable:
    """Import fpdf2 and make the PDF packet's document (:func:`~safety.export.pdf_writer.new_document`: its four
    TrueType fonts parsed) in a thread; returns the function that waits for it (and raises what it raised).

    About 0.5-1 s of Python that then runs while DuckDB answers the DLT state, table and listing queries (which
    release the GIL), instead of after them."""
    made: dict = {}

    def make() -> None:
        try:
            from safety.export import pdf_writer
            made["pdf"] = pdf_writer.new_document()
        except BaseException as exc:  # noqa: BLE001 - raised again where the document is needed
            made["error"] = exc

    thread = threading.Thread(target=make, name="celltox-pdf-document", daemon=True)
    thread.start()

    def ready():
        thread.join()
        if "error" in made:
            raise made["error"]
        return made["pdf"]
    return ready


def _import_scipy_special() -> None:
    """Import scipy.special, which the DLT state's stopping rules and the tables' confidence intervals need (about
    0.5 s, half of it numpy.testing and f2py that scipy pulls in), in a thread started with the export: it then
    runs while DuckDB answers the DLT state's queries, not after them. A failure is raised again where the
    stopping rules import it."""
    try:
        import scipy.special  # noqa: F401
    except Exception:  # noqa: BLE001 - raised again where it is used
        pass


def write_outputs(reader: StudyReader, out_dir, formats=FORMATS, only=None, store=None, user=None, *,
                  generated_at: dt.datetime | None = None, pdf_max_rows: int = PDF_MAX_ROWS,
                  figures: bool = True, renderer: Renderer | None = None) -> list[Path]:
    """Write the packet files into ``out_dir``; returns their final paths.

    The PDF's figures are built first and rendered by the kaleido child process (``renderer`` when the caller
    started one ahead, else started here; always closed here) while the tables and listings are built. Every
    output and figure shows one DLT state, computed once for the packet."""
    formats = tuple(formats)
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        if renderer is not None:
            renderer.close()
        raise ValueError(f"unknown format(s) {', '.join(bad)}; valid: {', '.join(FORMATS)}")
    with_figures = "pdf" in formats and figures
    if renderer is not None and not with_figures:
        renderer.close()
        renderer = None
    elif with_figures and renderer is None:
        renderer = Renderer()  # Chromium starts while the figures and tables are built
    collect_figures, figure_titles = None, None
    threading.Thread(target=_import_scipy_special, name="celltox-import-scipy", daemon=True).start()
    document = pdf_document_ahead() if "pdf" in formats else None  # while the tables are queried
    try:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        specs = _specs(only)
        live = current_dlt_status(reader, store) if with_figures or any(s.takes_dlt_status for s in specs) else None
        if with_figures:
            from safety.export.figures import FIGURES, submit_figures
            collect_figures = submit_figures(reader, store, renderer, live)  # rendered while the tables are built
            figure_titles = [title for title, _ in FIGURES.values()]  # and while the PDF lays them out
        outputs = build_outputs(reader, only, store, live)
        meta = packet_meta(reader, generated_at)
        head = store.head() if store is not None else None
        if head is not None:  # printed on every page, so the minutes can record it
            meta = dataclasses.replace(meta, audit_head=(int(head["seq"]), str(head["entry_hash"])))
        stem = file_stem(meta)
        tmp = Path(tempfile.mkdtemp(prefix=".celltox-export-", dir=out_dir))
    except BaseException:
        if renderer is not None:
            renderer.close()
        raise
    try:
        written: list[Path] = []
        for fmt in formats:
            if fmt == "csv":
                written += [csv_writer.write_csv(o, meta, tmp / f"{stem}_{o.attrs['name']}.csv") for o in outputs]
            elif fmt == "rtf":
                written += [rtf_writer.write_rtf(o, meta, tmp / f"{stem}_{o.attrs['name']}.rtf") for o in outputs]
            elif fmt == "xlsx":
                from safety.export import xlsx_writer  # xlsxwriter only when a workbook is asked for
                written.append(xlsx_writer.write_xlsx(outputs, meta, tmp / f"{stem}_listings_tables.xlsx"))
            elif fmt == "pdf":
                from safety.export import pdf_writer  # imported by the document's thread meanwhile
                figs = collect_figures if collect_figures is not None else []  # waited for after the listings
                written.append(pdf_writer.write_pdf(outputs, meta, tmp / f"{stem}_committee_packet.pdf", figs,
                                                    max_rows=pdf_max_rows, figure_titles=figure_titles,
                                                    document=document))
        hashes = {p.name: sha256_file(p) for p in written}
        blocked = [str(out_dir / p.name) for p in written if (out_dir / p.name).is_dir()]
        if blocked:  # before any file is replaced: all of the packet or none of it
            raise OutputBlocked(f"{blocked[0]}: a folder has the name of a file the export writes; remove or "
                                "rename it" + (f" (and {len(blocked) - 1} more)" if len(blocked) > 1 else ""))
        final = []
        try:
            for p in written:
                dest = out_dir / p.name
                os.replace(p, dest)  # same folder tree: an atomic rename per file
                final.append(dest)
        finally:  # the files replaced are audited even when the machine refuses a later one
            if store is not None and final:
                store.append_audit(user or "unknown", "export", reader.scope.studyid, {
                    "data_cut": meta.data_cut.isoformat(), "scope": meta.scope_label, "formats": list(formats),
                    "outputs": [o.attrs["name"] for o in outputs],
                    "files": {d.name: hashes[d.name] for d in final}, "out_dir": str(out_dir.resolve()),
                    "celltox_version": meta.version,
                    "audit_head_shown": meta.audit_head[1] if meta.audit_head else None,
                    **({"incomplete": f"{len(final)} of {len(written)} files written"}
                       if len(final) < len(written) else {})})
    finally:
        if renderer is not None:
            renderer.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return final


class OutputBlocked(Exception):
    """A file of the packet cannot take its place in the output folder (a folder has its name): refused before any
    file there is replaced."""
