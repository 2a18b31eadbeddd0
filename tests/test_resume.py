"""A run killed with SIGKILL at an exact step (CPB_FAULT, bench/faults.py) and started again
ends with exactly the record of an uninterrupted run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import torch
from conftest import REPO

from bench.sweep import compose_config, expand_grid

RUN = ["dataset=toy", "method=coop", "train.epochs=2", "train.steps_per_epoch=6", "train.batch_size=4",
       "runtime.checkpoint_every_steps=1", "runtime.progress=false", "runtime.num_workers=0"]


def runtime_overrides(root):
    return [f"runtime.results_dir={root}/results/runs", f"runtime.checkpoint_dir={root}/checkpoints"]


def comparable(record):
    return {key: record[key] for key in ("run_id", "accuracy", "params", "selected_epoch", "unreadable_images")} | {
        "history": [{k: v for k, v in epoch.items()} for epoch in record["history"]]}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    from bench.experiment import run_experiment
    return run_experiment(compose_config(RUN + runtime_overrides(tmp_path_factory.mktemp("reference")))).to_dict()


@pytest.mark.parametrize("kill_at_step", [3, 7])  # mid first epoch; first step after an epoch end
def test_sigkill_then_resume_gives_the_same_record(tmp_path, reference, kill_at_step):
    from bench.experiment import run_experiment

    killed = tmp_path / "b"
    # the same number of threads as the reference run in this process: same float reductions
    env = dict(os.environ, PYTHONPATH=str(REPO), CPB_FAULT=f"kill_at_step:{kill_at_step}",
               OMP_NUM_THREADS=str(torch.get_num_threads()))
    proc = subprocess.run([sys.executable, "-m", "bench.run", *RUN, *runtime_overrides(killed)],
                          cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]  # killed exactly at that step
    assert not (killed / "results" / "runs" / f"{reference['run_id']}.json").exists()
    checkpoint = torch.load(killed / "checkpoints" / reference["run_id"] / "checkpoint.pt", weights_only=False)
    assert checkpoint["outcome"]["steps_run"] == kill_at_step - 1  # the last checkpoint: the step before

    resumed = run_experiment(compose_config(RUN + runtime_overrides(killed))).to_dict()
    assert comparable(resumed) == comparable(reference)
    assert resumed["resumes"] == 1 and reference["resumes"] == 0
    # time is accumulated over both processes (the killed one up to its last checkpoint)
    assert resumed["train_time_s"] > checkpoint["outcome"]["train_seconds"] > 0
    assert resumed["wall_time_s"] > checkpoint["outcome"]["earlier_wall_s"] > 0


def test_grid_expansion():
    preset = {"fixed": ["dataset=toy"], "grid": {"method": ["method=zeroshot", "method=coop method.mode=st"],
                                                 "seed": [1, 2]}}
    runs = expand_grid(preset, ["train.epochs=1"])
    assert runs == [["dataset=toy", "method=zeroshot", "seed=1", "train.epochs=1"],
                    ["dataset=toy", "method=zeroshot", "seed=2", "train.epochs=1"],
                    ["dataset=toy", "method=coop", "method.mode=st", "seed=1", "train.epochs=1"],
                    ["dataset=toy", "method=coop", "method.mode=st", "seed=2", "train.epochs=1"]]


def test_sweep_run_here_runs_the_missing_runs_and_then_nothing(tmp_path):
    from bench.sweep import run_here, status
    preset = tmp_path / "tiny_sweep.yaml"
    preset.write_text("name: tiny_sweep\nfixed: [dataset=toy, runtime.progress=false]\n"
                      "grid:\n  method: [method=zeroshot]\n  seed: [1, 2]\n")
    extra = runtime_overrides(tmp_path)
    assert run_here(str(preset), extra) == {"complete": 2, "busy elsewhere": 0, "failed": 0}
    records = sorted((tmp_path / "results" / "runs").glob("*.json"))
    written = [r.stat().st_mtime_ns for r in records]
    assert len(records) == 2 and list(status(str(preset), extra)) == ["COMPLETE"]
    run_here(str(preset), extra)  # again: both runs are found complete, nothing is redone
    assert [r.stat().st_mtime_ns for r in records] == written
