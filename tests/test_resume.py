"""A run killed with SIGKILL mid-epoch and started again ends with the same record."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from bench.sweep import compose_config, expand_grid
from conftest import REPO

RUN = ["dataset=toy", "method=coop", "train.epochs=2", "train.steps_per_epoch=6", "train.batch_size=8",
       "runtime.checkpoint_every_steps=1", "runtime.progress=false", "runtime.num_workers=0"]


def runtime_overrides(root):
    return [f"runtime.results_dir={root}/results/runs", f"runtime.checkpoint_dir={root}/checkpoints"]


def comparable(record):
    return {key: record[key] for key in ("run_id", "accuracy", "params", "selected_epoch", "unreadable_images")} | {
        "history": [{k: v for k, v in epoch.items()} for epoch in record["history"]]}


def test_sigkill_mid_epoch_then_resume_gives_the_same_record(tmp_path):
    from bench.run import run_experiment
    reference = run_experiment(compose_config(RUN + runtime_overrides(tmp_path / "a")))

    killed = tmp_path / "b"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "bench.run", *RUN, *runtime_overrides(killed)],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoint = killed / "checkpoints" / reference["run_id"] / "checkpoint.pt"
    deadline = time.time() + 240
    while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    # let it get a few steps further into the epoch, then kill it without warning
    time.sleep(0.5)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "results" / "runs" / f"{reference['run_id']}.json").exists()

    resumed = run_experiment(compose_config(RUN + runtime_overrides(killed)))
    assert comparable(resumed) == comparable(reference)


def test_grid_expansion():
    preset = {"fixed": ["dataset=toy"], "grid": {"method": ["method=zeroshot", "method=coop method.mode=st"],
                                                 "seed": [1, 2]}}
    runs = expand_grid(preset, ["train.epochs=1"])
    assert runs == [["dataset=toy", "method=zeroshot", "seed=1", "train.epochs=1"],
                    ["dataset=toy", "method=zeroshot", "seed=2", "train.epochs=1"],
                    ["dataset=toy", "method=coop", "method.mode=st", "seed=1", "train.epochs=1"],
                    ["dataset=toy", "method=coop", "method.mode=st", "seed=2", "train.epochs=1"]]
