"""Default DLT rules for grade 4 whatever its duration (R8 neurotoxicity AEs, R9 related non-haematological AEs),
against the usual CAR-T/CAR-NK protocol construct (clinical-rules.md section 5: 'any grade 4 ICANS/cerebral
oedema'; 'grade >= 3 non-haematologic toxicity at least possibly related'), both sides of each limit."""
from __future__ import annotations

import pytest

from safety.core.config import DEFAULT_DLT_RULES
from safety.derive.dlt.screening import derive_dlt
from test_dlt_support import CUT, STUDY, add_ae, add_assessment, add_subject, candidates, config, new_db


@pytest.fixture
def con(tmp_path):
    c = new_db(tmp_path / "s.duckdb")
    yield c
    c.close()


def screen(con):
    derive_dlt(con, STUDY, CUT, config())
    return candidates(con)


def test_existing_rules_keep_their_ids_and_evidence_text_and_grade4_rules_follow_them():
    by_id = {r["id"]: r for r in DEFAULT_DLT_RULES}
    assert [r["id"] for r in DEFAULT_DLT_RULES] == ["R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R9"]
    assert by_id["R6"]["reason"] == "Non-haematological grade >= 3 AE, at least possibly related, lasting more than 7 days"
    assert by_id["R6"]["more_than_days"] == 7
    assert "more_than_days" not in by_id["R9"] and by_id["R9"]["min_grade"] == 4 and by_id["R9"]["related_only"]


def test_related_grade4_aki_lasting_3_days_is_a_candidate(con):
    # clinical-rules.md section 5: related grade >= 3 non-haematological toxicity counts; grade 4 is not
    # excused by a short duration (R6's "> 7 days" applies to grade 3)
    add_subject(con, "S-1")
    add_ae(con, "S-1", 1, "Acute kidney injury", 4, 5, 7)            # related, days 5-7: 3 days
    c = screen(con)["S-1/AE/1"]
    assert (c["rule_id"], c["grade"], c["duration_days"], c["in_window"]) == ("R9", 4, 3, True)
    assert c["reason"] == "Non-haematological grade >= 4 AE, at least possibly related, any duration"
    assert c["evidence"] == "ACUTE KIDNEY INJURY grade 4 on days 5-7 (3 days), related (POSSIBLE)"


def test_grade4_aki_boundaries_grade3_short_and_unrelated_grade4_are_not_candidates(con):
    add_subject(con, "S-1")
    add_ae(con, "S-1", 1, "Acute kidney injury", 3, 5, 7)            # grade 3, 3 days: neither R6 nor R9
    add_subject(con, "S-2")
    add_ae(con, "S-2", 1, "Acute kidney injury", 4, 5, 7, related=False)   # unrelated grade 4
    add_subject(con, "S-3")
    add_ae(con, "S-3", 1, "Neutrophil count decreased", 4, 5, 7)     # haematological: excluded
    add_subject(con, "S-4")
    add_ae(con, "S-4", 1, "Acute kidney injury", 3, 5, 12)           # grade 3, 8 days: R6 as before
    got = screen(con)
    assert "S-1/AE/1" not in got and "S-2/AE/1" not in got and "S-3/AE/1" not in got
    assert got["S-4/AE/1"]["rule_id"] == "R6" and got["S-4/AE/1"]["also_matches"] is None


def test_an_ae_whose_causality_is_not_yet_entered_is_screened_and_says_so(con):
    # clinical-rules.md section 5 counts toxicity "at least possibly related"; a blank AEREL is no assessment at
    # all, not "unrelated": the event reaches the committee, whose adjudication decides (docs/dlt.md)
    add_subject(con, "S-1")
    add_ae(con, "S-1", 1, "Acute kidney injury", 4, 10, 12, related=None)   # grade 4, 3 days: R9
    add_ae(con, "S-1", 2, "Colitis", 3, 5, 20, related=None)                # grade 3, 16 days: R6
    add_ae(con, "S-1", 3, "Hepatic failure", 4, 10, 12, related=False)      # assessed unrelated: not screened
    got = screen(con)
    aki, colitis = got["S-1/AE/1"], got["S-1/AE/2"]
    assert (aki["rule_id"], aki["grade"], aki["in_window"]) == ("R9", 4, True)
    assert aki["evidence"] == ("ACUTE KIDNEY INJURY grade 4 on days 10-12 (3 days), causality not given (AEREL "
                               "blank): screened, since not yet assessed is not unrelated")
    assert (colitis["rule_id"], colitis["also_matches"]) == ("R6", None)
    assert "S-1/AE/3" not in got


def test_long_related_grade4_is_still_named_by_r6_with_its_evidence(con):
    add_subject(con, "S-1")
    add_ae(con, "S-1", 1, "Pneumonitis", 4, 5, 20)                   # 16 days: R6 first, R9 listed
    c = screen(con)["S-1/AE/1"]
    assert (c["rule_id"], c["also_matches"]) == ("R6", "R9")
    assert c["reason"] == "Non-haematological grade >= 3 AE, at least possibly related, lasting more than 7 days"


def test_one_day_grade4_seizure_without_icans_assessments_is_a_candidate(con):
    # clinical-rules.md section 5: "any grade 4 ICANS/cerebral oedema" counts; a seizure reported only as an AE
    add_subject(con, "S-1")
    add_ae(con, "S-1", 1, "Seizure", 4, 6, 6, related=False)         # 1 day, even attributed elsewhere
    add_subject(con, "S-2")
    add_assessment(con, "S-2", "ICANS", day=3)                        # with ICANS assessments too
    add_ae(con, "S-2", 1, "Generalised tonic-clonic seizure", 4, 4, 4)
    got = screen(con)
    c = got["S-1/AE/1"]
    assert (c["rule_id"], c["grade"], c["duration_days"]) == ("R8", 4, 1)
    assert c["reason"] == "Neurotoxicity grade >= 4 reported as an AE (seizure, encephalopathy, cerebral oedema)"
    assert got["S-2/AE/1"]["rule_id"] == "R8"


def test_grade3_seizure_is_not_a_candidate_and_a_late_grade4_encephalopathy_is_outside_the_window(con):
    add_subject(con, "S-1")
    add_ae(con, "S-1", 1, "Seizure", 3, 6, 6)                        # grade 3, 1 day: below R8, too short for R6
    add_subject(con, "S-2")
    add_ae(con, "S-2", 1, "Encephalopathy", 4, 40, 41)               # grade 4 but outside the day 0-28 window
    got = screen(con)
    assert "S-1/AE/1" not in got
    assert got["S-2/AE/1"]["rule_id"] == "R8" and got["S-2/AE/1"]["in_window"] is False
