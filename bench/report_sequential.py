"""The report of protocol=sequential (bench/sequential.py): per dataset the incremental table,
the average accuracy after each stage, and every row's accuracy matrix.

Files, beside the other protocols' and never mixed with them (table key `<dataset>-seq`):
`<key>.md`, `.csv`, `.tex` (the incremental table), `<key>_stages.png` (the average over every
domain after each stage, per method and mode) and `<key>_matrices.png` (each row's accuracy
matrix, mean over seeds, as a heatmap: rows the stages, columns the domains, in the order
trained; the diagonal is each domain just after its own stage).

Rows and statistics are the other tables' (bench/comparison.py `summarize`): one row per
experiment (runs differing only in the seed; another `dataset.task_order` is another row, named
by it), mean ± standard error over seeds, the paired difference against the baseline row and
the costs.  `sequential_rows` turns each record into a row record whose "tasks" are the
metrics of bench/continual.py, the averages after each stage and the matrix cells, so every
one of them gets the same statistics.  "Transfer − ZS" is a run's transfer minus zero-shot's
mean accuracy over the same domains (zero-shot's sequential run of the same order and seed, or
of any seed: it trains nothing); "–" without a zero-shot run.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from bench.comparison import PROTOCOL_SUFFIX, experiment_key, select_trials, summarize
from bench.continual import average_after_each_stage, sequential_metrics
from bench.records import RunRecord
from bench.report_plots import Drawn, FigureDrawer, figure_rows_along, new_figure, point_label, save

#: the metric columns of the table (row-record "tasks"), after the final average ("average")
METRIC_COLUMNS = {"average_incremental": "Avg incremental", "forgetting": "Forgetting",
                  "backward_transfer": "BWT", "transfer": "Transfer", "transfer_gain": "Transfer − ZS"}
FINAL = "Final average"
CAPTION = ("Domains in sequence (protocol=sequential): stage k trains domain k of the row's order alone, from "
           "stage k-1's parameters; every domain is measured after every stage (R[k][j]). Final average: mean "
           "of the last row; Avg incremental: mean over stages of the accuracy on the domains trained so far; "
           "Forgetting: mean over earlier domains of their best accuracy since their stage minus the final one "
           "(Chaudhry et al. 2018); BWT: mean of final minus just-trained accuracy (GEM, Lopez-Paz and Ranzato "
           "2017); Transfer: mean accuracy on domains not yet trained on (ZSCL, Zheng et al. 2023), "
           "Transfer − ZS: minus zero-shot's on the same domains (docs/protocols.md). ")


def stage_column(k: int, domain: str) -> str:
    return f"after {k + 1}: {domain}"


def cell_column(k: int, j: int) -> str:
    return f"R[{k + 1},{j + 1}]"


def _zero_shot_rows(records: list[RunRecord], split: str) -> dict:
    """{(task order, seed): zero-shot's row} of the zero-shot runs among `records`."""
    rows = {}
    for r in records:
        if r.method == "zeroshot" and r.accuracy_matrix:
            rows[(tuple(r.task_order), r.seed)] = r.accuracy_matrix[split][0]
    return rows


def _row_accuracy(record: RunRecord, split: str, zero_shot: dict) -> dict:
    order, R = record.task_order, record.accuracy_matrix[split]
    Z = zero_shot.get((tuple(order), record.seed)) or next(
        (row for (o, _), row in sorted(zero_shot.items()) if o == tuple(order)), None)
    metrics = sequential_metrics(R, Z)
    values = {METRIC_COLUMNS[m]: metrics.get(m) for m in METRIC_COLUMNS}
    values.update({stage_column(k, order[k]): a for k, a in enumerate(average_after_each_stage(R))})
    values.update({cell_column(k, j): R[k][j] for k in range(len(order)) for j in range(len(order))})
    values = {k: float("nan") if v is None else v for k, v in values.items()}
    return {**values, "average": metrics["final_average"]}


def sequential_rows(records: list[RunRecord], selection: str = "val") -> tuple[list[RunRecord], dict]:
    """`summarize`'s `select` for a sequential table: after model selection across search trials
    (`select_trials`), each record with, as accuracies, its metrics (the final average as
    "average"), its average after each stage and its matrix cells, per split."""
    chosen, trials = select_trials(records, selection)
    zero_shot = {split: _zero_shot_rows(chosen, split) for split in ("val", "test")}
    rows = []
    for r in chosen:
        accuracy = {split: _row_accuracy(r, split, zero_shot[split]) for split in ("val", "test")}
        rows.append(dataclasses.replace(r, tasks=[k for k in accuracy["test"] if k != "average"], accuracy=accuracy))
    return rows, trials


def incremental_table(table: pd.DataFrame) -> pd.DataFrame:
    """`report.display_table`'s table cut to the incremental columns: Method, Mode, the final
    average and the metrics, its interval and Δ, then the costs."""
    table = table.rename(columns={"Average": FINAL})
    hidden = [c for c in table.columns if c.startswith(("after ", "R["))]
    metrics = [FINAL, *METRIC_COLUMNS.values()]
    head = [c for c in table.columns if c in ("Method", "Mode", "Model")]
    rest = [c for c in table.columns if c not in head + metrics + hidden]
    return table[head + metrics + rest]


def is_sequential(table_key: str) -> bool:
    return table_key.endswith("-" + PROTOCOL_SUFFIX["sequential"])


def title_of(dataset: str, split: str) -> str:
    return f"{dataset}: domains in sequence, {split} accuracy (%) after each stage"


def draw_figures(summary: pd.DataFrame, records: list[RunRecord], out_dir: Path, dataset: str, title: str,
                 figures: FigureDrawer) -> tuple[dict[str, Path], dict[str, Drawn]]:
    """The stages figure and the matrices' heatmaps of one sequential table: their PNG paths, and
    their drawings (the SVG for the results page) by figure name."""
    orders = {experiment_key(r): list(r.task_order) for r in records if r.task_order}
    paths = {"stages png": out_dir / f"{dataset}_stages.png", "matrices png": out_dir / f"{dataset}_matrices.png"}
    drawn = {"stages": figures.draw(plot_stages, summary, paths["stages png"], title),
             "matrices": figures.draw(plot_matrices, summary, orders, paths["matrices png"], title)}
    return paths, drawn


def stage_columns(summary: pd.DataFrame) -> list[str]:
    return [c[: -len(" mean")] for c in summary.columns if c.startswith("after ") and c.endswith(" mean")]


def matrix_size(summary: pd.DataFrame) -> int:
    return len(stage_columns(summary))


def plot_stages(summary: pd.DataFrame, path, title: str) -> str:
    """The average accuracy over every domain after each stage (x: the stage and the domain it
    trained), a line per row in its row style (error bars: standard error over seeds)."""
    stages = stage_columns(summary)
    return save(figure_rows_along(summary, stages, [s.split(" ", 1)[1] for s in stages],
                                  "after stage: the domain it trained", "Average accuracy over every domain (%)",
                                  title), path, "stages", dpi=150)


def plot_matrices(summary: pd.DataFrame, orders: dict[str, list[str]], path, title: str) -> str:
    """Each row's accuracy matrix (mean over seeds) as an annotated heatmap, rows the stages and
    columns the domains in the row's order (`orders`: by experiment), one colour scale for all."""
    K = matrix_size(summary)
    n = len(summary)
    cols = min(4, n)
    grid = (n + cols - 1) // cols
    fig = new_figure(figsize=(3.0 * cols + 1.0, 3.0 * grid + 0.6), layout="constrained")
    axes = fig.subplots(grid, cols, squeeze=False)
    means = [[[r[f"{cell_column(k, j)} mean"] for j in range(K)] for k in range(K)] for _, r in summary.iterrows()]
    finite = [v for m in means for row in m for v in row if not pd.isna(v)]
    low, high = (min(finite), max(finite)) if finite else (0, 100)
    multi_model = summary["model"].nunique() > 1
    image = None
    for i, (_, r) in enumerate(summary.iterrows()):
        ax = axes[i // cols][i % cols]
        image = ax.imshow(means[i], vmin=low, vmax=high, cmap="viridis")
        order = orders[r["experiment"]]
        ax.set_xticks(range(K), order, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(K), [str(k + 1) for k in range(K)], fontsize=7)
        ax.set_ylabel("after stage", fontsize=7)
        for k in range(K):
            for j in range(K):
                value = means[i][k][j]
                ax.text(j, k, "–" if pd.isna(value) else f"{value:.1f}", ha="center", va="center", fontsize=7,
                        color="white" if not pd.isna(value) and value < (low + high) / 2 else "black")
        ax.set_title(point_label(r, multi_model), fontsize=8)
    for i in range(n, grid * cols):
        axes[i // cols][i % cols].set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label="accuracy (%)")
    fig.suptitle(f"{title}: R[stage][domain], mean over seeds", fontsize=9)
    return save(fig, path, "matrices", dpi=130, bbox_inches="tight")
