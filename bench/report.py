"""Comparison tables and plots from the result records in results/runs/*.json.

    python -m bench.report [--runs results/runs] [--out results] [--dataset officehome]
                           [--split test] [--expected results/sweeps/<name>/expected.json]
    python -m bench.report dataset=officehome split=val      # Hydra-style, same options

Per dataset key (the config name: officehome, minidomainnet, toy) it writes results/<key>.md (Markdown), .csv (numbers), .tex (booktabs) and
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
import json
import math
import sys
from pathlib import Path

import pandas as pd

from bench.errors import UserError, guarded
from bench.preflight import check_writable
from bench.identity import experiment_id_of
from bench.methods import METHODS
from bench.records import RunRecord, read_record

MODE_ORDER = ("st", "mt", "grouped")


class ReportError(UserError):
    """Nothing to report for the selection asked for."""

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
    """`<dataset key>` (e.g. officehome, as typed in `--dataset` and `dataset=`), or
    `<dataset key>-<data fingerprint>` when that key covers different data."""
    fingerprint = record.data_fingerprint
    if len(fingerprints[record.key]) > 1 and fingerprint:
        return f"{record.key}-{fingerprint[:8]}"
    return record.key


def data_fingerprints(records: list[RunRecord]) -> dict[str, set]:
    """{dataset key: the data fingerprints of its records}."""
    fingerprints: dict[str, set] = {}
    for r in records:
        fingerprints.setdefault(r.key, set()).add(r.data_fingerprint)
    return fingerprints


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


def _mean_std(values: pd.Series) -> tuple[float, float]:
    values = values.dropna()
    return values.mean(), (values.std(ddof=1) if len(values) > 1 else float("nan"))


def summarize(records: list[RunRecord], dataset: str, split: str = "test") -> pd.DataFrame:
    """Numeric summary of the records whose table key (`table_key`) is `dataset`: one row per
    experiment, columns method, mode, model, label, n, "<task> mean"/"<task> std" per task
    and for "Average", trainable, trainable_percent, experiment."""
    fingerprints = data_fingerprints(records)
    recs = [r for r in records if table_key(r, fingerprints) == dataset]
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
    out = []
    for key, members in groups.items():
        first = members[0]
        label = method_label(first.method)
        rivals = [k for k, m in groups.items() if k != key
                  and (m[0].method, m[0].mode) == (first.method, first.mode)]
        differing = sorted({name for other in rivals for name in set(settings[key]) | set(settings[other])
                            if settings[key].get(name) != settings[other].get(name)} - set(_LABEL_SKIP))
        if differing:
            label += " (" + ", ".join(f"{name}={settings[key].get(name)}" for name in differing) + ")"
        row = {"method": first.method, "mode": first.mode, "model": first.model, "label": label,
               "n": len(members)}
        for col in tasks:
            row[f"{col} mean"], row[f"{col} std"] = _mean_std(
                pd.Series([(r.accuracy.get(split) or {}).get(col, float("nan")) for r in members], dtype=float))
        row["Average mean"], row["Average std"] = _mean_std(
            pd.Series([(r.accuracy.get(split) or {}).get("average", float("nan")) for r in members], dtype=float))
        row["trainable"] = int(first.params["trainable"])
        row["trainable_percent"] = float(first.params.get("trainable_percent", float("nan")))
        row["experiment"] = key
        out.append(row)
    df = pd.DataFrame(out)
    order = method_order()
    sort_key = df.apply(lambda r: (_order(r["method"], order), _order(r["mode"], MODE_ORDER), r["model"],
                                  r["label"]), axis=1)
    return df.loc[sorted(df.index, key=lambda i: sort_key[i])].reset_index(drop=True)


def _cell(mean: float, std: float) -> str:
    if pd.isna(mean):
        return NO_STD
    return f"{mean:.2f} ± {NO_STD if pd.isna(std) else f'{std:.2f}'}"


def display_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The human table: Method, Mode, [Model], per task and Average "mean ± std", Params, % CLIP, n."""
    cols = [c[: -len(" mean")] for c in summary.columns if c.endswith(" mean")]
    multi_model = summary["model"].nunique() > 1
    rows = []
    for _, r in summary.iterrows():
        row = {"Method": r["label"], "Mode": str(r["mode"]).upper()}
        if multi_model:
            row["Model"] = r["model"]
        row.update({c: _cell(r[f"{c} mean"], r[f"{c} std"]) for c in cols})
        row["Params"] = human_params(r["trainable"])
        row["% CLIP"] = human_percent(r["trainable_percent"])
        row["n"] = int(r["n"])
        rows.append(row)
    return pd.DataFrame(rows)


def _latex(table: pd.DataFrame, caption: str) -> str:
    def esc(s) -> str:
        s = str(s).replace("\\", r"\textbackslash{}")
        for ch in "&%$#_{}":
            s = s.replace(ch, "\\" + ch)
        return s.replace("±", r"$\pm$").replace(NO_STD, "--")

    lines = [r"\begin{table}[t]", r"\centering", f"\\caption{{{esc(caption)}}}",
             r"\begin{tabular}{" + "l" * 2 + "r" * (len(table.columns) - 2) + "}", r"\toprule",
             " & ".join(esc(c) for c in table.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(v) for v in row) + r" \\" for row in table.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


_MARKERS = "os^Dv*P<>Xhp"
#: how a mode shows in the plot: MT filled, ST hollow, grouped filled with a black edge
MODE_FACE = {"st": {"mfc": "none"}, "grouped": {"mec": "black", "mew": 1.5}}


def method_style(method: str) -> tuple:
    """(colour, marker) of a method: fixed by its place in the registry, so a method looks
    the same in every plot whatever else the plot shows."""
    import matplotlib

    order = method_order()
    index = order.index(method) if method in order else len(order) + sum(map(ord, method)) % 7
    return matplotlib.colormaps["tab10"](index % 10), _MARKERS[index % len(_MARKERS)]


def plot_acc_vs_params(summary: pd.DataFrame, path, title: str) -> None:
    """Average accuracy vs trainable parameters (log x), error bars = std over seeds."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    multi_model = summary["model"].nunique() > 1
    for _, r in summary.iterrows():
        label = f"{r['label']}-{str(r['mode']).upper()}"
        label += f" ({r['model']})" if multi_model else ""
        mean, std = r["Average mean"], r["Average std"]
        color, marker = method_style(r["method"])
        if r["trainable"] <= 0:  # zero-shot: no trainable parameters, cannot sit on a log axis
            ax.axhline(mean, ls="--", lw=1, color="gray")
            ax.annotate(label, (0.01, mean), xycoords=("axes fraction", "data"), va="bottom", fontsize=8, color="gray")
            continue
        ax.errorbar(r["trainable"], mean, yerr=0 if pd.isna(std) else std, fmt=marker, color=color,
                    ms=9, capsize=3, label=label, **MODE_FACE.get(r["mode"], {}))
        ax.annotate(label, (r["trainable"], mean), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("Trainable parameters (log scale)")
    ax.set_ylabel("Average accuracy (%)")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def _problem_lines(problems: list[dict]) -> list[str]:
    return [f"- `{p['file']}`: {p['reason']}" for p in problems]


def write_report(records, problems, out_dir, datasets=None, split="test", expected=None) -> list[Path]:
    """Write <dataset>.md/.csv/.tex/_acc_vs_params.png for each dataset; return the paths."""
    out_dir = Path(out_dir)
    check_writable({"--out": out_dir}, "the report")
    written = []
    fingerprints = data_fingerprints(records)
    keys = sorted({table_key(r, fingerprints) for r in records})
    chosen = [k for k in keys if not datasets or k in datasets or k.split("-")[0] in datasets]
    unknown = [d for d in datasets or [] if not any(k == d or k.split("-")[0] == d for k in keys)]
    if unknown or not chosen:
        raise ReportError(
            f"No complete record of dataset {', '.join(unknown) or 'any'} to report: the complete records "
            f"cover {', '.join(sorted(fingerprints)) or 'no dataset'}. Pass --dataset with one of those keys "
            "(the config name, e.g. officehome), or run the experiments first (python -m bench.run ...).")
    for dataset in chosen:
        summary = summarize(records, dataset, split)
        table = display_table(summary)
        title = f"{dataset}: {split} accuracy (%)"
        md = [f"# {title}", "", "Mean ± sample std over seeds (– with one seed); Params: trainable "
              "parameters, % CLIP: their share of the whole model; n: runs (seeds) averaged.", "",
              table.to_markdown(index=False, disable_numparse=True), ""]
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
        paths["tex"].write_text(_latex(table, title))
        paths["png"] = out_dir / f"{dataset}_acc_vs_params.png"
        plot_acc_vs_params(summary, paths["png"], title)
        print(f"\n{title}\n{table.to_markdown(index=False, disable_numparse=True)}")
        written += paths.values()
    return written


@guarded
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", default="results/runs", help="folder of result records (*.json)")
    parser.add_argument("--out", default="results", help="where tables and plots go")
    parser.add_argument("--dataset", action="append", help="only this dataset (repeatable); default: all")
    parser.add_argument("--split", default="test", choices=("val", "test"))
    parser.add_argument("--expected", help="expected.json of a sweep: list the missing or failed runs")
    parser.add_argument("overrides", nargs="*", help="Hydra-style key=value (runs=, out=, dataset=, split=, expected=)")
    args = parser.parse_args(argv)
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or key not in ("runs", "out", "dataset", "split", "expected"):
            parser.error(f"unknown argument {item!r}: expected key=value with key runs, out, dataset, split or expected")
        setattr(args, key, value.split(",") if key == "dataset" else value)
    if args.split not in ("val", "test"):
        parser.error(f"split must be val or test, not {args.split!r}")
    if not Path(args.runs).is_dir():
        print(f"No result folder {args.runs}: run experiments first (python -m bench.run ...) or pass --runs.")
        return 2
    records, problems = load_records(args.runs)
    print(f"{len(records)} complete record(s) in {args.runs}, {len(problems)} skipped")
    for line in _problem_lines(problems):
        print(f"  skipped {line[2:]}")
    expected = json.loads(Path(args.expected).read_text()) if args.expected else None
    written = write_report(records, problems, args.out, args.dataset, args.split, expected)
    if expected is not None:
        gone = missing_runs(expected, records, problems)
        print(f"\n{len(gone)} of {len(expected)} expected run(s) missing or failed")
        for m in gone:
            print(f"  {m['run_id']} {m.get('method')} {m.get('mode')} {m.get('dataset')} seed={m.get('seed')}: {m['reason']}")
    print("\nwrote " + ", ".join(str(p) for p in written) if written else "\nnothing written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
