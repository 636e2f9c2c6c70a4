"""Committee packet against the real sample database (both studies, two data cuts each).

The database is safety.sample_db.build_sample_database's (built once per session, copied per module);
expected values come from SQL on that database or from the planted findings in sample_data/README.md (PLANTED).
"""
from __future__ import annotations

import datetime as dt
import re

import duckdb
import pandas as pd
import pytest

from safety.access.reader import Scope, StudyReader
from safety.export.common import make_reader
from safety.export.listings import build_listing
from safety.export.packet import output_names, read_export_csv, write_outputs
from safety.export.tables import build_table

CART, ITNK = "CD56-CART-01", "ITNK-B-01"
CUT1, CUT2 = dt.date(2026, 3, 31), dt.date(2026, 9, 30)
FIXED = dt.datetime(2026, 10, 1, 8, 0, tzinfo=dt.timezone.utc)


def cart(subj: str) -> str:
    return f"{CART}-01-{subj}"


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory, sample_database):
    path = tmp_path_factory.mktemp("sample") / "sample.duckdb"
    loaded = sample_database(path)
    assert sorted(loaded) == [("car_itnk", "2026-03-31"), ("car_itnk", "2026-09-30"),
                              ("car_t_cd56", "2026-03-31"), ("car_t_cd56", "2026-09-30")]
    return path


@pytest.fixture(scope="module")
def con(sample_db):
    c = duckdb.connect(str(sample_db), read_only=True)
    yield c
    c.close()


def q(con, sql: str, **params) -> pd.DataFrame:
    return con.cursor().sql(sql, params=params or None).to_arrow_table().to_pandas()  # a cursor per query (DuckDB 2.0)


def scalar(con, sql: str, **params):
    return con.cursor().execute(sql, params).fetchone()[0]


COUNT_SQL = {
    "ae": "SELECT count(*) FROM adverse_events WHERE studyid=$s AND data_cut=$c",
    "sae": "SELECT count(*) FROM adverse_events WHERE studyid=$s AND data_cut=$c AND upper(aeser)='Y'",
    "deaths": "SELECT count(*) FROM deaths WHERE studyid=$s AND data_cut=$c",
    "dlt": "SELECT count(*) FROM dlt_candidates WHERE studyid=$s AND data_cut=$c",
    "crs_icans_episodes": "SELECT count(*) FROM toxicity_episodes WHERE studyid=$s AND data_cut=$c",
    "lab_grade3": "SELECT count(*) FROM lab_toxicity WHERE studyid=$s AND data_cut=$c AND grade >= 3",
    "eligibility_deviations": "SELECT count(*) FROM eligibility_deviations WHERE studyid=$s AND data_cut=$c",
    "grade_discrepancies": "SELECT count(*) FROM grade_discrepancies WHERE studyid=$s AND data_cut=$c",
    "ae_grade_checks": "SELECT count(*) FROM ae_grade_checks WHERE studyid=$s AND data_cut=$c",
    "icaht": "SELECT count(*) FROM icaht WHERE studyid=$s AND data_cut=$c",
    "car_hematotox": "SELECT count(*) FROM car_hematotox WHERE studyid=$s AND data_cut=$c",
}


@pytest.mark.parametrize("study", [CART, ITNK])
@pytest.mark.parametrize("cut", [CUT1, CUT2])
def test_listing_row_counts_equal_the_database(con, study, cut):
    reader = make_reader(con, study, cut)
    for name, sql in COUNT_SQL.items():
        n = scalar(con, sql, s=study, c=cut)
        df = build_listing(reader, name)
        assert len(df) == n, (study, cut, name)
        if len(df):  # one row per event key (no join fans a row out)
            key = {"lab_grade3": ["usubjid", "lbseq", "ctcae_term"],
                   "eligibility_deviations": ["usubjid", "criterion", "test"],
                   "icaht": ["usubjid", "lineage"], "car_hematotox": ["usubjid"],
                   "grade_discrepancies": ["syndrome", "episode_key", "ae_event_key", "discrepancy"]}.get(name, ["event_key", "rule_id"]
                                                                              if name == "dlt" else ["event_key"])
            assert not df.duplicated(key).any(), (study, cut, name)
    # the real data is not trivially empty where the planted findings say it is not
    assert len(build_listing(reader, "ae")) > 100


@pytest.mark.parametrize("study", [CART, ITNK])
@pytest.mark.parametrize("cut", [CUT1, CUT2])
def test_icaht_listing_is_the_labs_pages_table_with_its_counts(con, study, cut):
    """The packet's ICAHT listing is the Labs page's table (its query, its rows in its order: subject, lineage) with
    the subject's site, cohort and dose level, and its notes give the page's two counts: unique subjects with an
    early (late) grade >= 3 in either lineage."""
    from safety.derive.toxicity import icaht
    reader = make_reader(con, study, cut)
    df = build_listing(reader, "icaht")
    page = reader.sql("SELECT * EXCLUDE (studyid, data_cut) FROM icaht ORDER BY usubjid, lineage")  # the page's query
    assert list(df.columns) == ["site", "cohort", "dose_level", *page.columns]
    pd.testing.assert_frame_equal(df[list(page.columns)], page, check_dtype=False)
    subjects = q(con, "SELECT usubjid, siteid AS site, cohort, dose_level FROM subjects WHERE studyid=$s AND data_cut=$c",
                 s=study, c=cut).set_index("usubjid")
    assert df[["site", "cohort", "dose_level"]].values.tolist() == \
        subjects.loc[df["usubjid"], ["site", "cohort", "dose_level"]].values.tolist()
    notes = df.attrs["notes"]
    assert df.attrs["reference"].startswith("EHA/EBMT ICAHT consensus (Rejeski et al., Blood 2023")
    assert any(n.startswith("Source: EHA/EBMT ICAHT consensus (Rejeski et al., Blood 2023") for n in notes)
    counts = {}
    for phase, col in (("Early", "early_grade"), ("Late", "late_grade")):
        counts[phase] = scalar(con, f"SELECT count(DISTINCT usubjid) FROM icaht WHERE studyid=$s AND data_cut=$c "
                                    f"AND {col} >= 3", s=study, c=cut)
        label = f"{phase} ICAHT grade ≥3 (ANC or platelets)"  # the Labs page's metric
        assert label == getattr(icaht, f"{phase.upper()}_GRADE3_LABEL")
        assert [n.split(". ")[0] for n in notes if n.startswith(label)] == [f"{label}: {counts[phase]}"], notes
    if study == CART:  # the planted prolonged cytopenias: counted, in one lineage or the other
        assert counts["Early"] == 3 and counts["Late"] == 1


@pytest.mark.parametrize("study", [CART, ITNK])
def test_car_hematotox_listing_is_the_labs_pages_table_with_its_count(con, study):
    """The packet's CAR-HEMATOTOX listing has the Labs page's columns and rows in its order (subject), the subject's
    site, cohort and dose level first, its note cites Rejeski 2021 and gives the page's high-risk count."""
    reader = make_reader(con, study, CUT2)
    df = build_listing(reader, "car_hematotox")
    shown = ["usubjid", "risk", "score", "score_known", "reference_day", "inputs", "note"]  # the page's table
    page = reader.sql(f"SELECT {', '.join(shown)} FROM car_hematotox ORDER BY usubjid")
    assert list(df.columns) == ["site", "cohort", "dose_level", *shown]
    assert len(df) == len(page) > 0
    pd.testing.assert_frame_equal(df[shown], page, check_dtype=False)
    assert df.attrs["reference"] == "CAR-HEMATOTOX (Rejeski et al., Blood 2021;138:2499-2513)"
    high = scalar(con, "SELECT count(*) FROM car_hematotox WHERE studyid=$s AND data_cut=$c AND risk LIKE 'high%'",
                  s=study, c=CUT2)
    assert f"High risk (score ≥2): {high}." in df.attrs["notes"]
    assert df.attrs["notes"][0].startswith("CAR-HEMATOTOX (Rejeski et al., Blood 2021")


def test_icaht_and_car_hematotox_listings_keep_to_a_sites_scope(con):
    """A site-scoped reader lists that site's subjects alone, and counts them alone."""
    r = StudyReader(con, Scope(ITNK, CUT2, ("02",), CUT1))
    site = "usubjid IN (SELECT usubjid FROM subjects WHERE studyid=$s AND data_cut=$c AND siteid='02')"
    for name in ("icaht", "car_hematotox"):
        df = build_listing(r, name)
        n = scalar(con, f"SELECT count(*) FROM {name} WHERE studyid=$s AND data_cut=$c AND {site}", s=ITNK, c=CUT2)
        all_sites = scalar(con, f"SELECT count(*) FROM {name} WHERE studyid=$s AND data_cut=$c", s=ITNK, c=CUT2)
        assert len(df) == n and 0 < n < all_sites and set(df["site"]) == {"02"}, name
    early = scalar(con, f"SELECT count(DISTINCT usubjid) FROM icaht WHERE studyid=$s AND data_cut=$c AND {site} "
                        "AND early_grade >= 3", s=ITNK, c=CUT2)
    assert f"Early ICAHT grade ≥3 (ANC or platelets): {early}" in " ".join(build_listing(r, "icaht").attrs["notes"])


def test_planted_dlts_carry_rule_grade_and_window(con):
    dlt = build_listing(make_reader(con, CART, CUT2), "dlt")
    rows = {(r.usubjid, r.rule_id): r for r in dlt.itertuples(index=False)}
    crs4 = rows[(cart("005"), "R2")]
    assert (crs4.event_key, crs4.grade, crs4.onset_day, crs4.in_window) == (f"{cart('005')}/CRS/1", 4, 2, True)
    assert (crs4.site, crs4.cohort) == ("01", q(con, "SELECT cohort FROM subjects WHERE studyid=$s AND data_cut=$c "
                                               "AND usubjid=$u", s=CART, c=CUT2, u=cart("005")).iat[0, 0])
    assert rows[(cart("011"), "R3")].grade == 3
    # the ICANS episode is grade 5: the death is attributed to ICANS (fatal grade-5 AE, DS cause of death)
    # one event, one candidate: the fatal ICANS AE (R1) and its episode (R4) under the episode's key
    ican = rows[(cart("012"), "R1")]
    assert (ican.grade, ican.event_key) == (5, f"{cart('012')}/ICANS/1") and (cart("012"), "R4") not in rows
    assert rows[(cart("009"), "R7")].onset_day == 28 and rows[(cart("014"), "R7")].onset_day == 28
    assert rows[(cart("007"), "R6")].grade == 3 and rows[(cart("019"), "R6")].grade == 3
    late = rows[(cart("016"), "R2")]
    assert late.onset_day == 30 and late.in_window is False or late.in_window == False  # noqa: E712
    # near-misses are not candidates
    assert not {cart("013"), cart("008"), cart("003")} & set(dlt["usubjid"])
    # CAR-ITNK: the AE-only CRS grade 4 (020) and the CRS death (025) are the study's candidates
    itnk = build_listing(make_reader(con, ITNK, CUT2), "dlt")
    assert set(zip(itnk["usubjid"].str[-3:], itnk["rule_id"])) == {("020", "R2"), ("025", "R1")}
    assert set(itnk.loc[itnk["usubjid"].str.endswith("025"), "event_key"]) == {"ITNK-B-01-02-025/CRS/1"}


def test_planted_deaths(con):
    deaths = build_listing(make_reader(con, CART, CUT2), "deaths").set_index("usubjid")
    assert set(deaths.index) == {cart("001"), cart("012"), cart("015"), cart("021")}  # 021: fungal death, day 84
    related = deaths.loc[cart("012")]
    assert related["death_day"] == 9 and related["event_key"] == f"{cart('012')}/DEATH"
    assert "neurotoxicity" in related["fatal_ae_terms"].lower()
    assert "progression" in deaths.loc[cart("001"), "death_cause"].lower()
    itnk = build_listing(make_reader(con, ITNK, CUT2), "deaths").set_index("usubjid")
    prog = itnk.loc[f"{ITNK}-01-015"]
    assert prog["death_day"] == 21 and "Disease progression" in prog["fatal_ae_terms"]


def test_planted_ae_rows(con):
    ae = build_listing(make_reader(con, CART, CUT2), "ae")
    fatal = ae[(ae["usubjid"] == cart("012")) & (ae["grade"] == 5)].iloc[0]
    assert fatal["related"] == True and fatal["serious"] == "Y" and fatal["in_dlt_window"] == True  # noqa: E712
    assert "death" in fatal["serious_criteria"]
    crs = ae[(ae["usubjid"] == cart("005")) & (ae["grading_system"].str.contains("ASTCT", na=False))
             & (ae["grade"] == 4)].iloc[0]
    assert crs["tocilizumab_during_event"] == True and crs["corticosteroid_during_event"] == True  # noqa: E712
    sev_only = ae[(ae["usubjid"] == cart("020")) & ae["grade"].isna()]
    assert len(sev_only) == 1 and sev_only.iloc[0]["severity"] == "MILD"
    fatigue = ae[ae["usubjid"] == cart("004")]
    assert (fatigue["onset_day"].dropna() >= 0).all()  # year-month onset is not imputed before infusion


def test_planted_eligibility_deviations(con):
    el = build_listing(make_reader(con, CART, CUT2), "eligibility_deviations")
    got = {(r.usubjid, r.test) for r in el.itertuples(index=False)}
    assert got == {(cart("002"), "BILI"), (cart("017"), "ECOG")}
    bili = el[el["usubjid"] == cart("002")].iloc[0]
    # the screening value (day -11), not the day-0 one
    assert bili["value"] == pytest.approx(40.0) and bili["limit"] == pytest.approx(34.2) and bili["unit"] == "umol/L"


def test_planted_screening_alt_deviation_itnk(con):
    # judged on the screening value (ALT 3.5 x ULN), not day 0 (2.2 x ULN)
    el = build_listing(make_reader(con, ITNK, CUT2), "eligibility_deviations")
    assert f"{ITNK}-02-006" in set(el["usubjid"])
    alt = el[el["usubjid"] == f"{ITNK}-02-006"].iloc[0]
    assert alt["test"] == "ALT" and alt["value"] / alt["limit"] * 3 == pytest.approx(3.5)


def test_iec_hs_screen_flags_only_the_planted_subject(con):
    """Ordinary CRS with the lymphodepletion nadir is not screen positive; CD56-CART-01 019 is (from day 6), and
    ITNK-B-01 018 (no baseline ferritin, from day 6)."""
    for study in (CART, ITNK):
        got = q(con, "SELECT usubjid, min(flag_day) AS first FROM iec_hs_screen WHERE studyid=$s AND data_cut=$c "
                     "GROUP BY usubjid", s=study, c=CUT2)
        assert dict(zip(got["usubjid"], got["first"])) == ({cart("019"): 6} if study == CART
                                                           else {"ITNK-B-01-03-018": 6})


def test_aesi_derived_rows_have_term_and_day(con):
    """IEC-HS, ICAHT and prolonged-cytopenia rows name the event and its day, like AE rows do."""
    df = build_listing(make_reader(con, CART, CUT2), "aesi")
    assert df["term"].notna().all()
    got = {(r.usubjid[-3:], r.source, r.term, r.onset_day) for r in df.itertuples(index=False)
           if r.source != "adverse_events"}
    assert got == {
        ("009", "icaht", "Early ICAHT grade 4 (ANC)", 2),
        ("009", "dlt_candidates", "Prolonged cytopenia (NEUT grade 4 at day 28)", 28),
        ("014", "icaht", "Early ICAHT grade 4 (platelets)", 5),
        ("014", "dlt_candidates", "Prolonged cytopenia (PLAT grade 4 at day 28)", 28),
        ("019", "icaht", "Early ICAHT grade 3 (platelets)", 9),
        ("019", "iec_hs_screen", "IEC-HS screen positive", 6),
    }


@pytest.mark.parametrize("study", [CART, ITNK])
def test_new_since_previous_cut_matches_sql(con, study):
    reader = make_reader(con, study, CUT2)
    assert reader.scope.previous_cut == CUT1
    for name, table in (("ae", "adverse_events"), ("crs_icans_episodes", "toxicity_episodes"),
                        ("dlt", "dlt_candidates")):
        expected = set(q(con, f"""
            SELECT event_key FROM {table} WHERE studyid = $s AND data_cut = $c2
              AND event_key NOT IN (SELECT event_key FROM {table} WHERE studyid = $s AND data_cut = $c1)""",
                          s=study, c1=CUT1, c2=CUT2)["event_key"])
        df = build_listing(reader, name)
        flagged = set(df.loc[df["new_since_previous_cut"] == True, "event_key"])  # noqa: E712
        not_flagged = set(df.loc[df["new_since_previous_cut"] == False, "event_key"])  # noqa: E712
        assert flagged == expected, (study, name)
        assert not_flagged == set(df["event_key"]) - expected, (study, name)
        if name == "ae":
            assert expected and not_flagged  # both kinds exist between the two sample cuts
    deaths = build_listing(reader, "deaths")
    dead_before = set(q(con, "SELECT usubjid FROM deaths WHERE studyid=$s AND data_cut=$c",
                        s=study, c=CUT1)["usubjid"])
    assert dict(zip(deaths["usubjid"], deaths["new_since_previous_cut"])) == \
        {u: u not in dead_before for u in deaths["usubjid"]}
    first = build_listing(make_reader(con, study, CUT1), "ae")
    assert first["new_since_previous_cut"].all()


def test_itnk_new_deaths_between_cuts(con):
    deaths = build_listing(make_reader(con, ITNK, CUT2), "deaths")
    new = set(deaths.loc[deaths["new_since_previous_cut"] == True, "usubjid"])  # noqa: E712
    assert f"{ITNK}-01-030" in new and f"{ITNK}-01-015" not in new


# -- site scope ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site02_export(con, tmp_path_factory):
    reader = StudyReader(con, Scope(ITNK, CUT2, ("02",), CUT1))
    out = tmp_path_factory.mktemp("site02")
    paths = write_outputs(reader, out, formats=("csv", "xlsx", "rtf", "pdf"), generated_at=FIXED, figures=False)
    return paths


def test_site_scoped_export_contains_only_site_02(con, site02_export):
    subj = q(con, "SELECT usubjid, siteid FROM subjects WHERE studyid=$s AND data_cut=$c", s=ITNK, c=CUT2)
    site02 = set(subj.loc[subj["siteid"] == "02", "usubjid"])
    others = set(subj["usubjid"]) - site02
    assert site02 and others
    csvs = [p for p in site02_export if p.suffix == ".csv"]
    assert len(csvs) == len(output_names())  # one CSV per table and listing, the lab episodes included
    seen: set[str] = set()
    for p in csvs:
        df = read_export_csv(p)
        assert "# Scope: sites 02" in p.read_text(encoding="utf-8"), p.name
        if "usubjid" in df.columns:
            assert set(df["usubjid"]) <= site02, p.name
            seen |= set(df["usubjid"])
        if "site" in df.columns:
            assert set(df["site"]) <= {"02"}, p.name
    # the scoped listings are not empty: the check above would fail if scoping were dropped
    assert len(seen) >= 5
    ae = read_export_csv(next(p for p in csvs if p.name.endswith("_ae.csv")))
    n_site = scalar(con, "SELECT count(*) FROM adverse_events a JOIN subjects s USING (studyid, data_cut, usubjid) "
                         "WHERE a.studyid=$s AND a.data_cut=$c AND s.siteid='02'", s=ITNK, c=CUT2)
    assert len(ae) == n_site > 0
    # tables: the population is site 02's infused subjects only; no study-wide stopping-rule rows
    overview = read_export_csv(next(p for p in csvs if p.name.endswith("_ae_overview.csv")))
    n_inf = int(((subj["siteid"] == "02") & subj["usubjid"].isin(
        q(con, "SELECT usubjid FROM subjects WHERE studyid=$s AND data_cut=$c AND infused", s=ITNK, c=CUT2)["usubjid"])).sum())
    assert overview.columns[-1] == f"Overall (N={n_inf}) n (%)"
    stop_csv = next(p for p in csvs if p.name.endswith("_stopping_rules.csv"))
    assert read_export_csv(stop_csv).empty
    # the boundary section says why it counts nothing: the rule is the whole trial's, not site 02's
    site_note = ("Site-scoped packet (sites 02): the protocol's stopping rule is for the whole trial, so no events "
                 "are counted against its boundary here (these sites' subjects alone are not the rule's count); "
                 "the all-sites packet shows them.")
    assert f"# Note: {site_note}\n" in stop_csv.read_text(encoding="utf-8")
    # every other file (XLSX, RTF, PDF) names no subject of another site
    import openpyxl
    import pypdf
    texts = {p.name: p.read_text(encoding="latin-1") for p in site02_export if p.suffix == ".rtf"}
    wb = openpyxl.load_workbook(next(p for p in site02_export if p.suffix == ".xlsx"), read_only=True)
    texts["xlsx"] = "\n".join(str(v) for ws in wb.worksheets for row in ws.iter_rows(values_only=True)
                              for v in row if v is not None)
    pdf = pypdf.PdfReader(next(p for p in site02_export if p.suffix == ".pdf"))
    texts["pdf"] = "\n".join(pg.extract_text() for pg in pdf.pages)
    for name, text in texts.items():
        leaked = [u for u in others if u in text]
        assert not leaked, (name, leaked[:3])
    assert any(u in texts["xlsx"] for u in site02) and any(u in texts["pdf"] for u in site02)


def test_boundary_figure_of_a_site_scoped_packet_draws_the_rule_and_says_it_counts_no_site_events(con):
    from safety.export.figures import dlt_boundary_data
    site, note = dlt_boundary_data(StudyReader(con, Scope(ITNK, CUT2, ("02", "03"), CUT1)))
    assert site["observed"] is None and site["lines"]  # the protocol's boundary lines, no site-only points
    assert note == ("Site-scoped packet (sites 02, 03): the protocol's stopping rule is for the whole trial, so no "
                    "events are counted against its boundary here (these sites' subjects alone are not the rule's "
                    "count); the all-sites packet shows them.")
    every, note = dlt_boundary_data(StudyReader(con, Scope(ITNK, CUT2, None, CUT1)))
    assert every["observed"] is not None and note == ""  # all sites: the study's events, no such note
    stop = build_table(StudyReader(con, Scope(ITNK, CUT2, None, CUT1)), "stopping_rules")
    assert not stop.empty and not any("Site-scoped" in n for n in stop.attrs["notes"])


# -- the packet's numbers are the dashboard's numbers ------------------------------------------

def test_crs_icans_table_matches_toxicity_summary(con):
    from safety.derive.toxicity.summary import incidence_by_grade, onset_duration_summary
    reader = make_reader(con, CART, CUT2)
    tab = build_table(reader, "crs_icans_summary").set_index("Category")
    overall = [col for col in tab.columns if col.startswith("Overall")][0]
    for syn in ("CRS", "ICANS"):
        inc = incidence_by_grade(reader, syn, by="cohort").set_index("group").loc["All infused"]
        assert overall == f"Overall (N={inc['n_infused']}) n (%)"
        assert tab.loc[f"{syn}: any grade", overall].startswith(f"{inc['n_any_grade']} ")
        assert tab.loc[f"{syn}: grade >= 3", overall].startswith(f"{inc['n_grade3_plus']} ")
        assert tab.loc[f"{syn}: grade >= 3, 95% CI (%)", overall] == \
            f"{inc['grade3_plus_ci_low']:.1f}-{inc['grade3_plus_ci_high']:.1f}"
        ons = onset_duration_summary(reader, syn, by="cohort").set_index("group").loc["All infused"]
        assert tab.loc[f"{syn}: duration of first episode in days, median (range)", overall].startswith(
            f"{ons['duration_days_median']:g} (")
    # planted: CRS grade 4 in 005 (DL2 escalation) and 016 (expansion); ICANS grade 5 in 012 (death from ICANS)
    assert tab.loc["CRS: maximum grade 4", overall] == "2 (9.1)"
    assert tab.loc["ICANS: maximum grade 4", overall] == "0"
    assert tab.loc["ICANS: maximum grade 5", overall] == "1 (4.5)"
    assert tab.loc["CRS: anakinra", overall] == "1 (4.5)"  # 005, refractory CRS


def test_lab_shift_matches_grading_summary(con):
    from safety.derive.grading.summary import shift_table
    reader = make_reader(con, CART, CUT2)
    tab = build_table(reader, "lab_shift")
    long = shift_table(reader)
    assert tab["Total n"].sum() == long["subjects"].sum() > 0
    alt = long[(long["ctcae_term"] == "Alanine aminotransferase increased") & (long["baseline_grade"] == 0)]
    row = tab[(tab["CTCAE term"] == "Alanine aminotransferase increased (H)") & (tab["Baseline grade"] == "0")].iloc[0]
    assert row["Worst grade 3 n"] == int(alt.loc[alt["worst_grade"] == 3, "subjects"].sum()) >= 1  # 007
    worst = build_table(reader, "lab_worst_grade")
    g3 = worst[(worst["CTCAE term"] == "Alanine aminotransferase increased (H)") & (worst["Worst grade"] == "Grade >= 3")]
    assert g3.iloc[0]["Overall (N=22) n (%)"] == "2 (9.1)"


def test_ae_grade_footnote_names_the_scales_the_aes_were_graded_on(sample_db, tmp_path):
    """The AE overview and AE listing say which scales the reported grades are on, read from each AE's
    grading_system, so a CRS AE a site graded on Lee 2014 is not footnoted as ASTCT 2019."""
    import shutil

    db = tmp_path / "scales.duckdb"
    shutil.copy(sample_db, db)
    rw = duckdb.connect(str(db))
    scales = [r[0] for r in rw.execute(
        "SELECT DISTINCT grading_system FROM adverse_events WHERE studyid = $s AND data_cut = $c AND aetoxgr IS NOT NULL "
        "ORDER BY 1", {"s": CART, "c": CUT2}).fetchall()]
    assert "ASTCT 2019" in scales and any(s.startswith("CTCAE v") for s in scales)
    rw.execute("""UPDATE adverse_events SET grading_system = 'Lee 2014' WHERE studyid = $s AND data_cut = $c AND aeseq =
                  (SELECT min(aeseq) FROM adverse_events WHERE studyid = $s AND data_cut = $c AND usubjid = $u
                   AND grading_system = 'ASTCT 2019') AND usubjid = $u""",
               {"s": CART, "c": CUT2, "u": cart("001")})
    assert rw.execute("SELECT count(*) FROM adverse_events WHERE grading_system = 'Lee 2014'").fetchone()[0] == 1
    rw.close()
    con = duckdb.connect(str(db), read_only=True)
    try:
        r = make_reader(con, CART, CUT2)
        for output in (build_table(r, "ae_overview"), build_listing(r, "ae")):
            note = next(n for n in output.attrs["notes"] if n.startswith("Grade: AETOXGR as reported"))
            named = note.split("(in this data cut: ")[1].split(")")[0].split("; ")
            assert sorted(named) == sorted(scales + ["Lee 2014"]), note
            assert named[0].startswith("CTCAE v")  # the most used scale first
    finally:
        con.close()


def test_every_csv_holds_the_values_its_xlsx_sheet_holds(con, tmp_path):
    """A CSV is a data file: a number in it is the number of the XLSX cell (an AUC of 345862.3, not the 345862
    that six significant digits print), for every table and listing of the packet."""
    import math

    import openpyxl
    paths = write_outputs(StudyReader(con, Scope(CART, CUT2, None, CUT1)), tmp_path, formats=("csv", "xlsx"),
                          generated_at=FIXED, figures=False)
    workbooks = [openpyxl.load_workbook(p, read_only=True) for p in paths if p.suffix == ".xlsx"]
    sheets = {ws.title: [r for r in ws.iter_rows(values_only=True)] for wb in workbooks for ws in wb.worksheets}
    compared = 0
    for p in (p for p in paths if p.suffix == ".csv"):
        df = read_export_csv(p)
        name = next((t for t in sheets if p.stem == f"{CART}_{CUT2.isoformat()}_{t}"), None)
        if name is None or df.empty:
            continue
        sheet = sheets[name]
        start = next(i for i, r in enumerate(sheet) if str(r[0]).startswith("Rows: ")) + 3  # a blank row, the header
        rows = [r[:len(df.columns)] for r in sheet[start:start + len(df)]]
        for col_i, col in enumerate(df.columns):
            for csv_v, xl_v in zip(df[col].tolist(), (r[col_i] for r in rows)):
                if isinstance(xl_v, (int, float)) and not isinstance(xl_v, bool) and csv_v not in (None, ""):
                    assert math.isclose(float(csv_v), xl_v, rel_tol=1e-12), (p.name, col, csv_v, xl_v)
                    compared += 1
    assert compared > 100
    kinetics = read_export_csv(next(p for p in paths if p.name.endswith("_cellular_kinetics.csv")))
    assert any(not float(v).is_integer() for v in kinetics["auc_0_28"].dropna())


def test_the_stopping_rule_table_names_its_method_and_statistic_in_words(con):
    """'BOIN' and 'observed rate', as the pages say them, not the codes 'boin' and a bare number."""
    from safety.export.tables import table_stopping_rules
    cart_rows = table_stopping_rules(StudyReader(con, Scope(CART, CUT2, None, CUT1)))
    itnk_rows = table_stopping_rules(StudyReader(con, Scope(ITNK, CUT2, None, CUT1)))
    assert set(cart_rows["Method"]) == {"BOIN"} and set(cart_rows["Statistic measured"]) == {"observed rate"}
    assert set(itnk_rows["Method"]) == {"Bayesian beta-binomial"}
    assert set(itnk_rows["Statistic measured"]) == {"P(rate > 0.25 | data)"}  # the posterior probability


@pytest.mark.parametrize("study", [CART, ITNK])
def test_the_stopping_rule_files_print_the_statistic_as_the_app_says_it(con, study, tmp_path):
    """stopping_rules.csv printed the statistic unrounded (0.06255341298969422) beside the app's sentence saying
    'P(rate > 0.25 | data) = 0.063' (BOIN: 'rate 0.38'): the CSV and XLSX cells are now the sentence's text, from
    safety.derive.dlt.stopping.statistic_text."""
    import openpyxl
    from safety.derive.dlt.stopping import statistic_text
    from safety.export.common import current_dlt_status
    reader = StudyReader(con, Scope(study, CUT2, None, CUT1))
    live = current_dlt_status(reader, None).stopping  # the rows the overview and the DLT review show
    assert not live.empty
    paths = write_outputs(reader, tmp_path, formats=("csv", "xlsx"), only=["stopping_rules"], generated_at=FIXED,
                          figures=False)
    csv = read_export_csv(next(p for p in paths if p.suffix == ".csv"))
    ws = openpyxl.load_workbook(next(p for p in paths if p.suffix == ".xlsx"), read_only=True)["stopping_rules"]
    sheet = list(ws.iter_rows(values_only=True))
    head = next(i for i, r in enumerate(sheet) if r[:2] == ("Cohort", "Method"))
    xlsx = pd.DataFrame(sheet[head + 1:head + 1 + len(csv)], columns=sheet[head])
    assert len(csv) == len(live) == len(xlsx)
    for row, csv_value, xlsx_value in zip(live.to_dict("records"), csv["Statistic"], xlsx["Statistic"]):
        said = statistic_text(row["statistic"], row["statistic_label"])
        assert csv_value == xlsx_value == said != "", (csv_value, xlsx_value, said)
        assert len(said.split(".")[1]) == (2 if row["statistic_label"] == "observed rate" else 3)
        # the app's sentence says the same text
        assert (f"(rate {said})" if row["statistic_label"] == "observed rate"
                else f"{row['statistic_label']} = {said} ") in row["sentence"]
    assert list(csv["Summary"]) == list(live["sentence"])


@pytest.mark.parametrize("study", [CART, ITNK])
def test_every_output_is_headed_by_words_each_once(con, study):
    """The XLSX, RTF and PDF headers (the label table's): no raw code (Mhseq, pptestcd), no header twice in a table."""
    from safety.export.common import label as header_label
    from safety.export.packet import build_outputs
    from safety.schema.labels import COLUMN_LABELS
    raw = {name for name, label in COLUMN_LABELS.items() if label != name}
    for df in build_outputs(StudyReader(con, Scope(study, CUT2, None, CUT1))):
        headers = [header_label(col) for col in df.columns]
        assert len(set(headers)) == len(headers), (df.attrs.get("name"), headers)
        assert not [h for h in headers if "_" in h or h in raw], (df.attrs.get("name"), headers)
        # an SDTM variable with no label reads as its code with a capital (Mhseq, Pptestcd)
        assert not [h for h in headers if re.fullmatch(r"[A-Z][a-z](seq|cat|scat|testcd|test|orres|stresn)", h)], \
            (df.attrs.get("name"), headers)


def test_grade_discrepancy_listing_says_what_the_crs_icans_page_says(con):
    """The packet lists the derived-against-reported grades the CRS & ICANS page shows: the planted CRS reported
    as grade 1 where the assessments give ASTCT grade 3, with the evidence for the derived grade."""
    df = build_listing(make_reader(con, CART, CUT2), "grade_discrepancies")
    page = q(con, "SELECT * FROM grade_discrepancies WHERE studyid=$s AND data_cut=$c ORDER BY usubjid, onset_day",
             s=CART, c=CUT2)
    assert list(df["usubjid"]) == list(page["usubjid"]) and len(df) >= 1
    crs = df[(df["usubjid"] == cart("006")) & (df["syndrome"] == "CRS")].iloc[0]
    assert (crs.reported_grade, crs.derived_grade, crs.discrepancy) == (1, 3, "reported lower than derived")
    assert crs.evidence.startswith("grade 3 on day 3: one vasopressor") and crs.site == "01"
    assert df.attrs["title"] == "Listing of derived against reported CRS and ICANS grades"


def test_ae_listing_says_which_dates_were_partial(con):
    """A partial AESTDTC (2026-02) is listed with the date its study day was computed from, and says the day was
    filled in; a full date says nothing (the listing printed an imputed date as if delivered)."""
    df = build_listing(make_reader(con, CART, CUT2), "ae")
    flags = q(con, "SELECT event_key, aest_date_flag FROM adverse_events WHERE studyid=$s AND data_cut=$c",
              s=CART, c=CUT2)
    partial = set(flags.loc[flags["aest_date_flag"] == "D", "event_key"])
    assert partial
    shown = dict(zip(df["event_key"], df["onset_date_imputed"]))
    assert {shown[k] for k in partial} == {"day"}
    assert all(pd.isna(v) for k, v in shown.items() if k not in partial)
    assert any("partial date" in n for n in df.attrs["notes"])


def test_aesi_secondary_malignancies_are_the_derived_ones_medical_history_included(con):
    """The AESI listing's secondary malignancies are the secondary_malignancies rows, a malignancy reported only
    as medical history (started after infusion) included: it read AEs of the neoplasm SOC alone."""
    found_mh = False
    for study in (CART, ITNK):
        for cut in (CUT1, CUT2):
            aesi = build_listing(make_reader(con, study, cut), "aesi")
            shown = aesi[aesi["aesi_category"] == "Secondary malignancy"]
            derived = q(con, "SELECT event_key, source FROM secondary_malignancies WHERE studyid = $s AND data_cut = $c",
                        s=study, c=cut)
            assert sorted(shown["event_key"]) == sorted(derived["event_key"]), (study, cut)
            mh = derived.loc[derived["source"] == "MH", "event_key"]
            found_mh |= len(mh) > 0
            assert set(shown.set_index("event_key").loc[list(mh), "source"]) <= {"medical_history"}
    assert found_mh  # the sample studies plant one


def test_outputs_say_which_sources_were_not_delivered_or_not_loaded(con):
    """An empty listing of a domain never delivered says so ("no data" is not "no events"), and an output says how
    many of its source rows the load quarantined; a site's scope, which may not read the quarantine, is not told."""
    cart_notes = build_listing(make_reader(con, CART, CUT2), "prior_malignancies").attrs["notes"]
    assert "MH not delivered at this data cut: what this output reads from MH cannot be shown." in cart_notes
    quarantined = q(con, "SELECT source_file, count(*) AS n FROM quarantine WHERE studyid = $s AND data_cut = $c "
                         "AND domain = 'PP' GROUP BY ALL", s=ITNK, c=CUT2)
    assert quarantined["n"].tolist() == [1]
    notes = build_listing(make_reader(con, ITNK, CUT2), "kinetics_comparison").attrs["notes"]
    assert f"1 row of {quarantined['source_file'][0]} not loaded (quarantined, each with its reason: Data quality " \
           "page)." in notes
    assert not any("not delivered" in n for n in notes)
    site = StudyReader(con, Scope(ITNK, CUT2, ("01",), CUT1))
    assert not any("not loaded" in n for n in build_listing(site, "kinetics_comparison").attrs["notes"])


def test_ae_tables_say_where_reported_crs_and_icans_grades_differ_from_the_derived(con):
    differ = q(con, "SELECT syndrome, count(*) AS n FROM grade_discrepancies WHERE studyid = $s AND data_cut = $c "
                    "GROUP BY ALL ORDER BY syndrome", s=CART, c=CUT2)
    assert differ["n"].sum() >= 1
    words = " and ".join(f"{n} {s} event{'s' if n != 1 else ''}" for s, n in zip(differ["syndrome"], differ["n"]))
    reader = make_reader(con, CART, CUT2)
    for name in ("ae_overview", "ae_by_soc_pt", "sae_by_soc_pt"):
        note = [n for n in build_table(reader, name).attrs["notes"] if n.startswith("CRS and ICANS rows count")]
        assert len(note) == 1 and f": {words} differ" in note[0], name


def test_a_site_scope_ranks_its_own_subjects_infusions(con):
    """The swimmer plot and the daily-grades chart label subjects '#rank': a site investigator's ranks are of
    their own subjects (1, 2, 3 ...), not the study's (2, 6, 8 ...), which told them how many others infused."""
    site = StudyReader(con, Scope(ITNK, CUT2, ("02",), CUT1))
    ranks = site.sql("SELECT usubjid, first_infusion_date, enrollment_order FROM subjects WHERE infused "
                     "ORDER BY enrollment_order")
    assert len(ranks) >= 3 and ranks["enrollment_order"].tolist() == list(range(1, len(ranks) + 1))
    assert ranks["first_infusion_date"].is_monotonic_increasing
    study = make_reader(con, ITNK, CUT2).sql("SELECT enrollment_order FROM subjects WHERE infused AND siteid = '02'")
    assert study["enrollment_order"].max() > len(ranks)
    prev = site.sql("SELECT enrollment_order FROM prev_subjects WHERE infused ORDER BY 1")
    assert prev["enrollment_order"].tolist() == list(range(1, len(prev) + 1))
    every = make_reader(con, ITNK, CUT2).sql("SELECT enrollment_order FROM subjects WHERE infused ORDER BY 1")
    assert every["enrollment_order"].tolist() == list(range(1, len(every) + 1))


def test_the_crs_icans_chart_draws_the_packet_tables_counts(con, monkeypatch):
    """The packet's CRS/ICANS bar chart counted subjects by maximum grade with a query of its own, beside the one
    (safety.derive.toxicity.summary.incidence_table) the packet's table and the dashboard's page print: its bars are
    that table's maximum-grade rows, per syndrome and cohort, and follow it."""
    from safety.derive.toxicity import summary as tox
    from safety.export.figures import crs_icans_incidence_data

    reader = make_reader(con, CART, CUT2)
    chart, _ = crs_icans_incidence_data(reader)
    drawn = {(x, bar["name"]): y for bar in chart["bars"] for x, y in zip(chart["xs"], bar["y"])}
    table = {}
    for syn in tox.SYNDROMES:
        for r in tox.incidence_table(reader, syn, by="cohort").to_dict("records"):
            if r["group"] != tox.ALL_LABEL and pd.notna(r["grade"]):
                table[(f"{syn} | {r['group']} (N={r['total']})", f"Grade {r['grade']}")] = r["subjects"]
    assert drawn and sum(drawn.values()) > 0
    assert drawn == {k: v for k, v in table.items() if k[0] in chart["xs"]}
    # every cohort with a subject of any grade has its bar
    assert sorted({x for (x, _), v in table.items() if v}) == chart["xs"]
    # the chart's numbers are the table function's: one count, not two that agree today
    real = tox.incidence_table
    monkeypatch.setattr(tox, "incidence_table",
                        lambda *a, **k: real(*a, **k).assign(subjects=lambda d: d["subjects"] * 2))
    again, _ = crs_icans_incidence_data(reader)
    assert [bar["y"] for bar in again["bars"]] == [[2 * y for y in bar["y"]] for bar in chart["bars"]]
