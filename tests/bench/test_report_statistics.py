"""The report's model selection and statistics (bench/report.py, bench/statistics.py) on
synthetic records with known accuracies, checked against hand calculations."""
from __future__ import annotations

import math

import pytest

from bench import report
from bench.records import RunRecord
from bench.statistics import ONE_SEED, estimate, paired_difference, t_quantile

T_975_2 = 4.302652729911275   # Student's t, 97.5 % quantile, 2 degrees of freedom (printed tables: 4.303)
T_975_1 = 12.706204736174704  # 1 degree of freedom (12.706)


def _record(method, seed, test, val=50.0, trial=None, lr=0.002, sweep=None, mode="mt", device="cpu",
            wall=100.0, train=80.0) -> RunRecord:
    accuracy = {split: {"A": value - 5, "B": value + 5, "average": value} for split, value in
                (("val", val), ("test", test))}
    return RunRecord.from_dict({
        "run_id": f"{method}-{mode}-{seed}-{trial}-{sweep}", "status": "complete", "method": method, "mode": mode,
        "dataset": "toy", "model": "cpb-tiny", "seed": seed, "tasks": ["A", "B"], "accuracy": accuracy,
        "params": {"trainable": 0 if method == "zeroshot" else 1024, "total": 10 ** 6,
                   "trainable_percent": 0.0 if method == "zeroshot" else 0.1024},
        "config": {"seed": seed, "method": {"name": method, "mode": mode}, "train": {"lr": lr, "selection": "val"}},
        "data_fingerprint": "data", "weights_fingerprint": "weights", "trial": trial, "sweep": sweep,
        "device": device, "wall_time_s": wall, "train_time_s": train, "train_images_per_s": 500.0,
        "peak_memory_mb": 10.0 * seed})


def _records() -> list[RunRecord]:
    zeroshot = [_record("zeroshot", s, t) for s, t in ((1, 60.0), (2, 61.0), (3, 65.0))]
    # a CoOp search: trial 0 and trial 1 on three seeds; selection by val picks 1, 0, 1
    coop = [_record("coop", s, test, val, trial=t, lr=lr, sweep="search", device="NVIDIA H200", wall=3600.0,
                    train=100.0 * s)
            for t, lr, vals, tests in ((0, 0.001, (60.0, 61.0, 62.0), (70.0, 72.0, 74.0)),
                                       (1, 0.01, (65.0, 50.0, 66.0), (68.0, 90.0, 71.0)))
            for s, val, test in zip((1, 2, 3), vals, tests)]
    vpt = [_record("vpt", s, t) for s, t in ((1, 59.0), (2, 62.0), (3, 66.0))]
    lora = [_record("lora", 1, 64.0)]
    return zeroshot + coop + vpt + lora


def _row(summary, method):
    return summary[summary.method == method].iloc[0]


def test_t_quantiles_match_the_printed_table():
    assert t_quantile(3) == pytest.approx(T_975_2, abs=1e-9)
    assert t_quantile(2) == pytest.approx(T_975_1, abs=1e-9)


def test_t_quantiles_are_exactly_scipy_stats_t():
    from scipy import stats
    for level in (0.9, 0.95, 0.99):
        assert [t_quantile(n, level) for n in range(2, 60)] == \
            [float(stats.t.ppf(1 - (1 - level) / 2, n - 1)) for n in range(2, 60)]


def test_estimate_matches_a_hand_calculation():
    est = estimate([68.0, 72.0, 71.0])
    assert est.mean == pytest.approx(211 / 3)
    assert est.std == pytest.approx(math.sqrt(13 / 3))    # squared deviations 49/9 + 25/9 + 4/9 = 26/3, / 2
    assert est.se == pytest.approx(math.sqrt(13) / 3)
    assert (est.low, est.high) == pytest.approx((211 / 3 - T_975_2 * math.sqrt(13) / 3,
                                                 211 / 3 + T_975_2 * math.sqrt(13) / 3))
    one = estimate([5.0])
    assert one.mean == 5.0 and one.se is None and one.low is None and not one.excludes_zero
    assert estimate([]) is None


def test_paired_difference_uses_the_seeds_both_rows_have():
    diff = paired_difference({1: 68.0, 2: 72.0, 3: 71.0, 4: 99.0}, {1: 60.0, 2: 61.0, 3: 65.0})
    assert diff.n == 3 and diff.mean == pytest.approx(25 / 3)
    assert diff.se == pytest.approx(math.sqrt(19) / 3)   # diffs 8, 11, 6: squared deviations 114/9, / 2, / 3
    assert diff.excludes_zero


def test_selection_by_validation_picks_the_best_trial_per_seed():
    summary = report.summarize(_records(), "toy")
    coop = _row(summary, "coop")
    assert coop["label"] == "CoOp (search, 2 trials)" and coop["n"] == 3 and coop["trials"] == 2
    # seed 1: trial 1 (val 65 > 60) test 68; seed 2: trial 0 (61 > 50) test 72; seed 3: trial 1 (66 > 62) test 71
    assert coop["Average mean"] == pytest.approx(211 / 3)
    assert coop["A mean"] == pytest.approx(211 / 3 - 5)
    assert coop["Average std"] == pytest.approx(math.sqrt(13 / 3))
    assert coop["Average se"] == pytest.approx(math.sqrt(13) / 3)
    assert coop["Average ci_low"] == pytest.approx(211 / 3 - T_975_2 * math.sqrt(13) / 3)
    assert coop["Average ci_high"] == pytest.approx(211 / 3 + T_975_2 * math.sqrt(13) / 3)


def test_oracle_selection_picks_by_test_and_is_labelled_an_upper_bound(tmp_path):
    summary = report.summarize(_records(), "toy", selection="test")
    assert _row(summary, "coop")["Average mean"] == pytest.approx((70 + 90 + 74) / 3)
    report.write_report(_records(), [], tmp_path, selection="test")
    text = (tmp_path / "toy.md").read_text()
    assert "ORACLE selection" in text and "upper bound" in text


def test_paired_differences_against_the_baseline_and_their_marks():
    summary = report.summarize(_records(), "toy")
    coop, vpt, lora = _row(summary, "coop"), _row(summary, "vpt"), _row(summary, "lora")
    assert coop["delta mean"] == pytest.approx(25 / 3) and coop["delta n"] == 3
    assert coop["delta se"] == pytest.approx(math.sqrt(19) / 3)
    assert coop["delta ci_low"] == pytest.approx(25 / 3 - T_975_2 * math.sqrt(19) / 3)
    assert coop["delta significant"]
    # vpt: diffs -1, 1, 1: mean 1/3, se sqrt(4/3) / sqrt(3) = 2/3, interval [-2.54, 3.20] holds 0
    assert vpt["delta mean"] == pytest.approx(1 / 3) and vpt["delta se"] == pytest.approx(2 / 3)
    assert not vpt["delta significant"]
    assert lora["delta n"] == 1 and math.isnan(lora["delta ci_low"]) and not lora["delta significant"]
    table = report.display_table(summary).set_index("Method")
    column = "Δ vs Zero-shot-MT"
    assert table.loc["Zero-shot", column] == "(baseline)"
    low, high = 25 / 3 - T_975_2 * math.sqrt(19) / 3, 25 / 3 + T_975_2 * math.sqrt(19) / 3
    assert table.loc["CoOp (search, 2 trials)", column] == f"+8.33 [{low:.2f}, {high:.2f}] *"
    assert table.loc["VPT", column] == "+0.33 [-2.54, 3.20]"
    assert table.loc["LoRA", column] == f"+4.00 ({ONE_SEED})"
    assert table.loc["LoRA", "95 % CI"] == ONE_SEED and table.loc["LoRA", "Average"] == "64.00 ± –"
    assert table.loc["CoOp (search, 2 trials)", "Average"] == f"70.33 ± {math.sqrt(13) / 3:.2f}"


def test_any_row_can_be_the_baseline():
    summary = report.summarize(_records(), "toy", baseline="vpt:mt")
    assert _row(summary, "vpt")["delta mean"] == 0.0
    assert _row(summary, "zeroshot")["delta mean"] == pytest.approx(-1 / 3)
    assert summary.attrs["baseline"] == "VPT-MT"
    assert "Δ vs VPT-MT" in report.display_table(summary).columns


def test_cost_columns_count_every_trial_behind_a_row():
    summary = report.summarize(_records(), "toy")
    coop, zeroshot = _row(summary, "coop"), _row(summary, "zeroshot")
    assert coop["gpu_hours"] == pytest.approx(6.0)         # 2 trials x 3 seeds x 1 h on a GPU
    assert math.isnan(zeroshot["gpu_hours"])                # CPU runs: no GPU-hours
    assert coop["train_time_s"] == pytest.approx(200.0)     # mean over the selected runs (100, 200, 300 s)
    assert coop["images_per_s"] == 500.0 and coop["peak_memory_mb"] == 30.0


def test_the_files_state_the_selection_and_hold_one_column_per_statistic(tmp_path):
    report.write_report(_records(), [], tmp_path)
    text = (tmp_path / "toy.md").read_text()
    assert "train.selection=val (the epoch with the best validation average)" in text
    assert "the trial with the best validation average" in text and ONE_SEED in text
    header = (tmp_path / "toy.csv").read_text().splitlines()[0].split(",")
    for column in ("Average mean", "Average std", "Average se", "Average ci_low", "Average ci_high",
                   "delta mean", "delta ci_low", "delta ci_high", "delta significant", "gpu_hours",
                   "train_time_s", "images_per_s", "peak_memory_mb", "trials"):
        assert column in header
    assert r"$\Delta$ vs Zero-shot-MT" in (tmp_path / "toy.tex").read_text()
    for name in ("toy_acc_vs_params.png", "toy_acc_vs_time.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_trials_of_another_sweep_are_another_row():
    records = _records() + [_record("coop", 1, 40.0, 99.0, trial=0, sweep="other")]
    summary = report.summarize(records, "toy")
    coop = summary[summary.method == "coop"]
    assert sorted(zip(coop["label"], coop["n"])) == [("CoOp (search other, 1 trial)", 1),
                                                   ("CoOp (search search, 2 trials)", 3)]


def test_trials_with_other_fixed_settings_are_never_selected_against_each_other():
    records = _records() + [_record("coop", 1, 99.0, 99.0, trial=0, sweep="search", lr=0.001)]
    records[-1].config["train"]["epochs"] = 50   # the same sweep relaunched with another fixed setting
    summary = report.summarize(records, "toy")
    coop = summary[summary.method == "coop"]
    assert sorted(coop["n"]) == [1, 3]
    assert coop[coop.n == 3].iloc[0]["Average mean"] == pytest.approx(211 / 3)
