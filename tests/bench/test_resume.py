"""A run killed with SIGKILL at an exact step (CPB_FAULT, bench/faults.py) and started again
ends with exactly the record of an uninterrupted run."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import SMALL_TOY_EVAL, run_killed_at_step, runtime_overrides

from bench.sweep import compose_config

RUN = ["dataset=toy", "method=coop", "train.epochs=2", "train.steps_per_epoch=6", "train.batch_size=4",
       "runtime.checkpoint_every_steps=1", "runtime.log_every_steps=4", "runtime.progress=false",
       "runtime.num_workers=0", *SMALL_TOY_EVAL]


def comparable(record):
    return {key: record[key] for key in ("run_id", "accuracy", "params", "selected_epoch", "unreadable_images")} | {
        "history": [{k: v for k, v in epoch.items()} for epoch in record["history"]]}


def curves(root, run_id) -> list[str]:
    return (root / "results" / "runs" / f"{run_id}.curves.csv").read_text().splitlines()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    from bench.experiment import run_experiment
    root = tmp_path_factory.mktemp("reference")
    record = run_experiment(compose_config(RUN + runtime_overrides(root))).to_dict()
    return {**record, "curves": curves(root, record["run_id"])}


@pytest.mark.parametrize("kill_at_step", [3, 7])  # mid first epoch; first step after an epoch end
def test_sigkill_then_resume_gives_the_same_record(tmp_path, reference, kill_at_step):
    from bench.experiment import run_experiment

    killed = tmp_path / "b"
    # the same number of threads as the reference run in this process: same float reductions
    run_killed_at_step(kill_at_step, RUN, killed, cwd=tmp_path)
    assert not (killed / "results" / "runs" / f"{reference['run_id']}.json").exists()
    # no curves without a record in the results: they wait beside the checkpoint, where the resume continues them
    assert list((killed / "results" / "runs").glob("*")) == []
    assert (killed / "checkpoints" / reference["run_id"] / f"{reference['run_id']}.curves.csv").exists()
    checkpoint = torch.load(killed / "checkpoints" / reference["run_id"] / "checkpoint.pt", weights_only=False)
    assert checkpoint["outcome"]["steps_run"] == kill_at_step - 1  # the last checkpoint: the step before

    resumed = run_experiment(compose_config(RUN + runtime_overrides(killed))).to_dict()
    assert comparable(resumed) == comparable(reference)
    assert resumed["resumes"] == 1 and reference["resumes"] == 0
    # every step row covers its 4 steps, the one across the kill too (the loss sum is in the checkpoint)
    assert curves(killed, reference["run_id"]) == reference["curves"]
    # time is accumulated over both processes (the killed one up to its last checkpoint)
    assert resumed["train_time_s"] > checkpoint["outcome"]["train_seconds"] > 0
    assert resumed["wall_time_s"] > checkpoint["outcome"]["earlier_wall_s"] > 0


# ---- MmAP's grouping warm-up goes through the same Trainer, so it resumes the same way ----------------
MMAP_RUN = ["dataset=toy", "method=mmap", "method.grouping.warmup_epochs=2", "method.grouping.warmup_steps=5",
            "train.epochs=1", "train.steps_per_epoch=3", "runtime.checkpoint_every_steps=1",
            "runtime.progress=false", "runtime.num_workers=0", *SMALL_TOY_EVAL]
#: that warm-up's affinities as the warm-up gave them before it ran through the engine's Trainer
#: (its own loop in methods/grouping.py, commit 87bdcaf): the same to the last bit on the machine
#: that made them, and 87bdcaf's loop and the Trainer agree to the last bit on a second machine (an AMD
#: EPYC, where both differ from these by up to 1.5e-6); the tolerance is for another CPU's float32 reductions
AFFINITY_BEFORE_THE_TRAINER = [
    [1.0000000000000004, 0.07815275888621323, -0.05824578711126074, 0.21081306368339572],
    [0.07815275888621323, 1.0000000000000004, 0.03391029869297514, 0.1303729280291302],
    [-0.05824578711126074, 0.03391029869297514, 1.0000000000000007, -0.08299630669290256],
    [0.21081306368339572, 0.1303729280291302, -0.08299630669290256, 1.0000000000000004]]


@pytest.mark.long
def test_sigkill_in_mmaps_warmup_resumes_to_the_same_groups_and_record(tmp_path):
    from bench.experiment import run_experiment

    reference = run_experiment(compose_config(MMAP_RUN + runtime_overrides(tmp_path / "a"))).to_dict()
    grouping = reference["extras"]["grouping"]
    assert grouping["groups"] == [["photo", "painting"], ["sketch", "clipart"]] and grouping["warmup_steps"] == 5
    assert np.allclose(grouping["affinity"], AFFINITY_BEFORE_THE_TRAINER, rtol=0, atol=1e-5)

    killed = tmp_path / "b"
    run_killed_at_step(4, MMAP_RUN, killed, cwd=tmp_path)  # warm-up epoch 2, step 1
    folder = killed / "checkpoints" / reference["run_id"]
    assert not (folder / "checkpoint.pt").exists() and not (folder / "grouping").exists()  # still warming up
    warmup = torch.load(folder / "warmup.pt", weights_only=False)
    assert warmup["outcome"]["steps_run"] == 3 and warmup["observers"]["task_affinity"]["seen"][0, 0] == 3

    resumed = run_experiment(compose_config(MMAP_RUN + runtime_overrides(killed))).to_dict()
    assert comparable(resumed) == comparable(reference) and resumed["extras"] == reference["extras"]
    assert json.loads((folder / "grouping" / "groups.json").read_text()) == grouping
    assert not (folder / "warmup.pt").exists()  # removed with the training checkpoint once the record is safe
    curves = (killed / "results" / "runs" / f"{reference['run_id']}.warmup.curves.csv").read_text().splitlines()
    assert [row.split(",")[:3] for row in curves[1:]] == [["epoch", "1", "3"], ["epoch", "2", "5"]]
