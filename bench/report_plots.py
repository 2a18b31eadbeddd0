"""The report's plots: average accuracy against trainable parameters (Fig. 1 of the MmAP
paper) and against training time, learning curves (mean and band over seeds per task), the
held-out domains of a leave-one-out table, and for the results page (bench/report_page.py)
each row's marker and a grouping's affinity heatmap.

How a row looks (`row_style`), the same in every figure and on the page:
- colour and marker: its method's, fixed by its place in the registry, so a method looks the
  same in every plot whatever else the plot shows;
- face: its mode's (`MODE_FACE`: MT filled, ST hollow, grouped filled with a black edge);
- variant: the k-th row of one method and mode in table order (another setting, a search,
  another model) gets line style `VARIANT_LINES[k]` (error bars, curves, the held-out lines)
  and an inner mark `VARIANT_MARKS[k]` drawn inside its marker, so `CoOp-MT` and
  `CoOp (search, 2 trials)-MT` never look alike;
- points that would lie on one spot (the same x) are drawn side by side, `DODGE` apart on the
  log axis; the held-out figure shifts each row a little along x.
Points are named in a legend beside the axes, so labels never overprint each other.

The figures are `matplotlib.figure.Figure` objects saved straight to PNG, never through pyplot:
no GUI backend to choose or import, no global figure list to close, and a report that starts
faster (issue 27).  Each is saved as SVG too (text kept as text), which the drawing function
returns for the results page.  matplotlib is imported by the first figure drawn, not with this
module, so that the report command's drawing processes import it while the command reads the
records.
"""
from __future__ import annotations

import dataclasses
import io
import math
import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Callable

import pandas as pd

from bench.grouping_files import affinity_figure
from bench.methods import METHODS

#: at most this many figures drawn at once (a report draws 2 to 4 per dataset, and a page)
MAX_FIGURE_PROCESSES = 4

_MARKERS = "os^Dv*P<>Xhp"
#: how a mode shows in the plot: MT filled, ST hollow, grouped filled with a black edge
MODE_FACE = {"st": {"mfc": "none"}, "grouped": {"mec": "black", "mew": 1.5}}
#: the k-th row of one method and mode: its line style and the mark inside its marker
VARIANT_LINES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
VARIANT_MARKS = ("", "o", "+", "x", "1", "|")
#: an inner mark's size, as a share of its marker's
_INNER_SIZE = {"o": 0.35}
#: points on one spot are drawn this factor apart on a log axis
DODGE = 1.06


def method_style(method: str) -> tuple:
    """(colour, marker) of a method: fixed by its place in the registry, so a method looks
    the same in every plot whatever else the plot shows."""
    import matplotlib  # deferred: imported by a drawing process, not by the report command (module docstring)
    order = tuple(METHODS)
    index = order.index(method) if method in order else len(order) + sum(map(ord, method)) % 7
    return matplotlib.colormaps["tab10"](index % 10), _MARKERS[index % len(_MARKERS)]


@dataclasses.dataclass(frozen=True)
class RowStyle:
    """How one table row is drawn (module docstring)."""

    color: tuple
    marker: str
    mode: str
    variant: int

    @property
    def face(self) -> dict:
        return MODE_FACE.get(self.mode, {})

    @property
    def linestyle(self):
        return VARIANT_LINES[self.variant % len(VARIANT_LINES)]

    @property
    def inner_mark(self) -> str:
        return VARIANT_MARKS[self.variant % len(VARIANT_MARKS)]

    @property
    def inner_color(self):
        """The inner mark shows on the marker's face: white on a filled one, the colour on a hollow one."""
        return self.color if self.face.get("mfc") == "none" else "white"

    def signature(self) -> tuple:
        """What tells this row apart from the others in a figure."""
        return (tuple(self.color), self.marker, self.mode, self.linestyle, self.inner_mark)


def row_variants(summary: pd.DataFrame) -> list[int]:
    """Per row, in table order: how many earlier rows share its method and mode."""
    seen: dict[tuple, int] = {}
    out = []
    for method, mode in zip(summary["method"], summary["mode"]):
        out.append(seen.get((method, mode), 0))
        seen[(method, mode)] = out[-1] + 1
    return out


def row_styles(summary: pd.DataFrame) -> list[RowStyle]:
    """The style of every row of `summary`, in its order (module docstring)."""
    styles = []
    for (method, mode), variant in zip(zip(summary["method"], summary["mode"]), row_variants(summary)):
        color, marker = method_style(method)
        styles.append(RowStyle(tuple(color), marker, str(mode), variant))
    return styles


def _mark(where, x, y, style: RowStyle, ms: float, **options) -> tuple:
    """The row's marker at (x, y) (with its face) and its inner mark, drawn on the Axes `where` (or
    as artists of the Figure `where`): the legend handle(s).  `options` go to the marker's line
    (ls, lw); `transform` and `scalex` to both."""
    if hasattr(where, "plot"):
        plot = lambda *args, **kwargs: where.plot(*args, **kwargs)[0]  # noqa: E731
    else:
        from matplotlib.lines import Line2D  # deferred: as in method_style
        plot = lambda *args, **kwargs: where.add_artist(Line2D(*args, **kwargs))  # noqa: E731
    shared = {k: options.pop(k) for k in ("transform", "scalex") if k in options}
    line = plot(x, y, marker=style.marker, ms=ms, color=style.color, ls=options.pop("ls", "none"),
                **style.face, **options, **shared)
    if not style.inner_mark:
        return (line,)
    inner = plot(x, y, marker=style.inner_mark, ms=ms * _INNER_SIZE.get(style.inner_mark, 0.65),
                 color=style.inner_color, ls="none", mew=1.5, zorder=line.get_zorder() + 0.1, **shared)
    return (line, inner)


def _legend(target, handles: list[tuple], labels: list[str], **options) -> None:
    from matplotlib.legend_handler import HandlerTuple  # deferred: as in method_style
    target.legend(handles, labels, handler_map={tuple: HandlerTuple(ndivide=1, pad=0)}, fontsize=8, frameon=False,
                  **options)


def _lay_out(fig) -> None:
    """Place the axes once (tight layout), then keep them: a figure left with its layout engine lays
    itself out again, in one more draw, every time it is saved (twice here: PNG and SVG)."""
    fig.tight_layout()
    fig.set_layout_engine("none")


def new_figure(**options):
    """A pyplot-free `matplotlib.figure.Figure`."""
    from matplotlib.figure import Figure  # deferred: as in method_style
    return Figure(**options)


def svg_text(fig, salt: str, **options) -> str:
    """`fig` as SVG for the page: text kept as text, no XML prolog and no metadata (the same bytes
    on every run), element ids salted with `salt`, so that several figures can share one page."""
    import matplotlib  # deferred: as in method_style
    text = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(text, format="svg", metadata=dict.fromkeys(("Date", "Creator", "Format", "Type")), **options)
    svg = text.getvalue()
    return svg[svg.index("<svg"):]


def save(fig, path, name: str, **options) -> str:
    """Write `fig` to `path` (PNG) and return it as SVG text (`svg_text`)."""
    fig.savefig(path, **options)
    return svg_text(fig, name, bbox_inches=options.get("bbox_inches"))


def point_label(row: pd.Series, multi_model: bool) -> str:
    return f"{row['label']}-{str(row['mode']).upper()}" + (f" ({row['model']})" if multi_model else "")


def dodged(values: list[float]) -> list[float]:
    """`values` with the repeats of one value spread DODGE apart (1, x DODGE, / DODGE, x DODGE^2, ...)."""
    count: dict[float, int] = {}
    out = []
    for value in values:
        k = count.get(value, 0)
        count[value] = k + 1
        out.append(value * DODGE ** ((k + 1) // 2 * (1 if k % 2 else -1)) if k and value > 0 else value)
    return out


def _count(value: float) -> str:
    """A tick label in plain text (8K, 3M, 20; no mathtext to typeset)."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:g}{unit}"
    return f"{value:g}"


def _plain_log_ticks(axis) -> None:
    """Label a log axis in plain text: its decades, and 2 and 5 times them where it spans less than
    two decades (matplotlib's default typesets 10^3 and 2x10^3 as mathtext, which is slow to
    draw and crowds a narrow axis)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter  # deferred: as in method_style
    low, high = sorted(axis.get_view_interval())
    axis.set_major_formatter(FuncFormatter(lambda value, _: _count(value)))
    if low > 0 and high / low < 100:
        mantissa = lambda value: round(value / 10 ** math.floor(math.log10(value) + 1e-9), 6)  # noqa: E731
        axis.set_minor_formatter(FuncFormatter(lambda value, _: _count(value) if mantissa(value) in (2, 5) else ""))
    else:
        axis.set_minor_formatter(NullFormatter())


def figure_acc_vs(summary: pd.DataFrame, title: str, x: str, xlabel: str):
    """Average accuracy (error bars: standard error over seeds) against the column `x` (log
    scale); a row with no positive x (zero-shot: nothing trained) is a horizontal line."""
    fig = new_figure(figsize=(8.4, 4.4))
    ax = fig.subplots()
    multi_model = summary["model"].nunique() > 1
    handles, labels = [], []
    places = dodged([float(v) if pd.notna(v) else math.nan for v in summary[x]])
    for (_, r), style, place in zip(summary.iterrows(), row_styles(summary), places):
        mean, se, value = r["Average mean"], r["Average se"], r[x]
        labels.append(point_label(r, multi_model))
        if pd.isna(value) or value <= 0:  # cannot sit on a log axis: a line, the row's marker at its left end
            line = ax.axhline(mean, ls=VARIANT_LINES[(style.variant + 1) % len(VARIANT_LINES)], lw=1, color=style.color)
            handles.append((line, *_mark(ax, [0.015], [mean], style, 7, transform=ax.get_yaxis_transform(),
                                             scalex=False)))
            continue
        bars = ax.errorbar(place, mean, yerr=0 if pd.isna(se) else se, fmt="none", ecolor=style.color, capsize=3)
        for segment in bars.lines[2]:
            segment.set_linestyle(style.linestyle)
        handles.append(_mark(ax, [place], [mean], style, 9))
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Average accuracy (%)")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    _legend(ax, handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    _lay_out(fig)
    return fig


def plot_acc_vs_params(summary: pd.DataFrame, path, title: str) -> str:
    fig = figure_acc_vs(summary, title, "trainable", "Trainable parameters (log scale)")
    return save(fig, path, "acc_vs_params", dpi=150)


def plot_acc_vs_time(summary: pd.DataFrame, path, title: str) -> str:
    fig = figure_acc_vs(summary, title, "train_time_s", "Training time per run (s, log scale)")
    return save(fig, path, "acc_vs_time", dpi=150)


def figure_curves(summary: pd.DataFrame, curves: dict[str, list[pd.DataFrame]], tasks: list[str], title: str):
    """Learning curves: the training loss and each task's validation accuracy against the epoch
    (integer ticks), one line per row with curves (mean over its seeds) and a band of ± one
    standard error.  `curves` maps a row's experiment to the per-epoch curve frames of its seeds."""
    from matplotlib.ticker import MaxNLocator  # deferred: as in method_style
    panels = ["loss", *[f"val {t}" for t in tasks], "val average"]
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig = new_figure(figsize=(4.2 * columns + 2.2, 3.0 * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    multi_model = summary["model"].nunique() > 1
    legend: dict[str, tuple] = {}
    for panel, ax in zip(panels, axes.flat):
        for (_, row), style in zip(summary.iterrows(), row_styles(summary)):
            frames = curves.get(row["experiment"], [])
            series = [f.set_index("epoch")[panel] for f in frames if panel in f and f[panel].notna().any()]
            if not series:
                continue
            table = pd.concat(series, axis=1)
            mean = table.mean(axis=1)
            se = table.std(axis=1, ddof=1) / math.sqrt(table.shape[1]) if table.shape[1] > 1 else 0 * mean
            handle = _mark(ax, mean.index, mean, style, 4, ls=style.linestyle)
            legend.setdefault(point_label(row, multi_model), handle)
            ax.fill_between(mean.index, mean - se, mean + se, color=style.color, alpha=0.2, lw=0)
        ax.set_title(panel if panel != "loss" else "training loss", fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    _legend(fig, list(legend.values()), list(legend), loc="upper left", bbox_to_anchor=(1.0, 0.95))
    fig.suptitle(title)
    _lay_out(fig)
    return fig


def plot_curves(summary: pd.DataFrame, curves: dict[str, list[pd.DataFrame]], tasks: list[str], path,
                title: str) -> str:
    return save(figure_curves(summary, curves, tasks, title), path, "curves", dpi=120, bbox_inches="tight")


def figure_rows_along(summary: pd.DataFrame, columns: list[str], ticks: list[str], xlabel: str, ylabel: str,
                      title: str):
    """A line per row of `summary` through its `<column> mean` values at x = 0, 1, ... (error
    bars: `<column> se`, the standard error over seeds), each row shifted a little along x and
    drawn in its row style (the page's key); zero-shot is drawn as any row."""
    fig = new_figure(figsize=(8.4, 4.4))
    ax = fig.subplots()
    multi_model = summary["model"].nunique() > 1
    handles, labels = [], []
    width = min(0.06, 0.4 / max(1, len(summary)))  # the shift between neighbouring rows
    for i, ((_, r), style) in enumerate(zip(summary.iterrows(), row_styles(summary))):
        x = [d + (i - (len(summary) - 1) / 2) * width for d in range(len(columns))]
        means = [r[f"{c} mean"] for c in columns]
        errors = [0 if pd.isna(r[f"{c} se"]) else r[f"{c} se"] for c in columns]
        labels.append(point_label(r, multi_model))
        ax.errorbar(x, means, yerr=errors, fmt="none", ecolor=style.color, capsize=3)
        handles.append(_mark(ax, x, means, style, 7, ls=style.linestyle, lw=0.8))
    ax.set_xticks(range(len(columns)), ticks)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    _legend(ax, handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    _lay_out(fig)
    return fig


def figure_held_out(summary: pd.DataFrame, title: str):
    """Leave-one-domain-out: test accuracy on each held-out domain (x) per row."""
    domains = [c[: -len(" mean")] for c in summary.columns
               if c.endswith(" mean") and not c.startswith(("delta", "Average"))]
    return figure_rows_along(summary, domains, domains, "held-out domain",
                             "Test accuracy on the held-out domain (%)", title)


def plot_held_out(summary: pd.DataFrame, path, title: str) -> str:
    return save(figure_held_out(summary, title), path, "held_out", dpi=150)


def swatches(summary: pd.DataFrame) -> list[str]:
    """Per row, its marker and line as a small SVG (the page's key to the figures): artists of a
    bare figure, no Axes (an Axes costs 10 ms a row)."""
    from matplotlib.lines import Line2D  # deferred: as in method_style
    out = []
    for i, style in enumerate(row_styles(summary)):
        fig = new_figure(figsize=(0.45, 0.22))
        fig.add_artist(Line2D([0.02, 0.98], [0.5, 0.5], ls=style.linestyle, lw=1.2, color=style.color))
        _mark(fig, [0.5], [0.5], style, 8, transform=fig.transFigure)
        out.append(svg_text(fig, f"swatch{i}"))
    return out


def affinity_svg(names: list[str], affinity: list[list[float]], title: str, salt: str) -> str:
    """A grouping's affinity heatmap (bench/grouping_files.py draws the run's PNG alike) as SVG."""
    return svg_text(affinity_figure(names, affinity, title), salt)


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


class Drawn:
    """What a drawing returned (a figure's SVG text, a page): `result()` once the drawer's `with`
    block has ended, or at once where it draws here."""

    def __init__(self, future: Future | None = None, value: Any = None):
        self._future, self._value = future, value

    def result(self) -> Any:
        return self._value if self._future is None else self._future.result()


class FigureDrawer:
    """Draws the report's figures (and renders its pages), in `processes` forked processes while
    the caller goes on writing its tables, or one after the other here with processes=1.  A
    figure is about 0.6 s of Agg drawing and PNG encoding, all CPU, and each is a file of its own,
    so on 2 cores two figures take the time of one; the files are the same bytes either way
    (tests/bench/test_report.py).  The processes start at once and import matplotlib (0.5 s)
    while the caller reads its records.  A figure that fails raises when the `with` block ends.
    `then(finish, ...)`: call `finish` here once every drawing is done (a page's figures go
    into it then)."""

    def __init__(self, processes: int):
        self._pool = None
        self._pending: list[Future] = []
        self._then: list[tuple[Callable[..., None], tuple]] = []
        if processes > 1:
            self._pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork"),
                                             initializer=_import_matplotlib)
            self._pending.append(self._pool.submit(int))  # forks every process now (a fork pool starts them all)

    def draw(self, plot: Callable[..., Any], *args) -> Drawn:
        if self._pool is None:
            return Drawn(value=plot(*args))
        self._pending.append(self._pool.submit(plot, *args))
        return Drawn(self._pending[-1])

    def then(self, finish: Callable[..., None], *args) -> None:
        self._then.append((finish, args))

    def __enter__(self) -> "FigureDrawer":
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        try:
            for future in self._pending:
                future.result()
        finally:
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
        if exc_type is None:
            for finish, args in self._then:
                finish(*args)
