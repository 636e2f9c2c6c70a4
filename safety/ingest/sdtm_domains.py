"""Loaders of the standard domains behind the CRS/ICANS inputs (QS, PR, FA and CE), and of PP and MH.

They follow the other loaders in :mod:`safety.ingest.engine` (staged, typed and validated there by the specs in
:mod:`safety.ingest.domains`); :mod:`safety.ingest.sdtm_assessments` reads the tables they fill.
"""
from __future__ import annotations

from safety.ingest.engine import (KEYSEL, OK, Cols, Ctx, add_supp_columns, dated, end_date, start_date,
                                  supp_select)


def _timed(c: Cols, col: str) -> str:
    """(timestamp, has_time) of a --DTC: a date only gives 00:00 and has_time false."""
    return (f"ct_time({c(col)}, t._k_{col}) AS assessment_time, "
            f"coalesce(t._k_{col} = 'F' AND length({c(col)}) > 10, false) AS has_time")


def load_qs(ctx: Ctx, c: Cols, supp) -> None:
    add_supp_columns(ctx, "questionnaires", supp)
    ctx.run(f"""INSERT INTO questionnaires BY NAME SELECT {KEYSEL},
        _i_QSSEQ AS qsseq, upper({c('QSCAT')}) AS qscat, upper({c('QSSCAT')}) AS qsscat,
        upper({c('QSTESTCD')}) AS qstestcd, {c('QSTEST')} AS qstest, {c('QSORRES')} AS qsorres,
        {c('QSSTRESC')} AS qsstresc, coalesce(_n_QSSTRESN, {c.num('QSSTRESC')}, {c.num('QSORRES')}) AS value,
        upper({c('QSSTAT')}) AS qsstat, {c('QSGRPID')} AS qsgrpid, {c('VISIT')} AS visit,
        {dated(c, 'QSDTC', 'qs')}, {_timed(c, 'QSDTC')},
        datediff('day', s.inf_date, {start_date('QSDTC')}) AS day
        {supp_select(supp)}
        FROM _t_QS t LEFT JOIN _subj s ON s.usubjid = t._usubjid WHERE {OK} ORDER BY t._file, t._row""")


def load_fa(ctx: Ctx, c: Cols, supp) -> None:
    add_supp_columns(ctx, "findings_about", supp)
    ctx.run(f"""INSERT INTO findings_about BY NAME SELECT {KEYSEL},
        _i_FASEQ AS faseq, upper({c('FACAT')}) AS facat, upper({c('FAOBJ')}) AS faobj,
        upper({c('FATESTCD')}) AS fatestcd, {c('FATEST')} AS fatest, {c('FAORRES')} AS faorres,
        {c('FASTRESC')} AS fastresc, coalesce(_n_FASTRESN, {c.num('FASTRESC')}, {c.num('FAORRES')}) AS value,
        {c('VISIT')} AS visit, {dated(c, 'FADTC', 'fa')}, {_timed(c, 'FADTC')},
        datediff('day', s.inf_date, {start_date('FADTC')}) AS day
        {supp_select(supp)}
        FROM _t_FA t LEFT JOIN _subj s ON s.usubjid = t._usubjid WHERE {OK} ORDER BY t._file, t._row""")


def load_pr(ctx: Ctx, c: Cols, supp) -> None:
    add_supp_columns(ctx, "procedures", supp)
    en = end_date("PRENDTC")
    ctx.run(f"""INSERT INTO procedures BY NAME SELECT {KEYSEL},
        _i_PRSEQ AS prseq, {c('PRTRT')} AS prtrt, {c('PRDECOD')} AS prdecod, upper({c('PRCAT')}) AS prcat,
        {c('PRINDC')} AS prindc, _n_PRDOSE AS prdose, {c('PRDOSU')} AS prdosu,
        {dated(c, 'PRSTDTC', 'prst', en)},
        CASE WHEN {en} <= $cut THEN {c('PRENDTC')} END AS prendtc,
        CASE WHEN {en} <= $cut THEN {en} END AS pren_date,
        datediff('day', s.inf_date, prst_date) AS start_day, datediff('day', s.inf_date, pren_date) AS end_day,
        CASE WHEN length({c('PRSTDTC')}) > 10 THEN ct_time({c('PRSTDTC')}, t._k_PRSTDTC) END AS start_time,
        CASE WHEN {en} <= $cut AND length({c('PRENDTC')}) > 10 THEN ct_time({c('PRENDTC')}, t._k_PRENDTC) END AS end_time
        {supp_select(supp)}
        FROM _t_PR t LEFT JOIN _subj s ON s.usubjid = t._usubjid WHERE {OK} ORDER BY t._file, t._row""")


def load_ce(ctx: Ctx, c: Cols, supp) -> None:
    add_supp_columns(ctx, "clinical_events", supp)
    en = end_date("CEENDTC")
    ctx.run(f"""INSERT INTO clinical_events BY NAME SELECT {KEYSEL},
        _i_CESEQ AS ceseq, {c('CETERM')} AS ceterm, {c('CEDECOD')} AS cedecod, upper({c('CECAT')}) AS cecat,
        upper({c('CEOCCUR')}) AS ceoccur, {c('CESEV')} AS cesev,
        {dated(c, 'CESTDTC', 'cest', en)},
        CASE WHEN {en} <= $cut THEN {c('CEENDTC')} END AS ceendtc,
        CASE WHEN {en} <= $cut THEN {en} END AS ceen_date,
        datediff('day', s.inf_date, cest_date) AS start_day,
        CASE WHEN length({c('CESTDTC')}) > 10 THEN ct_time({c('CESTDTC')}, t._k_CESTDTC) END AS start_time
        {supp_select(supp)}
        FROM _t_CE t LEFT JOIN _subj s ON s.usubjid = t._usubjid WHERE {OK} ORDER BY t._file, t._row""")


LOADERS = {"QS": load_qs, "PR": load_pr, "FA": load_fa, "CE": load_ce}


def _iso_duration_days(expr: str) -> str:
    """Days of an ISO 8601 duration such as P28D, PT672H or P4W (PPSTINT/PPENINT); NULL for anything else
    (months and years have no fixed length in days)."""
    x = f"upper(trim({expr}))"
    return (f"CASE WHEN regexp_full_match({x}, '-?PT?[0-9]+(\\.[0-9]+)?[WDH]') THEN "
            f"(CASE WHEN starts_with({x}, '-') THEN -1.0 ELSE 1.0 END) "
            f"* CAST(regexp_extract({x}, '([0-9]+(\\.[0-9]+)?)', 1) AS DOUBLE) "
            f"* CASE right({x}, 1) WHEN 'W' THEN 7.0 WHEN 'D' THEN 1.0 ELSE 1.0 / 24.0 END END")


def load_pp(ctx: Ctx, c: Cols, supp) -> None:
    """PP: the sponsor's pharmacokinetic parameters; 'NC' (not calculable) and other texts keep a NULL value."""
    add_supp_columns(ctx, "pk_parameters", supp)
    ctx.run(f"""INSERT INTO pk_parameters BY NAME SELECT {KEYSEL},
        _i_PPSEQ AS ppseq, upper({c('PPTESTCD')}) AS pptestcd, {c('PPTEST')} AS pptest,
        upper(trim({c('PPCAT')})) AS ppcat, {c('PPORRES')} AS pporres,
        coalesce(_n_PPSTRESN, {c.num('PPSTRESC')}, {c.num('PPORRES')}) AS value,
        coalesce({c('PPSTRESU')}, {c('PPORRESU')}) AS unit, upper({c('PPSTAT')}) AS ppstat,
        {c('PPSTINT')} AS ppstint, {c('PPENINT')} AS ppenint,
        {_iso_duration_days(c('PPSTINT'))} AS interval_start_day, {_iso_duration_days(c('PPENINT'))} AS interval_end_day,
        upper({c('PPSPEC')}) AS ppspec, {dated(c, 'PPRFTDTC', 'pprft')}
        {supp_select(supp)}
        FROM _t_PP t LEFT JOIN _subj s ON s.usubjid = t._usubjid WHERE {OK} ORDER BY t._file, t._row""")


def load_mh(ctx: Ctx, c: Cols, supp) -> None:
    """MH: medical history with its start and end relative to infusion (a partial start holding the infusion
    date is imputed to it when its end allows, as for AEs)."""
    add_supp_columns(ctx, "medical_history", supp)
    en = end_date("MHENDTC")
    ctx.run(f"""INSERT INTO medical_history BY NAME SELECT {KEYSEL},
        _i_MHSEQ AS mhseq, {c('MHTERM')} AS mhterm, {c('MHDECOD')} AS mhdecod, upper({c('MHCAT')}) AS mhcat,
        upper({c('MHSCAT')}) AS mhscat, {c('MHBODSYS')} AS mhbodsys, upper({c('MHOCCUR')}) AS mhoccur,
        upper({c('MHENRTPT')}) AS mhenrtpt, {c('VISIT')} AS visit,
        {dated(c, 'MHSTDTC', 'mhst', en)},
        CASE WHEN {en} <= $cut THEN {c('MHENDTC')} END AS mhendtc,
        CASE WHEN {en} <= $cut THEN {en} END AS mhen_date,
        {c('MHDTC')} AS mhdtc, t._lo_MHDTC AS mh_collection_date,
        datediff('day', s.inf_date, mhst_date) AS start_day, datediff('day', s.inf_date, mhen_date) AS end_day,
        datediff('day', s.inf_date, t._lo_MHDTC) AS collection_day
        {supp_select(supp)}
        FROM _t_MH t LEFT JOIN _subj s ON s.usubjid = t._usubjid WHERE {OK} ORDER BY t._file, t._row""")


LOADERS.update({"PP": load_pp, "MH": load_mh})
