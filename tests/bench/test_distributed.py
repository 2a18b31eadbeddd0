"""One run over several processes (bench/distributed.py) gives the numbers of one process.

Every registered method and mode runs on the toy data at a tiny size in ONE torchrun job of
2 gloo processes (tests/bench/distributed_matrix.py runs the whole matrix in each rank) and
in one plain process; accuracies must be identical and the final trainable states equal to
STATE_TOLERANCE.  Why not bit-identical: the per-task losses and the gradients are summed
over the ranks, a different order of float32 additions than in one process; after two SGD
steps at lr 0.01 the states differ by <= 2e-6 (measured: MmAP grouped), so 1e-5 absolute is a margin that
a wrong reduction (a missing or doubled share of a task: an error of the order of lr * g)
still fails.  Also: a killed rank stops the run naming that rank and the relaunch resumes;
a batch that cannot be split is exit 2 before loading; SLURM's environment and a real
2-task SLURM job.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import REPO, made_once, wait_for

from bench.distributed import World, first_host, world_from_env

sys.path.insert(0, str(Path(__file__).parent))
from distributed_matrix import BASE  # noqa: E402  the matrix's settings (its module is not a test)

MATRIX = REPO / "tests" / "bench" / "distributed_matrix.py"
STATE_TOLERANCE = 1e-5
LOSS_TOLERANCE = 1e-5  # relative, the history's epoch losses
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def _env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **extra}


def _launch(command: list[str], cwd: Path, timeout: float = 600, **env) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=timeout)


def _matrix(root: Path) -> None:
    # both launches at once (3 single-threaded processes): the matrix is the suite's longest wait
    launches = [subprocess.Popen(command, cwd=root, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True)
                for command in ([sys.executable, str(MATRIX), str(root / "one")],
                                [*TORCHRUN, str(MATRIX), str(root / "two")])]
    for launch in launches:
        _, stderr = launch.communicate(timeout=900)
        assert launch.returncode == 0, stderr[-3000:]


@pytest.fixture(scope="module")
def summaries(tmp_path_factory, toy_dataset):  # toy_dataset: generated once, before any launch
    root = made_once(tmp_path_factory, "distributed-matrix", _matrix)  # once for every xdist worker
    return (json.loads((root / "one" / "summary.json").read_text()),
            json.loads((root / "two" / "summary.json").read_text()))


def _same_state(one: dict, two: dict) -> float:
    """The largest absolute difference of the two runs' final trainable states."""
    if one["checkpoint"] is None:  # nothing trainable (zero-shot)
        assert two["checkpoint"] is None
        return 0.0
    a = torch.load(one["checkpoint"], weights_only=False)["trainable"]
    b = torch.load(two["checkpoint"], weights_only=False)["trainable"]
    assert a.keys() == b.keys()
    return max((a[n].float() - b[n].float()).abs().max().item() for n in a)


@pytest.mark.long
def test_two_processes_match_one_for_every_method_and_mode(summaries):
    from bench.methods import METHODS
    one, two = summaries
    every = {f"{name}:{mode}" for name, cls in METHODS.items() for mode in cls.modes}
    assert every <= one.keys() and one.keys() == two.keys()
    for label in sorted(one.keys() - {"lora:mt:dropout"}):
        a, b = one[label], two[label]
        assert (a["world_size"], a["backend"], b["world_size"], b["backend"]) == (1, None, 2, "gloo"), label
        assert b["run_id"] == a["run_id"], f"{label}: the world size is not part of the run id"
        assert b["accuracy"] == a["accuracy"], label
        assert b["accuracy_matrix"] == a["accuracy_matrix"], label  # protocol=sequential: every stage's row
        assert b["train_images"] == a["train_images"] > 0 or label == "zeroshot:mt", label  # all ranks counted
        for x, y in zip(a["history"], b["history"]):
            assert y["loss"] == pytest.approx(x["loss"], rel=LOSS_TOLERANCE), label
        assert _same_state(a, b) <= STATE_TOLERANCE, label


def test_per_step_randomness_is_another_experiment(summaries):
    """LoRA with dropout draws its masks per rank: not exact, so the run id names the world."""
    one, two = summaries
    assert two["lora:mt:dropout"]["run_id"] != one["lora:mt:dropout"]["run_id"]
    assert two["lora:mt"]["run_id"] == one["lora:mt"]["run_id"]  # dropout 0: exact, one experiment


#: the matrix's coop:mt run (its one-process summary is the reference), checkpointed every step
RUN = [*BASE, "method=coop", "method.mode=mt", "runtime.checkpoint_every_steps=1", "hydra.run.dir=hydra"]


def _run_args(root: Path) -> list[str]:
    return [f"runtime.results_dir={root}/runs", f"runtime.checkpoint_dir={root}/checkpoints"]


def _record(root: Path) -> dict:
    (path,) = (root / "runs").glob("*.json")
    return json.loads(path.read_text())


def test_a_killed_rank_stops_the_run_naming_it_and_the_relaunch_resumes(tmp_path, summaries):
    reference = summaries[0]["coop:mt"]
    # step 2 of 2: after the checkpoint of step 1, before the epoch end's
    faults = {"CPB_FAULT": "kill_at_step:2@1", "CPB_FAULT_STATE": str(tmp_path / "faults")}
    started = time.perf_counter()
    killed = _launch([*TORCHRUN, "-m", "bench.run", *RUN, *_run_args(tmp_path / "two")], tmp_path,
                     timeout=300, **faults)
    assert killed.returncode != 0
    root_cause = killed.stderr.split("Root Cause")[-1]
    assert "rank      : 1 (local_rank: 1)" in root_cause and "SIGKILL" in root_cause, killed.stderr[-3000:]
    assert time.perf_counter() - started < 120  # the other rank was stopped, not left waiting
    assert not (tmp_path / "two" / "runs").exists() or not list((tmp_path / "two" / "runs").glob("*.json"))

    resumed = _launch([*TORCHRUN, "-m", "bench.run", *RUN, *_run_args(tmp_path / "two")], tmp_path, **faults)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    record = _record(tmp_path / "two")
    assert record["resumes"] == 1 and record["world_size"] == 2 and record["backend"] == "gloo"
    assert (record["run_id"], record["accuracy"]) == (reference["run_id"], reference["accuracy"])
    for x, y in zip(reference["history"], record["history"]):
        assert y["loss"] == pytest.approx(x["loss"], rel=LOSS_TOLERANCE)
        assert {k: v for k, v in y.items() if k != "loss"} == {k: v for k, v in x.items() if k != "loss"}


def test_a_batch_that_cannot_be_split_is_exit_2_before_loading(tmp_path):
    # the check reads the launcher's world before any process group, data or model: one
    # process given torchrun's variables for 2 ranks stops exactly as each rank would
    proc = _launch([sys.executable, "-m", "bench.run", "dataset=toy", "method=coop", "train.batch_size=1",
                    "hydra.run.dir=hydra", *_run_args(tmp_path)], tmp_path, timeout=120,
                   RANK="0", LOCAL_RANK="0", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT="1")
    assert proc.returncode == 2, proc.stderr[-2000:]
    message = proc.stderr.strip()
    assert "train.batch_size=1 cannot be split over 2 processes" in message and "Traceback" not in message
    assert len([line for line in message.splitlines() if line.strip()]) == 1  # one paragraph
    assert not (tmp_path / "runs").exists() and not (tmp_path / "checkpoints").exists()


# ---- the world from the launcher's environment ---------------------------------------------
def test_world_from_torchrun_and_slurm_environments():
    assert world_from_env({}) == World()  # a plain process: nothing distributed
    torchrun = world_from_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "MASTER_ADDR": "node7",
                               "MASTER_PORT": "29400"})
    assert (torchrun.rank, torchrun.local_rank, torchrun.size, torchrun.master_addr, torchrun.master_port,
            torchrun.launcher) == (3, 1, 4, "node7", 29400, "torchrun")
    local = world_from_env({"SUBMITIT_LOCAL_NTASKS": "2", "SUBMITIT_LOCAL_GLOBALID": "1", "SUBMITIT_LOCAL_LOCALID": "1",
                            "SUBMITIT_LOCAL_JOB_ID": "77"})
    assert (local.rank, local.size, local.master_addr, local.launcher) == (1, 2, "127.0.0.1", "submitit_local")
    slurm = world_from_env({"SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_NTASKS": "8", "SLURM_STEP_ID": "0",
                            "SLURM_STEP_NUM_TASKS": "8", "SLURM_STEP_NODELIST": "gpu[03-06]", "SLURM_JOB_ID": "1234"})
    assert (slurm.rank, slurm.local_rank, slurm.size, slurm.master_addr, slurm.launcher) == (5, 1, 8, "gpu03", "slurm")
    assert slurm.master_port == world_from_env({**{"SLURM_PROCID": "0", "SLURM_STEP_ID": "0",
                                                   "SLURM_NTASKS": "8", "SLURM_JOB_ID": "1234"}}).master_port
    # the batch script of a 2-task job (no step) is one process, and so is a 1-task step
    assert world_from_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_NODELIST": "a1"}) == World()
    assert world_from_env({"SLURM_PROCID": "0", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "1"}) == World()
    assert [first_host(h) for h in ("n1", "n[07-09,12],x2", "gpu-a[001,005]", "big0")] == [
        "n1", "n07", "gpu-a001", "big0"]


def test_a_single_process_run_initialises_nothing_distributed(tmp_path, toy_dataset):
    from bench.experiment import run_experiment
    from bench.sweep import compose_config
    record = run_experiment(compose_config(["dataset=toy", "method=zeroshot", "dataset.val_fraction=0.03",
                                            "dataset.test_fraction=0.03", "runtime.progress=false",
                                            *_run_args(tmp_path)]))
    assert not torch.distributed.is_initialized()
    assert (record.world_size, record.backend) == (1, None)


# ---- a real SLURM job of 2 tasks on one node -----------------------------------------------
def test_a_two_task_slurm_job_matches_one_process(slurm_cluster, summaries, tmp_path):
    out = tmp_path / "slurm"
    log = tmp_path / "job.out"
    cases = ["coop:mt", "mmap:grouped"]
    command = f"srun --kill-on-bad-exit=1 {sys.executable} {MATRIX} {out} {' '.join(cases)}"
    proc = subprocess.run(["sbatch", "--parsable", "--ntasks=2", "--nodes=1", "--cpus-per-task=1",
                           "-o", str(log), "--wrap", command], capture_output=True, text=True,
                          env=_env(**slurm_cluster), cwd=tmp_path, check=True)
    job_id = proc.stdout.strip().split(";")[0]

    def finished() -> bool:
        state = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
        return any(f"JobState={s}" in state for s in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"))

    wait_for(finished, 300, f"the 2-task SLURM job {job_id}")
    assert (out / "summary.json").exists(), log.read_text()[-3000:] if log.exists() else "no job output"
    slurm = json.loads((out / "summary.json").read_text())
    one, _ = summaries
    for label in cases:
        a, b = one[label], slurm[label]
        assert (b["world_size"], b["backend"], b["run_id"]) == (2, "gloo", a["run_id"]), label
        assert b["accuracy"] == a["accuracy"], label
        assert _same_state(a, b) <= STATE_TOLERANCE, label


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.long
def test_a_hung_rank_stops_the_others_after_the_collective_timeout(tmp_path, toy_dataset):
    """Two processes started by hand (a user's own launcher: nobody ends the others): rank 1
    hangs at step 1; rank 0 stops within runtime.collective_timeout_s with a paragraph naming
    itself, not a backend traceback and not a hang."""
    port = str(_free_port())
    args = [sys.executable, "-m", "bench.run", *RUN, "runtime.collective_timeout_s=5", *_run_args(tmp_path)]
    faults = {"CPB_FAULT": "hold_at_step:1@1", "CPB_FAULT_STATE": str(tmp_path / "faults"),
              "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
    ranks = [subprocess.Popen(args, cwd=tmp_path, env=_env(RANK=str(r), LOCAL_RANK=str(r), **faults),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    try:
        wait_for((tmp_path / "faults" / "held").exists, 120, "rank 1 to hang at step 1")
        held = time.perf_counter()
        _, stderr = ranks[0].communicate(timeout=120)
        assert time.perf_counter() - held < 60  # bounded by the 5 s timeout (plus slack for a busy machine)
    finally:
        for process in ranks:
            process.kill()
            process.wait()
    assert ranks[0].returncode == 2, stderr[-2000:]
    assert "Rank 0 of 2 stopped: a collective operation with the other ranks failed" in stderr
    assert "Traceback" not in stderr


def test_submitit_local_executor_with_two_tasks_matches_one_process(summaries, tmp_path):
    """The launcher our sweeps use without SLURM (submitit's local executor) with
    tasks_per_node=2: one run over both tasks, the numbers of one process."""
    import cloudpickle
    import submitit

    import distributed_matrix
    cloudpickle.register_pickle_by_value(distributed_matrix)  # the job's interpreter lacks tests/ on its path
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="local")
    executor.update_parameters(timeout_min=10, tasks_per_node=2, gpus_per_node=0)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OMP_NUM_THREADS", "1")
        env.setenv("MASTER_PORT", str(_free_port()))
        job = executor.submit(distributed_matrix.main, tmp_path / "out", ["coop:st"])
        job.results()  # raises with the job's log if a task failed
    local = json.loads((tmp_path / "out" / "summary.json").read_text())["coop:st"]
    reference = summaries[0]["coop:st"]
    assert (local["world_size"], local["backend"], local["run_id"]) == (2, "gloo", reference["run_id"])
    assert local["accuracy"] == reference["accuracy"]
    assert _same_state(reference, local) <= STATE_TOLERANCE


def test_a_rank_with_an_empty_share_still_takes_the_exact_step(tmp_path):
    """Every image of rank 1's share unreadable (dataset.unreadable=skip): it joins the step's
    reductions with nothing, and the update is the one-process update on rank 0's images."""
    proc = _launch([*TORCHRUN, str(REPO / "tests" / "bench" / "distributed_step.py"), str(tmp_path)], tmp_path,
                   timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "step.json").read_text())
    assert result["world"] == 2 and result["moved"] > 1e-4
    assert result["state"] <= STATE_TOLERANCE and result["loss"] <= 1e-6
