"""The report's figures tell every row apart, count epochs in whole numbers, and say what their
peak-memory numbers measured (issue 28, item 5): rows of one method and mode (its paper settings
and its search, two learning rates) differ in line style and inner mark, points on one spot are
drawn side by side, and the page's key to each row is the same marker (bench/report_plots.py)."""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from bench import report
from bench.records import RunRecord
from bench.report_plots import dodged, figure_acc_vs, figure_curves, figure_held_out, row_styles, swatches

TASKS = ["A", "B"]


def _record(seed, acc, method="coop", mode="mt", lr=0.002, trial=None, device="cpu", memory=900.0,
            train_time=10.0) -> RunRecord:
    config = {"seed": seed, "method": {"name": method, "mode": mode}, "train": {"lr": lr},
              "model": {"arch": "ViT-B-16"}, "dataset": {"name": "toy"}}
    return RunRecord.from_dict({
        "run_id": f"{method}{mode}{seed}-{lr}-{trial}", "status": "complete", "method": method, "mode": mode,
        "dataset": "toy", "model": "ViT-B-16", "seed": seed, "tasks": TASKS,
        "accuracy": {split: {"A": acc, "B": acc + 2, "average": acc + 1} for split in ("val", "test")},
        "params": {"trainable": 8192, "total": 10 ** 8, "trainable_percent": 0.008}, "config": config,
        "data_fingerprint": "d", "weights_fingerprint": "w", "trial": trial,
        "sweep": "s" if trial is not None else None,
        "device": device, "peak_memory_mb": memory, "train_time_s": train_time})


def _summary() -> pd.DataFrame:
    """CoOp-MT at two learning rates and its search (one spot: the same parameter count), CoOp-ST,
    and zero-shot."""
    records = [_record(s, 60.0 + s, lr=lr) for s in (1, 2) for lr in (0.002, 0.02)]
    records += [_record(s, 70.0 + s, trial=t) for s in (1, 2) for t in (0, 1)]
    records += [_record(s, 50.0, mode="st") for s in (1, 2)] + [_record(1, 40.0, method="zeroshot")]
    return report.summarize(records, "toy")


def _signature(handle: tuple) -> tuple:
    """What a reader sees of a legend entry: colour, marker, face, line style, inner mark."""
    outer = handle[0]
    return (str(outer.get_color()), outer.get_marker(), str(outer.get_markerfacecolor()),
            str(outer.get_linestyle()), handle[1].get_marker() if len(handle) > 1 else None)


def test_every_row_has_a_style_of_its_own_and_a_method_keeps_its_colour_and_marker():
    summary = _summary()
    styles = row_styles(summary)
    assert len({s.signature() for s in styles}) == len(summary) == 5
    coop = [s for s, method in zip(styles, summary["method"]) if method == "coop"]
    assert len({(s.color, s.marker) for s in coop}) == 1                 # one method: one colour and marker
    mt = [s for s, mode in zip(coop, summary[summary.method == "coop"]["mode"]) if mode == "mt"]
    assert [s.variant for s in mt] == [0, 1, 2]
    assert len({s.linestyle for s in mt}) == len({s.inner_mark for s in mt}) == 3


def _drawn_points(ax) -> dict[float, tuple]:
    """{x of a point: what is drawn there (colour, marker, face of each marker line)}."""
    points: dict[float, list] = {}
    for line in ax.lines:
        if len(line.get_xdata()) == 1 and line.get_marker() not in ("None", "", None):
            points.setdefault(round(float(line.get_xdata()[0]), 9), []).append(
                (str(line.get_color()), line.get_marker(), str(line.get_markerfacecolor())))
    return {x: tuple(sorted(marks)) for x, marks in points.items()}


@pytest.mark.parametrize("x", ["trainable", "train_time_s"])
def test_rows_of_one_method_and_mode_look_different_in_the_accuracy_plots(x):
    summary = _summary()  # every row at one x: 8,192 parameters, 10 s
    fig = figure_acc_vs(summary, "toy", x, "x")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [report.point_label(r, False)
                                                                   for _, r in summary.iterrows()]
    points = _drawn_points(ax)
    assert len(points) == len(summary)                       # side by side: a place per row
    assert len(set(points.values())) == len(summary), points  # and a look per row (marker, face, inner mark)


def test_points_on_one_spot_are_drawn_side_by_side():
    assert dodged([8192.0, 8192.0, 8192.0, 100.0, 0.0, 0.0]) == pytest.approx(
        [8192.0, 8192.0 * 1.06, 8192.0 / 1.06, 100.0, 0.0, 0.0])


def test_learning_curves_use_line_styles_per_row_and_whole_epochs():
    summary = _summary()
    frame = lambda offset: pd.DataFrame({"epoch": [1, 2, 3], "loss": [3.0 - offset, 2.0, 1.0],  # noqa: E731
                                         "val A": [50.0, 60.0, 70.0 + offset], "val B": [40.0, 50.0, 60.0],
                                         "val average": [45.0, 55.0, 65.0]})
    curves = {e: [frame(i), frame(i + 0.5)] for i, e in enumerate(summary["experiment"])}
    fig = figure_curves(summary, curves, TASKS, "toy")
    for ax in fig.axes:
        if not ax.axison:
            continue
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    entries = fig.legends[0]
    assert len(entries.get_texts()) == len(summary)
    loss = fig.axes[0]
    styles = {(str(line.get_color()), line.get_marker(), str(line.get_markerfacecolor()), str(line.get_linestyle()))
              for line in loss.lines if len(line.get_xdata()) == 3 and line.get_linestyle() != "None"}
    assert len(styles) == len(summary)


def test_the_held_out_figure_shifts_each_row_along_x():
    summary = _summary()
    fig = figure_held_out(summary, "toy-dg")
    firsts = {round(float(line.get_xdata()[0]), 6) for line in fig.axes[0].lines
              if line.get_linestyle() != "None" or len(line.get_xdata()) == len(TASKS)}
    assert len(firsts) == len(summary)


def test_the_page_key_of_each_row_is_its_figure_marker():
    summary = _summary()
    keys = swatches(summary)
    assert len(keys) == len(summary) and len(set(keys)) == len(summary)
    assert all(k.startswith("<svg") and "<?xml" not in k for k in keys)


# ---- peak memory: what it measured, where ------------------------------------------------------------
@pytest.mark.parametrize("device, column, words", [
    ("cpu", "Peak RSS MB", "resident memory of the run's whole process on the CPU"),
    ("NVIDIA H100 80GB HBM3", "Peak GPU MB", "accelerator memory torch allocated on the GPU"),
])
def test_peak_memory_column_names_what_it_measured(device, column, words):
    summary = report.summarize([_record(1, 60.0, device=device), _record(2, 61.0, device=device)], "toy")
    table = report.display_table(summary)
    assert column in table.columns and "Peak MB" not in table.columns
    text = report.caption([_record(1, 60.0, device=device)], summary, "test", "val")
    assert f"{column}: the peak" in text and words in text


def test_rows_measured_on_different_devices_say_so_in_each_cell():
    records = [_record(1, 60.0, device="cpu"), _record(1, 50.0, method="vpt", device="NVIDIA H200", memory=5000.0)]
    summary = report.summarize(records, "toy")
    table = report.display_table(summary).set_index("Method")
    assert table.loc["CoOp", "Peak MB"] == "900 (RSS)" and table.loc["VPT", "Peak MB"] == "5000 (GPU)"
    text = report.caption(records, summary, "test", "val")
    assert "(GPU) the peak accelerator memory" in text and "(RSS) the peak resident memory" in text


def test_records_that_do_not_say_where_they_ran_are_not_called_accelerator_memory():
    records = [dataclasses.replace(_record(1, 60.0), device=None)]
    summary = report.summarize(records, "toy")
    assert "Peak MB" in report.display_table(summary).columns
    text = report.caption(records, summary, "test", "val")
    assert "do not say where their runs ran" in text and "Peak MB: peak accelerator memory" not in text
