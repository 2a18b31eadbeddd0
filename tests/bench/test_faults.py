"""Every bad input and fault of docs/reliability.md, injected deterministically.

Each case asserts the exit code, that the message names the file or key and the fix, and
that nothing computed before (another run's record, a checkpoint, the toy cache) was
damaged.  Faults come from real broken files, real read-only folders and CPB_FAULT
(bench/faults.py: a full disk at the k-th write, a kill or a hold at step k), never
from timing.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import REPO, SMALL_TOY_EVAL, launch, wait_for

from bench import faults
from bench.sweep import compose_config

SHORT = ["dataset=toy", "method=coop", "train.epochs=1", "train.steps_per_epoch=2", "train.batch_size=4",
         "runtime.checkpoint_every_steps=1", "runtime.progress=false", "runtime.num_workers=0"]


@pytest.fixture(autouse=True)
def _no_leftover_faults(monkeypatch):
    monkeypatch.delenv("CPB_FAULT", raising=False)
    monkeypatch.delenv("CPB_FAULT_STATE", raising=False)
    faults.reset()
    yield
    faults.reset()


def random_bytes(size: int, seed: int = 0) -> bytes:
    """Seeded, so a damaged file fails the same way on every run (os.urandom once made CI flaky)."""
    return random.Random(seed).randbytes(size)


def dirs(root: Path) -> list[str]:
    return [f"runtime.results_dir={root}/results", f"runtime.checkpoint_dir={root}/checkpoints",
            f"runtime.cache_dir={root}/cache"]




def one_paragraph(text: str) -> str:
    message = text.split("Error: ", 1)[1].strip()
    assert "Traceback" not in text and "\n" not in message, text
    return message


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def no_temp_files(root: Path) -> bool:
    return not [p for p in root.rglob("*") if ".tmp-" in p.name]


@pytest.fixture(scope="module")
def toy_copy(tmp_path_factory):
    """A private copy of the generated toy dataset (tests break images in copies of it)."""
    from omegaconf import OmegaConf

    from helpers import load_dataset
    return Path(load_dataset(OmegaConf.load(REPO / "configs" / "dataset" / "toy.yaml")).root)


def broken_copy(tmp_path: Path, toy: Path) -> Path:
    root = tmp_path / "toy"
    shutil.copytree(toy, root)
    return root


def test_split(root: Path, domain: str, split: str) -> list[str]:
    """The image paths of `split` of `domain` for a toy dataset at `root`, as a run splits it."""
    from omegaconf import OmegaConf

    from helpers import load_dataset
    cfg = OmegaConf.load(REPO / "configs" / "dataset" / "toy.yaml")
    cfg.root = str(root)
    task = load_dataset(cfg).task(domain)
    return [p for p, _ in task.split(split)]


test_split.__test__ = False  # a helper, not a test


# ---- unreadable and missing images ---------------------------------------------------------------
BREAKS = {
    "random bytes": lambda p: p.write_bytes(random_bytes(2000)),
    "zero bytes": lambda p: p.write_bytes(b""),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
}  # a deleted file is not listed by a folder scan; a split file naming one: test_split_file_line_...


@pytest.mark.parametrize("split", ["val", "test", "train"])
@pytest.mark.parametrize("damage", list(BREAKS))
def test_unreadable_image_stops_before_training(tmp_path, toy_copy, capsys, damage, split):
    root = broken_copy(tmp_path, toy_copy)
    bad = Path(test_split(root, "photo", split)[3])  # a JPEG, not the first of its split
    BREAKS[damage](bad)
    code, out = launch(SHORT + [f"dataset.root={root}"] + dirs(tmp_path), capsys)
    message = one_paragraph(out)
    assert code == 2 and str(bad) in message and "dataset.unreadable=skip" in message
    assert "bench.check" in message and f"{split} 1" in message
    assert not list((tmp_path / "checkpoints").rglob("*.pt"))  # stopped before any training


def corrupt_middle(path: Path) -> None:
    """Flip bytes inside a PNG's image data: header and IEND intact, so only a decode finds it."""
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 40):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("split", ["train", "test"])
def test_image_that_passes_the_check_but_not_the_decode(tmp_path, toy_copy, capsys, split):
    from bench.datasets.image_scan import image_problem
    root = broken_copy(tmp_path, toy_copy)
    bad = Path(test_split(root, "sketch", split)[2])
    corrupt_middle(bad)
    assert image_problem(str(bad)) is None  # the cheap check cannot see it
    # train: one epoch of 4 steps x 150 images per task draws each of the 600 train images once
    more = ["train.batch_size=150", "train.steps_per_epoch=4"] if split == "train" else []
    overrides = SHORT + [f"dataset.root={root}", *more] + dirs(tmp_path)
    code, out = launch(overrides, capsys)
    message = one_paragraph(out)
    assert code == 2 and str(bad) in message and "dataset.unreadable=skip" in message
    if split == "test":  # with the opt-in: left out and counted, the denominator is 199
        code, out = launch(overrides + ["dataset.unreadable=skip"], capsys)
        record = json.loads(next((tmp_path / "results").glob("*.json")).read_text())
        assert code == 0 and record["images"]["test"]["sketch"] == {"listed": 200, "evaluated": 199, "skipped": 1}


def test_skip_unreadable_records_counts_and_denominator(tmp_path, toy_copy, capsys):
    root = broken_copy(tmp_path, toy_copy)
    bad_test = Path(test_split(root, "sketch", "test")[5])
    bad_train = Path(test_split(root, "photo", "train")[0])
    BREAKS["truncated"](bad_test)
    BREAKS["zero bytes"](bad_train)
    code, out = launch(SHORT + [f"dataset.root={root}", "dataset.unreadable=skip"] + dirs(tmp_path), capsys)
    assert code == 0, out
    record = json.loads(next((tmp_path / "results").glob("*.json")).read_text())
    assert record["images"]["test"]["sketch"] == {"listed": 200, "evaluated": 199, "skipped": 1}
    assert record["images"]["test"]["photo"] == {"listed": 200, "evaluated": 200, "skipped": 0}
    assert record["images"]["train"]["photo"] == {"listed": 600, "skipped": 1}
    # the denominator is the 199 readable images: every accuracy is a multiple of 100/199
    hits = record["accuracy"]["test"]["sketch"] * 199 / 100
    assert abs(hits - round(hits)) < 1e-6
    assert "unreadable test images left out" in out and "sketch 1 of 200" in out


def test_split_file_line_naming_a_missing_image(tmp_path, toy_copy, capsys):
    """Any line of a user split file, not only the first, is checked."""
    root = broken_copy(tmp_path, toy_copy)
    splits = tmp_path / "splits"
    splits.mkdir()
    for domain in ("photo", "sketch", "clipart", "painting"):
        for split in ("train", "val", "test"):
            paths = test_split(root, domain, split)
            labels = [sorted(["circle", "square", "triangle", "cross", "star"]).index(Path(p).parent.name)
                      for p in paths]
            lines = [f"{os.path.relpath(p, root)} {label}" for p, label in zip(paths, labels)]
            if (domain, split) == ("clipart", "test"):
                lines[2] = "clipart/star/no_such_image.png 3"
            (splits / f"{domain}_{split}.txt").write_text("\n".join(lines) + "\n")
    code, out = launch(SHORT + [f"dataset.root={root}", f"dataset.split_dir={splits}"] + dirs(tmp_path), capsys)
    message = one_paragraph(out)
    assert code == 2 and "no_such_image.png (missing)" in message and "test 1" in message


# ---- empty splits ----------------------------------------------------------------------------------
def test_empty_validation_split_is_an_error_with_counts_and_fix(tmp_path, capsys):
    code, out = launch(SHORT + ["dataset.val_fraction=0.002"] + dirs(tmp_path), capsys)
    message = one_paragraph(out)
    assert code == 2 and "photo val" in message and "val 0" in message and "dataset.val_fraction" in message
    assert not (tmp_path / "results").exists() or not list((tmp_path / "results").iterdir())


def test_split_entirely_unreadable_is_empty_even_with_skip(tmp_path, toy_copy, capsys):
    root = broken_copy(tmp_path, toy_copy)
    for path in test_split(root, "painting", "val"):
        Path(path).write_bytes(b"")
    code, out = launch(SHORT + [f"dataset.root={root}", "dataset.unreadable=skip"] + dirs(tmp_path), capsys)
    message = one_paragraph(out)
    assert code == 2 and "painting val" in message and "(+200 unreadable)" in message


def test_datasets_check_does_not_say_ok_for_an_empty_split():
    proc = subprocess.run([sys.executable, "-m", "bench.check", "dataset=toy", "dataset.val_fraction=0.002"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "OK" not in proc.stdout
    assert "photo: the val split is empty" in proc.stdout and "dataset.val_fraction" in proc.stdout


# ---- damaged files -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A short complete run: its record and its final checkpoint."""
    from bench.experiment import run_experiment
    root = tmp_path_factory.mktemp("finished")
    record = run_experiment(compose_config(SHORT + dirs(root) + ["runtime.keep_checkpoint=everything"])).to_dict()
    checkpoint = root / "checkpoints" / record["run_id"] / "checkpoint.pt"
    return record, checkpoint.read_bytes()


CHECKPOINT_DAMAGE = {
    "zero bytes": lambda good: b"",
    "random bytes": lambda good: random_bytes(4096),
    "truncated": lambda good: good[: len(good) // 2],
}


@pytest.mark.parametrize("damage", list(CHECKPOINT_DAMAGE))
def test_damaged_checkpoint_names_the_file_and_the_fix(tmp_path, finished_run, capsys, damage):
    record, good = finished_run
    checkpoint = tmp_path / "checkpoints" / record["run_id"] / "checkpoint.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(CHECKPOINT_DAMAGE[damage](good))
    before = digest(checkpoint)
    code, out = launch(SHORT + dirs(tmp_path), capsys)
    message = one_paragraph(out)
    assert code == 2 and str(checkpoint) in message and "runtime.resume=false" in message and "mv " in message
    assert digest(checkpoint) == before  # left untouched for the user to inspect
    code, out = launch(SHORT + dirs(tmp_path) + ["runtime.resume=false"], capsys)  # the advertised fix
    assert code == 0 and json.loads((tmp_path / "results" / f"{record['run_id']}.json").read_text())[
        "accuracy"] == record["accuracy"]


def toy_weights_path() -> Path:
    from bench.shipped_weights import OUR_CHECKPOINTS, WEIGHTS_DIR
    return WEIGHTS_DIR / OUR_CHECKPOINTS["cpb-toy"][1]


# Unpickling random bytes fails with whatever type the first bad opcode gives: these seeds cover the
# types seen over 300 seeds (UnpicklingError, IndexError, KeyError, UnicodeDecodeError).
WEIGHTS_DAMAGE = {
    **{f"random bytes, seed {seed}": lambda seed=seed: random_bytes(4096, seed) for seed in (0, 2, 20, 195)},
    "zero bytes": lambda: b"",
    "truncated": lambda: (good := toy_weights_path().read_bytes())[: len(good) // 2],
    "random bytes, safetensors": lambda: random_bytes(4096),
    "text": lambda: b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 7835427\n",
}


@pytest.mark.parametrize("damage", list(WEIGHTS_DAMAGE))
def test_pretrained_file_torch_cannot_read(tmp_path, damage):
    from bench.clip import ModelError
    from bench.models import build_clip
    weights = tmp_path / ("open_clip_model.safetensors" if "safetensors" in damage else "open_clip_pytorch_model.bin")
    weights.write_bytes(WEIGHTS_DAMAGE[damage]())
    with pytest.raises(ModelError) as caught:
        build_clip("cpb-tiny", str(weights))
    message = str(caught.value)
    assert str(weights) in message and "not a readable checkpoint" in message and "model.pretrained=none" in message
    assert "weights_only" not in message  # torch's advice to unpickle arbitrary code is not passed on


def test_pretrained_weights_of_another_shape_name_the_architecture(tmp_path):
    from bench.clip import ModelError
    from bench.models import build_clip
    state = torch.load(toy_weights_path(), weights_only=True)
    state["text_projection"] = state["text_projection"][:, :-1]  # a different embedding width
    weights = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(state, weights)
    with pytest.raises(ModelError) as caught:
        build_clip("cpb-tiny", str(weights))
    message = str(caught.value)
    assert "could not build cpb-tiny" in message and "text_projection" in message
    assert "model.arch" in message


def test_pretrained_file_of_random_bytes_stops_the_run_with_one_paragraph(tmp_path, capsys):
    weights = tmp_path / "open_clip_pytorch_model.bin"
    weights.write_bytes(random_bytes(4096, seed=2))  # the IndexError case CI once met with os.urandom
    code, out = launch(SHORT + [f"model.pretrained={weights}"] + dirs(tmp_path), capsys)
    message = one_paragraph(out)
    assert code == 2 and str(weights) in message and "model.pretrained=none" in message
    assert "weights_only" not in out


def test_record_marked_complete_but_missing_a_key(tmp_path, finished_run, capsys):
    record, _ = finished_run
    path = tmp_path / "results" / f"{record['run_id']}.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({k: v for k, v in record.items() if k != "accuracy"}))
    before = digest(path)
    code, out = launch(SHORT + dirs(tmp_path), capsys)
    message = one_paragraph(out)
    assert code == 2 and str(path) in message and "accuracy" in message and "mv " in message
    assert digest(path) == before
    from bench.report import load_records  # the report skips it, naming the key
    records, problems = load_records(path.parent)
    assert not records and problems[0]["reason"] == "missing keys: accuracy"


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nobody can write to: chmod for a user, a read-only bind mount for root."""
    source, folder = tmp_path / "ro-source", tmp_path / "ro"
    source.mkdir(), folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", str(source), str(folder)], capture_output=True)
    if mounted.returncode != 0 or os.access(folder, os.W_OK) and _writable(folder):
        subprocess.run(["umount", str(folder)], capture_output=True)
        pytest.skip("running as root where a read-only bind mount is not permitted")
    yield folder
    subprocess.run(["umount", str(folder)], capture_output=True)


def _writable(folder: Path) -> bool:
    try:
        (folder / ".probe").touch()
        (folder / ".probe").unlink()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("key", ["runtime.results_dir", "runtime.checkpoint_dir"])
def test_read_only_output_folder_is_found_before_any_work(tmp_path, read_only_dir, capsys, monkeypatch, key):
    import bench.experiment
    monkeypatch.setattr(bench.experiment, "plan_run", lambda cfg: pytest.fail("data loaded before the check"))
    code, out = launch(SHORT + dirs(tmp_path) + [f"{key}={read_only_dir}/out"], capsys)
    message = one_paragraph(out)
    assert code == 2 and f"{key}={read_only_dir}/out is not writable" in message and f"pass {key}=" in message


# ---- a full disk ---------------------------------------------------------------------------------------
def test_out_of_space_on_a_checkpoint_keeps_the_last_good_one(tmp_path, capsys, monkeypatch):
    # writes: 1 the weights-hash cache, 2 the image-check cache, 3 the checkpoint of step 1, 4 that of
    # the epoch end (step 2)
    monkeypatch.setenv("CPB_FAULT", "enospc_at_write:4")
    code, out = launch(SHORT + dirs(tmp_path), capsys)
    message = one_paragraph(out)
    folder = next((tmp_path / "checkpoints").iterdir())
    assert code == 2 and f"No space left on {folder}" in message and "previous checkpoint.pt is kept" in message
    assert no_temp_files(tmp_path)
    assert torch.load(folder / "checkpoint.pt", weights_only=False)["outcome"]["steps_run"] == 1
    monkeypatch.delenv("CPB_FAULT")  # space freed: the relaunch resumes from step 1
    code, out = launch(SHORT + dirs(tmp_path), capsys)
    assert code == 0 and json.loads(next((tmp_path / "results").glob("*.json")).read_text())["resumes"] == 1


def test_out_of_space_on_the_record_keeps_other_records(tmp_path, finished_run, capsys, monkeypatch):
    record, _ = finished_run
    other = tmp_path / "results" / "0123456789ab.json"  # an earlier run's record
    other.parent.mkdir(parents=True)
    other.write_text(json.dumps(record))
    before = digest(other)
    monkeypatch.setenv("CPB_FAULT", "enospc_at_write:5")  # 2 caches, checkpoints of step 1 and epoch end, record
    code, out = launch(SHORT + dirs(tmp_path) + ["seed=2"], capsys)
    message = one_paragraph(out)
    assert code == 2 and f"No space left on {tmp_path / 'results'}" in message
    assert digest(other) == before and no_temp_files(tmp_path)
    # no partial record beside it (the run's learning curves, written as it trained, may stay)
    assert sorted(p.name for p in other.parent.iterdir() if not p.name.endswith(".curves.csv")) == [other.name]


def test_write_error_on_a_checkpoint_is_one_paragraph(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CPB_FAULT", "eio_at_write:3")  # after the weights-hash and image-check caches
    code, out = launch(SHORT + dirs(tmp_path), capsys)
    message = one_paragraph(out)
    assert code == 2 and "checkpoint.pt failed (Input/output error)" in message and no_temp_files(tmp_path)


def test_out_of_space_while_generating_the_toy_cache(tmp_path):
    cache = tmp_path / "cache"
    env = dict(os.environ, PYTHONPATH=str(REPO), CPB_CACHE=str(cache), CPB_FAULT="enospc_at_write:7")
    proc = subprocess.run([sys.executable, "-m", "bench.run", *SHORT, *dirs(tmp_path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    message = one_paragraph(proc.stderr)
    assert proc.returncode == 2 and f"No space left on {cache}" in message and "CPB_CACHE" in message
    assert not list(cache.iterdir())  # no half dataset, no temporary folder


# ---- concurrent runs, sweeps ----------------------------------------------------------------------------
def held_run(tmp_path: Path, step: int, extra: list[str] = ()) -> tuple[subprocess.Popen, Path]:
    """`bench.run` in a subprocess that stops at `step` (CPB_FAULT=hold_at_step) until killed."""
    state = tmp_path / "faults"
    env = dict(os.environ, PYTHONPATH=str(REPO), CPB_FAULT=f"hold_at_step:{step}", CPB_FAULT_STATE=str(state))
    proc = subprocess.Popen([sys.executable, "-m", "bench.run", *SHORT, *dirs(tmp_path), *extra], cwd=tmp_path,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: (state / "held").exists() or proc.poll() is not None, 120, f"the run to reach step {step}")
    assert proc.poll() is None, "the held run ended"
    return proc, state


def test_second_identical_run_exits_and_a_killed_runs_lock_is_stale(tmp_path, capsys):
    proc, _ = held_run(tmp_path, 2)
    try:
        code, out = launch(SHORT + dirs(tmp_path), capsys)
        message = one_paragraph(out)
        assert code == 2 and "is already running (pid " + str(proc.pid) in message and "host" in message
    finally:
        proc.kill()
        proc.wait()
    code, out = launch(SHORT + dirs(tmp_path), capsys)  # the dead owner's lock does not block
    record = json.loads(next((tmp_path / "results").glob("*.json")).read_text())
    assert code == 0 and record["resumes"] == 1


@pytest.mark.long
def test_local_sweep_status_and_relaunch(tmp_path, capsys):
    from bench.sweep import launch as sweep_launch
    from bench.sweep import status
    preset = tmp_path / "one.yaml"
    preset.write_text("name: one\nfixed: [dataset=toy, method=coop]\ngrid:\n  seed: [1]\n")
    extra = SHORT[2:] + SMALL_TOY_EVAL + dirs(tmp_path)
    state = tmp_path / "faults"
    os.environ.update(CPB_FAULT="hold_at_step:2", CPB_FAULT_STATE=str(state))  # the job inherits it
    try:
        [submitted] = sweep_launch(str(preset), extra, "local", {})
    finally:
        del os.environ["CPB_FAULT"], os.environ["CPB_FAULT_STATE"]
    wait_for((state / "held").exists, 120, "the job to reach step 2")
    assert list(status(str(preset), extra)) == ["RUNNING"]
    assert sweep_launch(str(preset), extra, "local", {}) == []  # never a second copy of a running run
    os.kill(int((state / "held").read_text()), signal.SIGKILL)
    wait_for(lambda: "FAILED" in status(str(preset), extra), 60, "the killed job to show as FAILED")
    [again] = sweep_launch(str(preset), extra, "local", {})
    again["job"].result()
    assert list(status(str(preset), extra)) == ["COMPLETE"]
    assert "pid" not in capsys.readouterr().err


# ---- defaults that fight the machine ---------------------------------------------------------------------
def test_num_workers_auto_is_the_usable_cores_capped():
    from bench.errors import ConfigError
    from bench.input_checks import resolve_num_workers
    assert resolve_num_workers("auto") == min(len(os.sched_getaffinity(0)), 8)
    assert resolve_num_workers(3) == 3
    with pytest.raises(ConfigError, match="runtime.num_workers"):
        resolve_num_workers("many")


def test_image_check_is_cached_by_size_and_mtime(tmp_path, toy_copy, monkeypatch):
    from bench.datasets import image_scan
    root = broken_copy(tmp_path, toy_copy)
    paths = [str(p) for p in sorted(root.rglob("*.jpg"))[:20]]
    cache = tmp_path / "checks.json"
    assert image_scan.scan(paths, cache) == {}
    calls = []
    monkeypatch.setattr(image_scan, "image_problem", lambda p: calls.append(p) or None)
    assert image_scan.scan(paths, cache) == {} and calls == []  # nothing re-read
    Path(paths[4]).write_bytes(b"")  # changed size: checked again
    monkeypatch.undo()
    assert image_scan.scan(paths, cache) == {paths[4]: "empty file"}


FORKED_WORKER_OUTLIVES_ITS_RUN = """
import os, signal, sys, time
from bench.lock import RunLock
RunLock(sys.argv[1], "r1").acquire()
if os.fork() == 0:  # as a data-loader worker is forked, with the run's open files
    open(sys.argv[2] + ".tmp", "w").write(str(os.getpid()))
    os.replace(sys.argv[2] + ".tmp", sys.argv[2])
    time.sleep(120)
    os._exit(0)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.01)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_runs_lock_is_free_while_its_forked_worker_still_lives(tmp_path):
    from bench.lock import RunLock
    pid_file = tmp_path / "worker.pid"
    proc = subprocess.run([sys.executable, "-c", FORKED_WORKER_OUTLIVES_ITS_RUN, str(tmp_path), str(pid_file)],
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    worker = int(pid_file.read_text())
    try:
        assert proc.returncode == -signal.SIGKILL
        os.kill(worker, 0)  # the orphaned worker is alive ...
        lock = RunLock(tmp_path, "r1")
        lock.acquire()  # ... and the relaunch gets the lock at once, not after the worker dies
        lock.release()
    finally:
        os.kill(worker, signal.SIGKILL)
