"""A run killed with SIGKILL at an exact step (CPB_FAULT, bench/faults.py) and started again
ends with exactly the record of an uninterrupted run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import torch
from helpers import REPO, SMALL_TOY_EVAL, runtime_overrides

from bench.sweep import compose_config

RUN = ["dataset=toy", "method=coop", "train.epochs=2", "train.steps_per_epoch=6", "train.batch_size=4",
       "runtime.checkpoint_every_steps=1", "runtime.progress=false", "runtime.num_workers=0", *SMALL_TOY_EVAL]


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
