"""Benchmark the CRS/ICANS/ICAHT derivations at program scale.

10,000 infused subjects, 15 CRS and 15 ICANS assessments each (150,000 + 150,000), ANC and platelet series of
40 values each (800,000 lab rows) plus CRP/ferritin, medications and reported AEs; times each derivation.

    python benchmarks/bench_toxicity.py [--subjects 10000] [--db /tmp/bench_tox.duckdb]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from safety import schema  # noqa: E402
from safety.derive.toxicity.crs_icans import derive_cell_therapy_toxicities  # noqa: E402
from safety.derive.toxicity.episode_labs import derive_episode_lab_screens  # noqa: E402
from safety.derive.toxicity.icaht import derive_icaht  # noqa: E402

STUDY, CUT, DAY0 = "BENCH", dt.date(2026, 1, 1), dt.date(2025, 1, 1)


def build(con, n: int, seed: int = 7) -> dict:
    rng = np.random.default_rng(seed)
    for t in schema.SOURCE_TABLES:
        con.execute(t.ddl())
    ids = np.array([f"B-{i:05d}" for i in range(n)])
    subjects = pd.DataFrame({"studyid": STUDY, "data_cut": CUT, "usubjid": ids, "siteid": "01",
                             "cohort": np.where(np.arange(n) % 2 == 0, "A", "B"), "dose_level": "DL1",
                             "first_infusion_date": DAY0, "infused": True,
                             "death_day": np.where(rng.random(n) < 0.03, rng.integers(5, 60, n), None),
                             "last_known_alive_day": 180, "enrollment_order": np.arange(1, n + 1)})
    # CRS: 15 assessments every 12 h from day 0; onset and severity vary per subject
    k = 15
    sid = np.repeat(ids, k)
    step = np.tile(np.arange(k), n)
    day = step // 2
    onset = np.repeat(rng.integers(0, 6, n), k)
    sev = np.repeat(rng.choice([0, 1, 2, 3, 4], n, p=[0.3, 0.35, 0.2, 0.1, 0.05]), k)
    active = (day >= onset) & (day <= onset + 3) & (sev > 0)
    temp = np.where(active, 38.0 + rng.random(n * k) * 1.5, 36.5 + rng.random(n * k))
    press = np.where(active & (sev >= 3), sev - 2, 0)
    oxygen = np.where(active & (sev == 2), "LOW_FLOW_NC", np.where(active & (sev == 4), "BIPAP", "NONE"))
    t = pd.to_datetime(DAY0) + pd.to_timedelta(step * 12, unit="h")
    crs = pd.DataFrame({"studyid": STUDY, "data_cut": CUT, "usubjid": sid, "assessment_id": np.arange(n * k),
                        "assessment_time": t, "assessment_date": t.date, "day": day, "temp_c": temp,
                        "hypotension": press > 0, "vasopressors": press, "vasopressin": False, "oxygen": oxygen,
                        "o2_flow_lmin": np.where(oxygen == "LOW_FLOW_NC", 3.0, np.nan)})
    ice = np.where(np.repeat(rng.random(n) < 0.25, k) & (day >= onset + 2) & (day <= onset + 4),
                   rng.integers(0, 10, n * k), 10)
    icans = pd.DataFrame({"studyid": STUDY, "data_cut": CUT, "usubjid": sid, "assessment_id": np.arange(n * k),
                          "assessment_time": t, "assessment_date": t.date, "day": day, "ice_score": ice,
                          "consciousness": "AWAKE", "seizure": "NONE", "motor_weakness": "NONE", "cerebral_edema": "NONE"})
    # labs: 40 values per subject and lineage over days -5..100, plus CRP/ferritin daily in week 1
    m = 40
    lsid = np.repeat(ids, m)
    lday = np.tile(np.linspace(-5, 100, m).astype(int), n)
    nadir = np.repeat(rng.integers(3, 30, n), m)
    anc = np.clip(np.where((lday >= 2) & (lday <= nadir), 0.05 + rng.random(n * m) * 0.6, 1.0 + rng.random(n * m) * 3), 0, None)
    plt = np.where((lday >= 2) & (lday <= nadir), 5 + rng.random(n * m) * 60, 80 + rng.random(n * m) * 150)
    w = 8
    bsid = np.repeat(ids, w)
    bday = np.tile(np.arange(-1, w - 1), n)
    labs = pd.concat([
        pd.DataFrame({"usubjid": lsid, "lbtestcd": "NEUT", "day": lday, "value": anc}),
        pd.DataFrame({"usubjid": lsid, "lbtestcd": "PLAT", "day": lday, "value": plt}),
        pd.DataFrame({"usubjid": bsid, "lbtestcd": "CRP", "day": bday, "value": rng.random(n * w) * 200}),
        pd.DataFrame({"usubjid": bsid, "lbtestcd": "FERRITIN", "day": bday, "value": 300 + rng.random(n * w) * 3000}),
    ], ignore_index=True)
    labs.insert(0, "data_cut", CUT)
    labs.insert(0, "studyid", STUDY)
    labs["lbseq"] = np.arange(len(labs))
    tox = rng.random(n) < 0.4
    meds = pd.DataFrame({"studyid": STUDY, "data_cut": CUT, "usubjid": ids[tox], "cmseq": 1, "med_class": "tocilizumab",
                         "start_day": onset[::k][tox] + 1, "end_day": onset[::k][tox] + 1})
    rep = sev[::k] > 0
    aes = pd.DataFrame({"studyid": STUDY, "data_cut": CUT, "usubjid": ids[rep], "aeseq": 1,
                        "event_key": [f"{u}/AE/1" for u in ids[rep]], "aedecod": "Cytokine release syndrome",
                        "aetoxgr": np.clip(sev[::k][rep] + rng.integers(-1, 2, rep.sum()), 1, 4),
                        "grading_system": "ASTCT 2019", "onset_day": onset[::k][rep], "end_day": onset[::k][rep] + 3,
                        "ongoing": False})
    for name, df in [("subjects", subjects), ("crs_assessments", crs), ("icans_assessments", icans), ("labs", labs),
                     ("medications", meds), ("adverse_events", aes)]:
        cols = ", ".join(df.columns)
        con.register("_df", df)
        con.execute(f"INSERT INTO {name} ({cols}) SELECT {cols} FROM _df")
        con.unregister("_df")
    return {"subjects": n, "crs_assessments": len(crs), "icans_assessments": len(icans), "labs": len(labs)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", type=int, default=10_000)
    ap.add_argument("--db", default="/tmp/bench_tox.duckdb")
    args = ap.parse_args()
    if os.path.exists(args.db):
        os.remove(args.db)
    con = duckdb.connect(args.db)
    t0 = time.perf_counter()
    sizes = build(con, args.subjects)
    print(f"built {sizes} in {time.perf_counter() - t0:.1f} s")
    for name, f in [("derive_cell_therapy_toxicities", derive_cell_therapy_toxicities),
                    ("derive_episode_lab_screens", derive_episode_lab_screens), ("derive_icaht", derive_icaht)]:
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            f(con, STUDY, CUT, {})
            times.append(time.perf_counter() - t0)
        print(f"{name}: first {times[0]:.2f} s, rerun {times[1]:.2f} s")
    for t in ("crs_grades", "icans_grades", "toxicity_daily_grades", "toxicity_episodes", "grade_discrepancies",
              "episode_biomarkers", "iec_hs_screen", "icaht"):
        print(f"  {t}: {con.execute(f'SELECT count(*) FROM {t}').fetchone()[0]:,} rows")
    con.close()
    os.remove(args.db)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
