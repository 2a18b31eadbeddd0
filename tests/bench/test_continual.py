"""The sequential metrics (bench/continual.py) on hand-made accuracy matrices: the formulas of
DESIGN.md (fourth round), each worked out by hand here."""
from __future__ import annotations

import pytest

from bench import continual

#: R[k][j]: three domains, rows = after stage 1, 2, 3
R = [[80.0, 30.0, 20.0],
     [60.0, 90.0, 40.0],
     [70.0, 50.0, 100.0]]
Z = [50.0, 25.0, 35.0]


def test_final_average_is_the_last_row_mean():
    assert continual.final_average(R) == pytest.approx((70 + 50 + 100) / 3)


def test_average_incremental_accuracy_averages_the_trained_domains_after_each_stage():
    # stage 1: 80; stage 2: (60 + 90) / 2 = 75; stage 3: (70 + 50 + 100) / 3
    assert continual.average_incremental(R) == pytest.approx((80 + 75 + 220 / 3) / 3)


def test_forgetting_is_the_best_earlier_accuracy_minus_the_final_one():
    # domain 1: max(80, 60) - 70 = 10; domain 2: max(30, 90) - 50 = 40 (the last domain is left out)
    assert continual.forgetting(R) == pytest.approx((10 + 40) / 2)


def test_forgetting_counts_only_what_was_learned_not_the_accuracy_before_training():
    # domain 2 scored 95 before it was trained (transfer), 90 after its own stage, 90 at the end: nothing forgotten
    before = [[80.0, 95.0, 20.0], [80.0, 90.0, 40.0], [80.0, 90.0, 100.0]]
    assert continual.forgetting(before) == 0.0


def test_backward_transfer_compares_the_final_row_with_the_diagonal():
    # domain 1: 70 - 80 = -10; domain 2: 50 - 90 = -40
    assert continual.backward_transfer(R) == pytest.approx((-10 - 40) / 2)


def test_transfer_averages_the_matrix_above_its_diagonal():
    # domain 2: R[1][2] = 30; domain 3: (R[1][3] + R[2][3]) / 2 = 30
    assert continual.transfer(R) == pytest.approx((30 + 30) / 2)
    assert continual.transfer_reference(Z) == pytest.approx((25 + 35) / 2)


def test_every_metric_together_and_the_gain_over_zero_shot():
    metrics = continual.sequential_metrics(R, Z)
    assert list(metrics)[:5] == list(continual.METRICS)
    assert metrics["transfer_gain"] == pytest.approx(30 - 30)
    assert continual.average_after_each_stage(R) == pytest.approx([130 / 3, 190 / 3, 220 / 3])


def test_a_matrix_that_never_changes_forgets_nothing():
    flat = [[50.0, 60.0]] * 2
    assert continual.forgetting(flat) == 0.0 and continual.backward_transfer(flat) == 0.0


def test_a_gain_after_the_last_stage_is_negative_forgetting_and_positive_backward_transfer():
    rising = [[10.0, 0.0], [30.0, 40.0]]
    assert continual.forgetting(rising) == -20.0 and continual.backward_transfer(rising) == 20.0


def test_one_domain_has_no_forgetting_transfer_or_backward_transfer():
    assert continual.sequential_metrics([[42.0]], [40.0]) == {
        "final_average": 42.0, "average_incremental": 42.0, "forgetting": None, "backward_transfer": None,
        "transfer": None, "transfer_reference": None, "transfer_gain": None}


@pytest.mark.parametrize("bad", [[], [[1.0, 2.0]], [[1.0], [2.0, 3.0]]])
def test_a_matrix_that_is_not_square_is_refused(bad):
    with pytest.raises(ValueError, match="K x K"):
        continual.sequential_metrics(bad)
