"""Helpers shared by the tests (plain functions and constants; the fixtures are in
tests/conftest.py).  Test modules import from here, never from one another."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Mapping

import open_clip
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from PIL import Image

from bench.app import compose_config, dataset_config, method_config, train_config
from bench.check import load_dataset_config
from bench.data import MultiTaskBatch
from bench.datasets import build_dataset
from bench.errors import guarded
from bench.schema import DatasetConfig, MethodConfig
from bench.experiment import run_experiment
from bench.step import build_optimizer, multitask_loss

REPO = Path(__file__).resolve().parents[1]


def bench_run(*args: str, cwd: Path, extra_env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python -m bench.run *args` as a user runs it, in `cwd`."""
    env = dict(os.environ, **(extra_env or {}))
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "bench.run", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)

#: toy overrides that evaluate 5 % of each domain (50 images) for val and for test, not 20 %: for a
#: test whose point is the command, the sweep or the requeue around a run rather than its accuracy
#: (the full split made half the time of such tests)
SMALL_TOY_EVAL = ["dataset.val_fraction=0.05", "dataset.test_fraction=0.05"]

#: ViT-B/16's parameter count (random weights, no download)
CLIP_B16_TOTAL = 149_620_737


# ---- configs --------------------------------------------------------------------------------------
def typed(factory: Callable, values: Mapping):
    """A bench.app factory's typed config (method_config, dataset_config, train_config) from a
    plain mapping, as tests write blocks: the factories take composed (DictConfig) blocks only."""
    return factory(OmegaConf.create(dict(values)))


def method_block(name: str, **overrides) -> DictConfig:
    """configs/method/<name>.yaml's method block with overrides (dotted keys allowed), unchecked."""
    cfg = OmegaConf.load(REPO / "configs" / "method" / f"{name}.yaml").method
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value, force_add=True)
    return cfg


def method_cfg(name: str, **overrides) -> MethodConfig:
    """The checked, typed method config of configs/method/<name>.yaml with overrides."""
    return method_config(method_block(name, **overrides))


def load_dataset(block):
    """The dataset a (possibly partial) dataset block describes, checked first, as a run builds it."""
    return build_dataset(block if isinstance(block, DatasetConfig) else typed(dataset_config, block))


def train_cfg(**overrides):
    """The schema's train defaults cut to a few CPU steps (constant lr, last-epoch selection)."""
    return typed(train_config, {**dict(epochs=1, warmup_epochs=0, steps_per_epoch=2, batch_size=4, eval_batch_size=32,
                                selection="last", lr=0.01), **overrides})


def sgd_cfg():
    return OmegaConf.create({"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4})


def register_model_config(name: str, embed_dim: int, text_width: int, vision_width: int,
                          layers: int = 2, image_size: int = 32, patch_size: int = 16,
                          text_heads: int = 2, vision_head_width: int = 64, tmp_dir: Path | None = None) -> str:
    """Register an open_clip config with the given widths (e.g. ViT-L/14's 768/1024) and few layers."""
    cfg = {"embed_dim": embed_dim,
           "vision_cfg": {"image_size": image_size, "layers": layers, "width": vision_width,
                          "head_width": vision_head_width, "patch_size": patch_size},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": text_width,
                        "heads": text_heads, "layers": layers}}
    path = Path(tmp_dir) / f"{name}.json"
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(path)
    return name


# ---- tasks as methods see them ---------------------------------------------------------------------
def make_tasks(n_tasks: int = 3, classnames=("dog", "cat", "car", "house")):
    """Task-like objects (name, classnames) as methods see them."""
    return [SimpleNamespace(name=f"task{t}", classnames=tuple(classnames)) for t in range(n_tasks)]


def mixed_tasks():
    """Three tasks with different class lists (so the -inf masking is exercised)."""
    return [SimpleNamespace(name="task0", classnames=("dog", "cat", "car", "house")),
            SimpleNamespace(name="task1", classnames=("tree", "boat", "bird")),
            SimpleNamespace(name="task2", classnames=("dog", "cat", "car", "house"))]


# Class names of 1, 2 and 3 tokens (CoOp's middle/front place their context by the name's length), unequal class counts.
VARIED_TASKS = [SimpleNamespace(name="task0", classnames=("dog", "traffic light", "car", "grand piano lid")),
                SimpleNamespace(name="task1", classnames=("tree", "boat", "sea bird")),
                SimpleNamespace(name="task2", classnames=("dog", "traffic light", "car", "grand piano lid"))]


def officehome_like_tasks():
    return [SimpleNamespace(name=d, classnames=tuple(f"class {i}" for i in range(65)))
            for d in ("Art", "Clipart", "Product", "Real_World")]


def trainable_count(method) -> int:
    return sum(p.numel() for _, p in method.trainable_parameters())


# ---- the configurations of every method that the tests exercise ----------------------------------
#: (method, config overrides) for the prompt methods and modes; the tiny model has 4 + 4 layers.
PROMPT_CASES = [
    ("vpt", {"mode": "mt"}), ("vpt", {"mode": "st"}), ("vpt", {"mode": "mt", "deep": False}),
    ("vpt", {"mode": "st", "prompt_depth": 2}),
    ("maple", {"mode": "mt", "prompt_depth": 4}), ("maple", {"mode": "st", "prompt_depth": 3}),
    ("maple", {"mode": "mt", "prompt_depth": 2, "ctx_init": None, "n_ctx": 3}),
    ("mmap", {"mode": "mt"}), ("mmap", {"mode": "st", "n_ctx": 3, "prompt_depth": 2}),
    ("mmap", {"mode": "grouped", "grouping.strategy": "manual",
              "grouping.groups": [["task0", "task2"], ["task1"]], "n_ctx": 2, "n_task_ctx": 3}),
    ("mmap", {"mode": "grouped", "grouping.strategy": "singletons", "n_task_ctx": 0, "prompt_depth": 3}),
]
#: CLIP-Adapter, BitFit, LoRA, CoCoOp in both modes, and CoOp's variants (csc, class token position)
FORMULA_CASES = [(name, dict(overrides, mode=mode))
                 for name, overrides in [("clip_adapter", {}), ("bitfit", {}), ("lora", {"dropout": 0.0}),
                                         ("cocoop", {})]
                 for mode in ("mt", "st")] + [
    ("coop", {"mode": mode, "csc": csc, "class_token_position": position, "n_ctx": 3})
    for mode in ("mt", "st") for csc in (False, True) for position in ("end", "middle", "front")
    if csc or position != "end"]


def case_id(case) -> str:
    name, overrides = case
    return f"{name}-" + "-".join(f"{k}={v}" for k, v in overrides.items())


def cases_of(method: str, cases) -> list:
    return [case for case in cases if case[0] == method]


# ---- a few SGD steps on random batches ---------------------------------------------------------------
def train_steps(method, batches, n_tasks):
    optimizer = build_optimizer([p for _, p in method.trainable_parameters()], sgd_cfg())
    method.train()
    for images, labels, task_ids in batches:
        loss = multitask_loss(method(images, task_ids), labels, task_ids, n_tasks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def make_batches(n_steps, tasks, per_task=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n_steps):
        task_ids = torch.arange(len(tasks)).repeat_interleave(per_task)
        labels = torch.cat([torch.randint(len(tasks[t].classnames), (per_task,), generator=generator)
                            for t in range(len(tasks))])
        batches.append((torch.randn(len(task_ids), 3, 64, 64, generator=generator), labels, task_ids))
    return batches


def duck_data(tasks, size, steps=1, per_task=2):
    """A stand-in with MultiTaskData's train interface (the real one: tests/methods/test_grouping.py)."""
    batches = [MultiTaskBatch(F.interpolate(x, size=size), y, t) for x, y, t in make_batches(steps, tasks, per_task)]
    return SimpleNamespace(task_names=[t.name for t in tasks], train_loader=lambda epoch, start=0: batches,
                           unreadable="error")


def snapshot(module):
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


# ---- image folders -------------------------------------------------------------------------------------
OH_DOMAINS = ["Art", "Clipart", "Product", "Real World"]
OH_CLASSES = ["Alarm_Clock", "Backpack", "tv_stand"]
DN_DOMAINS = ["clipart", "painting", "real", "sketch"]
DN_CLASSES = ["aircraft_carrier", "The_Eiffel_Tower", "zebra"]


def write_image(path: Path, value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (value % 256, 40, 90)).save(path, format="JPEG")


def make_imagefolder(root: Path, domains, classes, n_per_class=10) -> Path:
    for d in domains:
        for ci, c in enumerate(classes):
            for i in range(n_per_class):
                write_image(root / d / c / f"{i:05d}.jpg", ci * 20 + i)
    return root


def write_domainnet_tree(root: Path, domains, lists_dir: str, per_class: int, n_train: int) -> Path:
    """DomainNet's layout: <domain>/<class>/*.jpg and <lists_dir>/<domain>_{train,test}.txt, the
    first `n_train` images of each class listed for training, the rest for testing."""
    (root / lists_dir).mkdir(parents=True, exist_ok=True)
    for d in domains:
        lines = {"train": [], "test": []}
        for label, c in enumerate(DN_CLASSES):
            for i in range(per_class):
                rel = f"{d}/{c}/{d}_{label:03d}_{i:06d}.jpg"
                write_image(root / rel, i)
                lines["train" if i < n_train else "test"].append(f"{rel} {label}")
        for split, ls in lines.items():
            (root / lists_dir / f"{d}_{split}.txt").write_text("\n".join(ls) + "\n")
    return root


def make_minidomainnet(root: Path) -> Path:
    """MiniDomainNet's layout: <domain>/<class>/*.jpg and splits_mini/<domain>_<split>.txt."""
    return write_domainnet_tree(root, DN_DOMAINS, "splits_mini", per_class=12, n_train=9)


def oh_cfg(root, *overrides):
    return load_dataset_config("officehome", [f"dataset.root={root}", "dataset.num_classes=3", *overrides])


def dn_cfg(root, *overrides):
    return load_dataset_config("minidomainnet", [f"dataset.root={root}", "dataset.num_classes=3", *overrides])


def paths(samples):
    return {p for p, _ in samples}


# ---- runs ----------------------------------------------------------------------------------------------
def runtime_overrides(root) -> list[str]:
    """Keep a run's record and checkpoints under `root`."""
    return [f"runtime.results_dir={root}/results/runs", f"runtime.checkpoint_dir={root}/checkpoints"]


def run_killed_at_step(step: int, overrides: list[str], root: Path, cwd: Path) -> None:
    """`python -m bench.run *overrides` (record and checkpoints under `root`) in a child that
    SIGKILLs itself right after training step `step` (CPB_FAULT), with this process's torch
    thread count, so that its float reductions are those of an in-process reference run."""
    env = dict(os.environ, PYTHONPATH=str(REPO), CPB_FAULT=f"kill_at_step:{step}",
               OMP_NUM_THREADS=str(torch.get_num_threads()))
    proc = subprocess.run([sys.executable, "-m", "bench.run", *overrides, *runtime_overrides(root)], cwd=cwd,
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]  # killed exactly at that step


# ---- made once per session, whichever xdist worker asks first ---------------------------------------
def session_shared_dir(tmp_path_factory) -> Path:
    """The temporary folder every xdist worker of this session shares (its own one without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def locked(path: Path):
    """Hold an exclusive lock on the file `path` (made if absent) across processes."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def made_once(tmp_path_factory, name: str, make: Callable[[Path], None]) -> Path:
    """`<shared>/<name>`, filled by `make(folder)` once per test session: the first worker to ask
    makes it under a lock, the others wait for it and read it.  A `make` that fails leaves no
    `.done` mark, so the next one to ask makes it again (and fails in its own test)."""
    shared = session_shared_dir(tmp_path_factory)
    folder = shared / name
    with locked(shared / f"{name}.lock"):
        if not (folder / ".done").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            make(folder)
            (folder / ".done").write_text("ok")
    return folder


def kept_process(folder: Path, proc: subprocess.CompletedProcess | None = None) -> subprocess.CompletedProcess:
    """Write a finished process's exit status and output to `folder` (with `proc`), or read it back."""
    if proc is not None:
        (folder / "process.json").write_text(json.dumps({"args": list(map(str, proc.args)), "returncode": proc.returncode,
                                                        "stdout": proc.stdout, "stderr": proc.stderr}))
    kept = json.loads((folder / "process.json").read_text())
    return subprocess.CompletedProcess(kept["args"], kept["returncode"], kept["stdout"], kept["stderr"])


# ---- waiting for a subprocess (never a fixed sleep) -------------------------------------------------
def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def random_batch(clip, n_tasks=3, per_task=2, seed=0):
    """(images, labels, task ids) of random images for `clip`, `per_task` per task, seeded."""
    generator = torch.Generator().manual_seed(seed)
    size = clip.image_size
    images = torch.randn(n_tasks * per_task, 3, size, size, generator=generator)
    task_ids = torch.arange(n_tasks).repeat_interleave(per_task)
    labels = torch.randint(0, 4, (len(task_ids),), generator=generator)
    return images, labels, task_ids


def launch(overrides: list[str], capsys) -> tuple[int, str]:
    """`python -m bench.run` in this process: (exit code, stdout + stderr)."""
    try:
        guarded(run_experiment)(compose_config(overrides))
        code = 0
    except SystemExit as stop:
        code = stop.code
    out = capsys.readouterr()
    return code, out.out + out.err
