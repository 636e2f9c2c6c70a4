"""The sample studies: deterministic generation, valid study.yaml, and the planted findings a committee must see,
in the raw files and (once the ingest exists) in the database."""
from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data"
CART = SAMPLE / "car_t_cd56"
ITNK = SAMPLE / "car_itnk"

_spec = importlib.util.spec_from_file_location("sample_generate", SAMPLE / "generate.py")
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)


def read(folder: Path, name: str) -> pd.DataFrame:
    """A delivered domain in whatever format the folder holds (split LB files combined)."""
    return _read(folder, name).copy()


@functools.lru_cache(maxsize=None)
def _read(folder: Path, name: str) -> pd.DataFrame:
    import pyreadstat

    frames = []
    for path in sorted(folder.iterdir()):
        stem = path.stem.lower()
        if not (stem == name or (name == "lb" and stem in ("lbch", "lbhe"))):
            continue
        if path.suffix == ".xpt":
            frames.append(pyreadstat.read_xport(str(path))[0])
        elif path.suffix == ".csv":
            frames.append(pd.read_csv(path, dtype=str, keep_default_na=False))
        elif path.suffix == ".parquet":
            frames.append(pd.read_parquet(path))
    assert frames, f"{name} not found in {folder}"
    df = pd.concat(frames, ignore_index=True)
    return df


def usubjid(study: str, subjid: str, folder: Path) -> str:
    dm = read(folder, "dm")
    hit = dm.loc[dm["SUBJID"].astype(str) == subjid, "USUBJID"]
    assert len(hit) == 1, f"{subjid} not in DM of {folder.name}"
    return hit.iloc[0]


def day_of(dtc: str, inf: str) -> int:
    return (pd.Timestamp(dtc[:10]) - pd.Timestamp(inf[:10])).days


def infusion(folder: Path, usub: str) -> str:
    dm = read(folder, "dm")
    return dm.loc[dm["USUBJID"] == usub, "RFXSTDTC"].iloc[0]


def astct_crs_grade(a: pd.DataFrame, treated_from: pd.Timestamp | None) -> pd.Series:
    """ASTCT 2019 CRS grade of each bedside assessment (independent re-implementation for the tests)."""
    temp = pd.to_numeric(a["TEMP_C"])
    vaso = pd.to_numeric(a["VASOPRESSORS"]).fillna(0)
    hyp = a["HYPOTENSION"] == "Y"
    oxy = a["OXYGEN"]
    t = pd.to_datetime(a["CRSDTC"])
    fever_ok = (temp >= 38.0) | ((t > treated_from) if treated_from is not None else False)
    hyp_g = np.select([vaso >= 2, vaso == 1, hyp], [4, 3, 2], 0)
    oxy_g = np.select([oxy.isin(["CPAP", "BIPAP", "MECHANICAL_VENTILATION"]),
                       oxy.isin(["HIGH_FLOW_NC", "FACEMASK", "NONREBREATHER", "VENTURI"]),
                       oxy.isin(["LOW_FLOW_NC", "BLOW_BY"])], [4, 3, 2], 0)
    organ = np.maximum(hyp_g, oxy_g)
    febrile = (temp >= 38.0).to_numpy()
    # fever is required, except after tocilizumab/steroids (then hypotension/hypoxia alone grade it)
    return pd.Series(np.where(febrile, np.maximum(organ, 1), np.where(fever_ok, organ, 0)), index=a.index)


def crs_grades_by_day(folder: Path, usub: str) -> dict[int, int]:
    a = read(folder, "crs_assessments")
    a = a[a["USUBJID"] == usub].copy()
    cm = read(folder, "cm")
    cm = cm[(cm["USUBJID"] == usub) & cm["CMDECOD"].isin(["TOCILIZUMAB", "DEXAMETHASONE"])]
    treated = pd.to_datetime(cm["CMSTDTC"]).min() if len(cm) else None
    treated = None if treated is pd.NaT else treated
    # treatment on day X is given after that morning's assessment: masking starts the next assessment
    a["grade"] = astct_crs_grade(a, treated + pd.Timedelta(hours=12) if treated is not None else None)
    inf = infusion(folder, usub)
    return {day_of(d, inf): int(g) for d, g in zip(a["CRSDTC"], a["grade"])}


def icans_grades_by_day(folder: Path, usub: str) -> dict[int, int]:
    a = read(folder, "icans_assessments")
    a = a[a["USUBJID"] == usub]
    inf = infusion(folder, usub)
    out = {}
    for r in a.itertuples():
        ice = pd.to_numeric(r.ICE_SCORE, errors="coerce")
        g = 0
        if not np.isnan(ice):
            g = 3 if ice <= 2 else 2 if ice <= 6 else 1 if ice <= 9 else 0
        g = max(g, {"AWAKE": 0, "AWAKENS_SPONTANEOUSLY": 1, "AWAKENS_TO_VOICE": 2, "AWAKENS_TO_TACTILE": 3,
                    "UNAROUSABLE": 4}[r.CONSCIOUSNESS])
        g = max(g, {"NONE": 0, "RAPIDLY_RESOLVING": 3, "PROLONGED_OR_REPETITIVE": 4}[r.SEIZURE])
        g = max(g, {"NONE": 0, "DEEP_FOCAL": 4}[r.MOTOR_WEAKNESS])
        g = max(g, {"NONE": 0, "FOCAL": 3, "DIFFUSE": 4}[r.CEREBRAL_EDEMA])
        out[day_of(r.ICANSDTC, inf)] = g
    return out


def aes(folder: Path, usub: str, term: str) -> pd.DataFrame:
    ae = read(folder, "ae")
    return ae[(ae["USUBJID"] == usub) & (ae["AEDECOD"] == term)]


def lab(folder: Path, usub: str, test: str) -> pd.DataFrame:
    lb = read(folder, "lb")
    x = lb[(lb["USUBJID"] == usub) & (lb["LBTESTCD"] == test)].copy()
    inf = infusion(folder, usub)
    x["day"] = [day_of(d, inf) for d in x["LBDTC"]]
    x["value"] = pd.to_numeric(x["LBSTRESN"], errors="coerce")
    return x


CRS = "Cytokine release syndrome"
ICANS = "Immune effector cell-associated neurotoxicity syndrome"


# --------------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------------
def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_generator_is_deterministic_and_matches_committed_files(tmp_path):
    for run in ("a", "b"):
        subprocess.run([sys.executable, str(SAMPLE / "generate.py"), "--out", str(tmp_path / run)], check=True,
                       capture_output=True)
    a, b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert len(a) >= 24 and a == b
    committed = {k: v for k, v in _digest(SAMPLE).items() if k.startswith(("car_t_cd56/", "car_itnk/", "twins/car_itnk_sdtm/"))}
    assert committed == a, "sample_data/ is stale: rerun python sample_data/generate.py"


def test_xpt_headers_carry_no_creation_time():
    raw = (CART / "dm.xpt").read_bytes()
    assert raw.count(b"01JAN26:00:00:00") >= 2


def test_program_scale_mode_writes_parquet(tmp_path):
    out = tmp_path / "scale"
    subprocess.run([sys.executable, str(SAMPLE / "generate.py"), "--subjects", "60", "--out", str(out),
                    "--format", "parquet", "--aes-per-subject", "10"], check=True, capture_output=True)
    dm = pd.read_parquet(out / "dm.parquet")
    lb = pd.read_parquet(out / "lb.parquet")
    assert len(dm) == 60
    assert len(lb) > 60 * 300  # ~24 visits x ~20 tests per subject
    assert (out / "study.yaml").exists()


# --------------------------------------------------------------------------------------------------
# study.yaml
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("folder", [CART, ITNK], ids=["car_t", "car_itnk"])
def test_study_yaml_validates(folder):
    from safety.core.config import load_study_config

    cfg = load_study_config(folder)
    assert cfg["data_cuts"] == ["2026-03-31", "2026-09-30"]
    assert {lim["test"] for lim in cfg["eligibility"]["labs"]} == {"ALT", "AST", "BILI", "CREAT"}
    assert {lim["test"] for lim in cfg["eligibility"]["vitals"]} == {"OXYSAT", "LVEF", "ECOG"}
    # the B-ALL study enrols children (CAPD-graded ICANS below 13)
    assert cfg["eligibility"]["age"] == {"min": 3 if folder == ITNK else 18, "max": 70}


def test_stopping_rules_differ_between_studies():
    from safety.core.config import load_study_config

    a, b = load_study_config(CART), load_study_config(ITNK)
    assert (a["product_type"], a["stopping_rule"]["method"], a["stopping_rule"]["threshold"]) == ("CAR-T", "boin", 0.3)
    assert (b["product_type"], b["stopping_rule"]["method"], b["stopping_rule"]["event"], b["stopping_rule"]["threshold"]) == \
        ("CAR-ITNK", "bayesian_beta_binomial", "crs_icans_grade3", 0.25)


# --------------------------------------------------------------------------------------------------
# Delivery shape
# --------------------------------------------------------------------------------------------------
def test_delivery_formats():
    names = {p.name for p in CART.iterdir()}
    assert {"dm.xpt", "ae.xpt", "ex.xpt", "lbch.xpt", "lbhe.xpt", "vs.xpt", "cm.xpt", "rs.xpt", "ds.xpt",
            "suppdm.xpt", "suppae.xpt", "crs_assessments.parquet", "icans_assessments.csv", "study.yaml"} <= names
    assert not any(n.startswith("lb.") for n in names)
    names = {p.name for p in ITNK.iterdir()}
    assert {"dm.csv", "ae.csv", "ex.csv", "lb.csv", "vs.csv", "cm.csv", "rs.csv", "ds.csv", "suppdm.csv",
            "crs_assessments.csv", "icans_assessments.csv", "study.yaml"} <= names
    for p in CART.glob("*.xpt"):  # SAS v5 transport: names of at most 8 characters
        import pyreadstat
        _, meta = pyreadstat.read_xport(str(p), metadataonly=True)
        assert max(len(c) for c in meta.column_names) <= 8, p.name


def test_study_sizes_sites_and_dose_levels():
    dm1, dm2 = read(CART, "dm"), read(ITNK, "dm")
    assert len(dm1) == 23 and set(dm1["SITEID"]) == {"01"}  # 030 enrolled, never infused
    assert len(dm2) == 31 and set(dm2["SITEID"]) == {"01", "02", "03"}
    supp = read(CART, "suppdm")
    assert set(supp["QNAM"]) == {"COHORT", "DOSELVL", "DIAGNOSIS"}
    assert set(supp.loc[supp["QNAM"] == "DOSELVL", "QVAL"]) == {"DL1", "DL2", "DL3"}
    ages = pd.to_numeric(dm1["AGE"])
    assert ages.between(18, 70).all()
    lb_days = read(CART, "lb")
    assert lb_days["LBSEQ"].astype(float).groupby(lb_days["USUBJID"]).apply(lambda s: s.is_unique).all()


def test_infusion_dates_give_two_different_cuts():
    for folder in (CART, ITNK):
        ex = read(folder, "ex")
        inf = pd.to_datetime(ex.loc[ex["EXCAT"] == "CELL THERAPY", "EXSTDTC"].str[:10])
        assert (inf <= "2026-03-31").sum() >= 15
        assert (inf > "2026-03-31").sum() >= 2  # new subjects only in the second cut
        ae = read(folder, "ae")
        st = ae["AESTDTC"].str[:10]
        assert ((st > "2026-03-31") & (st <= "2026-09-30")).sum() >= 10


# --------------------------------------------------------------------------------------------------
# Planted findings in the raw files
# --------------------------------------------------------------------------------------------------
def test_crs_ae_grades_match_bedside_grades_except_planted_discrepancies():
    mismatches, ae_only = [], []
    for folder, key in ((CART, "car_t_cd56"), (ITNK, "car_itnk")):
        ae = read(folder, "ae")
        for usub, grp in ae[ae["AEDECOD"] == CRS].groupby("USUBJID"):
            by_day = crs_grades_by_day(folder, usub)
            inf = infusion(folder, usub)
            if not by_day:   # CRS known only from the reported AE
                ae_only.append((key, usub.rsplit("-", 1)[1], int(grp["AETOXGR"].astype(int).max())))
                continue
            for r in grp.itertuples():
                s, e = day_of(r.AESTDTC, inf), day_of(r.AEENDTC or r.AESTDTC, inf)
                derived = max(g for d, g in by_day.items() if s <= d <= e)
                if derived != int(r.AETOXGR):
                    mismatches.append((key, usub.rsplit("-", 1)[1], int(r.AETOXGR), derived))
    # 025 died of CRS (grade 5 is death, bedside maximum grade 4)
    assert sorted(mismatches) == [("car_itnk", "008", 1, 3), ("car_itnk", "025", 5, 4), ("car_t_cd56", "006", 1, 3)]
    assert ae_only == [("car_itnk", "020", 4)]


def test_icans_ae_grades_match_bedside_grades_except_planted():
    mismatches = []
    for folder, key in ((CART, "car_t_cd56"), (ITNK, "car_itnk")):
        ae = read(folder, "ae")
        for usub, grp in ae[ae["AEDECOD"] == ICANS].groupby("USUBJID"):
            by_day = icans_grades_by_day(folder, usub)
            inf = infusion(folder, usub)
            for r in grp.itertuples():
                s, e = day_of(r.AESTDTC, inf), day_of(r.AEENDTC or r.AESTDTC, inf)
                derived = max(g for d, g in by_day.items() if s <= d <= e)
                if derived != int(r.AETOXGR):
                    mismatches.append((key, usub.rsplit("-", 1)[1], int(r.AETOXGR), derived))
    # 018 under-reported; 012 died of ICANS (grade 5 is death, bedside maximum grade 4)
    assert sorted(mismatches) == [("car_t_cd56", "012", 5, 4), ("car_t_cd56", "018", 1, 2)]


def test_crs_is_common_after_car_t_and_rarer_after_car_itnk():
    rates = []
    for folder in (CART, ITNK):
        dm, ae = read(folder, "dm"), read(folder, "ae")
        infused = (dm["RFXSTDTC"] != "").sum()
        rates.append(ae.loc[ae["AEDECOD"] == CRS, "USUBJID"].nunique() / infused)
    assert rates[0] >= 0.7 and rates[1] <= 0.5


def test_grade4_crs_dlt_subject():
    u = usubjid("CD56-CART-01", "005", CART)
    crs = aes(CART, u, CRS)
    assert len(crs) == 1 and crs["AETOXGR"].iloc[0] == "4"
    assert day_of(crs["AESTDTC"].iloc[0], infusion(CART, u)) == 2
    g = crs_grades_by_day(CART, u)
    assert g[4] == 4 and g[5] == 4
    cm = read(CART, "cm")
    meds = set(cm.loc[cm["USUBJID"] == u, "CMDECOD"])
    assert {"TOCILIZUMAB", "DEXAMETHASONE", "ANAKINRA", "NOREPINEPHRINE"} <= meds


def test_grade3_crs_durations_straddle_72_hours():
    def hours_at_grade3(subjid):
        u = usubjid("CD56-CART-01", subjid, CART)
        a = read(CART, "crs_assessments")
        a = a[a["USUBJID"] == u].sort_values("CRSDTC")
        g = crs_grades_by_day(CART, u)
        inf = infusion(CART, u)
        days = [d for d in sorted(g) if g[d] == 3]
        first = pd.Timestamp(a["CRSDTC"][[day_of(x, inf) == days[0] for x in a["CRSDTC"]]].iloc[0])
        after = pd.Timestamp(a["CRSDTC"][[day_of(x, inf) == days[-1] + 1 for x in a["CRSDTC"]]].iloc[0])
        return (after - first).total_seconds() / 3600
    assert hours_at_grade3("011") == 120  # DLT R3
    assert hours_at_grade3("013") == 72   # exactly 72 h: not "more than 72"


def test_late_grade4_crs_outside_dlt_window():
    u = usubjid("CD56-CART-01", "016", CART)
    crs = aes(CART, u, CRS).sort_values("AESTDTC")
    assert list(crs["AETOXGR"]) == ["1", "4"]
    assert day_of(crs["AESTDTC"].iloc[1], infusion(CART, u)) == 30


def test_treatment_related_death_in_window():
    u = usubjid("CD56-CART-01", "012", CART)
    dm = read(CART, "dm")
    row = dm[dm["USUBJID"] == u].iloc[0]
    assert row["DTHFL"] == "Y" and day_of(row["DTHDTC"], row["RFXSTDTC"]) == 9
    icans = aes(CART, u, ICANS).iloc[0]
    assert (icans["AETOXGR"], icans["AEOUT"], icans["AESDTH"], icans["AEREL"]) == ("5", "FATAL", "Y", "RELATED")
    ds = read(CART, "ds")
    assert list(ds.loc[ds["USUBJID"] == u, "DSDECOD"]) == ["DEATH"]
    # every other death is from progression, but the invasive fungal infection death of 021 on day 84 (outside the window)
    fungal = usubjid("CD56-CART-01", "021", CART)
    other = ds[(ds["DSDECOD"] == "DEATH") & (ds["USUBJID"] != u) & (ds["USUBJID"] != fungal)]
    assert len(other) >= 1 and set(other["DSTERM"]) == {"Disease progression"}


def test_related_grade3_ae_durations_straddle_seven_days():
    def duration(subjid, term):
        u = usubjid("CD56-CART-01", subjid, CART)
        r = aes(CART, u, term).iloc[0]
        return (pd.Timestamp(r["AEENDTC"]) - pd.Timestamp(r["AESTDTC"])).days + 1, r["AETOXGR"], r["AEREL"]
    assert duration("007", "Alanine aminotransferase increased") == (10, "3", "POSSIBLY RELATED")
    assert duration("008", "Aspartate aminotransferase increased") == (7, "3", "PROBABLY RELATED")
    assert duration("003", "Lung infection") == (13, "3", "UNLIKELY RELATED")
    # the labs tell the same story: ALT > 5 x ULN on days 8-17 only
    alt = lab(CART, usubjid("CD56-CART-01", "007", CART), "ALT")
    g3 = alt[alt["value"] > 5 * alt["LBSTNRHI"].astype(float)]
    assert sorted(g3["day"]) == list(range(8, 18))


def test_prolonged_cytopenias_on_day_28():
    anc = lab(CART, usubjid("CD56-CART-01", "009", CART), "NEUT")
    assert anc.loc[anc["day"] == 28, "value"].tolist() == [0.3]
    censored = anc[anc["LBSTRESC"] == "<0.1"]
    assert len(censored) >= 2 and censored["value"].isna().all() and {8, 10} <= set(censored["day"])
    plt = lab(CART, usubjid("CD56-CART-01", "014", CART), "PLAT")
    assert plt.loc[plt["day"] == 28, "value"].tolist() == [18.0]
    # nobody else is still grade 4 at day 28 (no accidental R7)
    lb = read(CART, "lb")
    dm = read(CART, "dm")
    inf = dict(zip(dm["USUBJID"], dm["RFXSTDTC"]))
    lb = lb[lb["LBTESTCD"].isin(["NEUT", "PLAT"])].copy()
    lb["day"] = [day_of(d, inf[u]) for d, u in zip(lb["LBDTC"], lb["USUBJID"])]
    d28 = lb[lb["day"] == 28]
    v = pd.to_numeric(d28["LBSTRESN"], errors="coerce")
    low = d28[((d28["LBTESTCD"] == "NEUT") & (v < 0.5)) | ((d28["LBTESTCD"] == "PLAT") & (v < 25))]
    assert sorted(low["USUBJID"].str[-3:]) == ["009", "014"]


def test_biphasic_late_neutropenia():
    anc = lab(CART, usubjid("CD56-CART-01", "010", CART), "NEUT")
    assert anc.loc[anc["day"] == 14, "value"].iloc[0] > 1.5
    late = anc.set_index("VISIT")["value"]
    assert (late["MONTH 2"], late["MONTH 3"]) == (0.6, 0.8)
    assert anc.loc[anc["day"].between(31, 100), "value"].min() == 0.6


def test_iec_hs_pattern():
    u = usubjid("CD56-CART-01", "019", CART)
    fer = lab(CART, u, "FERRITIN").set_index("day")["value"]
    fib = lab(CART, u, "FIBRINO").set_index("day")["value"]
    crs = crs_grades_by_day(CART, u)
    last_crs_day = max(d for d, g in crs.items() if g > 0)
    assert last_crs_day <= 6
    assert fer.loc[8:14].max() > 40000 and fer.loc[8:14].max() > 10 * fer.loc[0:5].max() / 2
    assert fib.loc[8:14].min() < 1.5
    assert aes(CART, u, "Hemophagocytic lymphohistiocytosis")["AETOXGR"].tolist() == ["3"]


def test_inflammation_markers_rise_with_crs():
    u = usubjid("CD56-CART-01", "005", CART)
    crp = lab(CART, u, "CRP").set_index("day")["value"]
    il6 = lab(CART, u, "IL6").set_index("day")["value"]
    assert crp.loc[4:6].max() > 10 * crp.loc[0]
    assert il6.loc[4:6].max() > 20 * il6.loc[0]


def test_eligibility_deviations():
    bili = lab(CART, usubjid("CD56-CART-01", "002", CART), "BILI")
    scr = bili[bili["VISIT"] == "SCREENING"]
    assert scr["value"].tolist() == [40.0]
    vs = read(CART, "vs")
    ecog = vs[(vs["VSTESTCD"] == "ECOG") & (vs["VISIT"] == "SCREENING")]
    ecog_v = pd.to_numeric(ecog["VSSTRESN"])
    assert sorted(ecog.loc[ecog_v > 2, "USUBJID"].str[-3:]) == ["017"]
    alt = lab(ITNK, usubjid("ITNK-B-01", "006", ITNK), "ALT")
    scr = alt[alt["VISIT"] == "SCREENING"].iloc[0]
    assert scr["value"] / float(scr["LBSTNRHI"]) == pytest.approx(3.5)
    # screening baseline measures exist for every subject
    for folder in (CART, ITNK):
        vs = read(folder, "vs")
        scr = vs[vs["VISIT"] == "SCREENING"]
        for t in ("ECOG", "LVEF", "OXYSAT"):
            assert scr.loc[scr["VSTESTCD"] == t, "USUBJID"].nunique() == len(read(folder, "dm"))


def test_itnk_planted_findings():
    u = usubjid("ITNK-B-01", "008", ITNK)
    assert u.startswith("ITNK-B-01-02-")
    assert aes(ITNK, u, CRS)["AETOXGR"].astype(int).tolist() == [1]
    a = read(ITNK, "crs_assessments")
    a = a[a["USUBJID"] == u]
    assert (pd.to_numeric(a["VASOPRESSORS"]) >= 1).sum() == 1
    # progression death inside the window
    u = usubjid("ITNK-B-01", "015", ITNK)
    prog = aes(ITNK, u, "Disease progression").iloc[0]
    assert (prog["AETOXGR"], prog["AEREL"], prog["AEOUT"]) == ("5", "NOT RELATED", "FATAL")
    assert day_of(prog["AEENDTC"], infusion(ITNK, u)) == 21
    # not infused
    u = usubjid("ITNK-B-01", "031", ITNK)
    assert (read(ITNK, "ex")["USUBJID"] == u).sum() == 0
    assert read(ITNK, "dm").set_index("USUBJID").loc[u, "RFXSTDTC"] == ""
    # conventional units only
    lb = read(ITNK, "lb")
    conv = lb[(lb["USUBJID"] == usubjid("ITNK-B-01", "019", ITNK)) & lb["LBORRESU"].isin(["mg/dL", "g/dL"])]
    assert len(conv) == 4 and (conv["LBSTRESN"] == "").all() and set(conv["VISIT"]) == {"DAY 21", "DAY 28"}
    # urine glucose
    urine = lb[lb["LBSPEC"] == "URINE"]
    assert urine[["LBTESTCD", "LBSTRESN"]].values.tolist() == [["GLUC", "0.3"]]
    # lymphodepletion delivered in CM for this study
    cm = read(ITNK, "cm")
    assert set(cm.loc[cm["CMCAT"] == "LYMPHODEPLETION", "CMDECOD"]) == {"FLUDARABINE", "CYCLOPHOSPHAMIDE"}


def test_partial_dates_and_severity_only():
    ae = read(CART, "ae")
    partial = ae[ae["AESTDTC"].str.len() == 7]
    assert partial["USUBJID"].str[-3:].tolist() == ["004"]
    sev = ae[ae["AETOXGR"] == ""]
    assert sev[["AEDECOD", "AESEV"]].values.tolist() == [["Headache", "MILD"]]
    ae2 = read(ITNK, "ae")
    assert ae2.loc[ae2["AESTDTC"].str.len() == 7, "USUBJID"].str[-3:].tolist() == ["010"]


def test_every_lab_term_reaches_a_spread_of_grades():
    """Across the two studies, each CTCAE lab term reaches every grade the targets define (simple CTCAE checks)."""
    lb = pd.concat([read(CART, "lb"), read(ITNK, "lb")], ignore_index=True)
    lb = lb[lb["LBSPEC"] != "URINE"]
    v = pd.to_numeric(lb["LBSTRESN"], errors="coerce")
    uln = pd.to_numeric(lb["LBSTNRHI"], errors="coerce")
    lln = pd.to_numeric(lb["LBSTNRLO"], errors="coerce")
    t = lb["LBTESTCD"]

    def grades(mask, thresholds, high=True, rel=None):
        x = v[mask] / (rel[mask] if rel is not None else 1)
        out = set()
        for g, thr in thresholds.items():
            hit = (x > thr) if high else (x < thr)
            if hit.any():
                out.add(g)
        return out

    assert grades(t == "ALT", {1: 1, 2: 3, 3: 5, 4: 20}, rel=uln) == {1, 2, 3, 4}
    assert grades(t == "AST", {1: 1, 2: 3, 3: 5, 4: 20}, rel=uln) == {1, 2, 3, 4}
    assert grades(t == "BILI", {1: 1, 2: 1.5, 3: 3, 4: 10}, rel=uln) == {1, 2, 3, 4}
    assert grades(t == "CREAT", {1: 1, 2: 1.5, 3: 3, 4: 6}, rel=uln) == {1, 2, 3, 4}
    assert grades(t == "NEUT", {2: 1.5, 3: 1.0, 4: 0.5}, high=False) == {2, 3, 4}
    assert grades(t == "PLAT", {2: 75, 3: 50, 4: 25}, high=False) == {2, 3, 4}
    assert grades(t == "SODIUM", {3: 129.5, 4: 120}, high=False) == {3, 4}
    assert grades(t == "K", {3: 3.0, 4: 2.5}, high=False) == {3, 4}
    assert grades(t == "CA", {2: 2.0, 3: 1.75, 4: 1.5}, high=False) == {2, 3, 4}
    assert grades(t == "MG", {2: 0.5, 3: 0.4, 4: 0.3}, high=False) == {2, 3, 4}
    assert grades(t == "GLUC", {2: 3.0, 3: 2.2, 4: 1.7}, high=False) == {2, 3, 4}
    assert grades(t == "ALB", {2: 30, 3: 20}, high=False) == {2, 3}
    assert grades(t == "FIBRINO", {4: 0.5}, high=False) == {4}
    assert grades(t == "HGB", {2: 100, 3: 80}, high=False) == {2, 3}
    assert grades(t == "URATE", {3: 1}, rel=uln) == {3}


def test_baseline_flag_is_last_pre_infusion_record():
    lb = read(CART, "lb")
    u = usubjid("CD56-CART-01", "005", CART)
    bl = lb[(lb["USUBJID"] == u) & (lb["LBBLFL"] == "Y")]
    assert bl["LBTESTCD"].is_unique
    neut = bl[bl["LBTESTCD"] == "NEUT"].iloc[0]
    assert neut["LBDTC"].endswith("T07:30") and neut["LBDTC"][:10] == infusion(CART, u)[:10]
    assert bl.loc[bl["LBTESTCD"] == "IGG", "VISIT"].tolist() == ["SCREENING"]


def test_planted_list_names_real_subjects():
    for key, subjid, *_ in gen.PLANTED:
        folder = SAMPLE / key
        assert subjid in set(read(folder, "dm")["SUBJID"].astype(str)), (key, subjid)


# --------------------------------------------------------------------------------------------------
# After ingest (runs once safety.ingest.ingest_study exists)
# --------------------------------------------------------------------------------------------------
def _ingest():
    try:
        mod = importlib.import_module("safety.ingest")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("safety.ingest"):
            pytest.skip("safety.ingest not written yet")
        raise
    if not hasattr(mod, "ingest_study"):
        pytest.skip("safety.ingest.ingest_study not written yet")
    return mod.ingest_study


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    ingest_study = _ingest()
    db = tmp_path_factory.mktemp("ingest") / "sample.duckdb"
    for folder in (CART, ITNK):
        for cut in ("2026-03-31", "2026-09-30"):
            ingest_study(folder, db, cutoff=cut)
    import duckdb
    con = duckdb.connect(str(db), read_only=True)
    yield con
    con.close()


def q(con, sql, **params):
    return con.sql(sql, params=params).to_arrow_table().to_pandas()


def _cut(con, studyid):
    return q(con, "SELECT max(data_cut) AS c FROM subjects WHERE studyid = $s", s=studyid)["c"].iloc[0]


def test_ingest_keeps_the_grade4_crs_on_its_day(loaded):
    df = q(loaded, """SELECT aetoxgr, onset_day, data_cut FROM adverse_events
                      WHERE usubjid = 'CD56-CART-01-01-005' AND aedecod = $t ORDER BY data_cut""", t=CRS)
    assert df[["aetoxgr", "onset_day"]].values.tolist() == [[4, 2], [4, 2]]
    assert [str(x)[:10] for x in df["data_cut"]] == ["2026-03-31", "2026-09-30"]


def test_ingest_keeps_discrepancy_and_severity_only(loaded):
    df = q(loaded, """SELECT aetoxgr FROM adverse_events WHERE usubjid = 'CD56-CART-01-01-006' AND aedecod = $t
                      AND data_cut = DATE '2026-09-30'""", t=CRS)
    assert df["aetoxgr"].tolist() == [1]
    a = q(loaded, """SELECT day, vasopressors FROM crs_assessments WHERE usubjid = 'CD56-CART-01-01-006'
                     AND data_cut = DATE '2026-09-30' AND vasopressors >= 1""")
    assert a.values.tolist() == [[3, 1]]
    sev = q(loaded, """SELECT aetoxgr, aesev FROM adverse_events WHERE usubjid = 'CD56-CART-01-01-020'
                       AND aedecod = 'Headache' AND data_cut = DATE '2026-09-30'""")
    assert sev["aetoxgr"].isna().all() and sev["aesev"].tolist() == ["MILD"]


def test_ingest_first_cut_hides_later_subjects(loaded):
    n = q(loaded, """SELECT data_cut, count(*) AS n FROM subjects WHERE studyid = 'CD56-CART-01'
                     AND infused GROUP BY data_cut ORDER BY data_cut""")
    assert n["n"].tolist() == [20, 22]


def test_ingest_death_prolonged_cytopenia_and_partial_date(loaded):
    d = q(loaded, """SELECT death_day FROM subjects WHERE usubjid = 'CD56-CART-01-01-012'
                     AND data_cut = DATE '2026-09-30'""")
    assert d["death_day"].tolist() == [9]
    anc = q(loaded, """SELECT value FROM labs WHERE usubjid = 'CD56-CART-01-01-009' AND lbtestcd = 'NEUT' AND day = 28
                       AND data_cut = DATE '2026-09-30'""")
    assert anc["value"].tolist() == [0.3]
    cens = q(loaded, """SELECT count(*) AS n FROM labs WHERE usubjid = 'CD56-CART-01-01-009' AND lbtestcd = 'NEUT'
                        AND censored = '<' AND data_cut = DATE '2026-09-30'""")
    assert cens["n"].iloc[0] >= 2
    p = q(loaded, """SELECT aestdtc, aest_date_flag, onset_day FROM adverse_events WHERE usubjid = 'CD56-CART-01-01-004'
                     AND aedecod = 'Fatigue' AND length(aestdtc) = 7 AND data_cut = DATE '2026-09-30'""")
    assert len(p) == 1 and p["aest_date_flag"].iloc[0] == "D"
    assert p["onset_day"].iloc[0] >= 0  # an AE in the infusion month is not imputed before the infusion


def test_ingest_converts_conventional_units(loaded):
    df = q(loaded, """SELECT lbtestcd, value, unit FROM labs WHERE usubjid = 'ITNK-B-01-02-019'
                      AND lborresu IN ('mg/dL', 'g/dL') AND data_cut = DATE '2026-09-30'""")
    if df.empty:  # the site letter of 019 is drawn; find it
        df = q(loaded, """SELECT lbtestcd, value, unit FROM labs WHERE usubjid LIKE 'ITNK-B-01-%-019'
                          AND lborresu IN ('mg/dL', 'g/dL') AND data_cut = DATE '2026-09-30'""")
    assert len(df) == 4 and df["value"].notna().all()
    assert set(df.loc[df["lbtestcd"] == "HGB", "unit"]) == {"g/L"}


def _table_or_skip(con, name):
    names = set(q(con, "SELECT table_name FROM information_schema.tables")["table_name"])
    if name not in names:
        pytest.skip(f"derived table {name} not built by the ingest yet")


def test_derived_crs_grades_show_the_discrepancy(loaded):
    _table_or_skip(loaded, "grade_discrepancies")
    df = q(loaded, "SELECT * FROM grade_discrepancies WHERE data_cut = DATE '2026-09-30'")
    subjects = set(df["usubjid"])
    assert {"CD56-CART-01-01-006", "CD56-CART-01-01-018"} <= subjects
    assert any(u.startswith("ITNK-B-01-02-008") for u in subjects)


def test_derived_dlt_candidates_match_the_plan(loaded):
    _table_or_skip(loaded, "dlt_candidates")
    df = q(loaded, "SELECT * FROM dlt_candidates WHERE studyid = 'CD56-CART-01' AND data_cut = DATE '2026-09-30'")
    rule_col = next(c for c in ("rule_id", "rule", "dlt_rule") if c in df.columns)
    in_window = df["in_window"].astype(bool) if "in_window" in df.columns else pd.Series(True, index=df.index)
    got = {(u[-3:], r) for u, r in zip(df.loc[in_window, "usubjid"], df.loc[in_window, rule_col])}
    expected = {("005", "R2"), ("011", "R3"), ("012", "R1"), ("007", "R6"), ("019", "R6"),
                ("009", "R7"), ("014", "R7"), ("021", "R9")}
    assert got == expected
    # 012's fatal ICANS AE (R1) and its ICANS episode (R4) are one event: one candidate, keyed by the episode
    ican = df[df["usubjid"].str.endswith("012")]
    assert ican[["event_key", "rule_id", "also_matches"]].values.tolist() == [["CD56-CART-01-01-012/ICANS/1", "R1", "R4"]]
    # the near-misses stay out: grade-3 CRS of exactly 72 h, related grade 3 of exactly 7 days, unrelated infection,
    # and the grade-4 CRS on day 30 is listed only as outside the window
    if "in_window" in df.columns:
        late = df[(df["usubjid"] == "CD56-CART-01-01-016") & (df[rule_col] == "R2")]
        assert late["in_window"].astype(bool).tolist() == [False] and late["onset_day"].tolist() == [30]


def test_derived_itnk_has_no_dlt_from_progression_death(loaded):
    _table_or_skip(loaded, "dlt_candidates")
    df = q(loaded, """SELECT * FROM dlt_candidates WHERE studyid = 'ITNK-B-01' AND data_cut = DATE '2026-09-30'
                      AND usubjid LIKE '%-015'""")
    assert "R1" not in set(df["rule_id"])


def test_short_grade4_aki_is_planted_related_with_its_creatinine_rise():
    u = usubjid("CD56-CART-01", "021", CART)
    r = aes(CART, u, "Acute kidney injury").iloc[0]
    assert (r["AETOXGR"], r["AEREL"]) == ("4", "PROBABLY RELATED")
    assert (pd.Timestamp(r["AEENDTC"]) - pd.Timestamp(r["AESTDTC"])).days + 1 == 3   # too short for R6 (> 7 days)
    creat = lab(CART, u, "CREAT")
    high = creat[creat["value"] > 6 * creat["LBSTNRHI"].astype(float)]            # CTCAE v5 grade 4: > 6 x ULN
    assert sorted(high["day"]) == [6, 7, 8]


def test_derived_short_grade4_aki_is_an_r9_candidate(loaded):
    _table_or_skip(loaded, "dlt_candidates")
    df = q(loaded, """SELECT rule_id, grade, duration_days, in_window FROM dlt_candidates
                      WHERE usubjid = 'CD56-CART-01-01-021' AND data_cut = DATE '2026-09-30'""")
    # (021 later dies of invasive aspergillosis, a fatal AE outside the DLT window: R1, not in window)
    assert sorted(df.values.tolist()) == [["R1", 5, 15, False], ["R9", 4, 3, True]]


def test_derived_pending_candidates_change_the_dl3_decision(loaded):
    # right after the load, before any adjudication: BOIN (Liu & Yuan 2015, target 0.30) escalates on 0 of 5
    # adjudicated, but the pending candidates of 011, 012 and 014 would make 3 of 6: de-escalate
    _table_or_skip(loaded, "stopping_rule_status")
    df = q(loaded, """SELECT * FROM stopping_rule_status WHERE studyid = 'CD56-CART-01'
                      AND data_cut = DATE '2026-09-30' AND cohort = 'DL3'""")
    r = df.iloc[0]
    assert (r["decision"], r["decision_if_pending_confirmed"], bool(r["pending_changes_decision"])) == \
        ("escalate", "de-escalate", True)
    assert (r["events_if_pending_confirmed"], r["evaluable_n_if_pending_confirmed"]) == (3, 6)
    assert "would change escalate to de-escalate" in r["sentence"]


# --------------------------------------------------------------------------------------------------
# CRS/ICANS/IEC-HS/ICAHT cases of the consensus definitions (planted rows in sample_data/README.md)
# --------------------------------------------------------------------------------------------------
def test_planted_child_icans_is_graded_with_capd(loaded):
    g = q(loaded, """SELECT day, grade, cognitive_tool, ice_score, capd_score FROM icans_grades
                     WHERE usubjid = 'ITNK-B-01-02-002' AND data_cut = DATE '2026-09-30' AND day BETWEEN 5 AND 8
                     ORDER BY day""")
    assert g["grade"].tolist() == [1, 2, 2, 1] and set(g["cognitive_tool"]) == {"CAPD"}
    assert g["ice_score"].isna().all() and g["capd_score"].tolist() == [4, 6, 6, 4]


def test_planted_ae_only_crs_grade4_and_crs_death(loaded):
    e = q(loaded, """SELECT usubjid, max_grade, assessed_max_grade, source, grade5_basis, resolution_status
                     FROM toxicity_episodes WHERE syndrome = 'CRS' AND data_cut = DATE '2026-09-30'
                     AND usubjid IN ('ITNK-B-01-03-020', 'ITNK-B-01-02-025') ORDER BY usubjid""")
    assert e[["usubjid", "max_grade", "source"]].values.tolist() == [
        ["ITNK-B-01-02-025", 5, "assessments"], ["ITNK-B-01-03-020", 4, "reported AE"]]
    assert e["assessed_max_grade"].tolist()[0] == 4 and "Cytokine release syndrome" in e["grade5_basis"].iloc[0]
    assert e["resolution_status"].iloc[0] == "death"
    # the reported grade 5 agrees with the derived grade 5: no discrepancy
    d = q(loaded, """SELECT * FROM grade_discrepancies WHERE usubjid = 'ITNK-B-01-02-025' AND syndrome = 'CRS'
                     AND data_cut = DATE '2026-09-30'""")
    assert d.empty


def test_planted_sedated_days_are_not_graded(loaded):
    g = q(loaded, """SELECT day, grade, not_gradable_sedated, grade_reason FROM icans_grades
                     WHERE usubjid = 'ITNK-B-01-02-025' AND data_cut = DATE '2026-09-30' AND day BETWEEN 7 AND 10""")
    assert len(g) == 4 and g["grade"].isna().all() and g["not_gradable_sedated"].all()
    assert g["grade_reason"].str.contains("sedated or intubated for reasons other than ICANS").all()
    assert q(loaded, """SELECT count(*) AS n FROM toxicity_episodes WHERE usubjid = 'ITNK-B-01-02-025'
                        AND syndrome = 'ICANS'""")["n"].iloc[0] == 0


def test_planted_iec_hs_without_baseline_ferritin(loaded):
    f = q(loaded, """SELECT usubjid, flag_day, ferritin_at_infusion, ferritin_criterion, criteria_met, crs_phase, grade
                     FROM iec_hs_screen WHERE first_flag AND data_cut = DATE '2026-09-30' ORDER BY usubjid""")
    assert f["usubjid"].tolist() == ["CD56-CART-01-01-019", "ITNK-B-01-03-018"]
    r = f.iloc[1]
    assert pd.isna(r["ferritin_at_infusion"]) and r["ferritin_criterion"] == "ferritin > 2 x ULN"
    assert "fibrinogen < 1.5 g/L" in r["criteria_met"] and r["crs_phase"] == "after CRS" and r["grade"] == 2


def test_planted_prolonged_early_icaht_grade4(loaded):
    r = q(loaded, """SELECT early_grade, never_recovered, early_evaluability, early_grade_reason FROM icaht
                     WHERE usubjid = 'CD56-CART-01-01-009' AND lineage = 'ANC' AND data_cut = DATE '2026-09-30'""")
    assert r["early_grade"].tolist() == [4] and bool(r["never_recovered"].iloc[0])
    assert r["early_evaluability"].iloc[0] == "fully evaluable"
    assert r["early_grade_reason"].iloc[0].endswith("with no recovery by day 30")


def test_ingest_sponsor_pp_and_medical_history_planted(loaded):
    cut = _cut(loaded, "ITNK-B-01")
    k = q(loaded, """SELECT usubjid, pptestcd, status FROM kinetics_comparison
                     WHERE studyid = 'ITNK-B-01' AND data_cut = $c""", c=cut)
    differs = k[k["status"] == "differs"]
    assert sorted(differs[["usubjid", "pptestcd"]].itertuples(index=False, name=None)) == [
        ("ITNK-B-01-02-009", "AUCINT"), ("ITNK-B-01-02-009", "CMAX")]
    assert set(k["status"]) == {"agree", "differs"}
    hours = q(loaded, """SELECT unit, count(*) AS n FROM pk_parameters WHERE studyid = 'ITNK-B-01' AND data_cut = $c
                         AND pptestcd = 'TMAX' AND usubjid = 'ITNK-B-01-03-011' GROUP BY unit""", c=cut)
    assert hours.values.tolist() == [["h", 1]]
    assert k[(k["usubjid"] == "ITNK-B-01-03-011") & (k["pptestcd"] == "TMAX")]["status"].tolist() == ["agree"]
    quar = q(loaded, """SELECT usubjid, reason FROM quarantine WHERE studyid = 'ITNK-B-01' AND data_cut = $c
                        AND source_file = 'pp.csv'""", c=cut)
    assert quar["usubjid"].tolist() == ["ITNK-B-01-01-013"] and quar["reason"].iloc[0].startswith("implausible PPSTRESN")
    new = q(loaded, """SELECT usubjid, term, source, latency_days, latency_months FROM secondary_malignancies
                       WHERE studyid = 'ITNK-B-01' AND data_cut = $c AND source = 'MH'""", c=cut)
    assert new.values.tolist() == [["ITNK-B-01-03-016", "Squamous cell carcinoma of skin", "MH", 250, 8.2]]
    prior = q(loaded, """SELECT usubjid, term FROM prior_malignancies WHERE studyid = 'ITNK-B-01' AND data_cut = $c""",
              c=cut)
    assert prior.values.tolist() == [["ITNK-B-01-02-009", "Basal cell carcinoma"]]
    # at the first cut the month-9 history is not yet told
    assert q(loaded, """SELECT count(*) AS n FROM secondary_malignancies WHERE studyid = 'ITNK-B-01'
                        AND data_cut = DATE '2026-03-31' AND source = 'MH'""")["n"].iloc[0] == 0
