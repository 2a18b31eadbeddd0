"""Comparison tables and plots from the result records in results/runs/*.json.

    python -m bench.report [--runs results/runs] [--out results] [--dataset officehome]
                           [--split test] [--expected results/sweeps/<name>/expected.json]
    python -m bench.report dataset=officehome split=val      # Hydra-style, same options

Per dataset it writes results/<dataset>.md (Markdown), .csv (numbers), .tex (booktabs) and
<dataset>_acc_vs_params.png (average accuracy vs trainable parameters, log x, as in Fig. 1
of the MmAP paper).  Records of one dataset name with different data (their data
fingerprints differ: another root, split or few-shot subset) go to separate tables,
<dataset>-<fingerprint>.*.

One row per *experiment*: the runs whose identity (config, data, weights; bench/identity.py)
differs only in the seed (DomainBed's grouping), so two settings are never averaged into
one row.  When two rows share method and mode, their label names the settings in which
they differ, e.g. "CoOp (train.lr=0.02)"; n is the number of runs averaged.

Conventions:
- accuracies are percentages, shown as "mean ± std" over seeds with two decimals; std is the
  *sample* standard deviation (ddof=1). With one seed it is undefined: "80.10 ± –" in the
  Markdown/LaTeX tables and an empty cell in the CSV.
- trainable parameters are taken from the records (identical over seeds), shown as
  8.2K / 3.56M / 149.6M, and as a percentage of the whole CLIP model with two significant
  digits (0.0055).
- rows: methods in registry order (methods/__init__.py), then unknown ones alphabetically;
  modes st, mt, grouped, then others; then the label. Reruns with the same run_id: the last
  file wins.  Every method keeps one colour and marker in every plot (registry order).
- records that are not valid JSON, are not status "complete" or miss required keys are
  skipped and named in the printed output and in every Markdown file; never fatal.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path

import pandas as pd

from bench.errors import guarded
from bench.identity import experiment_id_of
from bench.methods import METHODS
from bench.records import RunRecord, read_record
from bench.curves import curves_path, read_epoch_curves
from bench.report_plots import method_style, plot_acc_vs_params, plot_acc_vs_time, plot_curves, point_label  # noqa: F401
from bench.statistics import ONE_SEED, estimate, paired_difference

MODE_ORDER = ("st", "mt", "grouped")
NO_STD = "–"
#: settings the table shows in columns of their own (or that name the table)
_LABEL_SKIP = ("seed", "method.name", "method.mode", "dataset.name", "model.arch")  # model: its own column


def method_order() -> tuple[str, ...]:
    return tuple(METHODS)


def method_label(name: str) -> str:
    return METHODS[name].label if name in METHODS else name


def experiment_key(record: dict) -> str:
    """The run's identity without its seed (bench/identity.py), from its record."""
    return experiment_id_of({"config": record.config, "data_fingerprint": record.data_fingerprint,
                             "weights_fingerprint": record.weights_fingerprint})


def _flat(tree, prefix: str = "") -> dict:
    if not isinstance(tree, dict):
        return {prefix[:-1]: json.dumps(tree) if isinstance(tree, (list, dict)) else tree}
    out = {}
    for key, value in tree.items():
        out.update(_flat(value, f"{prefix}{key}."))
    return out


def table_key(record: dict, fingerprints: dict[str, set]) -> str:
    """`<dataset>`, or `<dataset>-<data fingerprint>` when that name covers different data."""
    fingerprint = record.data_fingerprint
    if len(fingerprints[record.dataset]) > 1 and fingerprint:
        return f"{record.dataset}-{fingerprint[:8]}"
    return record.dataset


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


def _order(value: str, order: tuple) -> tuple:
    return (order.index(value), "") if value in order else (len(order), value)


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


def _on_gpu(record: RunRecord) -> bool:
    return bool(record.device) and not str(record.device).startswith(("cpu", "mps"))


def gpu_hours(record: RunRecord) -> float:
    """The run's GPU-hours: its wall time over every resume times its processes (world size,
    1 unless the record says otherwise); 0 for a run on the CPU."""
    world = getattr(record, "world_size", None) or 1
    return (record.wall_time_s or 0.0) * world / 3600 if _on_gpu(record) else 0.0


def search_group(record: RunRecord) -> tuple:
    """What the trials of one search share, the seed aside: their sweep, method, mode, model,
    data and weights (the drawn settings differ)."""
    return (record.sweep, record.method, record.mode, record.model, record.data_fingerprint,
            record.weights_fingerprint)


def select_trials(records: list[RunRecord], selection: str = "val") -> tuple[list[RunRecord], dict]:
    """Model selection across search trials (DomainBed's training-domain validation): per
    search group and seed keep the trial with the best `selection` average (val: each task's
    own validation split; test: the oracle, an upper bound only); ties go to the lower trial.
    Runs that are no search trial pass through.  Returns (kept records, {search group: every
    trial record}) so that costs can count the whole budget."""
    kept, trials = [], {}
    best: dict[tuple, RunRecord] = {}
    for r in records:
        if r.trial is None:
            kept.append(r)
            continue
        trials.setdefault(search_group(r), []).append(r)
        key = (*search_group(r), r.seed)
        score = lambda rec: ((rec.accuracy.get(selection) or {}).get("average", -math.inf), -rec.trial)  # noqa: E731
        if key not in best or score(r) > score(best[key]):
            best[key] = r
    return kept + list(best.values()), trials


def experiment_key(record: RunRecord) -> str:
    """The row a record belongs to: the run's identity without its seed (bench/identity.py),
    or for a search trial its search group (every selected trial of a method and mode)."""
    if record.trial is not None:
        return "search-" + stable_key(search_group(record))
    return experiment_id_of({"config": record.config, "data_fingerprint": record.data_fingerprint,
                             "weights_fingerprint": record.weights_fingerprint})


def stable_key(parts: tuple) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:12]


def _stat_columns(row: dict, column: str, values: list[float]) -> None:
    est = estimate(values)
    fields = ("mean", "std", "se", "ci_low", "ci_high")
    for name, value in zip(fields, (None, None, None, None, None) if est is None else
                           (est.mean, est.std, est.se, est.low, est.high)):
        row[f"{column} {name}"] = float("nan") if value is None else value


def summarize(records: list[RunRecord], dataset: str, split: str = "test", selection: str = "val",
              baseline: str | None = "zeroshot") -> pd.DataFrame:
    """Numeric summary of the records whose table key (`table_key`) is `dataset`, after model
    selection across search trials (`select_trials`): one row per experiment, columns method,
    mode, model, label, n, trials, "<task> mean|std|se|ci_low|ci_high" per task and for
    "Average", the paired difference of the average against the `baseline` row ("delta
    mean|se|ci_low|ci_high|n", "delta significant"), trainable, trainable_percent, the costs
    (train_time_s, gpu_hours over every run behind the row, images_per_s, peak_memory_mb) and
    experiment."""
    fingerprints: dict[str, set] = {}
    for r in records:
        fingerprints.setdefault(r.dataset, set()).add(r.data_fingerprint)
    recs, trials = select_trials([r for r in records if table_key(r, fingerprints) == dataset], selection)
    tasks: list[str] = []
    for r in recs:
        tasks += [t for t in r.tasks if t not in tasks]
    groups: dict[str, list[RunRecord]] = {}
    for r in recs:
        groups.setdefault(experiment_key(r), []).append(r)
    keys = ["method", "mode", "model", "label"]
    if not groups:
        return pd.DataFrame(columns=keys + ["n"])
    settings = {key: _flat({**members[0].config, "weights": members[0].weights_fingerprint})
                for key, members in groups.items()}
    out, per_seed = [], {}
    for key, members in groups.items():
        first = members[0]
        label = method_label(first.method)
        behind = trials.get(search_group(first), members) if first.trial is not None else members
        tuned = first.trial is not None and (first.method not in METHODS or bool(METHODS[first.method].search_space))
        if tuned:  # a method with nothing to tune ran once: it is labelled as any run
            count = len({r.trial for r in behind})
            other = any(m[0].trial is not None and m[0].sweep != first.sweep and
                        (m[0].method, m[0].mode) == (first.method, first.mode) for m in groups.values())
            label += f" (search{' ' + str(first.sweep) if other else ''}, {count} trial{'s' if count > 1 else ''})"
        else:
            rivals = [k for k, m in groups.items() if k != key and m[0].trial is None
                      and (m[0].method, m[0].mode) == (first.method, first.mode)]
            differing = sorted({name for other in rivals for name in set(settings[key]) | set(settings[other])
                                if settings[key].get(name) != settings[other].get(name)} - set(_LABEL_SKIP))
            if differing:
                label += " (" + ", ".join(f"{name}={settings[key].get(name)}" for name in differing) + ")"
        row = {"method": first.method, "mode": first.mode, "model": first.model, "label": label,
               "n": len(members), "trials": len({r.trial for r in behind}) if first.trial is not None else 1}
        accuracy = lambda r, col: (r.accuracy.get(split) or {}).get(col, float("nan"))  # noqa: E731
        for col in tasks:
            _stat_columns(row, col, [accuracy(r, col) for r in members])
        _stat_columns(row, "Average", [accuracy(r, "average") for r in members])
        per_seed[key] = {r.seed: accuracy(r, "average") for r in members}
        row["trainable"] = int(first.params["trainable"])
        row["trainable_percent"] = float(first.params.get("trainable_percent", float("nan")))
        row["train_time_s"] = _mean([r.train_time_s for r in members])
        row["gpu_hours"] = sum(gpu_hours(r) for r in behind) if any(_on_gpu(r) for r in behind) else float("nan")
        row["images_per_s"] = _mean([r.train_images_per_s for r in members])
        memory = [r.peak_memory_mb for r in members if r.peak_memory_mb is not None]
        row["peak_memory_mb"] = max(memory) if memory else float("nan")
        row["experiment"] = key
        out.append(row)
    df = pd.DataFrame(out)
    order = method_order()
    sort_key = df.apply(lambda r: (_order(r["method"], order), _order(r["mode"], MODE_ORDER), r["model"],
                                  r["label"]), axis=1)
    df = df.loc[sorted(df.index, key=lambda i: sort_key[i])].reset_index(drop=True)
    return _with_differences(df, per_seed, baseline)


def _mean(values) -> float:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else float("nan")


def baseline_row(summary: pd.DataFrame, baseline: str | None) -> int | None:
    """The index of the reference row: the first whose method, method:mode or label is `baseline`."""
    if not baseline or summary.empty:
        return None
    for i, r in summary.iterrows():
        if baseline in (r["method"], f"{r['method']}:{r['mode']}", r["label"]):
            return i
    return None


def _with_differences(df: pd.DataFrame, per_seed: dict, baseline: str | None) -> pd.DataFrame:
    """Add the paired per-seed difference of every row's average against the baseline row's."""
    ref = baseline_row(df, baseline)
    names = ("mean", "se", "ci_low", "ci_high")
    columns = {f"delta {name}": [] for name in (*names, "n")} | {"delta significant": []}
    for _, r in df.iterrows():
        est = None if ref is None else paired_difference(per_seed[r["experiment"]],
                                                         per_seed[df.loc[ref, "experiment"]])
        values = (None,) * 4 if est is None else (est.mean, est.se, est.low, est.high)
        for name, value in zip(names, values):
            columns[f"delta {name}"].append(float("nan") if value is None else value)
        columns["delta n"].append(0 if est is None else est.n)
        columns["delta significant"].append(bool(est is not None and est.excludes_zero))
    df = df.copy()
    for name, values in columns.items():
        df[name] = values
    df.attrs["baseline"] = None if ref is None else df.loc[ref, "label"] + "-" + str(df.loc[ref, "mode"]).upper()
    df.attrs["baseline_index"] = ref
    return df


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


def display_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The human table: Method, Mode, [Model], per task and Average "mean ± se", the 95 % interval
    of the average, its paired difference against the baseline, Params, % CLIP, the costs, n."""
    cols = [c[: -len(" mean")] for c in summary.columns if c.endswith(" mean") and not c.startswith("delta")]
    multi_model = summary["model"].nunique() > 1
    ref = summary.attrs.get("baseline_index")
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
        row["Peak MB"] = _cost(r["peak_memory_mb"], 4)
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
    rule = {"val": "the epoch with the best validation average", "last": "the last epoch"}
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
    parts.append("Params: trainable parameters, % CLIP: their share of the whole model; Train s: training "
                 "time per run (over its resumes); GPU-h: GPU-hours of every run behind the row (search "
                 "trials included, times the processes of a run; – on CPU); img/s: training images per "
                 "second; Peak MB: peak accelerator memory; n: seeds averaged.")
    return " ".join(parts)


def write_report(records, problems, out_dir, datasets=None, split="test", expected=None, selection="val",
                 baseline="zeroshot", curves_from=None) -> list[Path]:
    """Write <dataset>.md/.csv/.tex, _acc_vs_params.png and _acc_vs_time.png for each dataset
    (and _curves.png with `curves_from`, the folder of the runs' curves CSVs); return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    fingerprints: dict[str, set] = {}
    for r in records:
        fingerprints.setdefault(r.dataset, set()).add(r.data_fingerprint)
    keys = sorted({table_key(r, fingerprints) for r in records})
    for dataset in [k for k in keys if not datasets or k in datasets or k.split("-")[0] in datasets] or datasets or []:
        summary = summarize(records, dataset, split, selection, baseline)
        if summary.empty:
            print(f"{dataset}: no complete records")
            continue
        table = display_table(summary)
        mine_records = [r for r in records if table_key(r, fingerprints) == dataset]
        title = f"{dataset}: {split} accuracy (%)" + (" [ORACLE selection: upper bound]" if selection == "test" else "")
        text = caption(mine_records, summary, split, selection)
        md = [f"# {title}", "", text, "", table.to_markdown(index=False, disable_numparse=True), ""]
        if problems:
            md += ["## Skipped records", ""] + _problem_lines(problems) + [""]
        mine = [e for e in expected or [] if e.get("dataset", dataset) == dataset]
        if mine:
            gone = missing_runs(mine, records, problems)
            md += ["## Missing or failed runs", ""]
            md += [f"- `{m['run_id']}` {m.get('method')} {m.get('mode')} seed={m.get('seed')}: {m['reason']}"
                   for m in gone] or ["none"]
            md += [""]
        paths = {ext: out_dir / f"{dataset}.{ext}" for ext in ("md", "csv", "tex")}
        paths["md"].write_text("\n".join(md))
        summary.to_csv(paths["csv"], index=False, float_format="%.6g")
        paths["tex"].write_text(_latex(table, f"{title}. {text}"))
        paths["png"] = out_dir / f"{dataset}_acc_vs_params.png"
        plot_acc_vs_params(summary, paths["png"], title)
        paths["time png"] = out_dir / f"{dataset}_acc_vs_time.png"
        plot_acc_vs_time(summary, paths["time png"], title)
        if curves_from is not None:
            path = write_curves(summary, mine_records, selection, Path(curves_from), out_dir / f"{dataset}_curves.png",
                                f"{dataset}: learning curves (mean ± se over seeds)")
            paths.update({"curves": path} if path else {})
        print(f"\n{title}\n{table.to_markdown(index=False, disable_numparse=True)}")
        written += paths.values()
    return written


def write_curves(summary: pd.DataFrame, records: list[RunRecord], selection: str, runs_dir: Path, path: Path,
                 title: str) -> Path | None:
    """The learning curves of every row with a curves CSV (its selected runs' epochs)."""
    chosen, _ = select_trials(records, selection)
    by_row: dict[str, list] = {}
    for r in chosen:
        frame = read_epoch_curves(curves_path(runs_dir, r.run_id))
        if frame is not None:
            by_row.setdefault(experiment_key(r), []).append(frame)
    multi_model = summary["model"].nunique() > 1
    curves = {point_label(row, multi_model): (row, by_row[row["experiment"]])
              for _, row in summary.iterrows() if row["experiment"] in by_row}
    if not curves:
        print(f"no learning curves beside the records in {runs_dir} (runs before curves were written?)")
        return None
    tasks = [c[: -len(" mean")] for c in summary.columns
             if c.endswith(" mean") and not c.startswith(("delta", "Average"))]
    plot_curves(curves, tasks, path, title)
    return path


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
    parser.add_argument("--baseline", default="zeroshot",
                        help="the reference row of the paired differences: a method (zeroshot), method:mode "
                             "(coop:mt) or a row's label; none: no differences")
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
    records, problems = load_records(args.runs)
    print(f"{len(records)} complete record(s) in {args.runs}, {len(problems)} skipped")
    for line in _problem_lines(problems):
        print(f"  skipped {line[2:]}")
    expected = json.loads(Path(args.expected).read_text()) if args.expected else None
    written = write_report(records, problems, args.out, args.dataset, args.split, expected,
                           "test" if args.selection == "oracle" else "val",
                           None if args.baseline == "none" else args.baseline, args.runs if args.curves else None)
    if expected is not None:
        gone = missing_runs(expected, records, problems)
        print(f"\n{len(gone)} of {len(expected)} expected run(s) missing or failed")
        for m in gone:
            print(f"  {m['run_id']} {m.get('method')} {m.get('mode')} {m.get('dataset')} seed={m.get('seed')}: {m['reason']}")
    print("\nwrote " + ", ".join(str(p) for p in written) if written else "\nnothing written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
