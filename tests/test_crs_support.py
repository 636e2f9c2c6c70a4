"""Builders for the toxicity tests: a real DuckDB file with the source tables from safety.schema, and rows
inserted by column name. (No tests here; imported by tests/test_crs*.py, test_icans*.py, ...)"""
from __future__ import annotations

import datetime as dt

import duckdb

from safety import schema

STUDY = "CT-001"
CUT = dt.date(2025, 6, 30)
DAY0 = dt.date(2025, 1, 1)
# the unit a load gives these tests (SI); a lab row of another test has none unless given
SI_UNITS = {"NEUT": "10^9/L", "ANC": "10^9/L", "PLAT": "10^9/L", "HGB": "g/L", "CRP": "mg/L", "FERRITIN": "ug/L"}
_SI = object()


class StudyDB:
    """A study database under construction; methods add rows, ``derive()`` runs the toxicity derivations."""

    def __init__(self, path, studyid=STUDY, data_cut=CUT):
        self.con = duckdb.connect(str(path))
        self.studyid, self.data_cut = studyid, data_cut
        for t in schema.SOURCE_TABLES:
            self.con.execute(t.ddl())
        self.con.execute(schema.get_table("deaths").ddl())  # DLT screening reads treatment-related deaths
        self._ids: dict[str, int] = {}
        self.con.execute(
            "INSERT INTO studies (studyid, data_cut, product, crs_grading, icans_grading) VALUES ($s, $c, 'CAR-X', 'ASTCT 2019', 'ASTCT 2019')",
            {"s": studyid, "c": data_cut})

    def _next(self, table: str) -> int:
        self._ids[table] = self._ids.get(table, 0) + 1
        return self._ids[table]

    def _insert(self, table: str, **cols) -> None:
        cols = {"studyid": self.studyid, "data_cut": self.data_cut, **cols}
        names = ", ".join(cols)
        ph = ", ".join(f"${k}" for k in cols)
        self.con.execute(f"INSERT INTO {table} ({names}) VALUES ({ph})", cols)

    def subject(self, usubjid, *, infused=True, death_day=None, last_known_alive_day=180, cohort="C1",
                dose_level="DL1", product="CAR-X", enrollment_order=None, siteid="01", age=None, death_cause=None,
                lymphodepletion_start_day=None):
        n = self._next("subjects")
        self._insert("subjects", usubjid=usubjid, siteid=siteid, cohort=cohort, dose_level=dose_level, product=product,
                     first_infusion_date=DAY0 if infused else None, infused=infused, death_day=death_day,
                     last_known_alive_day=last_known_alive_day,
                     enrollment_order=(enrollment_order or n) if infused else None, age=age, death_cause=death_cause,
                     lymphodepletion_start_day=lymphodepletion_start_day)

    def crs(self, usubjid, day, hour=8, temp=37.0, hypotension=False, vasopressors=0, vasopressin=False,
            oxygen="NONE", flow=None, minute=0, assessment_id=None):
        aid = assessment_id or self._next("crs")
        t = dt.datetime.combine(DAY0 + dt.timedelta(days=day), dt.time(hour, minute))
        self._insert("crs_assessments", usubjid=usubjid, assessment_id=aid, assessment_time=t, assessment_date=t.date(),
                     day=day, temp_c=temp, hypotension=hypotension, vasopressors=vasopressors, vasopressin=vasopressin,
                     oxygen=oxygen, o2_flow_lmin=flow)
        return aid

    def icans(self, usubjid, day, hour=8, ice=10, consciousness="AWAKE", seizure="NONE", motor="NONE",
              edema="NONE", assessment_id=None, capd=None):
        aid = assessment_id or self._next("icans")
        t = dt.datetime.combine(DAY0 + dt.timedelta(days=day), dt.time(hour, 0))
        self._insert("icans_assessments", usubjid=usubjid, assessment_id=aid, assessment_time=t,
                     assessment_date=t.date(), day=day, ice_score=ice, consciousness=consciousness, seizure=seizure,
                     motor_weakness=motor, cerebral_edema=edema, capd_score=capd)
        return aid

    def med(self, usubjid, med_class, start_day, end_day=None, cmtrt=None, hour=None, route=None, indication=None):
        start_time = None if hour is None else dt.datetime.combine(DAY0 + dt.timedelta(days=start_day), dt.time(hour))
        self._insert("medications", usubjid=usubjid, cmseq=self._next("cm"), cmtrt=cmtrt or med_class,
                     med_class=med_class, start_day=start_day, end_day=end_day, start_time=start_time,
                     cmroute=route, cmindc=indication)

    def death_record(self, usubjid, day, dsterm):
        self._insert("disposition", usubjid=usubjid, dsseq=self._next("ds"), dsterm=dsterm, dsdecod="DEATH", day=day)

    def ae(self, usubjid, aedecod, grade, onset_day, end_day=None, grading_system="ASTCT 2019", aeout=None):
        seq = self._next("ae")
        self._insert("adverse_events", usubjid=usubjid, aeseq=seq, event_key=f"{usubjid}/AE/{seq}", aeterm=aedecod,
                     aedecod=aedecod, aetoxgr=grade, grading_system=grading_system, onset_day=onset_day,
                     end_day=end_day, ongoing=end_day is None, aeout=aeout)
        return f"{usubjid}/AE/{seq}"

    def lab(self, usubjid, lbtestcd, day, value, uln=None, lln=None, lbspec=None, lbcat=None, unit=_SI):
        self._insert("labs", usubjid=usubjid, lbseq=self._next("lb"), lbtestcd=lbtestcd, day=day, value=value,
                     uln=uln, lln=lln, lbspec=lbspec, lbcat=lbcat,
                     unit=SI_UNITS.get(lbtestcd) if unit is _SI else unit)

    def derive(self):
        """The CRS/ICANS episodes, then the lab screens around them, as a load runs them."""
        from safety.derive.toxicity.crs_icans import derive_cell_therapy_toxicities
        from safety.derive.toxicity.episode_labs import derive_episode_lab_screens
        derive_cell_therapy_toxicities(self.con, self.studyid, self.data_cut, {})
        derive_episode_lab_screens(self.con, self.studyid, self.data_cut, {})

    def derive_icaht(self):
        from safety.derive.toxicity.icaht import derive_icaht
        derive_icaht(self.con, self.studyid, self.data_cut, {})

    def rows(self, sql: str, **params) -> list[dict]:
        df = self.con.sql(sql, params=params or None).to_arrow_table().to_pandas()
        return df.to_dict("records")

    def one(self, sql: str, **params) -> dict:
        r = self.rows(sql, **params)
        assert len(r) == 1, r
        return r[0]
