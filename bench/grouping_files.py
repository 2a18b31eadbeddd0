"""The files of a run's task grouping (MmAP: methods/grouping.py), written by the run wiring
beside the run's checkpoint as soon as the groups are known, so they can be read while the run
trains: `groups.json` (the record's `grouping`: tasks, groups, affinities, strategy; a later run
reuses it with method.grouping.affinity_file), `affinity.csv` and the heatmap `affinity.png`.
A method computes its groups; it writes no file.
"""
from __future__ import annotations

import json
from pathlib import Path

from bench.atomic_io import atomic_write


def write_grouping(folder: Path, grouping: dict) -> None:
    """Write groups.json (+ affinity.csv and affinity.png when the groups came from affinities)
    atomically into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "groups.json", lambda tmp: tmp.write_text(json.dumps(grouping, indent=2)))
    affinity, names = grouping["affinity"], grouping["tasks"]
    if affinity is None:
        return
    rows = [["task", *names]] + [[name, *map(repr, map(float, row))] for name, row in zip(names, affinity)]
    atomic_write(folder / "affinity.csv", lambda tmp: tmp.write_text("".join(",".join(r) + "\n" for r in rows)))
    _heatmap(folder / "affinity.png", names, affinity, grouping["strategy"])


def affinity_figure(names, affinity, title: str):
    """The heatmap of a grouping's task affinities (a pyplot-free Figure): this run's
    affinity.png, and the results page's copy (bench/report_plots.py)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # deferred: only runs that group plot
    from matplotlib.figure import Figure
    fig = Figure(figsize=(1.2 + 0.7 * len(names), 1 + 0.6 * len(names)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(affinity, cmap="viridis")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{affinity[i][j]:.2f}", ha="center", va="center", color="w", fontsize=7)
    ax.set_title(f"task affinity ({title})")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    return fig


def _heatmap(path: Path, names, affinity, title: str) -> None:
    fig = affinity_figure(names, affinity, title)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100))
