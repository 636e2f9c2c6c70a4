"""Stopping and escalation rules against analytic values (scipy) and the published numbers (clinical-rules §6)."""
from __future__ import annotations

import itertools

import pytest
from scipy import integrate, stats

from safety.derive.dlt import stopping as st
from test_dlt_support import CUT, STUDY, add_ae, add_subject, config, new_db, rows


# --- beta-binomial ------------------------------------------------------------------------------------

def test_beta_binomial_posterior_matches_numerical_integration_and_the_worked_example():
    # 4 events in 8 with Beta(0.5, 1.5) -> Beta(4.5, 5.5): P(p > 0.25) = 0.906 (crosses 0.90); 3/8 -> 0.732
    by_quad = integrate.quad(lambda p: stats.beta.pdf(p, 4.5, 5.5), 0.25, 1)[0]
    assert st.beta_binomial_posterior(4, 8, 0.25, 0.5, 1.5) == pytest.approx(by_quad, abs=1e-9)
    assert round(st.beta_binomial_posterior(4, 8, 0.25, 0.5, 1.5), 3) == 0.906
    assert round(st.beta_binomial_posterior(3, 8, 0.25, 0.5, 1.5), 3) == 0.732


def _expand(spec):
    return {n: b for b, ns in spec for n in ns}


def test_beta_binomial_boundaries_c090_n1_to_24():
    expected = {1: None, **_expand([(2, [2]), (3, range(3, 6)), (4, range(6, 9)), (5, range(9, 12)),
                                    (6, range(12, 15)), (7, range(15, 18)), (8, range(18, 21)),
                                    (9, range(21, 24)), (10, [24])])}
    got = st.beta_binomial_boundaries(24, 0.25, 0.5, 1.5, 0.90)
    assert got == expected
    for n, b in got.items():  # b_n is the smallest count whose posterior exceeds the cut-off
        if b is not None:
            assert st.beta_binomial_posterior(b, n, 0.25, 0.5, 1.5) > 0.90
            assert b == 0 or st.beta_binomial_posterior(b - 1, n, 0.25, 0.5, 1.5) <= 0.90
    p_stop = [round(st.crossing_probability(got, p), 3) for p in (0.10, 0.15, 0.20, 0.25, 0.30, 0.40, 0.50)]
    assert p_stop == [0.019, 0.060, 0.138, 0.263, 0.425, 0.754, 0.941]


def test_beta_binomial_boundaries_c095_from_n3():
    got = st.beta_binomial_boundaries(24, 0.25, 0.5, 1.5, 0.95, min_n=3)
    assert got == {1: None, 2: None, **_expand([(3, [3, 4]), (4, [5, 6]), (5, [7, 8, 9]), (6, [10, 11, 12]),
                                                 (7, [13, 14, 15]), (8, [16, 17, 18]), (9, [19, 20, 21]),
                                                 (10, [22, 23, 24])])}
    p_stop = [round(st.crossing_probability(got, p), 3) for p in (0.10, 0.15, 0.20, 0.25, 0.30, 0.40, 0.50)]
    assert p_stop == [0.005, 0.021, 0.062, 0.147, 0.282, 0.636, 0.898]


@pytest.mark.parametrize("p0, a, b, cutoff", [(0.25, 0.5, 1.5, 0.90), (0.20, 1.0, 1.0, 0.95), (0.33, 2.0, 4.0, 0.80),
                                              (0.05, 0.5, 4.0, 0.99), (0.50, 1.0, 0.5, 0.99)])
def test_beta_binomial_boundary_is_the_smallest_crossing_count_at_any_size(p0, a, b, cutoff):
    # the boundary is found by bisection; every count's posterior, scanned, must give the same smallest crossing
    # (n = 0, no subject yet, included)
    for n in [*range(0, 40), 97, 1000]:
        post = [st.beta_binomial_posterior(y, n, p0, a, b) for y in range(n + 1)]
        first = next((y for y, v in enumerate(post) if v > cutoff), None)
        assert st.beta_binomial_boundary(n, p0, a, b, cutoff) == first, n
    # 20,000 evaluable subjects, too many to scan here: the boundary crosses and the count below it does not
    got = st.beta_binomial_boundary(20000, p0, a, b, cutoff)
    assert got is not None and st.beta_binomial_posterior(got, 20000, p0, a, b) > cutoff
    assert got == 0 or st.beta_binomial_posterior(got - 1, 20000, p0, a, b) <= cutoff
    # a cut-off no count reaches: no boundary
    assert st.beta_binomial_boundary(1, 0.25, 0.5, 1.5, 0.999999) is None


def test_crossing_probability_equals_brute_force_over_every_outcome_path():
    bounds = {1: None, 2: 2, 3: 2, 4: 3, 5: 3, 6: 3, 7: 4, 8: 4}
    p = 0.3
    total = 0.0
    for path in itertools.product((0, 1), repeat=8):
        y = 0
        for n, x in enumerate(path, start=1):
            y += x
            if bounds[n] is not None and y >= bounds[n]:
                total += p ** sum(path) * (1 - p) ** (8 - sum(path))
                break
    assert st.crossing_probability(bounds, p) == pytest.approx(total, abs=1e-12)


# --- Pocock -------------------------------------------------------------------------------------------

def test_pocock_p020_n24_alpha010():
    level, bounds = st.pocock_boundaries(0.20, 24, 0.10)
    lo, hi = st.pocock_level_range(0.20, 24, 0.10)
    assert level == lo
    assert round(hi, 3) == 0.040  # the published alpha* ~ 0.040 is where the next boundary would tighten
    assert 0.037 < level < 0.040
    assert bounds == {1: None, 2: None, **_expand([(3, [3, 4]), (4, range(5, 8)), (5, range(8, 11)),
                                                    (6, range(11, 14)), (7, range(14, 18)), (8, range(18, 21)),
                                                    (9, range(21, 25))])}
    assert st.crossing_probability(bounds, 0.20) <= 0.10
    # any higher nominal level adds a boundary and breaks the overall level
    assert st.crossing_probability(st._pocock_bounds_at(hi, 0.20, 24, 1), 0.20) > 0.10
    for n, b in bounds.items():  # b_n: smallest b with P(Bin(n, p0) >= b) <= alpha*
        if b is not None:
            assert stats.binom.sf(b - 1, n, 0.20) <= level + 1e-15
            assert stats.binom.sf(b - 2, n, 0.20) > level
    p_cross = [round(st.crossing_probability(bounds, p), 3) for p in (0.10, 0.20, 0.30, 0.35, 0.40, 0.50)]
    assert p_cross == [0.007, 0.095, 0.387, 0.578, 0.749, 0.946]


# --- BOIN ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("target, lam_e, lam_d", [(0.20, 0.157, 0.239), (0.25, 0.197, 0.298),
                                                   (0.30, 0.236, 0.358), (0.33, 0.260, 0.395)])
def test_boin_intervals_published(target, lam_e, lam_d):
    e, d = st.boin_intervals(target)
    # the printed values are rounded or truncated to 3 decimals (0.30 -> lambda_d 0.35852 printed 0.358)
    assert e == pytest.approx(lam_e, abs=6e-4) and d == pytest.approx(lam_d, abs=6e-4)


def test_boin_count_tables_published():
    t30 = st.boin_table(0.30, 15).set_index("n")
    assert list(t30["escalate_if_le"]) == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3]
    assert list(t30["deescalate_if_ge"]) == [1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 6, 6]
    assert list(t30["eliminate_if_ge"].iloc[2:].astype(int)) == [3, 3, 4, 4, 5, 5, 5, 6, 6, 7, 7, 8, 8]
    assert t30["eliminate_if_ge"].iloc[:2].isna().all()
    t25 = st.boin_table(0.25, 15).set_index("n")
    assert list(t25["escalate_if_le"]) == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2]
    assert list(t25["deescalate_if_ge"]) == [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 5, 5]
    assert list(t25["eliminate_if_ge"].iloc[2:].astype(int)) == [3, 3, 3, 4, 4, 4, 5, 5, 6, 6, 6, 7, 7]


def test_boin_worked_decisions_target_030():
    assert st.boin_decision(3, 1, 0.30) == "stay"
    assert st.boin_decision(6, 1, 0.30) == "escalate"
    assert st.boin_decision(6, 3, 0.30) == "de-escalate"
    assert round(float(stats.beta.sf(0.30, 4, 4)), 3) == 0.874
    assert st.boin_decision(6, 4, 0.30) == "eliminate"
    assert round(float(stats.beta.sf(0.30, 5, 3)), 3) == 0.971
    assert st.boin_decision(3, 3, 0.30) == "eliminate"
    assert round(float(stats.beta.sf(0.30, 4, 1)), 3) == 0.992
    assert st.boin_decision(2, 2, 0.30) == "de-escalate"  # elimination only from n = 3


# --- 3+3 ----------------------------------------------------------------------------------------------

def test_three_plus_three_p_escalate_published_and_by_enumeration():
    expected = {0.10: 0.906, 0.20: 0.709, 0.25: 0.600, 0.30: 0.494, 0.40: 0.309, 0.50: 0.172}
    for p, value in expected.items():
        assert round(st.three_plus_three_p_escalate(p), 3) == value
        # enumerate: 0/3, or 1/3 then 0/3 in the expansion
        by_binom = stats.binom.pmf(0, 3, p) + stats.binom.pmf(1, 3, p) * stats.binom.pmf(0, 3, p)
        assert st.three_plus_three_p_escalate(p) == pytest.approx(by_binom, abs=1e-12)


@pytest.mark.parametrize("n, y, decision", [(2, 0, "stay"), (3, 0, "escalate"), (3, 1, "stay"), (3, 2, "de-escalate"),
                                            (5, 1, "stay"), (6, 1, "escalate"), (6, 2, "de-escalate"),
                                            (2, 2, "de-escalate")])
def test_three_plus_three_decisions(n, y, decision):
    assert st.three_plus_three_decision(n, y) == decision


# --- status and boundary tables from data -------------------------------------------------------------

def _study(tmp_path, n_subjects, dlt_subjects, cohort_of=lambda i: "C1", dose_of=lambda i: "DL1", **cfg):
    from safety.derive.dlt.screening import derive_dlt
    con = new_db(tmp_path / "s.duckdb")
    for i in range(1, n_subjects + 1):
        add_subject(con, f"S-{i:02d}", cohort=cohort_of(i), dose_level=dose_of(i))
        if i in dlt_subjects:
            add_ae(con, f"S-{i:02d}", 1, "Pneumonitis", 3, 5, 20)  # R6: related, 16 days
    c = config(**cfg)
    derive_dlt(con, STUDY, CUT, c)
    st.derive_stopping_status(con, STUDY, CUT, c)
    return con


def test_beta_binomial_status_from_screened_candidates(tmp_path):
    con = _study(tmp_path, 8, {1, 2, 3})
    [row] = rows(con, "SELECT * FROM stopping_rule_status")
    assert row["cohort"] is None and row["evaluable_n"] == 8 and row["events"] == 3
    assert row["computed_from"] == "screened candidates"
    assert row["statistic_label"] == "P(rate > 0.25 | data)"
    assert row["statistic"] == pytest.approx(stats.beta.sf(0.25, 3.5, 6.5))
    assert row["decision"] == "continue"
    # b_9 = 5, b_10 = 5: two more events in the next two subjects would cross
    assert row["events_to_boundary"] == "2 more DLTs in the next 2 subjects would stop"
    assert (row["events_needed"], row["within_next"]) == (2, 2)
    assert row["sentence"].startswith("Bayesian beta-binomial (Thall, Simon & Estey 1995): "
                                      "3 of 8 evaluable subjects had a DLT")
    bounds = rows(con, "SELECT n, stop_if_events_ge FROM stopping_boundaries ORDER BY n")
    assert [b["n"] for b in bounds] == list(range(1, 25))
    assert bounds[7]["stop_if_events_ge"] == 4 and bounds[0]["stop_if_events_ge"] is None


def test_beta_binomial_status_stops_at_four_of_eight(tmp_path):
    con = _study(tmp_path, 8, {1, 2, 3, 4})
    [row] = rows(con, "SELECT * FROM stopping_rule_status")
    assert row["decision"] == "stop" and round(row["statistic"], 3) == 0.906
    assert row["events_to_boundary"] == "boundary crossed" and row["events_needed"] == 0


def test_pocock_status(tmp_path):
    con = _study(tmp_path, 9, {1, 2, 3, 4}, stopping_rule={"method": "pocock", "threshold": 0.20})
    [row] = rows(con, "SELECT * FROM stopping_rule_status")
    assert row["decision"] == "continue"  # b_9 = 5
    assert row["boundary_events"] == 5
    assert row["statistic"] == pytest.approx(stats.binom.sf(3, 9, 0.20))
    assert row["events_to_boundary"] == "1 more DLT in the next subject would stop"
    lvl = rows(con, "SELECT DISTINCT nominal_level FROM stopping_boundaries")[0]["nominal_level"]
    assert 0.037 < lvl < 0.040


def test_boin_status_per_cohort(tmp_path):
    con = _study(tmp_path, 9, {1, 4, 5, 6}, cohort_of=lambda i: "C1" if i <= 3 else "C2",
                 stopping_rule={"method": "boin", "threshold": 0.30, "group_by": "cohort"})
    by = {r["cohort"]: r for r in rows(con, "SELECT * FROM stopping_rule_status")}
    assert by["C1"]["evaluable_n"] == 3 and by["C1"]["events"] == 1 and by["C1"]["decision"] == "stay"
    assert by["C1"]["statistic_label"] == "observed rate"
    assert "1 more DLT in the next subject would de-escalate" in by["C1"]["events_to_boundary"]
    assert by["C2"]["evaluable_n"] == 6 and by["C2"]["events"] == 3 and by["C2"]["decision"] == "de-escalate"
    bounds = rows(con, "SELECT * FROM stopping_boundaries ORDER BY n")
    assert bounds[5]["escalate_if_le"] == 1 and bounds[5]["deescalate_if_ge"] == 3 and bounds[5]["eliminate_if_ge"] == 4


def test_three_plus_three_status(tmp_path):
    con = _study(tmp_path, 6, {1}, cohort_of=lambda i: "C1" if i <= 3 else "C2",
                 stopping_rule={"method": "three_plus_three", "group_by": "cohort"})
    by = {r["cohort"]: r for r in rows(con, "SELECT * FROM stopping_rule_status")}
    assert by["C1"]["decision"] == "stay" and "stay and expand to 6" in by["C1"]["sentence"]
    # the earliest crossing: 2 of 4 exceeds the MTD, one DLT in the next subject, not 'among the next 3'
    assert by["C1"]["events_to_boundary"] == "1 more DLT in the next subject would exceed the MTD"
    assert (by["C1"]["events_needed"], by["C1"]["within_next"]) == (1, 1)
    assert ": stay and expand to 6. 1 more DLT in the next subject would exceed the MTD." in by["C1"]["sentence"]
    assert by["C2"]["decision"] == "escalate"


def test_non_dlt_monitored_event(tmp_path):
    from safety.derive.dlt.screening import derive_dlt
    con = new_db(tmp_path / "s.duckdb", upstream=False)
    for i in range(1, 5):
        add_subject(con, f"S-{i}")
    add_ae(con, "S-1", 1, "Cytokine release syndrome", 3, 2, 3)  # grade 3 CRS, not a DLT (2 days)
    add_ae(con, "S-2", 1, "Cytokine release syndrome", 2, 2, 3)
    c = config(stopping_rule={"event": "crs_grade3"})
    derive_dlt(con, STUDY, CUT, c)
    st.derive_stopping_status(con, STUDY, CUT, c)
    [row] = rows(con, "SELECT * FROM stopping_rule_status")
    assert (row["evaluable_n"], row["events"], row["computed_from"]) == (4, 1, "toxicity data")
    assert "CRS grade >= 3" in row["sentence"] and "DLT" not in row["sentence"]


def _crs_study(tmp_path, n_subjects, crs_subjects, **rule):
    """Subjects followed through the window; ``crs_subjects`` had grade 3 CRS on day 2 (not a DLT: 2 days)."""
    from safety.derive.dlt.screening import derive_dlt
    con = new_db(tmp_path / "s.duckdb", upstream=False)
    for i in range(1, n_subjects + 1):
        add_subject(con, f"S-{i}")
        if i in crs_subjects:
            add_ae(con, f"S-{i}", 1, "Cytokine release syndrome", 3, 2, 3)
    c = config(stopping_rule={"event": "crs_icans_grade3", **rule})
    derive_dlt(con, STUDY, CUT, c)
    st.derive_stopping_status(con, STUDY, CUT, c)
    return rows(con, "SELECT * FROM stopping_rule_status")


def test_look_ahead_names_the_monitored_event_not_dlt(tmp_path):
    # BOIN phi 0.30 (clinical-rules.md 6.2): 1 of 3 stays; 2 of 4 reaches D = 2; Elim 3, 4, 4 at n = 4, 5, 6, so
    # 4 of 6 (3 more in the next 3) is the first elimination within a cohort
    [row] = _crs_study(tmp_path, 3, {1}, method="boin", threshold=0.30)
    assert (row["evaluable_n"], row["events"], row["decision"]) == (3, 1, "stay")
    ahead = ("1 more CRS or ICANS grade >= 3 in the next subject would de-escalate; 3 more CRS or ICANS grade >= 3 "
             "events in the next 3 subjects would eliminate the dose and every higher dose")
    assert row["events_to_boundary"] == ahead
    assert row["sentence"] == ("BOIN (Liu & Yuan 2015), dose level DL1: 1 of 3 evaluable subjects had a CRS or ICANS "
                               f"grade >= 3 (rate 0.33): stay. {ahead[0].upper()}{ahead[1:]}.")
    (tmp_path / "b").mkdir()  # 3+3: 1 of 3 expands to 6; 2 of 4 would already exceed the MTD
    [row] = _crs_study(tmp_path / "b", 3, {1}, method="three_plus_three")
    assert row["events_to_boundary"] == "1 more CRS or ICANS grade >= 3 in the next subject would exceed the MTD"
    (tmp_path / "c").mkdir()  # beta-binomial c 0.90 (clinical-rules.md 6.4): b_5 3, b_6 4, b_7 4 -> 3 more in 3
    [row] = _crs_study(tmp_path / "c", 4, {1})
    assert row["events_to_boundary"] == "3 more CRS or ICANS grade >= 3 events in the next 3 subjects would stop"
    for r in (row,):
        assert "DLT" not in r["sentence"] and "grade >= 3s" not in r["sentence"]


def test_study_rules_before_min_n_say_monitoring_has_not_started(tmp_path):
    # ITNK-B-01's rule: Beta(0.5, 1.5), p0 0.25, cut-off 0.90, from min_n 3. 2 of 2: P = beta.sf(0.25, 2.5, 1.5)
    # = 0.942 > 0.90, yet the rule looks first at n = 3 (b_3 = 3, clinical-rules.md 6.4)
    [row] = _crs_study(tmp_path, 2, {1, 2}, min_n=3)
    assert row["statistic"] == pytest.approx(stats.beta.sf(0.25, 2.5, 1.5)) and round(row["statistic"], 3) == 0.942
    assert (row["decision"], row["boundary_events"]) == ("continue", None)
    assert row["boundary"] == "no stop before n = 3 (the rule is applied from 3 evaluable subjects)"
    assert row["sentence"] == ("Bayesian beta-binomial (Thall, Simon & Estey 1995): 2 of 2 evaluable subjects had a "
                               "CRS or ICANS grade >= 3; the rule is applied from 3 evaluable subjects: continue. "
                               "1 more CRS or ICANS grade >= 3 in the next subject would stop.")
    (tmp_path / "b").mkdir()  # Pocock p0 0.20: P(Bin(2, 0.2) >= 2) = 0.04, below the nominal level, before min_n
    [row] = _crs_study(tmp_path / "b", 2, {1, 2}, method="pocock", threshold=0.20, min_n=3)
    assert row["statistic"] == pytest.approx(stats.binom.sf(1, 2, 0.20))
    assert row["boundary"] == "no stop before n = 3 (the rule is applied from 3 evaluable subjects)"
    assert "2 of 2 evaluable subjects had a CRS or ICANS grade >= 3; the rule is applied from 3 evaluable subjects: " \
        "continue." in row["sentence"] and "nominal level" not in row["sentence"]
    (tmp_path / "c").mkdir()  # from min_n on, the statistic against the cut-off as before: 2 of 3, P = 0.857
    [row] = _crs_study(tmp_path / "c", 3, {1, 2}, min_n=3)
    assert row["boundary"] == "stop if 3 or more of 3 (posterior > 0.9)"
    assert "2 of 3 evaluable subjects had a CRS or ICANS grade >= 3; P(rate > 0.25 | data) = " \
        f"{stats.beta.sf(0.25, 2.5, 2.5):.3f} against the stopping cut-off 0.9: continue." in row["sentence"]


def test_no_evaluable_subject_yet_has_no_rate(tmp_path):
    # one infused subject at day 10 of a 0-28 window, no event: not evaluable, so y/n is undefined (not 0.00)
    from safety.derive.dlt.screening import derive_dlt
    from safety.review.meeting import INSIDE, NEAR, rule_level
    con = new_db(tmp_path / "s.duckdb")
    add_subject(con, "S-01", last_day=10)
    c = config(stopping_rule={"method": "boin", "threshold": 0.30})
    derive_dlt(con, STUDY, CUT, c)
    st.derive_stopping_status(con, STUDY, CUT, c)
    [row] = rows(con, "SELECT * FROM stopping_rule_status")
    assert (row["evaluable_n"], row["events"], row["statistic"], row["decision"]) == (0, 0, None, "stay")
    # BOIN phi 0.30 at n = 1: D = 1 (clinical-rules.md 6.2), so a DLT in the first evaluable subject de-escalates:
    # one event from the boundary is true; Elim first at n = 3 with 3
    assert row["sentence"] == ("BOIN (Liu & Yuan 2015), dose level DL1: no subject is evaluable yet (no rate): stay. "
                               "1 DLT in the next subject would de-escalate; 3 DLTs in the next 3 subjects would "
                               "eliminate the dose and every higher dose.")
    assert "0 of 0" not in row["sentence"] and "0.00" not in row["sentence"]
    assert (row["events_needed"], row["within_next"]) == (1, 1) and rule_level(row) == NEAR
    # 3+3: 1 DLT in the first subject does not exceed the MTD (>= 2 needed): inside, not near
    c = config(stopping_rule={"method": "three_plus_three"})
    st.derive_stopping_status(con, STUDY, CUT, c)
    [row] = rows(con, "SELECT * FROM stopping_rule_status")
    assert row["sentence"].startswith("3+3, dose level DL1: no subject is evaluable yet (no rate): stay.")
    assert rule_level(row) == INSIDE
    # a study-level rule: Beta(0.5, 1.5), p0 0.25, c 0.90: b_1 none, b_2 = 2 (clinical-rules.md 6.4)
    st.derive_stopping_status(con, STUDY, CUT, config())
    [row] = rows(con, "SELECT * FROM stopping_rule_status")
    assert row["sentence"] == ("Bayesian beta-binomial (Thall, Simon & Estey 1995): no subject is evaluable yet; the "
                               "rule is applied from 1 evaluable subject: continue. 2 DLTs in the next 2 subjects "
                               "would stop.")
    assert rule_level(row) == INSIDE


def test_event_label_plural():
    assert [st.event_label(e, count=2) for e in ("dlt", "crs_grade3", "treatment_related_death")] == \
        ["DLTs", "CRS grade >= 3 events", "treatment-related deaths"]
    assert st.event_label("icans_grade3", (0, 28), count=3) == "ICANS grade >= 3 events (onset days 0-28)"
    assert st.event_label("dlt", count=1) == "DLT"


def test_rules_are_named_as_protocols_print_them():
    from safety.derive.dlt.stopping import method_name
    assert [method_name(m) for m in ("boin", "three_plus_three", "pocock", "bayesian_beta_binomial")] == \
        ["BOIN", "3+3", "Pocock-type", "Bayesian beta-binomial"]
    assert method_name("a_custom_rule") == "a_custom_rule"


# --- pending candidates, dose-level grouping, elimination carry-over, 3+3 limits, titles ------------------

def _pending_study(tmp_path, n_subjects, pending_subjects, dose_of=lambda i: "DL1", **cfg):
    """Subjects followed through the window; ``pending_subjects`` hold an in-window R6 candidate nobody has
    adjudicated yet; the load ran with a (still empty) review store, as ingest does."""
    from safety.derive.dlt.screening import derive_dlt
    from safety.review.store import ReviewStore
    con = new_db(tmp_path / "s.duckdb")
    store = ReviewStore(tmp_path / "s.review.sqlite")
    for i in range(1, n_subjects + 1):
        add_subject(con, f"S-{i:02d}", dose_level=dose_of(i))
        if i in pending_subjects:
            add_ae(con, f"S-{i:02d}", 1, "Pneumonitis", 3, 5, 20)
    c = config(**cfg)
    derive_dlt(con, STUDY, CUT, c, review_store=store)
    st.derive_stopping_status(con, STUDY, CUT, c, review_store=store)
    return con, store, c


@pytest.mark.parametrize("n, pending, if_confirmed", [
    (3, 3, "eliminate"), (6, 4, "eliminate"), (9, 5, "eliminate"),        # clinical-rules 6.2, phi 0.30: Elim 3, 4, 5
    (3, 2, "de-escalate"), (6, 3, "de-escalate"), (9, 4, "de-escalate"),  # one fewer: D 2, 3, 4 but not Elim
])
def test_boin_pending_candidates_give_the_decision_if_confirmed(tmp_path, n, pending, if_confirmed):
    # BOIN (Liu & Yuan 2015) target 0.30, count table of clinical-rules.md section 6.2: 0 of n adjudicated
    # escalates; with the pending candidates confirmed the same dose reaches Elim (or only D one below it)
    con, store, c = _pending_study(tmp_path, n, set(range(1, pending + 1)),
                                   stopping_rule={"method": "boin", "threshold": 0.30})
    [row] = rows(con, "SELECT * FROM stopping_rule_status")
    assert (row["cohort"], row["computed_from"]) == ("DL1", "adjudicated")
    assert (row["evaluable_n"], row["events"], row["pending"], row["decision"]) == (n, 0, pending, "escalate")
    assert (row["evaluable_n_if_pending_confirmed"], row["events_if_pending_confirmed"]) == (n, pending)
    assert row["decision_if_pending_confirmed"] == if_confirmed and row["pending_changes_decision"] is True
    assert f"{pending} pending candidates would change escalate to {if_confirmed} if confirmed ({pending} of {n})" \
        in row["sentence"]
    # the live result the app computes carries the same two decisions
    from safety.access.reader import Scope, StudyReader
    from safety.review.dlt_status import live_stopping_status
    [live] = live_stopping_status(StudyReader(con, Scope(STUDY, CUT)), store, c).to_dict("records")
    assert (live["decision"], live["decision_if_pending_confirmed"], live["pending"]) == ("escalate", if_confirmed, pending)
    assert bool(live["pending_changes_decision"]) is True


def test_pending_candidates_that_would_not_change_the_decision_say_so(tmp_path):
    # BOIN phi 0.30 at n = 6: E = 1, so 1 of 6 still escalates (clinical-rules.md 6.2)
    con, _, _ = _pending_study(tmp_path, 6, {1}, stopping_rule={"method": "boin", "threshold": 0.30})
    [row] = rows(con, "SELECT * FROM stopping_rule_status")
    assert (row["decision"], row["decision_if_pending_confirmed"], row["pending_changes_decision"]) == \
        ("escalate", "escalate", False)
    assert "With the 1 pending candidate confirmed (1 of 6) the decision would still be escalate." in row["sentence"]


def test_beta_binomial_pending_candidates_would_stop(tmp_path):
    # Thall, Simon & Estey / Geller "BB", p0 0.25, Beta(0.5, 1.5), c 0.90: b_8 = 4 (clinical-rules.md 6.4)
    con, _, _ = _pending_study(tmp_path, 8, {1, 2, 3, 4})
    [row] = rows(con, "SELECT * FROM stopping_rule_status")
    assert (row["decision"], row["decision_if_pending_confirmed"], row["events_if_pending_confirmed"]) == \
        ("continue", "stop", 4)
    assert "4 pending candidates would change continue to stop if confirmed" in row["sentence"]
    (tmp_path / "b").mkdir()
    con2, _, _ = _pending_study(tmp_path / "b", 8, {1, 2, 3})
    [row] = rows(con2, "SELECT * FROM stopping_rule_status")  # 3 of 8: 0.732, below 0.90
    assert (row["decision_if_pending_confirmed"], row["pending_changes_decision"]) == ("continue", False)


def test_boin_and_3plus3_group_by_dose_level_by_default(tmp_path):
    assert config()["stopping_rule"]["group_by"] == "dose_level"
    # two cohorts at one dose: BOIN (Liu & Yuan 2015) decides per dose, 1 of 6 at phi 0.30 -> escalate
    con = _study(tmp_path, 6, {1}, cohort_of=lambda i: "C1" if i <= 3 else "C2",
                 stopping_rule={"method": "boin", "threshold": 0.30})
    [row] = rows(con, "SELECT * FROM stopping_rule_status")
    assert (row["cohort"], row["evaluable_n"], row["events"], row["decision"]) == ("DL1", 6, 1, "escalate")
    assert row["sentence"].startswith("BOIN (Liu & Yuan 2015), dose level DL1: 1 of 6 evaluable subjects had a DLT")


def test_boin_elimination_carries_to_every_higher_dose(tmp_path):
    # Liu & Yuan 2015 (clinical-rules.md 6.2): eliminate "this and higher doses"; 3 of 3 at phi 0.30 eliminates
    dose = {1: "DL1", 2: "DL1", 3: "DL1", 4: "DL2", 5: "DL2", 6: "DL2", 7: "DL10", 8: "DL10", 9: "DL10"}
    con = _study(tmp_path, 9, {4, 5, 6}, dose_of=dose.get, stopping_rule={"method": "boin", "threshold": 0.30})
    by = {r["cohort"]: r for r in rows(con, "SELECT * FROM stopping_rule_status")}
    # below the eliminated dose: 0 of 3 would escalate, but into an eliminated dose BOIN stays (R BOIN get.oc)
    assert by["DL1"]["decision"] == "stay"
    assert "(rate 0.00): stay (the higher dose level DL2 is eliminated)." in by["DL1"]["sentence"]
    assert by["DL2"]["decision"] == "eliminate"
    assert by["DL10"]["decision"] == "eliminate"          # 0 of 3 alone would escalate; DL10 sorts above DL2
    assert "eliminate (the lower dose level DL2 is eliminated)" in by["DL10"]["sentence"]
    (tmp_path / "b").mkdir()
    con2 = _study(tmp_path / "b", 9, {1, 2}, dose_of=dose.get, stopping_rule={"method": "boin", "threshold": 0.30})
    by = {r["cohort"]: r for r in rows(con2, "SELECT * FROM stopping_rule_status")}
    # 2 of 3 de-escalates but does not eliminate: nothing carries. Without dose_order the treated doses need not
    # be the ends of the plan (a DL-1 below, a DL11 above): DL1 de-escalates and DL10 escalates
    assert [by[d]["decision"] for d in ("DL1", "DL2", "DL10")] == ["de-escalate", "escalate", "escalate"]


def test_boin_eliminating_the_lowest_dose_stops_the_trial(tmp_path):
    # Liu & Yuan 2015 (clinical-rules.md 6.2): "eliminate this and higher doses (stop trial if lowest dose)";
    # 3 of 3 at phi 0.30: P(p > 0.3 | Beta(4, 1)) = 1 - 0.3^4 = 0.9919 > 0.95
    assert stats.beta.sf(0.30, 4, 1) == pytest.approx(1 - 0.3 ** 4) and 1 - 0.3 ** 4 > 0.95
    dose = {1: "DL1", 2: "DL1", 3: "DL1", 4: "DL2", 5: "DL2", 6: "DL2"}
    rule = {"method": "boin", "threshold": 0.30}
    con = _study(tmp_path, 6, {1, 2, 3}, dose_of=dose.get, stopping_rule=rule)
    by = {r["cohort"]: r for r in rows(con, "SELECT * FROM stopping_rule_status")}
    assert [by[d]["decision"] for d in ("DL1", "DL2")] == ["eliminate", "eliminate"]  # per dose, as before
    assert ("(rate 1.00): eliminate; it is the lowest dose level, so the trial stops for safety.") in by["DL1"]["sentence"]
    assert ("eliminate (the lower dose level DL1 is eliminated; it is the lowest, so the trial stops for safety).") \
        in by["DL2"]["sentence"]
    (tmp_path / "b").mkdir()  # a lower dose nobody was treated at (dose_order): the trial can still go down to DL0
    con = _study(tmp_path / "b", 6, {1, 2, 3}, dose_of=dose.get, stopping_rule={**rule, "dose_order": ["DL0", "DL1", "DL2"]})
    by = {r["cohort"]: r for r in rows(con, "SELECT * FROM stopping_rule_status")}
    assert by["DL1"]["decision"] == "eliminate" and "trial stops" not in by["DL1"]["sentence"] + by["DL2"]["sentence"]
    (tmp_path / "c").mkdir()  # eliminating only with the pending candidates confirmed says what that would mean
    con, _, _ = _pending_study(tmp_path / "c", 6, {1, 2, 3}, dose_of=dose.get, stopping_rule=rule)
    [dl1] = rows(con, "SELECT * FROM stopping_rule_status WHERE cohort = 'DL1'")
    assert (dl1["decision"], dl1["decision_if_pending_confirmed"]) == ("escalate", "eliminate")
    assert dl1["sentence"].endswith("3 pending candidates would change escalate to eliminate if confirmed (3 of 3). "
                                    "Eliminating the lowest dose level would stop the trial for safety.")


def test_boin_stays_at_the_highest_planned_dose_and_3plus3_does_not_escalate_into_an_exceeded_mtd(tmp_path):
    """R BOIN get.oc: no escalation from the highest dose, none into an eliminated one, no de-escalation from the
    lowest. 3+3 (clinical-rules.md 6.1): with the next dose past the MTD, 0 of 3 is expanded to 6 to be the MTD, and
    at most 1 of 6 is the MTD, not a step back up to the dose that exceeded it."""
    dose = {1: "DL1", 2: "DL1", 3: "DL1", 4: "DL2", 5: "DL2", 6: "DL2"}
    boin = {"method": "boin", "threshold": 0.30, "dose_order": ["DL1", "DL2"]}
    con = _study(tmp_path, 6, set(), dose_of=dose.get, stopping_rule=boin)
    by = {r["cohort"]: r for r in rows(con, "SELECT * FROM stopping_rule_status")}
    assert [by[d]["decision"] for d in ("DL1", "DL2")] == ["escalate", "stay"]
    assert "(rate 0.00): stay (the highest dose level: none higher to escalate to)." in by["DL2"]["sentence"]
    (tmp_path / "a").mkdir()  # 2 of 3 at DL1, the lowest planned: nowhere lower to go
    con = _study(tmp_path / "a", 6, {1, 2}, dose_of=dose.get, stopping_rule=boin)
    by = {r["cohort"]: r for r in rows(con, "SELECT * FROM stopping_rule_status")}
    assert by["DL1"]["decision"] == "stay"
    assert "(rate 0.67): stay (the lowest dose level: none lower to de-escalate to)." in by["DL1"]["sentence"]
    (tmp_path / "b").mkdir()  # DL2 past the MTD: DL1 at 0 of 3 is expanded to 6
    con = _study(tmp_path / "b", 6, {4, 5}, dose_of=dose.get, stopping_rule={"method": "three_plus_three"})
    by = {r["cohort"]: r for r in rows(con, "SELECT * FROM stopping_rule_status")}
    assert [by[d]["decision"] for d in ("DL1", "DL2")] == ["stay", "de-escalate"]
    assert "(rate 0.00): stay and expand to 6 (the higher dose level DL2 exceeded the MTD)." in by["DL1"]["sentence"]
    (tmp_path / "c").mkdir()  # 1 of 6 at DL1 below it: DL1 is the MTD
    dose9 = {**{i: "DL1" for i in range(1, 7)}, 7: "DL2", 8: "DL2", 9: "DL2"}
    con = _study(tmp_path / "c", 9, {1, 7, 8}, dose_of=dose9.get, stopping_rule={"method": "three_plus_three"})
    by = {r["cohort"]: r for r in rows(con, "SELECT * FROM stopping_rule_status")}
    assert [by[d]["decision"] for d in ("DL1", "DL2")] == ["stay", "de-escalate"]
    assert "(rate 0.17): stay: the MTD (the higher dose level DL2 exceeded the MTD)." in by["DL1"]["sentence"]


def test_boin_does_not_escalate_before_a_first_cohort_is_evaluable(tmp_path):
    """R BOIN decides on complete cohorts (cohortsize, 3 by default): 0 of 1 or 0 of 2 evaluable, the rest of the
    cohort still in the window, read 'escalate'. It stays until the first cohort is evaluable; a de-escalation is
    still shown at once, and boin_cohort_size 1 gives the per-subject call."""
    rule = {"method": "boin", "threshold": 0.30}
    con = _study(tmp_path, 2, set(), stopping_rule=rule)
    [row] = rows(con, "SELECT * FROM stopping_rule_status")
    assert (row["evaluable_n"], row["decision"]) == (2, "stay")
    assert "(rate 0.00): stay (fewer evaluable than a cohort of 3: escalation waits for a complete cohort)." \
        in row["sentence"]
    (tmp_path / "b").mkdir()
    con = _study(tmp_path / "b", 2, {1}, stopping_rule=rule)                 # 1 of 2: de-escalate at once
    assert rows(con, "SELECT decision FROM stopping_rule_status")[0]["decision"] == "de-escalate"
    (tmp_path / "c").mkdir()
    con = _study(tmp_path / "c", 2, set(), stopping_rule={**rule, "boin_cohort_size": 1})
    assert rows(con, "SELECT decision FROM stopping_rule_status")[0]["decision"] == "escalate"


def test_dose_order_setting_overrides_the_number_in_the_name():
    assert sorted(["DL10", "DL2", "DL-1", "DL1"], key=st.dose_order_key) == ["DL-1", "DL1", "DL2", "DL10"]
    assert sorted(["high", "low", "mid"], key=lambda d: st.dose_order_key(d, ["low", "mid", "high"])) == \
        ["low", "mid", "high"]


@pytest.mark.parametrize("n, y, decision", [
    # clinical-rules.md 6.1: 0/3 escalate; 1/3 expand to 6; <= 1/6 escalate; >= 2/3 or >= 2/6 MTD exceeded
    (3, 0, "escalate"), (3, 1, "stay"), (3, 2, "de-escalate"), (3, 3, "de-escalate"),
    (6, 0, "escalate"), (6, 1, "escalate"), (6, 2, "de-escalate"), (4, 1, "stay"), (5, 2, "de-escalate"),
    # at most 1 DLT past 6: no step invented; 2 or more exceed the MTD however many were treated
    (7, 0, "not defined"), (7, 1, "not defined"), (9, 1, "not defined"), (12, 2, "de-escalate"),
    (7, 2, "de-escalate"), (7, 3, "de-escalate"), (7, 7, "de-escalate"), (8, 4, "de-escalate"),
])
def test_three_plus_three_published_decisions_only(n, y, decision):
    assert st.three_plus_three_decision(n, y) == decision


def test_three_plus_three_beyond_six_says_the_design_does_not_decide(tmp_path):
    con = _study(tmp_path, 7, {1}, stopping_rule={"method": "three_plus_three"})
    [row] = rows(con, "SELECT * FROM stopping_rule_status")
    assert row["decision"] == "not defined"
    assert "not defined by 3+3 (more than 6 evaluable subjects at one dose" in row["sentence"]
    bounds = rows(con, "SELECT n FROM stopping_boundaries")
    assert max(b["n"] for b in bounds) == 6


def test_three_plus_three_two_or_more_dlts_past_six_exceed_the_mtd_and_show_as_crossed(tmp_path):
    # clinical-rules.md 6.1: ">= 2/3 or >= 2/6 -> MTD exceeded". 3 of 7: any 6 of the 7 hold >= 2 DLTs, so the
    # 6-subject rule says exceeded whichever 6 are counted; the rule is "2 or more DLTs at a dose"
    from safety.review.meeting import CROSSED, rule_level
    con = _study(tmp_path, 7, {1, 2, 3}, stopping_rule={"method": "three_plus_three"})
    [row] = rows(con, "SELECT * FROM stopping_rule_status")
    assert (row["evaluable_n"], row["events"], row["decision"]) == (7, 3, "de-escalate")
    assert row["sentence"].startswith("3+3, dose level DL1: 3 of 7 evaluable subjects had a DLT (screened candidates, "
                                      "not yet adjudicated) (rate 0.43): MTD exceeded, de-escalate.")
    assert (row["events_to_boundary"], row["events_needed"]) == ("boundary crossed", 0)
    assert rule_level(row) == CROSSED
    (tmp_path / "b").mkdir()  # 1 of 7: the source is silent; not exceeded, and one more DLT would exceed it
    [row] = rows(_study(tmp_path / "b", 7, {1}, stopping_rule={"method": "three_plus_three"}),
                 "SELECT * FROM stopping_rule_status")
    assert row["decision"] == "not defined"
    assert ("(rate 0.14): not defined by 3+3 (more than 6 evaluable subjects at one dose; the protocol decides); the "
            "MTD is not exceeded. 1 more DLT in the next subject would exceed the MTD.") in row["sentence"]
    assert (row["events_needed"], row["within_next"]) == (1, 1)


@pytest.mark.parametrize("confirmed, decision, if_confirmed", [
    (2, "de-escalate", "de-escalate"),  # 2 of 6 exceeded; 3 of 7 still exceeded, never "not defined"
    (1, "escalate", "de-escalate"),     # 1 of 6 escalates; 2 of 7 exceeds the MTD
])
def test_three_plus_three_a_pending_dlt_in_a_seventh_subject_never_makes_the_dose_safer(
        tmp_path, confirmed, decision, if_confirmed):
    from safety.derive.dlt.screening import derive_dlt
    from safety.review.store import ReviewStore
    con = new_db(tmp_path / "s.duckdb")
    store = ReviewStore(tmp_path / "s.review.sqlite")
    for i in range(1, 7):  # six followed through the window, `confirmed` of them with a DLT the committee confirmed
        add_subject(con, f"S-{i:02d}")
        if i <= confirmed:
            add_ae(con, f"S-{i:02d}", 1, "Pneumonitis", 3, 5, 20)
    add_subject(con, "S-07", last_day=10)  # not yet through the window, an in-window candidate pending
    add_ae(con, "S-07", 1, "Pneumonitis", 3, 5, 20)
    c = config(stopping_rule={"method": "three_plus_three"})
    derive_dlt(con, STUDY, CUT, c, review_store=store)
    from safety.access.reader import Scope, StudyReader
    from safety.derive.dlt import decisions
    for r in rows(con, "SELECT event_key FROM dlt_candidates WHERE usubjid <> 'S-07'"):
        decisions.record_decision(store, StudyReader(con, Scope(STUDY, CUT)), r["event_key"], "confirmed", "DLT",
                                  "dr a")
    st.derive_stopping_status(con, STUDY, CUT, c, review_store=store)
    [row] = rows(con, "SELECT * FROM stopping_rule_status")
    assert (row["evaluable_n"], row["events"], row["pending"]) == (6, confirmed, 1)
    assert (row["evaluable_n_if_pending_confirmed"], row["events_if_pending_confirmed"]) == (7, confirmed + 1)
    assert (row["decision"], row["decision_if_pending_confirmed"]) == (decision, if_confirmed)
    assert row["pending_changes_decision"] is (decision != if_confirmed)


def _sample_config(folder):
    from safety.core.config import load_study_config
    from pathlib import Path
    return load_study_config(Path(__file__).resolve().parents[1] / "sample_data" / folder)


def test_rule_titles_name_method_source_and_monitored_event():
    boin = st.rule_title(_sample_config("car_t_cd56"))       # CD56-CART-01: BOIN on DLT, window days 0-28
    assert boin == "BOIN dose escalation (Liu & Yuan 2015) on DLT (onset days 0-28), target rate 0.3, by dose level"
    assert "P(rate" not in boin
    itnk = st.rule_title(_sample_config("car_itnk"))         # ITNK-B-01: beta-binomial on CRS/ICANS grade >= 3
    assert itnk == ("Bayesian beta-binomial safety monitoring (Thall, Simon & Estey 1995) of CRS or ICANS grade >= 3 "
                    "(onset days 0-28): stop if P(rate > 0.25 | data) > 0.9")
    assert "DLT" not in itnk
    assert st.chart_title("boin", "dlt") == "BOIN (Liu & Yuan 2015) on DLT: events against the boundaries"
    assert st.chart_title("boin", "dlt", (0, 28)) == \
        "BOIN (Liu & Yuan 2015) on DLT (onset days 0-28): events against the boundaries"
    assert "DLT" not in st.chart_title("bayesian_beta_binomial", "crs_icans_grade3", (0, 28))


def test_stopping_labels_say_the_dlt_window_of_the_study_config():
    """A rule counts events in the DLT window only: every label names the window study.yaml sets (here 0-21,
    not the default 28), and a treatment-related death by its day rather than an onset."""
    cfg = config(dlt={"window": {"start_day": 0, "end_day": 21}}, stopping_rule={"method": "boin", "threshold": 0.3})
    assert st.rule_title(cfg) == ("BOIN dose escalation (Liu & Yuan 2015) on DLT (onset days 0-21), target rate 0.3, "
                                  "by dose level")
    death = config(dlt={"window": {"start_day": 0, "end_day": 21}},
                   stopping_rule={"method": "pocock", "event": "treatment_related_death"})
    assert st.rule_title(death).startswith("Pocock-type safety monitoring (Ivanova, Qaqish & Schell 2005) of "
                                           "treatment-related death (days 0-21): rate ")
    assert st.event_label("dlt", (0, 21)) == "DLT (onset days 0-21)"
    assert st.event_label("icans_grade3", (1, 35)) == "ICANS grade >= 3 (onset days 1-35)"
    assert st.event_label("treatment_related_death", (0, 21)) == "treatment-related death (days 0-21)"
    assert st.event_label("dlt") == "DLT"  # without a window: the event alone, for callers that print it elsewhere
    assert st.chart_title("pocock", "treatment_related_death", (0, 21)) == \
        "Pocock-type (Ivanova, Qaqish & Schell 2005) on treatment-related death (days 0-21): events against the boundaries"


def _store_config(con, cfg):
    import json
    con.execute("INSERT INTO studies (studyid, data_cut, config_json) VALUES ($s, $c, $j)",
                {"s": STUDY, "c": CUT, "j": json.dumps(cfg)})


def test_packet_figure_draws_and_titles_the_boin_rule_not_a_beta_binomial_one(tmp_path):
    from safety.access.reader import Scope, StudyReader
    from safety.export import figures
    con = _study(tmp_path, 6, {1, 2, 3, 4}, stopping_rule={"method": "boin", "threshold": 0.30})
    _store_config(con, config(stopping_rule={"method": "boin", "threshold": 0.30}))
    fig, note = figures.fig_dlt_boundary(StudyReader(con, Scope(STUDY, CUT)))
    assert fig.layout.title.text == ("BOIN dose escalation (Liu & Yuan 2015) on DLT (onset days 0-28), target rate 0.3, "
                                     "by dose level")
    assert fig.layout.yaxis.title.text == "Subjects with DLT (onset days 0-28)"
    names = [t.name for t in fig.data]
    assert names == ["Eliminate dose (and higher) at or above", "De-escalate at or above", "Escalate at or below",
                     "Observed"]
    elim = fig.data[0]
    assert dict(zip(elim.x, elim.y))[6] == 4                 # phi 0.30, n = 6: Elim 4 (clinical-rules.md 6.2)
    assert "DLT" not in figures.FIGURES["dlt_boundary"][0]


def test_packet_figure_of_a_crs_icans_rule_is_not_headed_dlt(tmp_path):
    from safety.access.reader import Scope, StudyReader
    from safety.export import figures
    cfg = config(stopping_rule={"event": "crs_icans_grade3"}, dlt={"window": {"start_day": 0, "end_day": 21}})
    con = _study(tmp_path, 4, set(), stopping_rule={"event": "crs_icans_grade3"})
    _store_config(con, cfg)
    fig, _ = figures.fig_dlt_boundary(StudyReader(con, Scope(STUDY, CUT)))
    assert "DLT" not in fig.layout.title.text and "CRS or ICANS grade >= 3" in fig.layout.title.text
    # the title (150 characters with the window) wraps at a word and the top margin makes room for its second line
    assert fig.layout.title.text == ("Bayesian beta-binomial safety monitoring (Thall, Simon & Estey 1995) of CRS or "
                                     "ICANS grade >= 3<br>(onset days 0-21): stop if P(rate > 0.25 | data) > 0.9")
    assert fig.layout.margin.t == 82
    assert fig.layout.yaxis.title.text == "Subjects with CRS or ICANS grade >= 3 (onset days 0-21)"
    assert [t.name for t in fig.data][0] == "Stop at or above"


def test_pending_candidates_at_a_lower_dose_would_eliminate_the_higher_doses_too(tmp_path):
    # Liu & Yuan 2015: elimination covers "this and higher doses"; 3 pending of 3 at DL1 would eliminate DL1
    # (clinical-rules.md 6.2, phi 0.30), so DL2 (0 of 3, nothing pending) would be eliminated with it
    dose = {1: "DL1", 2: "DL1", 3: "DL1", 4: "DL2", 5: "DL2", 6: "DL2"}
    con, _, _ = _pending_study(tmp_path, 6, {1, 2, 3}, dose_of=dose.get,
                               stopping_rule={"method": "boin", "threshold": 0.30})
    by = {r["cohort"]: r for r in rows(con, "SELECT * FROM stopping_rule_status")}
    assert (by["DL1"]["decision"], by["DL1"]["decision_if_pending_confirmed"]) == ("escalate", "eliminate")
    dl2 = by["DL2"]
    assert (dl2["pending"], dl2["decision"], dl2["decision_if_pending_confirmed"]) == (0, "escalate", "eliminate")
    assert dl2["pending_changes_decision"] is True
    assert ("With the pending candidates at the lower dose level DL1 confirmed, dose level DL2 would be eliminated "
            "too (escalate now).") in dl2["sentence"]


def test_a_pages_dataframe_and_the_loads_arrays_give_the_same_status_missing_values_included(tmp_path):
    # A page reads live evaluability as a DataFrame (a missing number is NaN, a missing flag None); the load reads
    # the same query as NumPy arrays from DuckDB (a missing number or flag NaN, a missing text None), and a caller
    # may hand Python lists (every missing value None). All must count the same subjects.
    import duckdb
    import pandas as pd

    from safety.core.sql import fetch_arrays

    subjects = pd.DataFrame({
        "usubjid": ["S1", "S2", "S3", "S4", "S5", "S6"],
        "infused": [True, True, True, True, False, True],
        "evaluable": [True, True, False, False, False, None],
        "dlt_confirmed": [True, False, None, False, False, None],
        "candidates_in_window": [1.0, 0.0, 2.0, float("nan"), 1.0, 1.0],
        "pending_in_window": [0.0, 0.0, 2.0, float("nan"), 1.0, 1.0],
        "evaluable_if_candidates_confirmed": [True, True, True, False, False, True],
        "followed_through_window": [True, True, False, False, False, None],
        "crs_max_grade_window": [3.0, float("nan"), 1.0, 4.0, 3.0, 0.0],
        "icans_max_grade_window": [0.0, 0.0, float("nan"), 0.0, 0.0, 3.0],
        "treatment_related_death": [False, None, False, False, False, False],
        "dose_level": ["DL1", "DL1", "DL2", None, "DL2", "DL2"],
        "cohort": ["A", "A", "A", "B", "B", "B"],
    })
    loaded = {c: [None if v is None or v != v else v for v in subjects[c].tolist()] for c in st.SUBJECT_COLUMNS}
    cfg = config()
    page = st.status_rows(subjects, cfg, STUDY, CUT, adjudicated=True).iloc[0]
    load = st.status_records(loaded, cfg, adjudicated=True)[0]
    db = duckdb.connect()
    db.execute("CREATE TABLE subjects AS SELECT * FROM read_json_auto($p)", {"p": _json_file(subjects, tmp_path / "subjects.json")})
    # the subjects in another order than the page's: the load reads them in no set order
    arrays = fetch_arrays(db.execute(f"SELECT {', '.join(st.SUBJECT_COLUMNS)} FROM subjects ORDER BY usubjid DESC"))
    assert st.status_records(arrays, cfg, adjudicated=True)[0] == load
    # evaluable: S1, S2; DLT: S1; pending: S3 (2 candidates) and S6 (1); S5 not infused
    assert (page["evaluable_n"], page["events"], page["pending"]) == (2, 1, 2)
    # every pending candidate confirmed: S3 and S6 become evaluable with a DLT
    assert (page["evaluable_n_if_pending_confirmed"], page["events_if_pending_confirmed"]) == (4, 3)
    assert _as_loaded(page.to_dict(), load) == load
    crs = {**cfg, "stopping_rule": {**cfg["stopping_rule"], "event": "crs_grade3", "method": "boin",
                                    "boin_elimination_cutoff": 0.95, "group_by": "dose_level"}}
    by_dose = st.status_rows(subjects, crs, STUDY, CUT, adjudicated=True)
    # CRS grade >= 3 among infused subjects followed through the window or with the event: S1 (DL1); S4 (none)
    assert by_dose[["cohort", "evaluable_n", "events"]].values.tolist() == [["DL1", 2, 1], ["DL2", 0, 0],
                                                                           ["(none)", 1, 1]]
    from_load = st.status_records(loaded, crs, adjudicated=True)
    assert from_load == [_as_loaded(r, from_load[0]) for r in by_dose.to_dict("records")]
    assert st.status_records(arrays, crs, adjudicated=True) == from_load


def _json_file(df, path) -> str:
    """``df`` written to ``path`` as JSON lines (a missing value null), for DuckDB to read with its values' types."""
    import json

    rows = [{k: (None if v is None or v != v else v) for k, v in r.items()} for r in df.to_dict("records")]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return str(path)


def _as_loaded(page_row: dict, like: dict) -> dict:
    """A page's status row with the load row's keys, a DataFrame's NaN as the load's None."""
    return {k: (None if isinstance(page_row[k], float) and page_row[k] != page_row[k] else page_row[k]) for k in like}


def test_stopping_sentence_rounds_the_rate_as_every_table(tmp_path):
    # 1 of 8 is 0.125: "0.13" as SAS, Excel and the packet's percentages (12.5 % -> 13 %) read it, not "0.12"
    con = _study(tmp_path, 8, {1}, stopping_rule={"method": "boin", "threshold": 0.30})
    [row] = rows(con, "SELECT * FROM stopping_rule_status")
    assert "1 of 8 evaluable subjects had a DLT" in row["sentence"] and "(rate 0.13): escalate" in row["sentence"]
    assert row["boundary"].startswith("escalate if rate <= 0.236, de-escalate if >= 0.359")


def test_more_evaluable_than_the_default_planned_size_is_said_not_read_as_uncrossable(tmp_path):
    con = _study(tmp_path, 26, set())  # no stopping_rule: the default max_n of 24
    [row] = rows(con, "SELECT * FROM stopping_rule_status")
    assert row["evaluable_n"] == 26 and row["events"] == 0 and row["boundary_events"] == 10
    assert row["events_to_boundary"] == ("26 evaluable, past the planned 24 (stopping_rule.max_n: 24 is the default "
                                         "when study.yaml sets none): no look-ahead beyond the planned size")
    assert "cannot be crossed" not in row["sentence"]
    assert (row["events_needed"], row["within_next"]) == (None, None)
    # at the planned size itself no planned subject is left: the boundary cannot be crossed within the plan
    (tmp_path / "at").mkdir()
    con = _study(tmp_path / "at", 20, set(), stopping_rule={"max_n": 20})
    [row] = rows(con, "SELECT * FROM stopping_rule_status")
    assert row["events_to_boundary"] == "the boundary cannot be crossed within the planned 20 subjects"


def test_the_statistic_reads_as_the_sentence_prints_it():
    """One definition for the sentence and the packet's Statistic column: a probability to 3 decimals, an observed
    rate to 2, ties away from zero (0.0625 is 0.063, where Python's format gives 0.062); nothing for no rate."""
    assert st.statistic_text(0.06255341298969422, "P(rate > 0.25 | data)") == "0.063"
    assert st.statistic_text(0.0625, "P(>= 3 events in 9 | rate 0.2)") == "0.063"
    assert st.statistic_text(5 / 13, st.OBSERVED_RATE) == "0.38" and st.statistic_text(0.0, st.OBSERVED_RATE) == "0.00"
    assert st.statistic_text(None, st.OBSERVED_RATE) == "" and st.statistic_text(float("nan"), st.OBSERVED_RATE) == ""


@pytest.mark.parametrize("n, y, ahead", [
    (0, 0, "2 DLTs in the next 2 subjects would exceed the MTD"),
    (1, 0, "2 more DLTs in the next 2 subjects would exceed the MTD"),
    (1, 1, "1 more DLT in the next subject would exceed the MTD"),
    (2, 0, "2 more DLTs in the next 2 subjects would exceed the MTD"),
    (2, 1, "1 more DLT in the next subject would exceed the MTD"),
    (3, 0, "2 more DLTs in the next 2 subjects would exceed the MTD"),
    (3, 1, "1 more DLT in the next subject would exceed the MTD"),
    (4, 0, "2 more DLTs in the next 2 subjects would exceed the MTD"),
    (4, 1, "1 more DLT in the next subject would exceed the MTD"),
    (5, 1, "1 more DLT in the next subject would exceed the MTD"),
    (5, 0, "no crossing within the next cohort"),  # two DLTs need two subjects; the 6th is the dose's last
])
def test_three_plus_three_look_ahead_names_the_earliest_crossing(n, y, ahead):
    """The 3+3 look-ahead counted to the end of the dose's 6 ('1 more DLT among the next 3 subjects' at 1 of 3),
    while 2 DLTs exceed the MTD whatever the n: it names the earliest crossing, as the other rules do, the
    fewest further subjects in which the DLTs needed could come (every one of them with a DLT)."""
    sr = {"method": "three_plus_three", "event": "dlt"}
    d = st._dose_decision(sr, n, y, None)
    assert d["events_to_boundary"] == ahead
    if d["parts"]:
        need, within = d["events_needed"], d["within_next"]
        assert need == within == 2 - y
        assert st.three_plus_three_decision(n + within, y + need) == "de-escalate"  # it does cross there
        assert within == 1 or st.three_plus_three_decision(n + within - 1, y + need - 1) != "de-escalate"
    else:
        assert (d["events_needed"], d["within_next"]) == (None, None)
