"""Toy sweeps on a real local SLURM: through Hydra's submitit launcher and through the
non-blocking `bench.sweep`, with a requeue (as on time-out) that resumes from the checkpoint."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, SMALL_TOY_EVAL, runtime_overrides, wait_for

SHORT = ["train.epochs=1", "train.steps_per_epoch=3", "train.batch_size=4", "runtime.progress=false", *SMALL_TOY_EVAL]


@pytest.mark.long
def test_hydra_multirun_on_slurm(slurm_cluster, tmp_path):
    args = ["-m", "method=zeroshot,coop", "hydra/launcher=slurm", "hydra.launcher.partition=debug",
            "hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2",
            "hydra.launcher.timeout_min=10", f"hydra.sweep.dir={tmp_path}/multirun", *SHORT,
            *runtime_overrides(tmp_path)]
    env = dict(os.environ, PYTHONPATH=str(REPO), **slurm_cluster)
    proc = subprocess.run([sys.executable, "-m", "bench.run", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").glob("*.json")]
    assert sorted(r["method"] for r in records) == ["coop", "zeroshot"]
    assert all(r["status"] == "complete" for r in records)


@pytest.mark.long
def test_nonblocking_sweep_with_requeue(slurm_cluster, tmp_path):
    from bench.sweep import launch, status
    preset = tmp_path / "smoke.yaml"
    preset.write_text("name: smoke\nfixed: [dataset=toy]\ngrid:\n  method: [method=zeroshot, method=coop]\n"
                      "  seed: [1]\n")
    extra = ["train.epochs=2", "train.steps_per_epoch=6", "runtime.checkpoint_every_steps=1",
             "train.batch_size=4", "runtime.progress=false", *SMALL_TOY_EVAL, *runtime_overrides(tmp_path)]
    params = {"slurm_partition": "debug", "cpus_per_task": 1, "mem_gb": 2, "timeout_min": 10}
    # the coop job stops at step 4 (after its step-3 checkpoint) until SLURM signals it: no race
    faults = tmp_path / "faults"
    os.environ.update(CPB_FAULT="hold_at_step:4", CPB_FAULT_STATE=str(faults))  # submitit copies the env
    try:
        submitted = launch(str(preset), extra, "slurm", params)  # returns without waiting
    finally:
        os.environ.pop("CPB_FAULT"), os.environ.pop("CPB_FAULT_STATE")
    assert len(submitted) == 2
    coop = next(s for s in submitted if s["run"]["method"] == "coop")
    wait_for((faults / "held").exists, 240, "the coop job to reach step 4")
    assert coop["run"]["run_id"] in [r["run_id"] for r in status(str(preset), extra)["RUNNING"]]
    coop["job"]._interrupt(timeout=True)  # what SLURM does at the time limit: SIGUSR2, then requeue
    for item in submitted:
        item["job"].result()
    wait_for(lambda: all(Path(s["run"]["record"]).exists() for s in submitted), 60, "both records")
    log = Path(str(coop["job"].paths.stdout).replace("%j", coop["job"].job_id))
    assert "Resumed from" in log.read_text() + Path(str(coop["job"].paths.stderr)).read_text()
    states = status(str(preset), extra)
    assert list(states) == ["COMPLETE"] and len(states["COMPLETE"]) == 2
    assert launch(str(preset), extra, "slurm", params) == []  # relaunch: nothing left to run
    expected = json.loads((tmp_path / "results" / "sweeps" / "smoke" / "expected.json").read_text())
    assert {e["method"] for e in expected} == {"zeroshot", "coop"}
