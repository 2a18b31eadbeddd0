"""A toy search end to end: `bench.sweep toy_search_smoke run` (zero-shot once, CoOp and VPT x
2 trials x 2 seeds), its `status` summary, and `bench.report` selecting by validation, with
learning curves."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import SMALL_TOY_EVAL

REPO = Path(__file__).resolve().parents[2]
TINY = ["model=tiny", "train.epochs=1", "train.steps_per_epoch=2", "train.batch_size=4", "train.warmup_epochs=0",
        *SMALL_TOY_EVAL]


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.mark.long
def test_a_toy_search_runs_through_sweep_and_report(tmp_path):
    where = [f"runtime.results_dir={tmp_path}/results/runs", f"runtime.checkpoint_dir={tmp_path}/ck"]
    before = _bench("bench.sweep", "toy_search_smoke", "status", *TINY, *where)
    assert before.returncode == 0, before.stderr[-3000:]
    assert before.stdout.strip().splitlines()[-1] == (
        "10 runs: 0 complete, 0 running, 0 failed, 10 missing; time left unknown until a run finishes")

    ran = _bench("bench.sweep", "toy_search_smoke", "run", *TINY, *where)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "sweep toy_search_smoke: 10 complete, 0 busy elsewhere, 0 failed" in ran.stdout

    after = _bench("bench.sweep", "toy_search_smoke", "status", *TINY, *where)
    assert after.stdout.strip().splitlines()[-1] == "10 runs: 10 complete, 0 running, 0 failed, 0 missing; nothing left"

    runs = tmp_path / "results" / "runs"
    assert len(list(runs.glob("*.json"))) == 10 and len(list(runs.glob("*.curves.csv"))) == 8  # zero-shot: no curve
    report = _bench("bench.report", "--runs", str(runs), "--out", str(tmp_path / "report"), "--curves")
    assert report.returncode == 0, report.stderr[-3000:]
    table = (tmp_path / "report" / "toy.md").read_text()
    assert "the trial with the best validation average" in table
    for row in ("| Zero-shot ", "| CoOp (search, 2 trials) ", "| VPT (search, 2 trials) "):
        assert row in table
    assert "Δ vs Zero-shot-MT" in table
    for name in ("toy.csv", "toy.tex", "toy_acc_vs_params.png", "toy_acc_vs_time.png", "toy_curves.png"):
        assert (tmp_path / "report" / name).stat().st_size > 0
