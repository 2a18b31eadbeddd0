"""Answers that need no model never import torch, torchvision or open_clip (issue 27): every
command's --help, every config error, `--cfg job`, `bench.report`, `bench.sweep ... list |
status | cancel` and `bench.check`.  Each case runs in a fresh interpreter, since a module
imported once by any earlier test would hide the import.  How long these paths take is
measured by `python -m bench.speed.startup`, not here."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import REPO, runtime_overrides

HEAVY = ("torch", "torchvision", "open_clip")


def heavy_imports_after(module: str, args: list[str], cwd) -> tuple[list[str], subprocess.CompletedProcess]:
    """Run `python -m module *args` in a fresh interpreter; the heavy modules it imported."""
    probe = ("import json, runpy, sys\n"
             f"sys.argv = [{module!r}, *{args!r}]\n"
             "try:\n"
             f"    runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"
             "except SystemExit:\n"
             "    pass\n"
             f"print('HEAVY', json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr)\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", probe], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("HEAVY ")]
    assert line, proc.stderr[-3000:]
    return json.loads(line[-1].removeprefix("HEAVY ")), proc


@pytest.mark.parametrize("module, args", [
    ("bench.run", ["--help"]),
    ("bench.run", ["--help", "method=mmap"]),
    ("bench.run", ["method=nosuch"]),
    ("bench.run", ["train.lr=-1"]),
    ("bench.run", ["train.lr=abc"]),
    ("bench.run", ["--cfg", "job"]),
    ("bench.speed", ["--help"]),
    ("bench.speed", ["speed.methods=nosuch"]),
    ("bench.sweep", ["--help"]),
    ("bench.sweep", ["nosuch_preset", "status"]),
    ("bench.report", ["--help"]),
    ("bench.check", ["--help"]),
    ("bench.prepare", ["--help"]),
    ("bench.speed.data_loading", ["--help"]),
    ("bench.speed.data_loading", ["images=abc"]),
    ("bench.speed.startup", ["--help"]),
    ("bench.pretrain_toy", ["--help"]),
    ("bench.pretrain_toy", ["--steps", "abc"]),
    ("bench.help", []),
], ids=lambda value: value if isinstance(value, str) else " ".join(value) or "-")
def test_help_and_config_errors_never_import_torch(module, args, tmp_path):
    heavy, proc = heavy_imports_after(module, args, tmp_path)
    assert heavy == [], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


def test_a_report_never_imports_torch(tmp_path):
    heavy, proc = heavy_imports_after("bench.report", ["--runs", str(REPO / "tests" / "fixtures" / "records"),
                                                        "--out", str(tmp_path / "report")], tmp_path)
    assert heavy == [] and (tmp_path / "report").is_dir() and any((tmp_path / "report").glob("*.md")), \
        proc.stderr[-3000:]


@pytest.mark.parametrize("action", ["list", "status", "cancel"])
def test_sweep_list_status_and_cancel_never_import_torch(action, tmp_path, toy_dataset):
    heavy, proc = heavy_imports_after("bench.sweep", ["toy_smoke", action, *runtime_overrides(tmp_path)], tmp_path)
    assert heavy == [] and proc.returncode == 0, proc.stderr[-3000:]
    expected = {"list": "method=coop", "status": "6 runs: 0 complete", "cancel": "cancelled 0 job(s)"}[action]
    assert expected in proc.stdout + proc.stderr, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_a_dataset_check_never_imports_torch(tmp_path, toy_dataset):
    heavy, proc = heavy_imports_after("bench.check", ["dataset=toy"], tmp_path)
    assert heavy == [] and proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
