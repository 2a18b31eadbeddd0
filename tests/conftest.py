"""Shared fixtures: tiny random-weight CLIPs, the toy dataset, tiny image folders, an isolated
toy cache and the local SLURM cluster.  Plain helpers live in tests/helpers.py."""
from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import (
    OH_CLASSES,
    OH_DOMAINS,
    REPO,
    bench_run,
    kept_process,
    locked,
    made_once,
    session_shared_dir,
    load_dataset,
    make_imagefolder,
    make_minidomainnet,
    register_model_config,
)
from omegaconf import OmegaConf

from bench.models import build_clip

SCRIPT = REPO / "scripts" / "slurm_local.sh"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"SLURM test cluster unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"SLURM test cluster unavailable: {reason}")


def _installed() -> bool:
    return all(shutil.which(b) for b in ("slurmctld", "slurmd", "sbatch", "munged"))


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """The local SLURM cluster, started by the first xdist worker that needs it and stopped by
    the last one done with it (a cluster is shared like a real one); yields {"SLURM_CONF": path}."""
    if sys.platform != "linux":
        _unavailable("needs Linux")
    if os.geteuid() != 0:
        _unavailable("needs root to run the SLURM daemons (scripts/slurm_local.sh start)")
    if not _installed():  # tests never install system packages themselves; CI does (.ci/run)
        _unavailable("slurmctld, slurmd, sbatch or munged is not installed. Install them once with "
                     "`sudo scripts/slurm_local.sh install` (Debian/Ubuntu packages; .ci/run does this)")
    shared = session_shared_dir(tmp_path_factory)
    users, me = shared / "slurm-users", shared / "slurm-users" / str(os.getpid())
    with locked(shared / "slurm.lock"):
        users.mkdir(exist_ok=True)
        if not any(users.iterdir()):
            proc = subprocess.run([str(SCRIPT), "start"], capture_output=True, text=True, timeout=120)
            if proc.returncode != 0:
                _unavailable(f"`scripts/slurm_local.sh start` failed:\n{proc.stderr[-3000:]}")
        me.touch()
    conf = subprocess.run([str(SCRIPT), "conf"], capture_output=True, text=True, check=True).stdout.strip()
    env = {"SLURM_CONF": conf}
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf
    try:
        yield env
    finally:
        if old is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = old
        with locked(shared / "slurm.lock"):
            me.unlink(missing_ok=True)
            if not any(users.iterdir()):
                subprocess.run([str(SCRIPT), "stop"], capture_output=True, text=True, timeout=120)


def pytest_collection_modifyitems(items):
    """The tests marked `long` first, in their file order, then the others as collected: each
    worker takes the next test when it is free (pyproject's addopts), so the long ones are shared
    out at the start.  A test that waits for what another one makes (the `made_once` folders) is
    never marked, so it never stands idle beside its maker."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture(scope="session")
def toy_default_run(tmp_path_factory):
    """`python -m bench.run runtime.progress=false` (the README's first command: CoOp on the toy
    default) in a folder of its own, once per session for every worker: (the folder, the
    finished process)."""
    def run(folder):
        kept_process(folder, bench_run("runtime.progress=false", cwd=folder, timeout=900))

    folder = made_once(tmp_path_factory, "toy-default-run", run)
    return folder, kept_process(folder)


@pytest.fixture(autouse=True)
def _same_random_draws_in_any_order():
    """Unseeded torch.randn in a test draws the same tensors whether the test runs alone, in a
    subset or in the whole suite (the global generator would otherwise carry the state over)."""
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _isolated_caches(tmp_path_factory):
    """Keep tests off the user's caches and offline; the toy dataset is generated once per session.
    One torch thread per worker, here and in every child process (OMP_NUM_THREADS is inherited):
    the suite already runs one xdist worker per core, and two threads per worker on 2 cores made
    OpenMP's spin-waiting triple the time (tests/methods: 105 s against 37 s)."""
    cache = session_shared_dir(tmp_path_factory) / "cpb-cache"  # every worker's: the toy is made once
    cache.mkdir(exist_ok=True)
    os.environ.setdefault("CPB_CACHE", str(cache))
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    yield


# ---- models ----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny_clip():
    torch.manual_seed(0)
    return build_clip("cpb-tiny", "none")


@pytest.fixture(scope="session")
def clip64(tiny_clip):
    """The tiny CLIP in float64, so that a slow reference and a method agree to ~1e-12."""
    return copy.deepcopy(tiny_clip).double()


@pytest.fixture(scope="session")
def vit_l14_widths_clip(tmp_path_factory):
    """A CLIP with ViT-L/14's widths (768 text, 1024 vision) but only 2 layers."""
    name = register_model_config("cpb-test-l14-widths", 768, 768, 1024, layers=2, image_size=28,
                                 patch_size=14, text_heads=12, vision_head_width=64,
                                 tmp_dir=tmp_path_factory.mktemp("cfg"))
    torch.manual_seed(0)
    return build_clip(name, "none")


@pytest.fixture(scope="session")
def vit_b16_clip():
    """ViT-B/16 with random weights (no download): for parameter counts only, never trained."""
    return build_clip("ViT-B-16", "none")


# ---- data ------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def toy_dataset(tmp_path_factory):
    """The generated toy dataset (4 domains x 5 shapes), built once per session for every worker
    (the cache is theirs in common; under the lock the second waits instead of generating too)."""
    with locked(session_shared_dir(tmp_path_factory) / "toy.lock"):
        return load_dataset(OmegaConf.load(REPO / "configs" / "dataset" / "toy.yaml"))


@pytest.fixture
def officehome_root(tmp_path) -> Path:
    return make_imagefolder(tmp_path / "office_home", OH_DOMAINS, OH_CLASSES)


@pytest.fixture
def minidomainnet_root(tmp_path) -> Path:
    return make_minidomainnet(tmp_path / "domainnet")
