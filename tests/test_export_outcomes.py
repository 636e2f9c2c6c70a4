"""Packet outputs for outcomes beyond CRS/ICANS on the sample database, in every format."""
from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest

from safety.access.reader import Scope, StudyReader
from safety.export.common import make_reader
from safety.export.listings import build_listing
from safety.export.packet import read_export_csv, write_outputs
from safety.export.tables import build_table

CART, ITNK = "CD56-CART-01", "ITNK-B-01"
CUT1, CUT2 = dt.date(2026, 3, 31), dt.date(2026, 9, 30)
FIXED = dt.datetime(2026, 10, 1, 8, 0, tzinfo=dt.timezone.utc)
OUTPUTS = ["deaths_nrm", "infections_by_window", "response", "death_causes", "infections", "secondary_malignancies",
           "cellular_kinetics", "dose_delivered", "kinetics_comparison", "prior_malignancies", "icaht", "car_hematotox"]


@pytest.fixture(scope="module")
def con(tmp_path_factory, sample_database):
    path = tmp_path_factory.mktemp("sample_outcomes") / "sample.duckdb"
    sample_database(path)
    c = duckdb.connect(str(path), read_only=True)
    yield c
    c.close()


def scalar(con, sql, **p):
    return con.cursor().execute(sql, p).fetchone()[0]


def test_death_listing_causes_nrm_and_new_flag(con):
    r = make_reader(con, CART, CUT2)
    df = build_listing(r, "death_causes")
    assert len(df) == scalar(con, "SELECT count(*) FROM deaths WHERE studyid=$s AND data_cut=$c", s=CART, c=CUT2) == 4
    row = df.set_index("usubjid").loc[f"{CART}-01-021"]
    assert (row["cause_category"], row["death_day"], row["nrm_by_day100"], row["nrm_by_day28"]) == ("infection", 84, True, False)
    assert row["fatal_ae_term"] == "Bronchopulmonary aspergillosis" and row["new_since_previous_cut"]
    icans = df.set_index("usubjid").loc[f"{CART}-01-012"]
    assert (icans["cause_category"], icans["treatment_related"], icans["new_since_previous_cut"]) == ("ICANS", True, False)


def test_infection_listing_has_microbiology_only_episode(con):
    df = build_listing(make_reader(con, ITNK, CUT2), "infections")
    bk = df[(df["usubjid"] == f"{ITNK}-01-014") & (df["source"] == "MB")]
    assert bk[["source", "pathogen", "onset_day", "onset_window"]].values.tolist() == [["MB", "BK virus", 50, "day 31-90"]]


def test_tables_deaths_nrm_infections_response(con):
    r = make_reader(con, CART, CUT2)
    nrm = dict(build_table(r, "deaths_nrm")[["Row", "Statistic"]].values)
    assert nrm["Infused subjects (N)"] == "22" and nrm["Deaths, any cause"] == "4 (18.2)"
    assert nrm["Non-relapse deaths by day 28"] == "1 (4.5)" and nrm["Non-relapse deaths by day 100"] == "2 (9.1)"
    assert nrm["  progression/relapse"] == "2 (9.1)"
    inf = build_table(r, "infections_by_window").set_index(["Pathogen class", "Severity"])
    col = [c for c in inf.columns if c.startswith("day 31-90")][0]
    n31 = scalar(con, "SELECT count(*) FROM infection_episodes WHERE studyid=$s AND data_cut=$c AND onset_window='day 31-90'",
                 s=CART, c=CUT2)
    assert inf.loc[("all", "any grade"), col].startswith(f"{n31} / ")
    assert inf.loc[("fungal", "grade >= 3"), col].startswith("1 / 1 (4.5) / ")
    # one pair of rows per dose level, its rate read from infection_incidence_density of that level
    levels = con.cursor().execute(
        "SELECT dose_level, count(*) FROM subjects WHERE studyid=$s AND data_cut=$c AND infused "
        "AND first_infusion_date IS NOT NULL GROUP BY ALL", {"s": CART, "c": CUT2}).fetchall()
    assert len(levels) >= 2
    for dose, n in levels:
        rate = scalar(con, "SELECT per_100_patient_days FROM infection_incidence_density WHERE studyid=$s "
                      "AND data_cut=$c AND dose_level=$d AND onset_window='day 31-90' AND pathogen_class='all' "
                      "AND severity='any grade'", s=CART, c=CUT2, d=dose)
        assert inf.loc[(f"all, dose level {dose} (N={n})", "any grade"), col].endswith(
            "-" if rate is None else f"{rate:.2f}")
    resp = build_table(r, "response")
    assert "ORR 15/22 (68.2%)" in resp.attrs["notes"][0]
    # the reference line cites both criteria the study counts by, as the swimmer page's chart names them
    assert resp.attrs["reference"] == ("Study response criteria: Lugano 2014 (CR + PR) or CR + CRi (acute leukaemia), "
                                       "by each subject's diagnosis; Lugano 2014: Cheson et al., J Clin Oncol 2014")
    rows = {(a, b): v for a, b, v in resp.values}
    assert rows[("Lugano 2014", "ORR (CR + PR)")] == "10 (58.8)"
    assert rows[("CR + CRi (acute leukaemia)", "ORR (CR + CRi)")] == "5 (100.0)"


def test_secondary_malignancy_dose_and_kinetics_listings(con):
    sm = build_listing(make_reader(con, ITNK, CUT2), "secondary_malignancies")
    got = sm[["usubjid", "source", "term", "latency_months", "t_cell_malignancy"]].values.tolist()
    # onset order: the skin cancer reported as medical history at month 9 (from day 250), the MDS AE at month 10
    assert got == [[f"{ITNK}-03-016", "MH", "Squamous cell carcinoma of skin", 8.2, False],
                   [f"{ITNK}-01-005", "AE", "Myelodysplastic syndrome", 10.0, False]]
    assert sm["car_transgene_result"].iloc[1] == "NEGATIVE"
    prior = build_listing(make_reader(con, ITNK, CUT2), "prior_malignancies")
    assert prior[["usubjid", "term"]].values.tolist() == [[f"{ITNK}-02-009", "Basal cell carcinoma"]]
    pp = build_listing(make_reader(con, ITNK, CUT2), "kinetics_comparison")
    # disagreements first: the re-assayed Cmax of 02-009 and its AUC
    assert pp[["usubjid", "status"]].head(2).values.tolist() == [[f"{ITNK}-02-009", "differs"]] * 2
    assert set(pp["status"].iloc[2:]) == {"agree"} and set(pp["parameter"]) == {"cmax", "tmax_day", "auc_0_28"}
    dd = build_listing(make_reader(con, CART, CUT2), "dose_delivered").set_index("usubjid")
    assert dd.loc[f"{CART}-01-022", "pct_of_planned"] == pytest.approx(80.0)
    assert dd.loc[f"{CART}-01-030", "not_infused_reason"] == "Manufacturing failure (product out of specification)"
    kin = build_listing(make_reader(con, CART, CUT2), "cellular_kinetics")
    assert len(kin) == 22 and kin["values_used"].str.startswith("0:BLQ").all()


def test_outcome_outputs_in_every_format(con, tmp_path):
    import openpyxl
    import pypdf
    r = make_reader(con, CART, CUT2)
    paths = write_outputs(r, tmp_path, formats=("csv", "xlsx", "rtf", "pdf"), only=OUTPUTS, generated_at=FIXED,
                          figures=False)
    names = {p.name for p in paths}
    for o in OUTPUTS:
        assert f"{CART}_{CUT2}_{o}.csv" in names and f"{CART}_{CUT2}_{o}.rtf" in names
    deaths = read_export_csv(tmp_path / f"{CART}_{CUT2}_death_causes.csv")
    assert f"{CART}-01-021" in set(deaths["usubjid"])
    first = (tmp_path / f"{CART}_{CUT2}_response.csv").read_text(encoding="utf-8").splitlines()[0]
    assert first == ("# Best overall response and objective response rate [Study response criteria: Lugano 2014 "
                     "(CR + PR) or CR + CRi (acute leukaemia), by each subject's diagnosis; Lugano 2014: Cheson et al., "
                     "J Clin Oncol 2014]")
    rtf = (tmp_path / f"{CART}_{CUT2}_death_causes.rtf").read_text(encoding="latin-1")
    assert rtf.startswith("{\\rtf1") and "Invasive pulmonary aspergillosis" in rtf and "Cause category" in rtf
    wb = openpyxl.load_workbook(next(p for p in paths if p.suffix == ".xlsx"), read_only=True)
    assert set(OUTPUTS) <= set(wb.sheetnames)
    pdf = pypdf.PdfReader(next(p for p in paths if p.suffix == ".pdf"))
    text = "\n".join(pg.extract_text() for pg in pdf.pages)
    assert "Deaths by cause and non-relapse mortality" in text and f"{CART}-01-021" in text
    assert "ORR 15/22" in text
    # the Labs page's ICAHT and CAR-HEMATOTOX tables, with its counts, in every format
    n_icaht = scalar(con, "SELECT count(*) FROM icaht WHERE studyid=$s AND data_cut=$c", s=CART, c=CUT2)
    assert len(read_export_csv(tmp_path / f"{CART}_{CUT2}_icaht.csv")) == n_icaht
    assert "Listing of ICAHT grades (early and late) per subject and lineage" in text
    assert "Early ICAHT grade ≥3 (ANC or platelets): 3." in text and "Listing of CAR-HEMATOTOX scores" in text
    rtf = (tmp_path / f"{CART}_{CUT2}_icaht.rtf").read_text(encoding="latin-1")
    assert "Early ICAHT grade" in rtf and "Rejeski et al., Blood 2023" in rtf


def test_site_scoped_outcome_outputs_stay_in_scope(con):
    r = StudyReader(con, Scope(ITNK, CUT2, ("02",), CUT1))
    site02 = {u for (u,) in con.cursor().execute(
        "SELECT usubjid FROM subjects WHERE studyid=$s AND data_cut=$c AND siteid='02'", {"s": ITNK, "c": CUT2}).fetchall()}
    for name in ("death_causes", "infections", "cellular_kinetics", "dose_delivered", "icaht", "car_hematotox"):
        df = build_listing(r, name)
        assert set(df["usubjid"]) <= site02 and len(df) > 0 or name == "death_causes", name
    inf = build_table(r, "infections_by_window")
    assert "site-scoped" in " ".join(inf.attrs["notes"])
    build_table(r, "deaths_nrm")  # computed from scoped rows: never raises


def test_pdf_contents_over_two_pages_keep_every_page_number(con, tmp_path):
    """A packet whose contents need a second page: each footer names its own page, and the contents send each
    section to the page it is on."""
    import re

    import pypdf
    from safety.export import pdf_writer
    from safety.export.common import packet_meta
    from safety.export.packet import build_outputs
    r = make_reader(con, ITNK, CUT2)
    outputs = build_outputs(r)
    # five figure pages (drawn as 'unavailable') on top of every table and listing: over one page of contents
    figures = [(f"Figure {i}", None, "not drawn in this test") for i in range(5)]
    assert len(outputs) + len(figures) > 28
    path = pdf_writer.write_pdf(outputs, packet_meta(r, FIXED), tmp_path / "packet.pdf", figures)
    pdf = pypdf.PdfReader(path)
    texts = [p.extract_text() for p in pdf.pages]
    n = len(texts)
    for i, t in enumerate(texts, start=1):
        assert f"Page {i} of {n}" in t, i
    contents = [i for i, t in enumerate(texts, start=1) if "| Contents" in t]
    assert contents == [2, 3]  # more than one page of contents
    toc = "\n".join(texts[1:3])
    entry = re.search(r"Listing: Listing of the sponsor's kinetic parameters \(PP\) beside celltox's\s*(\d+)", toc)
    assert entry, toc
    page = int(entry.group(1))
    assert "Listing of the sponsor's kinetic parameters (PP)" in texts[page - 1]


def test_pdf_figures_still_rendering_give_the_same_packet(con, tmp_path):
    """Figures handed over while they render (a function and their titles): the tables and listings are laid out
    first and the figures drawn onto their pages after; the packet says what it says with the figures in hand."""
    import io

    import pypdf
    from PIL import Image

    from safety.export import pdf_writer
    from safety.export.common import packet_meta
    from safety.export.packet import build_outputs
    r = make_reader(con, ITNK, CUT2)
    outputs = build_outputs(r, only=["deaths_nrm", "death_causes"])
    png = io.BytesIO()
    Image.new("RGB", (400, 200), (0, 114, 178)).save(png, format="PNG")
    figures = [("Alpha figure", png.getvalue(), "Deaths from DM and DS only in this figure."),
               ("Beta figure", None, "figure unavailable: the renderer did not answer within 60 s")]
    meta = packet_meta(r, FIXED)
    at_once = pypdf.PdfReader(pdf_writer.write_pdf(outputs, meta, tmp_path / "a.pdf", figures))
    later = pypdf.PdfReader(pdf_writer.write_pdf(outputs, meta, tmp_path / "b.pdf", lambda: figures,
                                                 figure_titles=["Alpha figure", "Beta figure"]))
    texts = [p.extract_text() for p in later.pages]
    assert len(texts) == len(at_once.pages)
    for i, (a, b) in enumerate(zip(at_once.pages, later.pages)):
        assert sorted(a.extract_text().split()) == sorted(b.extract_text().split()), i
        assert len(a.images) == len(b.images), i
        assert f"Page {i + 1} of {len(texts)}" in texts[i]
    assert "Alpha figure" in texts[2] and "Deaths from DM and DS only in this figure." in texts[2]
    assert len(later.pages[2].images) == 1
    assert "Beta figure" in texts[3] and "did not answer within 60 s" in texts[3] and not later.pages[3].images
    assert "Deaths by cause" in "\n".join(texts[4:])
    with pytest.raises(ValueError, match="Gamma"):
        pdf_writer.write_pdf(outputs, meta, tmp_path / "c.pdf", lambda: figures, figure_titles=["Alpha figure", "Gamma"])


def test_pdf_document_made_ahead_gives_the_same_bytes(con, tmp_path):
    """The fonts parsed in a thread while the tables are queried: the packet is byte for byte the one written
    with its document made on the spot."""
    from safety.export import pdf_writer
    from safety.export.common import packet_meta
    from safety.export.packet import build_outputs, pdf_document_ahead
    r = make_reader(con, ITNK, CUT2)
    ahead = pdf_document_ahead()
    outputs = build_outputs(r, only=["deaths_nrm", "death_causes"])
    meta = packet_meta(r, FIXED)
    figures = [("Alpha figure", None, "figure unavailable: not rendered in this test")]
    made_ahead = pdf_writer.write_pdf(outputs, meta, tmp_path / "a.pdf", figures, document=ahead)
    on_the_spot = pdf_writer.write_pdf(outputs, meta, tmp_path / "b.pdf", figures)
    assert made_ahead.read_bytes() == on_the_spot.read_bytes()
    import pypdf
    assert "Deaths by cause" in "\n".join(pg.extract_text() for pg in pypdf.PdfReader(made_ahead).pages)


@pytest.mark.parametrize("study", ["CD56-CART-01", "ITNK-B-01"])
def test_pdf_tables_break_words_only_after_a_hyphen_or_slash(con, tmp_path, study):
    """Every table of the packet fits its page without cutting a word between two letters: a subject ID wraps
    after a hyphen (CD56-CART-01-01- / 021), an outcome after its slash (RECOVERED/ / RESOLVED), and a cohort
    heading too wide at its size is set in a smaller font rather than cut (ESCALATIO / N DL1)."""
    import pypdf
    from safety.export import pdf_writer
    from safety.export.common import packet_meta
    from safety.export.packet import build_outputs
    r = make_reader(con, study, CUT2)
    outputs = build_outputs(r)
    path = pdf_writer.write_pdf(outputs, packet_meta(r, FIXED), tmp_path / "packet.pdf", [])
    tokens = set(" ".join(p.extract_text() for p in pypdf.PdfReader(path).pages).split())
    ids = [u for (u,) in con.cursor().execute("SELECT DISTINCT usubjid FROM subjects WHERE studyid = $s",
                                              {"s": study}).fetchall()]
    words = set(ids) | {"RECOVERED/RESOLVED", "ESCALATION", "EXPANSION", "Overall", "Hypogammaglobulinaemia",
                        "progression/relapse"}
    assert any(u in tokens for u in ids) and "RECOVERED/RESOLVED" in tokens  # whole where the column is wide
    pieces = {t[:-1] if t.endswith("-") else t for t in tokens}  # a cut between letters ends with a hyphen
    cut = sorted((t, w) for w in words for t in pieces
                 if len(t) >= 2 and w.startswith(t) and len(t) < len(w) and w[len(t) - 1].isalnum()
                 and w[len(t)].isalnum())
    assert cut == []


def test_pdf_word_wrap_prefers_a_hyphen_slash_or_separator_to_a_letter():
    from safety.export.pdf_writer import _wrap
    def mm(text: str) -> float:  # 1 mm a character
        return float(len(text))
    assert _wrap("CD56-CART-01-01-021 dose", 13, mm) == ["CD56-CART-01-", "01-021 dose"]
    assert _wrap("RECOVERED/RESOLVED", 12, mm) == ["RECOVERED/", "RESOLVED"]
    assert _wrap("a=1;b=22;c=333", 6, mm) == ["a=1;b=", "22;c=", "333"]
    # no break point: cut between letters, with a hyphen at the cut
    assert _wrap("Hypogammaglobulinaemia", 10, mm) == ["Hypogamma-", "globulina-", "emia"]


def _pdf_of(con, tmp_path, only, edit, name="packet.pdf"):
    """The text of the PDF packet of ``only`` (CD56-CART-01, second cut), its outputs (by name) changed in place by
    ``edit``, or replaced by those it returns."""
    import pypdf
    from safety.export import pdf_writer
    from safety.export.common import packet_meta
    from safety.export.packet import build_outputs
    r = make_reader(con, CART, CUT2)
    outputs = build_outputs(r, only=only)
    new = edit({o.attrs["name"]: o for o in outputs}) or {}
    outputs = [new.get(o.attrs["name"], o) for o in outputs]
    path = pdf_writer.write_pdf(outputs, packet_meta(r, FIXED), tmp_path / name, [])
    return [p.extract_text() for p in pypdf.PdfReader(path).pages]


def test_pdf_shows_characters_its_font_lacks_as_a_mark_and_says_so(con, tmp_path, caplog):
    """DejaVu has no CJK glyphs: 发热 is drawn as two marks, not dropped, the listing's notes say so, and fpdf2
    reports no missing glyph."""
    term = "Fièvre ≥ 38 °C 发热"

    def edit(o):
        o["ae"].iat[0, o["ae"].columns.get_loc("preferred_term")] = term
    with caplog.at_level("WARNING"):
        texts = _pdf_of(con, tmp_path, ["ae"], edit)
    text = " ".join("\n".join(texts).split())
    assert "Fièvre ≥ 38 °C \ufffd\ufffd" in text
    assert ("PDF only: characters the PDF font cannot draw are shown as \ufffd; the CSV, XLSX and RTF files hold "
            "the exact text.") in text
    assert not [r for r in caplog.records if "missing" in r.getMessage()]
    plain = " ".join("\n".join(_pdf_of(con, tmp_path, ["ae"], lambda o: None, "plain.pdf")).split())
    assert "\ufffd" not in plain and "cannot draw" not in plain  # said only where a mark is shown


def test_pdf_cell_longer_than_a_page_is_cut_with_a_mark_and_a_note(con, tmp_path):
    """A DLT rationale of 3,020 characters: the PDF shows as much as a page holds, ending with [...], and the
    listing's notes say where the full text is."""
    words = [f"w{i:03d}" for i in range(604)]  # 604 words of 4 letters and a space: 3,020 characters
    rationale = " ".join(words) + "."

    def edit(o):
        o["dlt"].iat[0, o["dlt"].columns.get_loc("adjudication_rationale")] = rationale
    texts = _pdf_of(con, tmp_path, ["dlt"], edit)
    tokens = "\n".join(texts).split()
    shown = [t for t in tokens if t in words]
    assert 20 < len(shown) < 604 and shown == words[:len(shown)]
    assert tokens[tokens.index(shown[-1]) + 1] == "[...]"  # the cell ends with the mark
    text = " ".join(tokens)
    assert ("PDF only: a cell longer than a page is cut where it ends with [...]; the CSV, XLSX and RTF files hold "
            "the full text.") in text


def test_pdf_clip_keeps_what_fits_and_ends_with_the_mark():
    from safety.export.pdf_writer import _clip
    def mm(text: str) -> float:
        return float(len(text))
    assert _clip(["aaa bbb", "ccc ddd", "eee"], 2, 10, mm) == ["aaa bbb", "ccc [...]"]
    assert _clip(["aaa bbb", "ccccccccc"], 1, 10, mm) == ["aaa [...]"]
    assert _clip(["aaa", "bbb"], 2, 10, mm) == ["aaa", "bbb"]


def test_pdf_long_word_is_whole_up_to_the_widest_column_and_a_longer_one_is_hyphenated(con, tmp_path):
    """A 50-letter term, in a row past the first few hundred, fits its column whole; a word wider than any column
    (MAX_COL_MM) breaks between letters with a hyphen at the break, and nothing of it is lost."""
    long_word = "Pseudohypoparathyroidismhyperphosphataemiasyndrome"
    huge = "Q" + "abcdefghij" * 15  # 151 letters: wider than a column may be

    def edit(o):
        ae = pd.concat([o["ae"], o["ae"]], ignore_index=True).iloc[:320].copy()  # over 300 rows
        ae.attrs = o["ae"].attrs
        ae.iat[len(ae) - 1, ae.columns.get_loc("preferred_term")] = long_word
        ae.iat[0, ae.columns.get_loc("preferred_term")] = huge
        return {"ae": ae}
    tokens = "\n".join(_pdf_of(con, tmp_path, ["ae"], edit)).split()
    assert long_word in tokens
    start = next(i for i, t in enumerate(tokens) if t.startswith("Qabc"))
    pieces = []
    for t in tokens[start:]:
        pieces.append(t)
        if not t.endswith("-"):
            break
    assert len(pieces) >= 2 and all(p.endswith("-") for p in pieces[:-1])
    assert "".join(p[:-1] for p in pieces[:-1]) + pieces[-1] == huge


def test_pdf_sub_rows_keep_their_indent(con, tmp_path):
    """Rows under a heading row (``  progression/relapse``) are indented in the PDF as in the other formats."""
    from safety.export.pdf_writer import _wrap
    nrm = build_table(make_reader(con, CART, CUT2), "deaths_nrm")
    assert "  progression/relapse" in set(nrm["Row"])
    lines = [ln for t in _pdf_of(con, tmp_path, ["deaths_nrm"], lambda o: None) for ln in t.splitlines()]
    assert any(ln.startswith("  progression/relapse") for ln in lines), lines
    assert any(ln.startswith("Deaths, any cause") for ln in lines)

    def mm(text: str) -> float:
        return float(len(text))
    assert _wrap("  Serious: results in death", 14, mm) == ["  Serious:", "  results in", "  death"]
    assert _wrap("top\n  sub", 20, mm) == ["top", "  sub"]
