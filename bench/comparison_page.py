"""The results page of a comparison table (bench/comparison.py, bench/report.py): the generic
page (bench/report_page.py) filled with the table's columns and rows, its figures and, under
each row, its runs, its settings (those that differ from its method's defaults first) and, for
a method that groups its tasks (MmAP), each run's groups and affinity heatmap.

`ComparisonPage` is what `bench.report` hands over; `render_comparison_page` runs in the
report's own process while its drawing processes draw the figures and each row's marker
(`SWATCHES`), which go into the page's slots when they are done (bench/report_page.py).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pandas as pd

from bench.comparison import flat_settings, row_of, select_trials
from bench.curves import curves_path, tensorboard_path, warmup_curves_path
from bench.errors import UserError
from bench.identity import identity_config
from bench.methods import METHODS
from bench.records import RunRecord
from bench.report_page import Block, Cell, Column, Figure, Page, Row, Section, Table, mark_best, render, slot
from bench.report_plots import affinity_svg, point_label

NO_VALUE = "–"
#: the name under which the rows' markers are drawn (bench/report_plots.py `swatches`), one slot a row
SWATCHES = "swatches"


@dataclasses.dataclass
class ComparisonPage:
    """What `bench.report` knows of one table, for its page: the numeric summary and the displayed
    table (bench/comparison.py, bench/report.py), the table's records, and where the records'
    files lie (None: not looked up)."""

    key: str
    title: str
    caption: str
    summary: pd.DataFrame
    table: pd.DataFrame
    records: list[RunRecord]
    selection: str
    held_out: bool
    figures: list[Figure]
    problems: list[dict]
    missing: list[dict] | None      # None: no --expected
    runs_dir: Path | None
    #: a column another kind of table names or ranks its own way: (the summary column it sorts by,
    #: which value is best: "max", "min", "min>0" or None); the others follow `_sorted_by`
    sorted_by: dict[str, tuple[str, str | None]] = dataclasses.field(default_factory=dict)


#: the table's numeric columns: the summary column each sorts by, and which value is best
_NUMERIC = {"95 % CI": ("Average ci_low", None), "Params": ("trainable", "min>0"),
            "% CLIP": ("trainable_percent", "min>0"), "Train s": ("train_time_s", "min>0"),
            "GPU-h": ("gpu_hours", "min>0"), "img/s": ("images_per_s", "max"),
            "n": ("n", None)}


def _sorted_by(name: str, summary: pd.DataFrame, given: dict) -> tuple[str, str | None] | None:
    if name in given:
        return given[name]
    if f"{name} mean" in summary.columns:
        return f"{name} mean", "max"
    if name.startswith("Δ"):
        return "delta mean", "max"
    if name.startswith("Peak"):
        return "peak_memory_mb", "min>0"
    return _NUMERIC.get(name)


def _number(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def comparison_table(spec: ComparisonPage) -> Table:
    summary, table = spec.summary, spec.table
    columns, numeric = [], []
    for name in table.columns:
        by = _sorted_by(name, summary, spec.sorted_by)
        columns.append(Column(name, by is not None, by[1] if by else None))
        numeric.append(by[0] if by else None)
    details = row_details(spec)
    multi_model = summary["model"].nunique() > 1
    rows = []
    for i, ((_, shown), (_, numbers)) in enumerate(zip(table.iterrows(), summary.iterrows())):
        cells = [Cell(str(shown[name]), _number(numbers[by]) if by else str(shown[name]))
                 for name, by in zip(table.columns, numeric)]
        label = point_label(numbers, multi_model)
        rows.append(Row(cells, label, slot(SWATCHES, i), details.get(numbers["experiment"], [])))
    mark_best(columns, rows)
    sections = []
    if spec.missing is not None:
        sections.append(Section("Missing or failed runs", [
            f"{m['run_id']} {m.get('method')} {m.get('mode')} seed={m.get('seed')}: {m['reason']}"
            for m in spec.missing] or ["none"]))
    if spec.problems:
        sections.append(Section("Skipped records", [f"{p['file']}: {p['reason']}" for p in spec.problems]))
    caption = spec.caption + (" Bold: the best value of its column (the highest accuracy, difference and "
                              "speed; the fewest parameters, seconds, GPU-hours and megabytes among the rows "
                              "that use any). Click a column's heading to sort by it; open a row's runs "
                              "and settings below it.")
    return Table(spec.key, spec.title, caption, columns, rows, _described(spec.figures, summary), sections)


def render_comparison_page(spec: ComparisonPage) -> str:
    """The page of one comparison table, with a slot for each figure (`finish_page`)."""
    return render(Page(spec.title, [comparison_table(spec)], [("index.html", "all tables")]))


def _described(figures: list[Figure], summary: pd.DataFrame) -> list[Figure]:
    """The figures with their text alternative: what they plot and each row's numbers."""
    multi_model = summary["model"].nunique() > 1
    points = "; ".join(f"{point_label(r, multi_model)}: {r['Average mean']:.2f} %" for _, r in summary.iterrows())
    return [dataclasses.replace(f, alt=f"{f.alt} Average accuracy per row: {points}.") for f in figures]


def row_details(spec: ComparisonPage) -> dict[str, list[Block]]:
    """{experiment: the blocks of its row's detail}: its runs, its settings (those that differ from
    the method's defaults first) and, for a grouping method (MmAP), each run's task groups and
    affinity heatmap."""
    kept, _ = select_trials(spec.records, spec.selection)
    selected = {r.run_id for r in kept}
    defaults = method_defaults(spec.records)
    beside = set(os.listdir(spec.runs_dir)) if spec.runs_dir is not None and spec.runs_dir.is_dir() else None
    runs: dict[str, list[RunRecord]] = {}
    for r in spec.records:
        runs.setdefault(row_of(r, spec.held_out), []).append(r)
    out = {}
    for experiment, members in runs.items():
        members.sort(key=lambda r: (r.seed, r.trial if r.trial is not None else -1, r.target or ""))
        chosen = [r for r in members if r.run_id in selected] or members
        out[experiment] = [_runs_block(members, selected, spec.held_out, beside),
                           *_config_blocks(chosen[0], members, defaults[defaults_command(chosen[0])]),
                           *_grouping_blocks(chosen)]
    return out


def _accuracy(record: RunRecord, split: str, task: str) -> str:
    value = (record.accuracy.get(split) or {}).get(task)
    return NO_VALUE if value is None else f"{value:.2f}"


def _runs_block(members: list[RunRecord], selected: set[str], held_out: bool, beside: set[str] | None) -> Block:
    tasks = [t for t in dict.fromkeys(t for r in members for t in r.tasks)]
    search = any(r.trial is not None for r in members)
    headers = ["run id", "seed", *(["trial", "selected", "drawn settings"] if search else []),
               *(["held-out domain"] if held_out else []),
               *[f"{t} test / val" for t in [*tasks, "average"]], "epoch", "wall s", "warnings", "kept on disk"]
    rows = []
    for r in members:
        rows.append([r.run_id, str(r.seed),
                     *([NO_VALUE if r.trial is None else str(r.trial), "yes" if r.run_id in selected else "no",
                        _drawn(r)] if search else []),
                     *([r.target or NO_VALUE] if held_out else []),
                     *[f"{_accuracy(r, 'test', t)} / {_accuracy(r, 'val', t)}" for t in [*tasks, "average"]],
                     NO_VALUE if r.selected_epoch is None else str(r.selected_epoch),
                     NO_VALUE if r.wall_time_s is None else f"{r.wall_time_s:.3g}",
                     "; ".join(_warnings(r)) or "none", _kept(r, beside)])
    what = "trials (the selected one per seed: selected)" if search else "runs, one per seed"
    return Block(f"Its {what}: test / validation accuracy (%) per task", "table", headers, rows)


def _drawn(record: RunRecord) -> str:
    """The settings a search trial drew (its method's search space), as `key=value, ...`."""
    drawn = METHODS[record.method].search_space.settings if record.method in METHODS else {}
    settings = flat_settings(record.config)
    return ", ".join(f"{k}={_short(settings[k])}" for k in drawn if k in settings) or NO_VALUE


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _warnings(record: RunRecord) -> list[str]:
    notes = list(record.warnings)
    if record.nonfinite_steps and not any("NaN or inf loss" in w for w in notes):
        notes.append(f"{record.nonfinite_steps} step(s) with a non-finite loss skipped")
    if record.unreadable_images:
        notes.append(f"{record.unreadable_images} unreadable image(s) skipped")
    return notes


def _kept(record: RunRecord, beside: set[str] | None) -> str:
    """The checkpoint the run kept (runtime.keep_checkpoint) and its files among `beside`, the
    names in the records' folder (None: not looked up)."""
    kept = [f"checkpoint: {record.checkpoint_kept or 'not recorded'}"]
    if beside is not None:
        files = [path(".", record.run_id).name for path in (curves_path, warmup_curves_path, tensorboard_path)]
        kept.append("beside the record: " + (", ".join(f for f in files if f in beside) or "nothing"))
    return "; ".join(kept)


def _config_blocks(record: RunRecord, members: list[RunRecord], composed: tuple[dict | None, str]) -> list[Block]:
    """The row's resolved settings (of `record`, its first selected run): those that differ from
    what the method runs with by default on this dataset first, then every one."""
    settings = {k: v for k, v in flat_settings(record.config).items() if k != "seed"}
    alike = all(r.trial is None and r.target is None for r in members)  # one experiment: the seed alone differs
    varying = set() if alike else {k for r in members for k, v in flat_settings(r.config).items()
                                   if k != "seed" and (k not in settings or v != settings[k])}
    shown = {k: (_short(v) if k not in varying else "varies by run: see the runs") for k, v in settings.items()}
    defaults, why = composed
    if defaults is None:
        first = Block(f"Settings that differ from the defaults of {record.method}: unknown ({why})", "text",
                      text="Every setting is listed below.")
    else:
        differing = [[k, shown[k], _short(defaults[k]) if k in defaults else "(none)"]
                     for k in shown if k not in defaults or defaults[k] != settings[k]]
        first = Block(f"Settings that differ from the defaults: from `python -m bench.run "
                      f"{' '.join(defaults_command(record))}`", "table",
                      ["setting", "this row", "default"], differing or [["(none)", "", ""]])
    return [first, Block("Every setting of the run (its identity config)", "table", ["setting", "value"],
                         [[k, v] for k, v in shown.items()], collapsed=True)]


def defaults_command(record: RunRecord) -> tuple[str, ...]:
    """The command line whose config a row's settings are compared with: the record's method, mode,
    dataset (and protocol, held-out domain and order of domains where it names them), nothing else."""
    return (f"method={record.method}", f"method.mode={record.mode}", f"dataset={record.key}",
            *([f"protocol={record.protocol}"] if record.protocol != "multitask" else []),
            *([f"dataset.target={record.target}"] if record.target else []),
            *([f"dataset.task_order=[{','.join(record.task_order)}]"] if record.task_order else []))


def method_defaults(records: list[RunRecord]) -> dict[tuple, tuple[dict | None, str]]:
    """{`defaults_command`: (the settings `python -m bench.run <that command>` runs with, flat as a
    record keeps them, or None, and why not: e.g. a plug-in method this process has not
    imported)}.  Composed by Hydra through the plan cache (bench/planning.py), so a report
    composes each command once per state of the code and configs."""
    from bench.planning import checked_configs  # deferred: Hydra's composition, once a page is rendered
    commands = sorted({defaults_command(r) for r in records})
    try:
        configs = dict(zip(commands, checked_configs([list(c) for c in commands])))
    except UserError:  # one of them does not compose: find which, one by one
        configs = {}
        for command in commands:
            try:
                configs[command] = checked_configs([list(command)])[0]
            except UserError as error:
                configs[command] = str(error).split(". ")[0]
    return {command: (None, cfg) if isinstance(cfg, str) else (flat_settings(identity_config(cfg)), "")
            for command, cfg in configs.items()}


def _grouping_blocks(chosen: list[RunRecord]) -> list[Block]:
    blocks = []
    for r in chosen:
        grouping = r.extras.get("grouping") if isinstance(r.extras, dict) else None
        if not grouping:
            continue
        groups = " | ".join(", ".join(map(str, g)) for g in grouping.get("groups") or [])
        text = f"Groups ({grouping.get('strategy')}): {groups}."
        if grouping.get("affinity") is None:
            blocks.append(Block(f"Task groups of seed {r.seed}", "text", text=text + " (given, not computed: no "
                                                                                     "affinities)"))
            continue
        names, affinity = grouping["tasks"], grouping["affinity"]
        pairs = "; ".join(f"{a}-{b} {affinity[i][j]:.2f}" for i, a in enumerate(names)
                          for j, b in enumerate(names) if j > i)
        blocks.append(Block(f"Task groups and affinities of seed {r.seed}", "svg",
                            svg=affinity_svg(names, affinity, str(grouping.get("strategy")), f"affinity-{r.run_id}"),
                            alt=f"Heatmap of the task affinities of run {r.run_id}: {pairs}.", text=text))
    return blocks


#: how the figures tell rows apart (bench/report_plots.py), under each figure
ENCODING = ("Colour and marker: the method; filled: MT, hollow: ST, black edge: grouped. A further row of one method "
            "and mode (another setting, a search) has its own line style (dashed, dotted, ...) and a mark inside its "
            "marker (a dot, a plus, ...), as in the key beside each row of the table; points on one spot are "
            "drawn side by side.")
FIGURE_TITLES = {"acc_vs_params": "Average accuracy against trainable parameters (log scale).",
                 "acc_vs_time": "Average accuracy against training time per run (log scale).",
                 "curves": "Learning curves (mean ± standard error over seeds).",
                 "held_out": "Test accuracy on each held-out domain.",
                 "stages": "Average accuracy over every domain after each stage of the sequence.",
                 "matrices": "Each row's accuracy matrix R[stage][domain], the mean over seeds, domains in the "
                             "row's order."}
#: the figures whose rows are drawn as markers and lines (the others, heatmaps, are titled per row)
MARKED = {"acc_vs_params", "acc_vs_time", "curves", "held_out", "stages"}


def figures_of(names, split: str) -> list[Figure]:
    """The page's figures drawn under `names` (bench/report.py), titled and described."""
    return [Figure(name, f"{FIGURE_TITLES[name]} {ENCODING}" if name in MARKED else FIGURE_TITLES[name],
                   figure_alt(name, split)) for name in names]


def figure_alt(kind: str, split: str) -> str:
    """The start of a figure's text alternative (`_described` adds each row's numbers)."""
    return {"acc_vs_params": f"Average {split} accuracy against trainable parameters (log scale), a point per row "
                             "with its standard error; a row that trains nothing is a horizontal line.",
            "acc_vs_time": f"Average {split} accuracy against training time per run (log scale), a point per row; a "
                           "row without a training time is a horizontal line.",
            "curves": "Learning curves: the training loss and each task's validation accuracy against the epoch, "
                      "the mean over the seeds of each row with a band of one standard error.",
            "held_out": "Test accuracy on each held-out domain, a line per row with standard errors.",
            "stages": f"Average {split} accuracy over every domain after each stage (x: the stage and the domain it "
                      "trained), a line per row with standard errors.",
            "matrices": f"A heatmap per row: {split} accuracy on each domain (columns) after each stage (rows), "
                        "annotated with its value, one colour scale for all."}[kind]
