"""End-to-end tests against a real single-node SLURM started by scripts/slurm_local.sh.

The `slurm_cluster` fixture (session scope) needs SLURM installed (`scripts/slurm_local.sh
install`, as .ci/run does; the tests never install packages), starts munged/slurmctld/slurmd, yields the environment clients need
({"SLURM_CONF": ...}, also set in os.environ for the session) and stops the daemons at the
end. Without root or SLURM the tests are skipped with the reason; with CI=true they fail
instead, so CI never silently skips them. Run `scripts/slurm_local.sh install` in CI first.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from helpers import wait_for as _wait_for


def _executor(folder: Path):
    import cloudpickle
    import submitit

    # the job's interpreter does not have tests/ on sys.path: ship this module's code by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    executor.update_parameters(timeout_min=10, slurm_partition="debug", cpus_per_task=1, mem_gb=1)
    return executor


def add(a: int, b: int) -> int:
    return a + b


def square(x: int) -> int:
    return x * x


try:
    from submitit.helpers import Checkpointable
except ImportError:  # submitit missing: the submitit tests fail on import below, not collection
    Checkpointable = object  # type: ignore[misc,assignment]


class CountStarts(Checkpointable):
    """Counts its starts in a file; blocks on the first start until preempted."""

    def __call__(self, folder: str) -> int:
        starts = Path(folder) / "starts"
        with starts.open("a") as f:
            f.write("start\n")
        n = len(starts.read_text().splitlines())
        if n == 1:
            (Path(folder) / "running").touch()
            time.sleep(120)  # interrupted by the test long before this ends
        return n

    def checkpoint(self, *args, **kwargs):
        (Path(args[0]) / "checkpointed").touch()
        return super().checkpoint(*args, **kwargs)


def test_sbatch_job_completes(slurm_cluster, tmp_path):
    out = tmp_path / "job.out"
    proc = subprocess.run(
        ["sbatch", "--parsable", "-o", str(out), "--wrap", "echo hello-from-slurm"],
        capture_output=True, text=True, env={**os.environ, **slurm_cluster}, check=True,
    )
    job_id = proc.stdout.strip().split(";")[0]

    def finished() -> bool:
        state = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
        return "JobState=COMPLETED" in state

    _wait_for(finished, 30, f"sbatch job {job_id} to complete")
    assert out.read_text().strip() == "hello-from-slurm"


def test_submitit_submit_returns_result(slurm_cluster, tmp_path):
    job = _executor(tmp_path).submit(add, 2, 3)
    assert job.result() == 5


def test_submitit_map_array(slurm_cluster, tmp_path):
    jobs = _executor(tmp_path).map_array(square, [1, 2, 3])
    assert len(jobs) == 3 and "_" in jobs[0].job_id
    assert [j.result() for j in jobs] == [1, 4, 9]


def test_submitit_checkpointable_job_requeues(slurm_cluster, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    job = _executor(tmp_path / "logs").submit(CountStarts(), str(work))
    _wait_for((work / "running").exists, 60, "the job's first start")
    # what submitit's own tests use: scancel --signal USR2 (the time-out signal) to the job;
    # submitit calls checkpoint(), dumps the new submission and runs `scontrol requeue`
    job._interrupt(timeout=True)
    _wait_for((work / "checkpointed").exists, 30, "checkpoint() to be called")
    assert job.result() == 2  # the requeued job saw two starts
    assert (work / "starts").read_text().splitlines() == ["start", "start"]
