"""Comparison tables and plots from the result records in results/runs/*.json.

    python -m bench.report [--runs results/runs] [--out results] [--dataset officehome]
                           [--split test] [--expected results/sweeps/<name>/expected.json]
                           [--selection val|oracle] [--baseline zeroshot] [--curves]
    python -m bench.report dataset=officehome split=val      # Hydra-style, same options

Per dataset key (the config name: officehome, minidomainnet, toy) it writes results/<key>.md
(Markdown), .csv (one column per statistic), .tex (booktabs), <key>_acc_vs_params.png (average
accuracy vs trainable parameters, log x, as in Fig. 1 of the MmAP paper), its twin
<key>_acc_vs_time.png and, with --curves, <key>_curves.png (bench/report_plots.py), and
<key>.html, the table's results page (bench/comparison_page.py: one self-contained file with
the sortable table, the figures as SVG and each row's runs and settings), with
results/index.html linking the pages.  Records of one dataset key with different data (their
data fingerprints differ: another root, split or few-shot subset) go to separate tables,
<key>-<fingerprint>.*.

The rows and their numbers come from bench/comparison.py: one row per experiment (DomainBed's
grouping: runs whose identity differs only in the seed; when two rows share method and mode,
their label names the settings in which they differ, e.g. "CoOp (train.lr=0.02)"), and for a
search the trial with the best validation average per method, mode and seed (`--selection
oracle`: by test, titled as an upper bound).  The caption states both selection rules.

Conventions:
- accuracies are percentages, shown as "mean ± standard error" over seeds with two decimals
  ("80.10 ± –" with one seed); "95 % CI" is the Student t interval of the average ("one seed:
  no interval" with one seed, never ± 0); "Δ vs <row>" the paired per-seed difference of the
  average against the baseline row (`--baseline`, default zeroshot) with its interval, "*"
  where the interval excludes 0 (bench/statistics.py).  The CSV holds mean, std (ddof=1),
  se, ci_low and ci_high per task, the delta columns and the costs; empty cells where
  undefined.
- trainable parameters are taken from the records (identical over seeds), shown as
  8.2K / 3.56M / 149.6M, and as a percentage of the whole CLIP model with two significant
  digits (0.0055); costs: training time per run, GPU-hours of every run behind the row
  (search trials included), training images/s, peak memory named by what it measured where
  the runs ran ("Peak GPU MB": accelerator memory torch allocated; "Peak RSS MB": the
  process's resident memory on the CPU; "Peak MB" with the measure in each cell when mixed).
- rows: methods in registry order (methods/__init__.py), then unknown ones alphabetically;
  modes st, mt, grouped, then others; then the label. Reruns with the same run_id: the last
  file wins.  Every method keeps one colour and marker in every plot (registry order); a
  further row of one method and mode its own line style and inner mark (bench/report_plots.py).
- records that are not valid JSON, are not status "complete" or miss required keys are
  skipped and named in the printed output and in every Markdown file; never fatal.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd

from bench.comparison import (MEMORY_MEASURES, MODE_ORDER, PROTOCOL_SUFFIX, data_fingerprints,  # noqa: F401
                              experiment_key, gpu_hours, held_out_rows, method_label, method_order, select_trials,
                              row_of, summarize, table_key)  # (tests and tools use them)
from bench.comparison_page import SWATCHES, ComparisonPage, figures_of, render_comparison_page
from bench.curves import curves_path, read_epoch_curves, read_stage_curves
from bench.errors import UserError, guarded
from bench.input_checks import check_writable
from bench.records import RunRecord, read_record
from bench.report_page import finish_page, render_index
from bench.report_plots import (Drawn, FigureDrawer, figure_processes, method_style,  # noqa: F401
                                plot_acc_vs_params, plot_acc_vs_time, plot_curves, plot_held_out, point_label,
                                swatches)
from bench.report_sequential import (CAPTION as SEQUENTIAL_CAPTION, FINAL, METRIC_COLUMNS,
                                     draw_figures as draw_sequential_figures, incremental_table, is_sequential,
                                     sequential_rows, title_of as sequential_title)
from bench.statistics import ONE_SEED

NO_STD = "–"
HELD_OUT_CAPTION = ("Leave-one-domain-out (protocol=leave_one_out): each domain column is a separate run per "
                    "seed that trained and validated on the other domains only and is tested on that held-out "
                    "domain; Average: the mean over the held-out domains. ")


#: a sequential table's columns on its page (bench/comparison_page.py): the final average sorts by the
#: rows' average, and the least forgetting is the best
SEQUENTIAL_SORTED_BY = {FINAL: ("Average mean", "max"),
                        METRIC_COLUMNS["forgetting"]: (f"{METRIC_COLUMNS['forgetting']} mean", "min")}


class ReportError(UserError):
    """Nothing to report for the selection asked for."""


def load_records(runs_dir) -> tuple[list[RunRecord], list[dict]]:
    """Read every *.json in runs_dir. Returns (complete records, problems); each problem is
    {"file": file name, "run_id": id or None, "reason": why it was skipped}.  What counts as
    complete is bench/records.py's schema, the one the run writes and reads back."""
    records, problems = {}, []
    for path in sorted(Path(runs_dir).glob("*.json")):
        rec, reason = read_record(path)
        if rec is None:
            run_id = path.stem
            try:
                run_id = json.loads(path.read_text()).get("run_id", path.stem)
            except (OSError, ValueError, AttributeError):
                pass
            problems.append({"file": path.name, "run_id": run_id, "reason": reason})
        else:
            records[rec.run_id] = rec
    return list(records.values()), problems


def missing_runs(expected: list[dict], records: list[RunRecord], problems: list[dict] | None = None) -> list[dict]:
    """Expected runs (dicts with run_id, method, mode, dataset, seed, ...) that have no complete
    record; each returned copy gets "reason": "missing" or why its record was skipped."""
    done = {r.run_id for r in records}
    why = {p["run_id"]: p["reason"] for p in problems or []}
    return [{**e, "reason": why.get(e["run_id"], "missing")} for e in expected if e["run_id"] not in done]


def human_params(n: float) -> str:
    """8192 -> 8.2K, 3555328 -> 3.56M, 149620737 -> 149.6M."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            v = n / scale
            return f"{v:.{2 if v < 10 and unit != 'K' else 1}f}{unit}"
    return str(int(n))


def human_percent(p: float) -> str:
    """Two significant digits below 1 % (0.005475 -> 0.0055), one decimal above."""
    if p <= 0:
        return "0"
    if p >= 1:
        return f"{p:.1f}"
    return f"{p:.{1 - math.floor(math.log10(p))}f}"


def _cell(mean: float, se: float) -> str:
    if pd.isna(mean):
        return NO_STD
    return f"{mean:.2f} ± {NO_STD if pd.isna(se) else f'{se:.2f}'}"


def _interval(low: float, high: float) -> str:
    return ONE_SEED if pd.isna(low) else f"[{low:.2f}, {high:.2f}]"


def _difference(r: pd.Series, is_baseline: bool) -> str:
    if is_baseline:
        return "(baseline)"
    if not r["delta n"]:
        return NO_STD
    text = f"{r['delta mean']:+.2f} "
    if pd.isna(r["delta ci_low"]):
        return text + f"({ONE_SEED})"
    return text + _interval(r["delta ci_low"], r["delta ci_high"]) + (" *" if r["delta significant"] else "")


def _cost(value: float, digits: int = 3) -> str:
    return NO_STD if pd.isna(value) else f"{value:.{digits}g}"


def _memory_measures(summary: pd.DataFrame) -> set[str]:
    return {m for m, mb in zip(summary["peak_memory_of"], summary["peak_memory_mb"]) if pd.notna(mb)}


def memory_column(summary: pd.DataFrame) -> str:
    """The peak-memory column's name, saying what it measures where every row measured it alike
    (`MEMORY_MEASURES`): "Peak GPU MB", "Peak RSS MB"; else "Peak MB" (each cell then names its
    measure, e.g. "1234 (RSS)")."""
    measures = _memory_measures(summary)
    return f"Peak {measures.pop()} MB" if len(measures) == 1 and "" not in measures and "mixed" not in measures \
        else "Peak MB"


def memory_caption(summary: pd.DataFrame) -> str:
    """What the peak-memory column measures, and where."""
    measures = _memory_measures(summary)
    column = memory_column(summary)
    if column != "Peak MB":
        return f"{column}: {MEMORY_MEASURES[column.split()[1]]}"
    unsaid = ("on a GPU the peak accelerator memory torch allocated, on the CPU the peak resident memory of the "
              "process (bench/device.py)")
    if measures <= {""}:
        return f"Peak MB: the peak memory the records give, which do not say where their runs ran ({unsaid})"
    notes = [f"({m}) {MEMORY_MEASURES[m]}" for m in sorted(measures & set(MEMORY_MEASURES))]
    notes += ["(mixed) the runs of the row ran on both, its largest value"] if "mixed" in measures else []
    notes += [f"no mark: the records do not say where they ran ({unsaid})"] if "" in measures else []
    return "Peak MB: " + "; ".join(notes)


def display_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The human table: Method, Mode, [Model], per task and Average "mean ± se", the 95 % interval
    of the average, its paired difference against the baseline, Params, % CLIP, the costs, n."""
    cols = [c[: -len(" mean")] for c in summary.columns if c.endswith(" mean") and not c.startswith("delta")]
    multi_model = summary["model"].nunique() > 1
    ref = summary.attrs.get("baseline_index")
    memory = memory_column(summary)
    rows = []
    for i, r in summary.iterrows():
        row = {"Method": r["label"], "Mode": str(r["mode"]).upper()}
        if multi_model:
            row["Model"] = r["model"]
        row.update({c: _cell(r[f"{c} mean"], r[f"{c} se"]) for c in cols})
        row["95 % CI"] = _interval(r["Average ci_low"], r["Average ci_high"])
        if ref is not None:
            row[f"Δ vs {summary.attrs['baseline']}"] = _difference(r, i == ref)
        row["Params"] = human_params(r["trainable"])
        row["% CLIP"] = human_percent(r["trainable_percent"])
        row["Train s"] = _cost(r["train_time_s"])
        row["GPU-h"] = _cost(r["gpu_hours"])
        row["img/s"] = _cost(r["images_per_s"])
        named = memory == "Peak MB" and r["peak_memory_of"] and pd.notna(r["peak_memory_mb"])  # a mixed table
        row[memory] = _cost(r["peak_memory_mb"], 4) + (f" ({r['peak_memory_of']})" if named else "")
        row["n"] = int(r["n"])
        rows.append(row)
    return pd.DataFrame(rows)


def _latex(table: pd.DataFrame, caption: str) -> str:
    def esc(s) -> str:
        s = str(s).replace("\\", r"\textbackslash{}")
        for ch in "&%$#_{}":
            s = s.replace(ch, "\\" + ch)
        return s.replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace(NO_STD, "--")

    lines = [r"\begin{table}[t]", r"\centering", f"\\caption{{{esc(caption)}}}",
             r"\begin{tabular}{" + "l" * 2 + "r" * (len(table.columns) - 2) + "}", r"\toprule",
             " & ".join(esc(c) for c in table.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(v) for v in row) + r" \\" for row in table.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def _problem_lines(problems: list[dict]) -> list[str]:
    return [f"- `{p['file']}`: {p['reason']}" for p in problems]


def caption(records: list[RunRecord], summary: pd.DataFrame, split: str, selection: str) -> str:
    """What the table shows and how its rows were chosen, in words (the Markdown's preamble)."""
    within = sorted({str(r.config.get("train", {}).get("selection", "not recorded")) for r in records})
    rule = {"val": "the epoch with the best validation average", "last": "the last epoch",
            "oracle": "the epoch with the best validation average of the held-out domain: ORACLE, an upper bound"}
    if any(r.protocol == "leave_one_out" for r in records):
        rule["val"] = "the epoch with the best validation average of the source domains (training-domain validation)"
    if any(r.protocol == "sequential" for r in records):
        rule["val"] = "in each stage, the epoch with the best validation accuracy of that stage's domain"
        rule["last"] = "in each stage, its last epoch"
    recorded = [f"train.selection={w} ({rule[w]})" if w in rule else f"train.selection={w}"
                for w in within if w != "not recorded"]
    parts = ["Model selection: within a run, " + (", ".join(recorded) if recorded else "not recorded") + "."]
    if (summary["trials"] > 1).any() or summary["label"].str.contains(r"\(search, ").any():
        parts.append("Across the trials of a search (rows marked search), per method, mode and seed the trial "
                     + ("with the best validation average (each task's own val split: training-domain "
                        "validation), chosen before the test split is looked at."
                        if selection == "val" else "with the best *test* average: ORACLE selection, an upper "
                        "bound only, not a result."))
    base = summary.attrs.get("baseline")
    parts.append(f"{split.capitalize()} accuracy: mean ± standard error over seeds; 95 % CI: Student's t "
                 f"interval of the average over seeds (none with one seed: '{ONE_SEED}')."
                 + (f" Δ: the paired per-seed difference of the average against {base}, with its 95 % t "
                    "interval; * where the interval excludes 0." if base else " No baseline row in this table."))
    parts.append("Params: trainable parameters (a search row: the mean over its selected trials), % CLIP: their "
                 "share of the whole model; Train s: training "
                 "time per run (over its resumes); GPU-h: GPU-hours of every run behind the row (search "
                 "trials included, times the processes of a run; – on CPU); img/s: training images per "
                 f"second; {memory_caption(summary)}; n: seeds averaged.")
    return " ".join(parts)


def write_report(records, problems, out_dir, datasets=None, split="test", expected=None, selection="val",
                 baseline="zeroshot", curves_from=None, figures: FigureDrawer | None = None,
                 baseline_required: bool = False, runs_dir=None) -> list[Path]:
    """Write <dataset>.md/.csv/.tex/.html, _acc_vs_params.png and _acc_vs_time.png for each dataset
    (and _curves.png with `curves_from`, the folder of the runs' curves CSVs) and index.html;
    return the paths.  The figures and pages are drawn by `figures` (the command's forked
    processes; None: here, one by one), and are on disk once the drawer's `with` block has ended.
    `baseline_required` (a baseline the user named): a table without that row is an error, raised
    before any file is written.  `runs_dir`: the records' folder, whose files beside each record
    the page lists (None: not looked up)."""
    if figures is None:
        with FigureDrawer(1) as here:
            return write_report(records, problems, out_dir, datasets, split, expected, selection, baseline,
                                curves_from, here, baseline_required, runs_dir)
    out_dir = Path(out_dir)
    check_writable({"--out": out_dir}, "the report")
    written = []
    fingerprints = data_fingerprints(records)
    keys = sorted({table_key(r, fingerprints) for r in records})
    chosen = [k for k in keys if not datasets or k in datasets or k.split("-")[0] in datasets]
    unknown = [d for d in datasets or [] if not any(k == d or k.split("-")[0] == d for k in keys)]
    if not keys:  # nothing at all: no keys to offer
        raise ReportError("There is no complete record to report (every record is missing, unfinished or skipped "
                          "above). Run the experiments first (python -m bench.run ..., or python -m bench.sweep "
                          "PRESET run), or point --runs at the folder of their records.")
    if unknown or not chosen:
        raise ReportError(
            f"No complete record of dataset {', '.join(unknown) or 'any'} to report: the complete records "
            f"cover {', '.join(sorted(fingerprints))}. Pass --dataset with one of those keys "
            "(the config name, e.g. officehome), or run the experiments first (python -m bench.run ...).")
    summaries, pages = {}, []
    for dataset in chosen:  # every table first: a bad --baseline stops the report before it writes
        held_out = dataset.endswith("-" + PROTOCOL_SUFFIX["leave_one_out"])
        summaries[dataset] = summarize(records, dataset, "test" if held_out else split, selection, baseline,
                                       held_out_rows if held_out else
                                       sequential_rows if is_sequential(dataset) else select_trials)
        if baseline_required and summaries[dataset].attrs.get("baseline_index") is None:
            rows = summaries[dataset]
            named = sorted({*rows["method"], *(rows["method"] + ":" + rows["mode"]), *rows["label"]})
            raise ReportError(f"--baseline {baseline} names no row of the {dataset} table, so its paired differences "
                              f"would silently disappear. Its rows can be named as {', '.join(named)}. Pass one of "
                              "those (a method, method:mode or a row's label), or --baseline none for no differences.")
    for dataset in chosen:
        held_out = dataset.endswith("-" + PROTOCOL_SUFFIX["leave_one_out"])
        summary = summaries[dataset]
        sequential = is_sequential(dataset)  # its own table, figures and caption (bench/report_sequential.py)
        table = incremental_table(display_table(summary)) if sequential else display_table(summary)
        mine_records = [r for r in records if table_key(r, fingerprints) == dataset]
        oracle = selection == "test" or (held_out and any(r.selection == "oracle" for r in mine_records))
        title = (f"{dataset}: held-out-domain test accuracy (%), leave-one-domain-out" if held_out
                 else sequential_title(dataset, split) if sequential
                 else f"{dataset}: {split} accuracy (%)") + (" [ORACLE selection: upper bound]" if oracle else "")
        text = (HELD_OUT_CAPTION if held_out else SEQUENTIAL_CAPTION if sequential else "") + caption(
            mine_records, summary, split, selection)
        md = [f"# {title}", "", text, "", table.to_markdown(index=False, disable_numparse=True), ""]
        if problems:
            md += ["## Skipped records", ""] + _problem_lines(problems) + [""]
        mine = [e for e in expected or [] if e.get("dataset", dataset) == dataset]
        gone = missing_runs(mine, records, problems) if mine else None
        if mine:
            md += ["## Missing or failed runs", ""]
            md += [f"- `{m['run_id']}` {m.get('method')} {m.get('mode')} seed={m.get('seed')}: {m['reason']}"
                   for m in gone] or ["none"]
            md += [""]
        paths = {ext: out_dir / f"{dataset}.{ext}" for ext in ("md", "csv", "tex")}
        paths["md"].write_text("\n".join(md))
        summary.to_csv(paths["csv"], index=False, float_format="%.6g")
        paths["tex"].write_text(_latex(table, f"{title}. {text}"))
        drawn = {}  # the figures' SVG, for the page
        paths["png"] = out_dir / f"{dataset}_acc_vs_params.png"
        drawn["acc_vs_params"] = figures.draw(plot_acc_vs_params, summary, paths["png"], title)
        paths["time png"] = out_dir / f"{dataset}_acc_vs_time.png"
        drawn["acc_vs_time"] = figures.draw(plot_acc_vs_time, summary, paths["time png"], title)
        if held_out:
            paths["held-out png"] = out_dir / f"{dataset}_held_out.png"
            drawn["held_out"] = figures.draw(plot_held_out, summary, paths["held-out png"], title)
        if sequential:
            sequential_paths, sequential_drawn = draw_sequential_figures(summary, mine_records, out_dir, dataset,
                                                                         title, figures)
            paths.update(sequential_paths)
            drawn.update(sequential_drawn)
        if curves_from is not None:
            curves = write_curves(summary, mine_records, selection, Path(curves_from),
                                  out_dir / f"{dataset}_curves.png", f"{dataset}: learning curves (mean ± se over seeds)",
                                  figures)
            if curves:
                paths["curves"], drawn["curves"] = curves
        paths["html"] = out_dir / f"{dataset}.html"
        page = ComparisonPage(dataset, title, text, summary, table, mine_records, selection, held_out,
                              figures_of(drawn, "test" if held_out else split), problems, gone,
                              None if runs_dir is None else Path(runs_dir),
                              SEQUENTIAL_SORTED_BY if sequential else {})
        drawn[SWATCHES] = figures.draw(swatches, summary)
        pages.append((paths["html"], page, drawn))
        print(f"\n{title}\n{table.to_markdown(index=False, disable_numparse=True)}")
        written += paths.values()
    for path, page, drawn in pages:  # rendered here while every figure is being drawn; written once they are
        figures.then(finish_page, path, render_comparison_page(page), drawn)
    links = [(path.name, page.title) for path, page, _ in pages]
    earlier = sorted(p.name for p in out_dir.glob("*.html") if p.name != "index.html" and p.name not in dict(links))
    figures.then(finish_page, out_dir / "index.html",
                 render_index(links + [(name, f"{name} (an earlier report)") for name in earlier]), {})
    return written + [out_dir / "index.html"]


def write_curves(summary: pd.DataFrame, records: list[RunRecord], selection: str, runs_dir: Path, path: Path,
                 title: str, figures: FigureDrawer) -> tuple[Path, Drawn] | None:
    """The learning curves of every row with a curves CSV (its selected runs' epochs): the PNG's
    path and its drawing (the SVG for the page)."""
    chosen, _ = select_trials(records, selection)
    by_row: dict[str, list] = {}
    for r in chosen:  # protocol=sequential: its stages' curves one after another
        frame = read_stage_curves(runs_dir, r.run_id, len(r.task_order)) if r.task_order else \
            read_epoch_curves(curves_path(runs_dir, r.run_id))
        if frame is not None:  # a leave-one-out row holds its runs over every target
            by_row.setdefault(row_of(r, held_out=r.target is not None), []).append(frame)
    if not any(experiment in by_row for experiment in summary["experiment"]):
        print(f"no learning curves beside the records in {runs_dir} (runs before curves were written?)")
        return None
    tasks = [c[: -len(" mean")] for c in summary.columns
             if c.endswith(" mean") and not c.startswith(("delta", "Average"))]
    if any(r.task_order for r in chosen):  # a sequential table's columns are metrics: its panels are the domains
        tasks = next(r.task_order for r in chosen if r.task_order)
    if any(r.target for r in chosen):  # each run validates its own sources: the panel is their average
        tasks = []
    return path, figures.draw(plot_curves, summary, by_row, tasks, path, title)


def read_expected(path: str) -> list[dict]:
    """A sweep's expected.json (`bench.sweep` writes it): a list of runs, each with its run_id."""
    try:
        expected = json.loads(Path(path).read_text())
        if not isinstance(expected, list) or not all(isinstance(e, dict) and "run_id" in e for e in expected):
            raise ValueError("not a list of runs with a run_id each")
    except (OSError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error).splitlines()[0]
        raise ReportError(f"--expected {path} cannot be read as a sweep's list of expected runs ({reason}). Pass "
                          "the expected.json that bench.sweep wrote into results/sweeps/<preset>/, or leave "
                          "--expected out.") from None
    return expected


@guarded
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default="results/runs", help="folder of result records (*.json)")
    parser.add_argument("--out", default="results", help="where tables and plots go")
    parser.add_argument("--dataset", action="append", help="only this dataset (repeatable); default: all")
    parser.add_argument("--split", default="test", choices=("val", "test"))
    parser.add_argument("--expected", help="expected.json of a sweep: list the missing or failed runs")
    parser.add_argument("--selection", default="val", choices=("val", "oracle"),
                        help="across search trials: val (the best validation average, the result) | oracle (the "
                             "best test average: an upper bound, labelled so)")
    parser.add_argument("--baseline", default=None,
                        help="the reference row of the paired differences: a method, method:mode (coop:mt) or a "
                             "row's label, which must be in every table; none: no differences; default: zeroshot "
                             "where a table has it")
    parser.add_argument("--curves", action="store_true", help="also plot the learning curves (<dataset>_curves.png)")
    parser.add_argument("overrides", nargs="*",
                        help="Hydra-style key=value (runs=, out=, dataset=, split=, expected=, selection=, baseline=)")
    args = parser.parse_args(argv)
    options = ("runs", "out", "dataset", "split", "expected", "selection", "baseline")
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in options:
            parser.error(f"unknown argument {item!r}: expected key=value with key {', '.join(options)}")
        setattr(args, key, value.split(",") if key == "dataset" else value)
    if args.split not in ("val", "test"):
        parser.error(f"split must be val or test, not {args.split!r}")
    if args.selection not in ("val", "oracle"):
        parser.error(f"selection must be val or oracle, not {args.selection!r}")
    if not Path(args.runs).is_dir():
        print(f"No result folder {args.runs}: run experiments first (python -m bench.run ...) or pass --runs.")
        return 2
    with FigureDrawer(figure_processes()) as figures:  # its processes start now, beside the reading
        records, problems = load_records(args.runs)
        print(f"{len(records)} complete record(s) in {args.runs}, {len(problems)} skipped")
        for line in _problem_lines(problems):
            print(f"  skipped {line[2:]}")
        expected = read_expected(args.expected) if args.expected else None
        written = write_report(records, problems, args.out, args.dataset, args.split, expected,
                               "test" if args.selection == "oracle" else "val",
                               None if args.baseline == "none" else args.baseline or "zeroshot",
                               args.runs if args.curves else None, figures,
                               baseline_required=args.baseline not in (None, "none"), runs_dir=args.runs)
    if expected is not None:
        gone = missing_runs(expected, records, problems)
        print(f"\n{len(gone)} of {len(expected)} expected run(s) missing or failed")
        for m in gone:
            print(f"  {m['run_id']} {m.get('method')} {m.get('mode')} {m.get('dataset')} seed={m.get('seed')}: {m['reason']}")
    print("\nwrote " + ", ".join(str(p) for p in written) if written else "\nnothing written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
