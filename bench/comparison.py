"""The comparison table's numbers, from the result records: one row per experiment, model
selection across the trials of a search, and the statistics over seeds (bench/statistics.py)
with the paired differences against a baseline row and the cost columns.  `bench.report`
formats and writes them (tables, CSV, LaTeX, plots).

Rows: the runs whose identity (config, data, weights; bench/identity.py) differs only in the
seed (DomainBed's grouping), or, for search trials (records with a `trial`), per search
group (sweep, method, mode, model, data, weights) and seed the trial with the best validation
average (`select_trials`; `selection="test"`: the oracle, an upper bound only).
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math

import pandas as pd

from bench.errors import UserError
from bench.identity import experiment_id_of
from bench.methods import METHODS
from bench.records import RunRecord
from bench.statistics import estimate, paired_difference

MODE_ORDER = ("st", "mt", "grouped")
#: settings the table shows in columns of their own (or that name the table)
_LABEL_SKIP = ("seed", "method.name", "method.mode", "dataset.name", "model.arch")  # model: its own column


def method_order() -> tuple[str, ...]:
    return tuple(METHODS)


def method_label(name: str) -> str:
    return METHODS[name].label if name in METHODS else name


def flat_settings(tree, prefix: str = "") -> dict:
    """{"train.lr": 0.002, ...}: a nested config as dotted keys (lists and dicts as JSON)."""
    if not isinstance(tree, dict):
        return {prefix[:-1]: json.dumps(tree) if isinstance(tree, (list, dict)) else tree}
    out = {}
    for key, value in tree.items():
        out.update(flat_settings(value, f"{prefix}{key}."))
    return out


def data_fingerprints(records: list[RunRecord]) -> dict[str, set]:
    """{dataset key: the data fingerprints of its records}."""
    fingerprints: dict[str, set] = {}
    for r in records:
        fingerprints.setdefault(r.key, set()).add(r.data_fingerprint)
    return fingerprints


#: the table-key suffix of each protocol but the default: tables never mix protocols
PROTOCOL_SUFFIX = {"leave_one_out": "dg", "sequential": "seq"}


def table_key(record: dict, fingerprints: dict[str, set]) -> str:
    """`<dataset>`, or `<dataset>-<data fingerprint>` when that name covers different data; a
    protocol other than multitask adds its suffix (`toy-dg`), so no table mixes protocols."""
    fingerprint = record.data_fingerprint
    key = record.key
    if len(fingerprints[record.key]) > 1 and fingerprint:
        key = f"{record.key}-{fingerprint[:8]}"
    return f"{key}-{PROTOCOL_SUFFIX[record.protocol]}" if record.protocol in PROTOCOL_SUFFIX else key


def _order(value: str, order: tuple) -> tuple:
    return (order.index(value), "") if value in order else (len(order), value)


def _on_gpu(record: RunRecord) -> bool:
    return bool(record.device) and not str(record.device).startswith(("cpu", "mps"))


#: where a record's peak memory was measured (bench/device.py): accelerator memory torch allocated on a
#: GPU, the resident memory of the whole process on the CPU (or MPS); "" where the record names no device
MEMORY_MEASURES = {"GPU": "the peak accelerator memory torch allocated on the GPU (torch.cuda.max_memory_allocated)",
                   "RSS": "the peak resident memory of the run's whole process on the CPU (ru_maxrss: interpreter, "
                          "model and data loading), not accelerator memory"}


def memory_measure(record: RunRecord) -> str:
    """"GPU" or "RSS" (`MEMORY_MEASURES`), "" when the record does not say where it ran."""
    return ("GPU" if _on_gpu(record) else "RSS") if record.device else ""


def gpu_hours(record: RunRecord) -> float:
    """The run's GPU-hours: its wall time over every resume times its processes (world size,
    1 unless the record says otherwise); 0 for a run on the CPU."""
    world = getattr(record, "world_size", None) or 1
    return (record.wall_time_s or 0.0) * world / 3600 if _on_gpu(record) else 0.0


def search_group(record: RunRecord) -> tuple:
    """What the trials of one search share, the seed aside: their sweep, method, mode, model,
    data, weights and every setting their method's search space does not draw (so a sweep
    relaunched with other fixed settings never mixes its trials with the earlier ones)."""
    drawn = METHODS[record.method].search_space.settings if record.method in METHODS else {}
    fixed = {k: v for k, v in flat_settings(record.config).items() if k not in drawn and k != "seed"}
    return (record.sweep, record.method, record.mode, record.model, record.data_fingerprint,
            record.weights_fingerprint, stable_key(tuple(sorted(fixed.items()))))


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


def held_out_rows(records: list[RunRecord], selection: str = "val") -> tuple[list[RunRecord], dict]:
    """Leave-one-domain-out (DomainBed's table): after model selection across search trials per
    held-out domain (`select_trials`: a trial is chosen for each target on its own), the runs of
    one experiment and seed that differ only in `dataset.target` become one row record whose
    `test` accuracies are each target's test accuracy (the column of its held-out domain) and
    their average, whose `val` is the average of their selection averages, whose wall time sums
    theirs (GPU-hours) and whose training time and speed are their mean.  Returns (row records,
    {search group: every trial record behind it}), as `select_trials`."""
    chosen, _ = select_trials(records, selection)
    merged: dict[tuple, list[RunRecord]] = {}
    for r in chosen:
        r = _without_target(r)
        merged.setdefault((stable_key((r.config, r.data_fingerprint, r.weights_fingerprint, r.trial is not None)),
                           r.seed), []).append(r)
    behind: dict[tuple, list[RunRecord]] = {}
    for r in records:  # a search row's budget: every trial of every held-out domain
        if r.trial is not None:
            behind.setdefault(search_group(_without_target(r)), []).append(r)
    rows = []
    for members in merged.values():
        members.sort(key=lambda m: m.target or "")
        test = {m.target: m.accuracy["test"][m.target] for m in members}
        test["average"] = sum(test.values()) / len(test)
        val = {"average": sum(m.accuracy["val"]["average"] for m in members) / len(members)}
        rows.append(dataclasses.replace(
            members[0], tasks=[m.target for m in members], accuracy={"test": test, "val": val}, target=None,
            wall_time_s=sum(m.wall_time_s or 0.0 for m in members),
            train_time_s=_mean([m.train_time_s for m in members]),
            train_images_per_s=_mean([m.train_images_per_s for m in members]),
            peak_memory_mb=max([m.peak_memory_mb for m in members if m.peak_memory_mb is not None], default=None)))
    return rows, behind


def row_of(record: RunRecord, held_out: bool) -> str:
    """The experiment (the summary's `experiment` column) of the row a record stands behind: as
    `experiment_key`, for a leave-one-out table without its held-out domain (`held_out_rows`)."""
    return experiment_key(_without_target(record) if held_out else record)


def _without_target(record: RunRecord) -> RunRecord:
    config = copy.deepcopy(record.config)
    config.get("dataset", {}).pop("target", None)
    return dataclasses.replace(record, config=config)


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
              baseline: str | None = "zeroshot", select=select_trials) -> pd.DataFrame:
    """Numeric summary of the records whose table key (`table_key`) is `dataset`, after model
    selection across search trials (`select_trials`): one row per experiment, columns method,
    mode, model, label, n, trials, "<task> mean|std|se|ci_low|ci_high" per task and for
    "Average", the paired difference of the average against the `baseline` row ("delta
    mean|se|ci_low|ci_high|n", "delta significant"), trainable, trainable_percent, the costs
    (train_time_s, gpu_hours over every run behind the row, images_per_s, peak_memory_mb and
    peak_memory_of: where it was measured, `memory_measure`) and experiment.  `select`: the
    rows' records from the table's (`select_trials`; a leave-one-out table: `held_out_rows`, a
    column per held-out domain)."""
    fingerprints = data_fingerprints(records)
    recs, trials = select([r for r in records if table_key(r, fingerprints) == dataset], selection)
    tasks: list[str] = []
    for r in recs:
        tasks += [t for t in r.tasks if t not in tasks]
    groups: dict[str, list[RunRecord]] = {}
    for r in recs:
        groups.setdefault(experiment_key(r), []).append(r)
    keys = ["method", "mode", "model", "label"]
    if not groups:
        return pd.DataFrame(columns=keys + ["n"])
    settings = {key: flat_settings({**members[0].config, "weights": members[0].weights_fingerprint})
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
        _one_record_per_seed(label, members)
        row = {"method": first.method, "mode": first.mode, "model": first.model, "label": label,
               "n": len(members), "trials": len({r.trial for r in behind}) if first.trial is not None else 1}
        accuracy = lambda r, col: (r.accuracy.get(split) or {}).get(col, float("nan"))  # noqa: E731
        for col in tasks:
            _stat_columns(row, col, [accuracy(r, col) for r in members])
        _stat_columns(row, "Average", [accuracy(r, "average") for r in members])
        per_seed[key] = {r.seed: accuracy(r, "average") for r in members}
        # identical over seeds; a search's selected trials may differ in size (prompt length, rank): their mean
        row["trainable"] = int(round(_mean([r.params["trainable"] for r in members])))
        row["trainable_percent"] = _mean([float(r.params.get("trainable_percent", float("nan"))) for r in members])
        row["train_time_s"] = _mean([r.train_time_s for r in members])
        row["gpu_hours"] = sum(gpu_hours(r) for r in behind) if any(_on_gpu(r) for r in behind) else float("nan")
        row["images_per_s"] = _mean([r.train_images_per_s for r in members])
        memory = [r.peak_memory_mb for r in members if r.peak_memory_mb is not None]
        row["peak_memory_mb"] = max(memory) if memory else float("nan")
        measures = {memory_measure(r) for r in members if r.peak_memory_mb is not None}
        row["peak_memory_of"] = measures.pop() if len(measures) == 1 else "mixed" if measures else ""
        row["experiment"] = key
        out.append(row)
    df = pd.DataFrame(out)
    order = method_order()
    sort_key = df.apply(lambda r: (_order(r["method"], order), _order(r["mode"], MODE_ORDER), r["model"],
                                  r["label"]), axis=1)
    df = df.loc[sorted(df.index, key=lambda i: sort_key[i])].reset_index(drop=True)
    return _with_differences(df, per_seed, baseline)


class DuplicateSeedsError(UserError):
    """Several records of one row and seed: a mean, SE or interval would count that seed twice."""


def _one_record_per_seed(label: str, members: list[RunRecord]) -> None:
    """A row's n is its number of seeds: two records of one experiment and seed are an error
    naming them (the same run id in two files, or runs that differ only in what the row does not
    show, e.g. the world size of a run with per-step randomness), never two observations."""
    by_seed: dict[int, list[str]] = {}
    for r in members:
        by_seed.setdefault(r.seed, []).append(r.run_id)
    twice = {seed: ids for seed, ids in by_seed.items() if len(ids) > 1}
    if twice:
        listed = "; ".join(f"seed {seed}: run ids {', '.join(ids)}" for seed, ids in sorted(twice.items()))
        raise DuplicateSeedsError(
            f"The row {label} has more than one record of a seed ({listed}), so its mean, SE and interval would "
            "count that seed more than once. Keep one record per seed in the runs folder (move the others, e.g. "
            "a copied file or a run repeated on another number of processes, out of --runs) and report again.")


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
