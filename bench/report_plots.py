"""The report's plots: average accuracy against trainable parameters (Fig. 1 of the MmAP
paper) and against training time, and learning curves (mean and band over seeds per task).

Every method keeps one colour and marker in every plot (its place in the registry); points
are named in a legend beside the axes, so labels never overprint each other however close
the points lie (CoOp-MT, CoCoOp-MT and MmAP-MT share a spot in the toy plot).

The figures are `matplotlib.figure.Figure` objects saved straight to PNG, never through pyplot:
no GUI backend to choose or import, no global figure list to close, and a report that starts
faster (issue 27).  matplotlib is imported by the first figure drawn, not with this module, so
that the report command's drawing processes import it while the command reads the records.
"""
from __future__ import annotations

import math
import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Callable

import pandas as pd

from bench.methods import METHODS

#: at most this many figures drawn at once (a report draws 2 to 4 per dataset)
MAX_FIGURE_PROCESSES = 4

_MARKERS = "os^Dv*P<>Xhp"
#: how a mode shows in the plot: MT filled, ST hollow, grouped filled with a black edge
MODE_FACE = {"st": {"mfc": "none"}, "grouped": {"mec": "black", "mew": 1.5}}


def method_style(method: str) -> tuple:
    """(colour, marker) of a method: fixed by its place in the registry, so a method looks
    the same in every plot whatever else the plot shows."""
    import matplotlib  # deferred: imported by a drawing process, not by the report command (module docstring)
    order = tuple(METHODS)
    index = order.index(method) if method in order else len(order) + sum(map(ord, method)) % 7
    return matplotlib.colormaps["tab10"](index % 10), _MARKERS[index % len(_MARKERS)]


def new_figure(**options):
    """A pyplot-free `matplotlib.figure.Figure`."""
    from matplotlib.figure import Figure  # deferred: as in method_style
    return Figure(**options)


def point_label(row: pd.Series, multi_model: bool) -> str:
    return f"{row['label']}-{str(row['mode']).upper()}" + (f" ({row['model']})" if multi_model else "")


def plot_acc_vs(summary: pd.DataFrame, path, title: str, x: str, xlabel: str) -> None:
    """Average accuracy (error bars: standard error over seeds) against the column `x` (log
    scale); a row with no positive x (zero-shot: nothing trained) is a dashed line."""
    fig = new_figure(figsize=(8.4, 4.4))
    ax = fig.subplots()
    multi_model = summary["model"].nunique() > 1
    for _, r in summary.iterrows():
        label, mean, se = point_label(r, multi_model), r["Average mean"], r["Average se"]
        color, marker = method_style(r["method"])
        value = r[x]
        if pd.isna(value) or value <= 0:  # cannot sit on a log axis
            ax.axhline(mean, ls="--", lw=1, color="gray", label=label)
            continue
        ax.errorbar(value, mean, yerr=0 if pd.isna(se) else se, fmt=marker, color=color,
                    ms=9, capsize=3, label=label, **MODE_FACE.get(r["mode"], {}))
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Average accuracy (%)")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False, borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=150)


def plot_acc_vs_params(summary: pd.DataFrame, path, title: str) -> None:
    plot_acc_vs(summary, path, title, "trainable", "Trainable parameters (log scale)")


def plot_acc_vs_time(summary: pd.DataFrame, path, title: str) -> None:
    plot_acc_vs(summary, path, title, "train_time_s", "Training time per run (s, log scale)")


def plot_curves(curves: dict[str, tuple[pd.Series, list[pd.DataFrame]]], tasks: list[str], path,
                title: str) -> None:
    """Learning curves: the training loss and each task's validation accuracy against the epoch,
    one line per row (mean over its seeds) and a band of ± one standard error.  `curves` maps
    a row's legend label to (its summary row, the per-epoch curve frames of its seeds)."""
    panels = ["loss", *[f"val {t}" for t in tasks], "val average"]
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig = new_figure(figsize=(4.2 * columns + 2.2, 3.0 * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    for panel, ax in zip(panels, axes.flat):
        for label, (row, frames) in curves.items():
            series = [f.set_index("epoch")[panel] for f in frames if panel in f and f[panel].notna().any()]
            if not series:
                continue
            table = pd.concat(series, axis=1)
            mean = table.mean(axis=1)
            se = table.std(axis=1, ddof=1) / math.sqrt(table.shape[1]) if table.shape[1] > 1 else 0 * mean
            color, marker = method_style(row["method"])
            ax.plot(mean.index, mean, marker=marker, ms=4, color=color, label=label,
                    **MODE_FACE.get(row["mode"], {}))
            ax.fill_between(mean.index, mean - se, mean + se, color=color, alpha=0.2, lw=0)
        ax.set_title(panel if panel != "loss" else "training loss", fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 0.95), fontsize=8, frameon=False)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")


def plot_held_out(summary: pd.DataFrame, path, title: str) -> None:
    """Leave-one-domain-out: test accuracy on each held-out domain (x) per method and mode (error
    bars: standard error over seeds); zero-shot (nothing trained) a dashed grey line."""
    domains = [c[: -len(" mean")] for c in summary.columns
               if c.endswith(" mean") and not c.startswith(("delta", "Average"))]
    fig = new_figure(figsize=(8.4, 4.4))
    ax = fig.subplots()
    multi_model = summary["model"].nunique() > 1
    x = list(range(len(domains)))
    for _, r in summary.iterrows():
        means = [r[f"{d} mean"] for d in domains]
        errors = [0 if pd.isna(r[f"{d} se"]) else r[f"{d} se"] for d in domains]
        if r["method"] == "zeroshot":
            ax.plot(x, means, ls="--", lw=1.5, color="gray", marker="_", ms=14, label=point_label(r, multi_model))
            continue
        color, marker = method_style(r["method"])
        ax.errorbar(x, means, yerr=errors, fmt=marker + "-", lw=0.8, color=color, ms=7, capsize=3,
                    label=point_label(r, multi_model), **MODE_FACE.get(r["mode"], {}))
    ax.set_xticks(x, domains)
    ax.set_xlabel("held-out domain")
    ax.set_ylabel("Test accuracy on the held-out domain (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False, borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=150)


def figure_processes() -> int:
    """How many figures the report command draws at once: the usable cores (at most
    MAX_FIGURE_PROCESSES) where processes can be forked, else 1 (a spawned process would import
    matplotlib and pandas again, which costs what it saves)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(MAX_FIGURE_PROCESSES, cores))


def _import_matplotlib() -> None:
    new_figure()


class FigureDrawer:
    """Draws the report's figures, in `processes` forked processes while the caller goes on
    writing its tables, or one after the other here with processes=1.  A figure is about 0.6 s
    of Agg drawing and PNG encoding, all CPU, and each is a file of its own, so on 2 cores two
    figures take the time of one; the files are the same bytes either way
    (tests/bench/test_report.py).  The processes start at once and import matplotlib (0.5 s)
    while the caller reads its records.  A figure that fails raises when the `with` block ends."""

    def __init__(self, processes: int):
        self._pool = None
        self._pending: list[Future] = []
        if processes > 1:
            self._pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork"),
                                             initializer=_import_matplotlib)
            self._pending.append(self._pool.submit(int))  # forks every process now (a fork pool starts them all)

    def draw(self, plot: Callable[..., None], *args) -> None:
        if self._pool is None:
            plot(*args)
        else:
            self._pending.append(self._pool.submit(plot, *args))

    def __enter__(self) -> "FigureDrawer":
        return self

    def __exit__(self, *exc_info) -> None:
        if self._pool is None:
            return
        try:
            for future in self._pending:
                future.result()
        finally:
            self._pool.shutdown(cancel_futures=True)
