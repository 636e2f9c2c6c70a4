"""A small hand-built study for the outcome derivations: rows go straight into the source tables."""
from __future__ import annotations

import datetime as dt
import json

import duckdb

from safety import schema
from safety.core.config import validate

STUDY = "OUT-01"
CUT = dt.date(2026, 6, 30)
DAY0 = dt.date(2025, 1, 1)


def day(n: int) -> dt.date:
    return DAY0 + dt.timedelta(days=n)


class OutcomeDB:
    """A study database under construction; ``derive(name)`` runs one outcome derivation."""

    def __init__(self, path, config: dict | None = None):
        self.con = duckdb.connect(str(path))
        schema.create_schema(self.con)
        self.config = validate(config or {})
        self.con.execute("INSERT INTO studies (studyid, data_cut, product, config_json) VALUES ($s, $c, 'CAR-X', $j)",
                         {"s": STUDY, "c": CUT, "j": json.dumps(self.config)})
        self._seq: dict[str, int] = {}

    def seq(self, table: str) -> int:
        self._seq[table] = self._seq.get(table, 0) + 1
        return self._seq[table]

    def insert(self, table: str, **cols) -> None:
        cols = {"studyid": STUDY, "data_cut": CUT, **cols}
        self.con.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('$' + k for k in cols)})", cols)

    def subject(self, u, *, infused=True, death_day=None, lka=400, diagnosis=None, dose_level="DL1", cause=None,
                age=None, death_source="DM"):
        self.insert("subjects", usubjid=u, infused=infused, age=age, first_infusion_date=DAY0 if infused else None,
                    death_date=None if death_day is None else day(death_day), death_day=death_day if infused else None,
                    death_source=None if death_day is None else death_source, death_cause=cause, last_known_alive_day=death_day if death_day is not None else lka,
                    diagnosis=diagnosis, dose_level=dose_level, infusions=1 if infused else 0)

    def ae(self, u, term, grade, onset, end=None, soc="Infections and infestations", aeout=None, ser="N",
           related=False, verbatim=None, **extra):
        n = self.seq("ae")
        self.insert("adverse_events", usubjid=u, aeseq=n, event_key=f"{u}/AE/{n}", aeterm=verbatim or term, aedecod=term,
                    aebodsys=soc, aetoxgr=grade, aeser=ser, aeout=aeout, onset_day=onset,
                    aest_date=None if onset is None else day(onset),
                    end_day=end, aeen_date=None if end is None else day(end), ongoing=end is None, related=related,
                    **extra)
        return f"{u}/AE/{n}"

    def ds(self, u, decod, term, d):
        self.insert("disposition", usubjid=u, dsseq=self.seq("ds"), dsdecod=decod, dsterm=term, dsst_date=day(d), day=d)

    def rs(self, u, d, response, **extra):
        self.insert("responses", usubjid=u, rsseq=self.seq("rs"), response=response, day=d,
                    rs_date=None if d is None else day(d), **extra)

    def lab(self, u, test, d, value, unit=None, lbspec=None, lbcat=None):
        self.insert("labs", usubjid=u, lbseq=self.seq("lb"), lbtestcd=test, day=d, value=value, unit=unit,
                    lbspec=lbspec, lbcat=lbcat)

    def cm(self, u, trt, start, end=None, indication=None, cat=None):
        self.insert("medications", usubjid=u, cmseq=self.seq("cm"), cmtrt=trt, cmdecod=trt.upper(), cmindc=indication,
                    cmcat=cat, start_day=start, end_day=end)

    def mb(self, u, d, organism, test=None, testcd=None):
        self.insert("microbiology", usubjid=u, mbseq=self.seq("mb"), organism=organism, mbtest=test, mbtestcd=testcd,
                    day=d, mb_date=day(d))

    def pc(self, u, d, value, lloq=50.0, test="CARTGDNA", unit="copies/ug gDNA", spec=None):
        blq = value is None or value < lloq
        self.insert("pc_concentrations", usubjid=u, pcseq=self.seq("pc"), pctestcd=test, value=value, lloq=lloq,
                    below_lloq=blq, unit=unit, day=d, pcspec=spec)

    def mh(self, u, term, start, *, cat="GENERAL MEDICAL HISTORY", end=None, collected=None, occur=None, **extra):
        n = self.seq("mh")
        self.insert("medical_history", usubjid=u, mhseq=n, mhterm=term, mhdecod=term, mhcat=cat, mhoccur=occur,
                    mhst_date=None if start is None else day(start), start_day=start,
                    mhen_date=None if end is None else day(end), end_day=end,
                    collection_day=collected, mh_collection_date=None if collected is None else day(collected), **extra)

    def pp(self, u, testcd, value, unit=None, analyte="CARTGDNA", start=None, end=None, orres=None):
        self.insert("pk_parameters", usubjid=u, ppseq=self.seq("pp"), pptestcd=testcd, ppcat=analyte, value=value,
                    unit=unit, pporres=orres if orres is not None else (None if value is None else f"{value:g}"),
                    interval_start_day=start, interval_end_day=end)

    def ex(self, u, dose, unit="10^6 cells/kg"):
        self.insert("exposures", usubjid=u, exseq=self.seq("ex"), extrt="CAR-X", exdose=dose, exdosu=unit,
                    is_car_infusion=True, day=0)

    def derive(self, *names: str) -> None:
        from safety.derive.pipeline import derivation
        for n in names:
            derivation(n)(self.con, STUDY, CUT, self.config)

    def rows(self, sql: str, **params) -> list[dict]:
        return self.con.sql(sql, params=params or None).to_arrow_table().to_pandas().to_dict("records")

    def by(self, table: str, key: str = "usubjid") -> dict:
        return {r[key]: r for r in self.rows(f"SELECT * FROM {table}")}
