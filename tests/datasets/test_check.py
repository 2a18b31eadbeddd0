"""Checking a dataset (datasets/dataset_report.py, `python -m bench.check`): the report and the exit codes."""
from __future__ import annotations

import os
import subprocess
import sys

from bench.datasets.dataset_report import check_dataset
from helpers import (
    REPO,
    oh_cfg,
)


def test_check_dataset_report(officehome_root):
    (officehome_root / "Art" / "Backpack" / "00003.jpg").write_bytes(b"garbage")
    report = check_dataset(oh_cfg(officehome_root))
    assert not report.ok
    art = report.domains[0]
    assert (art.name, art.classes, art.images, art.train, art.val, art.test) == ("Art", 3, 30, 18, 6, 6)
    assert len(art.unreadable) == 1 and art.unreadable[0].endswith("00003.jpg")
    assert "1 unreadable file(s)" in report.format()


def run_check(*args, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "bench.check", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


def test_check_cli_exit_codes(officehome_root, tmp_path):
    ok = run_check("dataset=officehome", f"dataset.root={officehome_root}", "dataset.num_classes=3")
    assert ok.returncode == 0, ok.stderr
    assert "Real World" in ok.stdout and "OK" in ok.stdout
    assert "train" in ok.stdout and "unreadable" in ok.stdout

    (officehome_root / "Clipart" / "tv_stand" / "00001.jpg").write_bytes(b"\xff\xd8 truncated")
    bad = run_check("dataset=officehome", f"dataset.root={officehome_root}", "dataset.num_classes=3")
    assert bad.returncode == 1
    assert "Clipart: 1 unreadable" in bad.stdout

    missing = run_check("dataset=officehome", f"dataset.root={tmp_path / 'nowhere'}")
    assert missing.returncode == 2
    assert "Office-Home not found at" in missing.stderr and "Traceback" not in missing.stderr


def test_check_main_usage_errors(capsys):
    from bench.check import main

    assert main(["dataset=nope"]) == 2
    assert "No dataset config 'nope'" in capsys.readouterr().err
    assert main([]) == 2
    assert "usage:" in capsys.readouterr().err
    assert main(["dataset=toy", "root=/x"]) == 2  # overrides need the dataset. prefix
