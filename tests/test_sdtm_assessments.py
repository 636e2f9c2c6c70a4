"""CRS and ICANS inputs built from plain SDTM (VS, CM, SUPPCM, PR, QS, FA, CE, AE): every mapping rule with
SDTM-shaped rows, loaded through the real ingest into a real DuckDB file, then graded."""
from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import duckdb
import pytest

from safety.ingest import IngestError, ingest_study

STUDY = "MAP-01"
INF = "2025-03-01"  # day 0; day n is 2025-03-(1 + n)


def d(day: int, time: str | None = None) -> str:
    return (dt.date(2025, 3, 1) + dt.timedelta(days=day)).isoformat() + (f"T{time}" if time else "")


def u(n: str) -> str:
    return f"{STUDY}-{n}"


# subject -> (age, what it exercises)
SUBJECTS = {
    "001": (45, "temperature in F"),
    "002": (50, "vasopressor start/stop across assessments"),
    "004": (52, "oxygen 6 and 6.1 L/min"),
    "005": (61, "device only in SUPPCM; CPAP in PR"),
    "006": (39, "ICE total vs items"),
    "007": (40, "missing ICE items"),
    "008": (8, "child: CAPD and age-specific hypotension"),
    "009": (55, "adult SBP 88"),
    "010": (47, "seizure only as an AE"),
    "011": (66, "consciousness in FA and QS; sedation"),
    "012": (58, "cerebral oedema from CE and FA imaging; a negative CE"),
    "013": (49, "celltox file rows win"),
    "014": (44, "a sponsor code from study.yaml"),
    "015": (57, "the worked example of docs/input-format.md"),
    "016": (48, "brand names (Levophed, Tylenol) and terlipressin, a vasopressin analogue"),
    "017": (46, "two vasopressors one after the other"),
    "018": (53, "two vasopressors overlapping"),
    "019": (59, "two vasopressors with dates only"),
    "020": (51, "ICE filed under QSCAT ICANS"),
    "021": (43, "ICE filed under another questionnaire's category"),
    "022": (56, "temperature and pressure of one round charted minutes apart"),
    "023": (62, "one vasopressor under three names overlapping"),
    "024": (54, "hourly pressures between 4-hourly temperatures, a vasopressor between them"),
    "025": (63, "hourly SpO2 between 4-hourly temperatures, oxygen between them"),
    "026": (41, "ICE items missing that cannot change the grade"),
    "027": (42, "intubated for airway protection in status epilepticus, not for hypoxia"),
}


def _write(folder: Path, name: str, rows: list[dict]) -> None:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with open(folder / f"{name}.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def _seq(rows: list[dict], seq: str, start: dict | None = None) -> list[dict]:
    n: dict[str, int] = dict(start or {})
    for r in rows:
        if seq not in r:
            n[r["USUBJID"]] = n.get(r["USUBJID"], 0) + 1
            r[seq] = n[r["USUBJID"]]
    return rows


def _vs(s, day, time, temp=None, sbp=None, unit="C", spo2=None):
    out = []
    if temp is not None:
        out.append(dict(USUBJID=u(s), VSTESTCD="TEMP", VSORRES=str(temp), VSORRESU=unit, VSDTC=d(day, time)))
    if sbp is not None:
        out.append(dict(USUBJID=u(s), VSTESTCD="SYSBP", VSORRES=str(sbp), VSORRESU="mmHg", VSDTC=d(day, time)))
    if spo2 is not None:
        out.append(dict(USUBJID=u(s), VSTESTCD="OXYSAT", VSORRES=str(spo2), VSORRESU="%", VSDTC=d(day, time)))
    return out


def _qs_total(s, day, time, score, code="ICETOT", cat="ICE", stat=""):
    return dict(USUBJID=u(s), QSCAT=cat, QSTESTCD=code, QSORRES="" if score is None else str(score), QSSTAT=stat,
                QSDTC=d(day, time))


def _qs_items(s, day, time, values, prefix="ICE", cat="ICE"):
    return [dict(USUBJID=u(s), QSCAT=cat, QSTESTCD=f"{prefix}{k:02d}", QSORRES=str(v), QSSTAT="", QSDTC=d(day, time))
            for k, v in enumerate(values, 1) if v is not None]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sdtm_study")
    _write(folder, "dm", [dict(STUDYID=STUDY, USUBJID=u(s), SUBJID=s, SITEID="01", AGE=str(a), SEX="F",
                               RFXSTDTC=f"{INF}T10:00") for s, (a, _) in SUBJECTS.items()])
    _write(folder, "ex", _seq([dict(USUBJID=u(s), EXTRT="CAR-T cells", EXCAT="CELL THERAPY", EXSTDTC=f"{INF}T10:00")
                               for s in SUBJECTS], "EXSEQ"))
    vs = []
    vs += _vs("001", 2, "08:00", 102.2, 120, unit="F") + _vs("001", 3, "08:00", 100.3, 118, unit="F")
    vs += _vs("002", 2, "08:00", 38.5, 85) + _vs("002", 2, "20:00", 38.6, 92) + _vs("002", 3, "08:00", 38.4, 110)
    vs += _vs("004", 2, "08:00", 38.6, 120, spo2=92) + _vs("004", 3, "08:00", 38.7, 121, spo2=91)
    vs += _vs("005", 2, "08:00", 38.9, 118) + _vs("005", 4, "08:00", 39.2, 112)
    vs += [r for day in (4, 5, 6, 7) for r in _vs("027", day, "08:00", 38.4, 118, spo2=97)]
    vs += _vs("008", 3, "08:00", 38.4, 88)
    vs += _vs("009", 3, "08:00", 38.3, 88)
    vs += _vs("013", 2, "08:00", 39.5, 80)
    vs += _vs("015", 2, "08:00", 39.1, 96)
    vs += _vs("016", 2, "08:00", 38.8, 82)
    for s17 in ("017", "018", "019", "023"):
        vs += _vs(s17, 2, "08:00", 38.6, 95) + _vs(s17, 2, "20:00", 38.7, 95)
    # one round: pressure 5 minutes after the temperature, then before it; then 15 minutes apart (two rounds)
    vs += _vs("022", 1, "08:00", 39.0) + _vs("022", 1, "08:05", sbp=80)
    vs += _vs("022", 2, "07:55", sbp=80) + _vs("022", 2, "08:00", 39.0)
    vs += _vs("022", 3, "08:00", 39.0) + _vs("022", 3, "08:15", sbp=80)
    # intensive-care charting: pressure (024) or SpO2 (025) hourly, temperature every 4 hours
    for s24, kw in (("024", "sbp"), ("025", "spo2")):
        vs += _vs(s24, 1, "08:00", 38.5, **{kw: 100 if kw == "sbp" else 97})
        vs += [r for t in ("09:00", "10:00", "11:00", "11:45") for r in _vs(s24, 1, t, **{kw: 80 if kw == "sbp" else 90})]
        vs += _vs(s24, 1, "12:00", 38.5, **{kw: 100 if kw == "sbp" else 97})
        vs += _vs(s24, 2, "08:00", 37.0, **{kw: 120 if kw == "sbp" else 98})
    vs += [dict(USUBJID=u("001"), VSTESTCD="TEMP", VSORRES="38.9", VSORRESU="C", VSDTC=d(-1, "08:00"))]  # before day 0
    _write(folder, "vs", _seq(vs, "VSSEQ"))
    cm = [
        dict(USUBJID=u("002"), CMTRT="Norepinephrine", CMDECOD="NOREPINEPHRINE", CMDOSE="", CMDOSU="",
             CMSTDTC=d(2, "07:00"), CMENDTC=d(2, "09:00")),
        dict(USUBJID=u("004"), CMTRT="Oxygen", CMDECOD="OXYGEN", CMDOSE="6", CMDOSU="L/min", CMROUTE="NASAL",
             CMSTDTC=d(2, "06:00"), CMENDTC=d(2, "08:00")),
        dict(USUBJID=u("004"), CMTRT="Oxygen", CMDECOD="OXYGEN", CMDOSE="6.1", CMDOSU="L/min", CMROUTE="NASAL",
             CMSTDTC=d(3, "06:00"), CMENDTC=d(3, "08:00")),
        dict(USUBJID=u("005"), CMSEQ=1, CMTRT="Oxygen", CMDECOD="OXYGEN", CMDOSE="30", CMDOSU="L/min",
             CMROUTE="RESPIRATORY (INHALATION)", CMDOSFRM="GAS", CMSTDTC=d(2, "07:00"), CMENDTC=d(2, "08:00")),
        dict(USUBJID=u("015"), CMTRT="Noradrenaline", CMDECOD="NOREPINEPHRINE", CMSTDTC=d(2), CMENDTC=d(2)),
        dict(USUBJID=u("015"), CMTRT="Oxygen", CMDECOD="OXYGEN", CMDOSE="8", CMDOSU="L/min", CMDOSFRM="NASAL CANNULA",
             CMSTDTC=d(2), CMENDTC=d(2)),
        dict(USUBJID=u("016"), CMTRT="Levophed", CMDECOD="", CMSTDTC=d(2, "07:00"), CMENDTC=d(2, "09:00")),
        dict(USUBJID=u("016"), CMTRT="Terlipressin", CMDECOD="", CMSTDTC=d(2, "07:00"), CMENDTC=d(2, "09:00")),
        dict(USUBJID=u("016"), CMTRT="Tylenol", CMDECOD="", CMSTDTC=d(2, "06:00"), CMENDTC=d(2, "06:00")),
        # norepinephrine stopped at 11:00 before phenylephrine started at 13:00; 018 overlaps 13:00-15:00
        dict(USUBJID=u("017"), CMTRT="Norepinephrine", CMDECOD="NOREPINEPHRINE", CMSTDTC=d(2, "09:00"),
             CMENDTC=d(2, "11:00")),
        dict(USUBJID=u("017"), CMTRT="Phenylephrine", CMDECOD="PHENYLEPHRINE", CMSTDTC=d(2, "13:00"),
             CMENDTC=d(2, "19:00")),
        dict(USUBJID=u("018"), CMTRT="Norepinephrine", CMDECOD="NOREPINEPHRINE", CMSTDTC=d(2, "09:00"),
             CMENDTC=d(2, "15:00")),
        dict(USUBJID=u("018"), CMTRT="Phenylephrine", CMDECOD="PHENYLEPHRINE", CMSTDTC=d(2, "13:00"),
             CMENDTC=d(2, "19:00")),
        dict(USUBJID=u("019"), CMTRT="Norepinephrine", CMDECOD="NOREPINEPHRINE", CMSTDTC=d(2), CMENDTC=d(2)),
        dict(USUBJID=u("019"), CMTRT="Phenylephrine", CMDECOD="PHENYLEPHRINE", CMSTDTC=d(2), CMENDTC=d(2)),
        # one drug, three records running together: a spelling, a salt and a brand
        dict(USUBJID=u("023"), CMTRT="Noradrenaline", CMDECOD="NORADRENALINE", CMSTDTC=d(2, "09:00"),
             CMENDTC=d(2, "14:00")),
        dict(USUBJID=u("023"), CMTRT="Norepinephrine bitartrate", CMDECOD="NOREPINEPHRINE BITARTRATE",
             CMSTDTC=d(2, "13:00"), CMENDTC=d(2, "18:00")),
        dict(USUBJID=u("023"), CMTRT="Levophed", CMDECOD="", CMSTDTC=d(2, "13:30"), CMENDTC=d(2, "15:00")),
        dict(USUBJID=u("024"), CMTRT="Norepinephrine", CMDECOD="NOREPINEPHRINE", CMSTDTC=d(1, "08:30"),
             CMENDTC=d(1, "11:30")),
        dict(USUBJID=u("025"), CMTRT="Oxygen", CMDECOD="OXYGEN", CMDOSE="4", CMDOSU="L/min", CMDOSFRM="NASAL CANNULA",
             CMSTDTC=d(1, "09:15"), CMENDTC=d(1, "11:30")),
    ]
    _write(folder, "cm", _seq(cm, "CMSEQ"))
    _write(folder, "suppcm", [dict(STUDYID=STUDY, RDOMAIN="CM", USUBJID=u("005"), IDVAR="CMSEQ", IDVARVAL="1",
                                   QNAM="O2DEV", QVAL="HIGH FLOW NASAL CANNULA")])
    pr = [
        dict(USUBJID=u("005"), PRTRT="CPAP", PRSTDTC=d(4, "02:00"), PRENDTC=d(4, "12:00")),
        dict(USUBJID=u("005"), PRTRT="Lumbar puncture", PRSTDTC=d(2, "07:00"), PRENDTC=d(2, "07:30")),
        dict(USUBJID=u("027"), PRTRT="Endotracheal intubation", PRINDC="Airway protection (status epilepticus)",
             PRSTDTC=d(5, "03:00"), PRENDTC=d(5, "20:00")),
        dict(USUBJID=u("027"), PRTRT="BiPAP", PRINDC="Hypoxia after seizure", PRSTDTC=d(7, "06:00"),
             PRENDTC=d(7, "12:00")),
        dict(USUBJID=u("999"), PRTRT="CPAP", PRSTDTC=d(4)),  # not in DM: quarantined
        dict(USUBJID=u("005"), PRTRT="BiPAP", PRSTDTC=d(5), PRENDTC=d(4)),  # ends before it starts: quarantined
    ]
    _write(folder, "pr", _seq(pr, "PRSEQ"))
    qs = []
    qs += _qs_items("006", 3, "09:00", [1, 1, 1, 0, 1, 1, 0, 0, 1, 0])            # items sum to 6
    qs += [_qs_total("006", 4, "09:00", 8)] + _qs_items("006", 4, "09:00", [1] * 9 + [0])  # total 8, items 9
    qs += _qs_items("007", 3, "09:00", [1, 1, 1, 1, 1, 1, 1, 1, None, 1])         # one item missing
    qs += [dict(_qs_total("007", 4, "09:00", None, code="ICE09"), QSSTAT="NOT DONE")] + \
        _qs_items("007", 4, "09:00", [1, 1, 1, 1, 1, 1, 1, 1, None, 1])            # the item not done
    qs += _qs_items("026", 3, "09:00", [0, 0, 0, 0, 0, 0, 0, 0, None, 0])         # 0 of 9: 0-1, grade 3 either way
    qs += _qs_items("026", 4, "09:00", [1, 1, 1, 1, 1, 1, 0, 0, None, 0])         # 6 of 9: 6-7, grade 2 or 1
    qs += _qs_items("026", 5, "09:00", [1, 1, 0, 0, 0, 0, 0, 0, None, None])      # 2 of 8: 2-4, grade 3 or 2
    qs += _qs_items("026", 6, "09:00", [1, 1, 1, 1, 0, 0, 0, 0, None, None])      # 4 of 8: 4-6, grade 2 either way
    qs += [_qs_total("008", 3, "10:00", 12, code="CAPDTOT", cat="CAPD")]
    qs += _qs_items("008", 4, "10:00", [2, 1, 1, 2, 1, 1, 1, 1], prefix="CAPD", cat="CAPD")
    qs += [_qs_total("010", day, "09:00", 10) for day in (3, 4, 5)]
    qs += [dict(USUBJID=u("011"), QSCAT="ICANS", QSTESTCD="LOC", QSORRES="SEDATED (PROPOFOL)", QSDTC=d(5, "09:00"))]
    qs += [_qs_total("011", 4, "09:00", 9)]
    qs += [_qs_total("012", 6, "09:00", 7)]
    qs += [_qs_total("014", 3, "09:00", 2, code="ICESCR")]
    qs += [_qs_total("015", 4, "09:00", 5)]
    qs += [_qs_total("020", 3, "09:00", 2, cat="ICANS"), _qs_total("020", 4, "09:00", 10, cat="ICANS")]
    qs += [_qs_total("021", 3, "09:00", 2, cat="NEURO EXAM")]
    qs += [dict(_qs_total("010", 2, "09:00", 10), QSDTC="2025-13-40")]  # unparseable date: quarantined
    _write(folder, "qs", _seq(qs, "QSSEQ"))
    fa = [
        dict(USUBJID=u("011"), FATESTCD="LOC", FAOBJ="NEUROLOGICAL STATUS", FAORRES="AWAKENS TO VOICE", FADTC=d(4, "09:00")),
        dict(USUBJID=u("012"), FATESTCD="EXTENT", FAOBJ="CEREBRAL OEDEMA", FAORRES="DIFFUSE", FADTC=d(7, "14:00")),
        dict(USUBJID=u("012"), FATESTCD="OCCUR", FAOBJ="SEIZURE", FAORRES="N", FADTC=d(6, "09:00")),
        dict(USUBJID=u("012"), FATESTCD="", FAOBJ="SEIZURE", FAORRES="Y", FADTC=d(6, "09:00")),  # missing FATESTCD
    ]
    _write(folder, "fa", _seq(fa, "FASEQ"))
    ce = [
        dict(USUBJID=u("012"), CESEQ=1, CETERM="Cerebral oedema", CEDECOD="Cerebral oedema", CEOCCUR="Y",
             CESTDTC=d(6, "15:00")),
        dict(USUBJID=u("012"), CESEQ=2, CETERM="Seizure", CEDECOD="Seizure", CEOCCUR="N", CESTDTC=d(6)),
        dict(USUBJID=u("012"), CESEQ=2, CETERM="Seizure", CEDECOD="Seizure", CEOCCUR="N", CESTDTC=d(7)),  # duplicate
    ]
    _write(folder, "ce", ce)
    ae = [
        dict(USUBJID=u("010"), AESEQ=1, AETERM="Seizure", AEDECOD="Seizure", AETOXGR="3", AESTDTC=d(4), AEENDTC=d(4)),
        dict(USUBJID=u("010"), AESEQ=2, AETERM="Status epilepticus", AEDECOD="Status epilepticus", AETOXGR="4",
             AESTDTC=d(7, "03:10"), AEENDTC=d(7)),
        dict(USUBJID=u("010"), AESEQ=3, AETERM="ICANS", AEDECOD="Immune effector cell-associated neurotoxicity syndrome",
             AETOXGR="3", AESTDTC=d(4), AEENDTC=d(8)),
        dict(USUBJID=u("010"), AESEQ=4, AETERM="QT prolonged", AEDECOD="Electrocardiogram QT prolonged", AETOXGR="2",
             AESTDTC=d(5), AEENDTC=d(5)),  # 'prolonged' alone is no seizure
        dict(USUBJID=u("015"), AESEQ=1, AETERM="CRS", AEDECOD="Cytokine release syndrome", AETOXGR="2",
             AESTDTC=d(2), AEENDTC=d(3)),
        dict(USUBJID=u("009"), AESEQ=1, AETERM="Hypotension", AEDECOD="Hypotension", AETOXGR="2",
             AESTDTC=d(1), AEENDTC=d(6)),
        # not yet coded (AEDECOD empty): the syndrome by its verbatim term
        dict(USUBJID=u("016"), AESEQ=1, AETERM="CRS", AEDECOD="", AETOXGR="2", AESTDTC=d(2), AEENDTC=d(3)),
        dict(USUBJID=u("014"), AESEQ=1, AETERM="Immune effector cell-associated neurotoxicity syndrome", AEDECOD="",
             AETOXGR="2", AESTDTC=d(3), AEENDTC=d(4)),
    ]
    _write(folder, "ae", ae)
    _write(folder, "crs_assessments", [dict(USUBJID=u("013"), CRSDTC=d(2, "09:00"), TEMP_C="39.5", HYPOTENSION="Y",
                                            VASOPRESSORS="0", VASOPRESSIN="N", OXYGEN="NONE")])
    (folder / "study.yaml").write_text("studyid: MAP-01\nsdtm_mapping:\n  rows:\n    - {kind: ice_total, match: ICESCR}\n",
                                       encoding="utf-8")
    db = folder / "study.duckdb"
    result = ingest_study(folder, db, cutoff="2025-06-30", review_store_path=folder / "review.duckdb")
    con = duckdb.connect(str(db), read_only=True)
    yield con, result
    con.close()


def _rows(con, table, subj, order="assessment_time"):
    cur = con.execute(f"SELECT * FROM {table} WHERE usubjid = $u ORDER BY {order}", {"u": u(subj)})
    names = [c[0] for c in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def _grades(con, table, subj):
    return {(r["day"], r["assessment_time"].strftime("%H:%M")): r["grade"] for r in _rows(con, table, subj)}


def test_temperature_in_fahrenheit_is_converted(study):
    con, _ = study
    rows = _rows(con, "crs_assessments", "001")
    assert [r["day"] for r in rows] == [2, 3]  # the pre-infusion reading of day -1 makes no time point
    assert rows[0]["temp_c"] == pytest.approx(39.0)
    assert rows[1]["temp_c"] == pytest.approx(37.944, abs=1e-3)
    assert "T 102.2 F" in rows[0]["comment"] and rows[0]["source"] == "SDTM"
    assert _grades(con, "crs_grades", "001") == {(2, "08:00"): 1, (3, "08:00"): 0}


def test_a_vasopressor_counts_at_every_assessment_since_it_ran(study):
    con, _ = study
    rows = _rows(con, "crs_assessments", "002")
    # 07:00-09:00 norepinephrine: running at 08:00, and ran after the 08:00 assessment (counted at 20:00);
    # stopped before the 20:00 one, so not at day 3 08:00
    assert [r["vasopressors"] for r in rows] == [1, 1, 0]
    assert [r["hypotension"] for r in rows] == [True, True, False]
    assert "CMSEQ 1" in rows[0]["provenance"] and "VSSEQ" in rows[0]["provenance"]
    assert _grades(con, "crs_grades", "002") == {(2, "08:00"): 3, (2, "20:00"): 3, (3, "08:00"): 1}


def test_brand_names_and_a_vasopressin_analogue(study):
    """Levophed is norepinephrine and Tylenol paracetamol; terlipressin, a vasopressin analogue, counts as vasopressin
    does (ASTCT: a vasopressor with or without vasopressin is grade 3, not 4)."""
    con, _ = study
    [row] = _rows(con, "crs_assessments", "016")
    assert (row["vasopressors"], row["vasopressin"]) == (1, True)
    assert _grades(con, "crs_grades", "016") == {(2, "08:00"): 3}
    classes = dict(con.execute("SELECT cmtrt, med_class FROM medications WHERE usubjid = $u", {"u": u("016")}).fetchall())
    assert classes == {"Levophed": "vasopressor", "Terlipressin": "vasopressor", "Tylenol": "antipyretic"}


def test_vasopressors_count_when_they_ran_together(study):
    """ASTCT grade 4 needs multiple vasopressors: two given one after the other between two assessments are one at a
    time (grade 3); two that overlap are two (grade 4); with dates only they cannot be told apart and count as two."""
    con, _ = study
    after, overlap, dates = (_rows(con, "crs_assessments", s) for s in ("017", "018", "019"))
    assert [r["vasopressors"] for r in after] == [0, 1]
    assert "norepinephrine, phenylephrine (vasopressors: at most 1 at a time)" in after[1]["comment"]
    assert _grades(con, "crs_grades", "017") == {(2, "08:00"): 1, (2, "20:00"): 3}
    assert [r["vasopressors"] for r in overlap] == [0, 2]
    assert "at a time" not in overlap[1]["comment"]
    assert _grades(con, "crs_grades", "018") == {(2, "08:00"): 1, (2, "20:00"): 4}
    assert [r["vasopressors"] for r in dates] == [2, 2]
    assert _grades(con, "crs_grades", "019") == {(2, "08:00"): 4, (2, "20:00"): 4}


def test_vital_signs_of_one_round_are_graded_together(study):
    """Temperature 39.0 and SBP 80 charted 5 minutes apart are fever with hypotension (ASTCT grade 2), whichever
    comes first; 15 minutes apart (VITALS_ROUND_MINUTES) they are two rounds, and the fever is not lent."""
    con, _ = study
    rows = {(r["day"], r["assessment_time"].strftime("%H:%M")): r for r in _rows(con, "crs_assessments", "022")}
    assert {k: (r["temp_c"], r["hypotension"]) for k, r in rows.items()} == {
        (1, "08:00"): (39.0, None), (1, "08:05"): (39.0, True),
        (2, "07:55"): (None, True), (2, "08:00"): (39.0, True),
        (3, "08:00"): (39.0, None), (3, "08:15"): (None, True)}
    assert "temperature of 08:00 (same round of vital signs)" in rows[(1, "08:05")]["comment"]
    assert "SBP of 07:55 (same round of vital signs)" in rows[(2, "08:00")]["comment"]
    assert rows[(1, "08:05")]["provenance"] == "VSSEQ 1, 2"
    assert _grades(con, "crs_grades", "022") == {(1, "08:00"): 1, (1, "08:05"): 2, (2, "07:55"): None,
                                                (2, "08:00"): 2, (3, "08:00"): 1, (3, "08:15"): None}


def test_one_vasopressor_under_several_names_is_one(study):
    """Noradrenaline, norepinephrine bitartrate and Levophed running together are one drug (the drug column of
    safety/data/medication_classes.csv): one vasopressor, ASTCT grade 3, not 'multiple vasopressors' (grade 4)."""
    con, _ = study
    before, after = _rows(con, "crs_assessments", "023")
    assert (before["vasopressors"], after["vasopressors"], after["provenance"]) == (0, 1, "VSSEQ 3, 4; CMSEQ 1, 2, 3")
    assert "from SDTM: SBP 95 (hypotension below 90); norepinephrine" in after["comment"]
    assert _grades(con, "crs_grades", "023") == {(2, "08:00"): 1, (2, "20:00"): 3}


def test_support_between_two_temperatures_counts_at_the_next_one(study):
    """Pressure (or SpO2) charted hourly and temperature 4-hourly: a time point without a temperature cannot be
    graded, so the norepinephrine (oxygen) given between the febrile 08:00 and 12:00 readings counts at 12:00, the
    next time point with a temperature: fever with one vasopressor is ASTCT grade 3 (with low-flow oxygen grade 2),
    not grade 1. It stopped before 12:00, so it is not counted at the next day's reading."""
    con, _ = study
    for subj, col, support, grade in (("024", "vasopressors", 1, 3), ("025", "oxygen", "LOW_FLOW_NC", 2)):
        rows = {r["assessment_time"].strftime("%d %H:%M"): r for r in _rows(con, "crs_assessments", subj)}
        assert rows["02 12:00"][col] == support and "CMSEQ 1" in rows["02 12:00"]["provenance"], subj
        assert rows["03 08:00"][col] in (0, "NONE"), subj
        assert _grades(con, "crs_grades", subj) == {(1, "08:00"): 1, (1, "09:00"): None, (1, "10:00"): None,
                                                    (1, "11:00"): None, (1, "11:45"): None, (1, "12:00"): grade,
                                                    (2, "08:00"): 0}, subj
        [(max_grade,)] = con.execute("SELECT max_grade FROM toxicity_episodes WHERE usubjid = $u AND syndrome = 'CRS'",
                                     {"u": u(subj)}).fetchall()
        assert max_grade == grade, subj


def test_oxygen_flow_six_is_low_flow_and_six_point_one_is_not(study):
    con, _ = study
    rows = _rows(con, "crs_assessments", "004")
    assert [(r["oxygen"], r["o2_flow_lmin"]) for r in rows] == [("LOW_FLOW_NC", 6.0), ("LOW_FLOW_NC", 6.1)]
    assert _grades(con, "crs_grades", "004") == {(2, "08:00"): 2, (3, "08:00"): 3}


def test_device_only_in_suppcm_and_positive_pressure_in_pr(study):
    con, _ = study
    rows = _rows(con, "crs_assessments", "005")
    assert [(r["day"], r["oxygen"], r["o2_flow_lmin"]) for r in rows] == [(2, "HIGH_FLOW_NC", 30.0), (4, "CPAP", None)]
    assert "CMSEQ 1" in rows[0]["provenance"] and "PRSEQ 1" in rows[1]["provenance"]
    assert "PRSEQ 2" not in " ".join(r["provenance"] for r in rows)  # the lumbar puncture is no respiratory support
    assert _grades(con, "crs_grades", "005") == {(2, "08:00"): 3, (4, "08:00"): 4}


def test_ventilation_for_airway_protection_is_not_crs_hypoxia(study):
    """Lee 2019: intubation without hypoxia for neurotoxicity (or for a procedure) is not grade 4 CRS. PRINDC names
    airway protection in status epilepticus: the febrile patient with SpO2 97 % stays CRS grade 1, and the comment
    says why. BiPAP whose indication names hypoxia, even after a seizure, is CRS hypoxia (grade 4)."""
    con, _ = study
    rows = {r["day"]: r for r in _rows(con, "crs_assessments", "027")}
    assert rows[5]["oxygen"] == "NONE"
    assert "endotracheal intubation for 'Airway protection (status epilepticus)': another cause, not CRS hypoxia" \
        in rows[5]["comment"] and "PRSEQ" in rows[5]["provenance"]
    assert (rows[7]["oxygen"], rows[7]["comment"].count("another cause")) == ("BIPAP", 0)
    assert _grades(con, "crs_grades", "027") == {(4, "08:00"): 1, (5, "08:00"): 1, (6, "08:00"): 1, (7, "08:00"): 4}


def test_ice_from_items_and_the_total_wins_over_its_items(study):
    con, _ = study
    rows = _rows(con, "icans_assessments", "006")
    assert [r["ice_score"] for r in rows] == [6, 8]
    assert "ICE total 8 used; its items sum to 9" in rows[1]["comment"]
    assert "QSSEQ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10" in rows[0]["provenance"]
    assert _grades(con, "icans_grades", "006") == {(3, "09:00"): 2, (4, "09:00"): 1}


def test_missing_items_leave_ice_not_done(study):
    con, _ = study
    rows = _rows(con, "icans_assessments", "007")
    assert [r["ice_score"] for r in rows] == [None, None]
    assert all("ICE items incomplete (9 of 10)" in r["comment"] for r in rows)
    g = _rows(con, "icans_grades", "007")
    assert [r["grade"] for r in g] == [None, None] and "ICE not done" in g[0]["grade_reason"]


def test_missing_ice_items_that_cannot_change_the_icans_grade_still_grade_it(study):
    """ICE is ten 1-point items (clinical-rules.md 3.2). Nine answered for 0 points leave a total of 0 or 1, ICANS
    grade 3 either way: scored 1 (the most the missing item allows), graded 3, and the comment says so. Where the
    missing items could change the band (6 of 9: 6 or 7; 2 of 8: 2 to 4) the ICE stays not computed."""
    con, _ = study
    rows = _rows(con, "icans_assessments", "026")
    assert [r["ice_score"] for r in rows] == [1, None, None, 6]
    assert "ICE items incomplete (9 of 10): every total they allow (0-1) is one ICANS grade; scored 1, the most " \
           "they allow" in rows[0]["comment"]
    assert "ICE items incomplete (8 of 10): every total they allow (4-6)" in rows[3]["comment"]
    assert "ICE items incomplete (9 of 10): score not computed" in rows[1]["comment"]
    assert [r["grade"] for r in _rows(con, "icans_grades", "026")] == [3, None, None, 2]


def test_child_capd_and_age_specific_hypotension(study):
    con, _ = study
    rows = _rows(con, "icans_assessments", "008")
    assert [(r["capd_score"], r["ice_score"]) for r in rows] == [(12, None), (10, None)]
    crs = _rows(con, "crs_assessments", "008")
    # 8 years old: hypotension below 70 + 2 x 8 = 86 mmHg, so SBP 88 is not; for an adult (009) it is
    assert crs[0]["hypotension"] is False and "hypotension below 86" in crs[0]["comment"]
    assert _rows(con, "crs_assessments", "009")[0]["hypotension"] is True
    assert _grades(con, "crs_grades", "009") == {(3, "08:00"): 2}


def test_a_seizure_only_as_an_ae(study):
    con, _ = study
    rows = _rows(con, "icans_assessments", "010")
    got = [(r["day"], r["icansdtc"], r["ice_score"], r["seizure"]) for r in rows]
    assert got == [(3, d(3, "09:00"), 10, "NONE"), (4, d(4, "09:00"), 10, "RAPIDLY_RESOLVING"),
                   (5, d(5, "09:00"), 10, "NONE"), (7, d(7, "03:10"), None, "PROLONGED_OR_REPETITIVE")]
    assert "AESEQ 1" in rows[1]["provenance"] and "AESEQ 2" in rows[3]["provenance"]
    assert [r["grade"] for r in _rows(con, "icans_grades", "010")] == [0, 3, 0, 4]


def test_ice_under_the_icans_category_is_read(study):
    """QSCAT 'ICANS' (the syndrome the ICE assesses, the category the SDTM twin files LOC under) is the ICE's: ICE 2
    is ICANS grade 3 (ASTCT), not 'ICE not done'."""
    con, _ = study
    assert [r["ice_score"] for r in _rows(con, "icans_assessments", "020")] == [2, 10]
    assert _grades(con, "icans_grades", "020") == {(3, "09:00"): 3, (4, "09:00"): 0}


def test_ice_under_another_category_is_set_aside_and_said_so(study):
    """QSTESTCD is unique only within its questionnaire: under another QSCAT the record is not read, but the
    assessment, the load's output and load_log (the Data quality page) say so."""
    con, result = study
    [row] = _rows(con, "icans_assessments", "021")
    assert row["ice_score"] is None
    assert "ICETOT under QSCAT 'NEURO EXAM' not read (not the ICE or CAPD questionnaire, nor ICANS)" in row["comment"]
    note = ("1 ICE/CAPD record(s) not read for ICANS: QSCAT 'NEURO EXAM' names neither questionnaire nor ICANS (if it "
            "is one, map it in study.yaml: sdtm_mapping kind ice_category or capd_category)")
    assert f"qs.csv: {note}" in result.notes
    assert con.execute("SELECT notes FROM load_log WHERE source_file = 'qs.csv'").fetchone()[0] == note


def test_consciousness_from_fa_and_qs_and_sedation(study):
    con, _ = study
    rows = _rows(con, "icans_assessments", "011")
    assert [(r["day"], r["ice_score"], r["consciousness"]) for r in rows] == [(4, 9, "AWAKENS_TO_VOICE"), (5, None, "SEDATED")]
    assert "FASEQ 1" in rows[0]["provenance"]
    assert _grades(con, "icans_grades", "011")[(4, "09:00")] == 2


def test_cerebral_oedema_from_ce_and_fa_imaging_and_negative_events(study):
    con, _ = study
    rows = _rows(con, "icans_assessments", "012")
    got = [(r["day"], r["icansdtc"], r["seizure"], r["cerebral_edema"]) for r in rows]
    # CE oedema at 15:00 on day 6 comes after the 09:00 ICE: its own time point; the FA seizure 'N' and CEOCCUR 'N'
    # are not seizures; FA imaging 'DIFFUSE' on day 7
    assert got == [(6, d(6, "09:00"), "NONE", "NONE"), (6, d(6, "15:00"), "NONE", "FOCAL"),
                   (7, d(7, "14:00"), "NONE", "DIFFUSE")]
    assert [r["grade"] for r in _rows(con, "icans_grades", "012")] == [1, 3, 4]


def test_celltox_file_rows_win_for_their_subject(study):
    con, result = study
    for table in ("crs_assessments", "icans_assessments"):
        n = con.execute(f"SELECT count(*) FROM {table} WHERE source = 'SDTM'").fetchone()[0]
        assert result.built_from_sdtm[table] == n > 5
    rows = _rows(con, "crs_assessments", "013")
    assert [(r["source"], r["crsdtc"], r["provenance"]) for r in rows] == [("assessment file", d(2, "09:00"), None)]


def test_study_yaml_adds_a_sponsor_code(study):
    con, _ = study
    assert [r["ice_score"] for r in _rows(con, "icans_assessments", "014")] == [2]


def test_worked_example_grades_and_discrepancy(study):
    con, _ = study
    assert _grades(con, "crs_grades", "015") == {(2, "08:00"): 3}
    row = _rows(con, "crs_assessments", "015")[0]
    assert (row["temp_c"], row["hypotension"], row["vasopressors"], row["oxygen"], row["o2_flow_lmin"], row["provenance"]) == \
        (39.1, True, 1, "LOW_FLOW_NC", 8.0, "VSSEQ 1, 2; CMSEQ 1, 2")
    assert _rows(con, "crs_grades", "015")[0]["grade_component"] == "hypotension+hypoxia"
    assert _grades(con, "icans_grades", "015") == {(4, "09:00"): 2}
    disc = con.execute("SELECT syndrome, discrepancy, reported_grade, derived_grade FROM grade_discrepancies "
                       "WHERE usubjid = $u ORDER BY syndrome", {"u": u("015")}).fetchall()
    assert disc == [("CRS", "reported lower than derived", 2, 3), ("ICANS", "no AE reported for derived episode", None, 2)]


def test_an_uncoded_crs_or_icans_ae_is_graded_on_the_study_scale(study):
    """An AE with only AETERM 'CRS' (AEDECOD not yet coded) is CRS for the episodes, so it carries the study's CRS
    scale (ASTCT 2019), not CTCAE, and a grade 2 against a derived grade 3 is reported lower than derived."""
    con, _ = study
    scales = dict(con.execute("SELECT usubjid, grading_system FROM adverse_events WHERE usubjid IN ($a, $b)",
                              {"a": u("016"), "b": u("014")}).fetchall())
    assert scales == {u("016"): "ASTCT 2019", u("014"): "ASTCT 2019"}
    disc = con.execute("SELECT usubjid, syndrome, discrepancy, reported_grade, derived_grade, reported_grading_system "
                       "FROM grade_discrepancies WHERE usubjid IN ($a, $b) ORDER BY usubjid",
                       {"a": u("016"), "b": u("014")}).fetchall()
    assert disc == [(u("014"), "ICANS", "reported lower than derived", 2, 3, "ASTCT 2019"),
                    (u("016"), "CRS", "reported lower than derived", 2, 3, "ASTCT 2019")]


def test_new_domains_reconcile_and_quarantine_with_reasons(study):
    con, result = study
    counts = {f.domain: (f.rows_read, f.rows_loaded, f.rows_quarantined, f.rows_after_cutoff) for f in result.files}
    for dom, table in (("QS", "questionnaires"), ("PR", "procedures"), ("FA", "findings_about"), ("CE", "clinical_events")):
        read, loaded, quar, after = counts[dom]
        assert read == loaded + quar + after and quar == (2 if dom == "PR" else 1), dom
        assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == loaded
    reasons = set(con.execute("SELECT domain, field, reason FROM quarantine").fetchall())
    assert reasons == {("QS", "QSDTC", "unparseable date '2025-13-40'"),
                       ("PR", "USUBJID", f"subject {u('999')} not in DM"),
                       ("PR", "PRENDTC", f"end {d(4)} before start {d(5)}"),
                       ("FA", "FATESTCD", "missing FATESTCD"),
                       ("CE", "CESEQ", "duplicate key (USUBJID + CESEQ) of ce.csv row 2; the first record is kept")}
    assert {"QS", "PR", "FA", "CE"} <= set(result.domains_present) and result.skipped_files == []


def test_a_bad_mapping_row_stops_the_load_naming_it(tmp_path):
    _write(tmp_path, "dm", [dict(USUBJID="X-1")])
    (tmp_path / "study.yaml").write_text(
        "sdtm_mapping:\n  rows:\n    - {kind: oxygen_device, match: tent, code: TENT}\n", encoding="utf-8")
    with pytest.raises(IngestError, match=r"'sdtm_mapping.rows\[0\].code': kind oxygen_device needs one of"):
        ingest_study(tmp_path, tmp_path / "x.duckdb")


def test_records_without_sequence_numbers_stay_apart(tmp_path):
    # CMSEQ is optional: two oxygen records of one subject must not lend each other their devices
    _write(tmp_path, "dm", [dict(USUBJID="S-1", AGE="60", RFXSTDTC=f"{INF}T10:00")])
    _write(tmp_path, "vs", _seq([dict(USUBJID="S-1", VSTESTCD="TEMP", VSORRES="38.6", VSDTC=d(day, "08:00"))
                                 for day in (1, 2)], "VSSEQ"))
    _write(tmp_path, "cm", [
        dict(USUBJID="S-1", CMTRT="Oxygen via face mask", CMDOSE="5", CMDOSU="L/min", CMSTDTC=d(1), CMENDTC=d(1)),
        dict(USUBJID="S-1", CMTRT="Oxygen", CMDOSE="2", CMDOSU="L/min", CMSTDTC=d(2), CMENDTC=d(2))])
    db = tmp_path / "x.duckdb"
    ingest_study(tmp_path, db, review_store_path=tmp_path / "r.duckdb")
    con = duckdb.connect(str(db), read_only=True)
    got = con.execute("SELECT day, oxygen, o2_flow_lmin, comment LIKE '%nasal cannula assumed%' FROM crs_assessments "
                      "ORDER BY day").fetchall()
    con.close()
    assert got == [(1, "FACEMASK", 5.0, False), (2, "LOW_FLOW_NC", 2.0, True)]
