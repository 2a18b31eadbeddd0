"""`python -m bench.run` as a user runs it: the toy default end to end, and every bad input's error."""
from __future__ import annotations

import json

import pytest
from helpers import bench_run, launch, runtime_overrides


@pytest.mark.long
def test_default_toy_run_end_to_end(toy_default_run):
    cwd, proc = toy_default_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "average" in proc.stdout and "trainable parameters: 1,024" in proc.stdout
    records = list((cwd / "results" / "runs").glob("*.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["status"] == "complete" and record["method"] == "coop" and record["dataset"] == "toy"
    assert record["tasks"] == ["photo", "sketch", "clipart", "painting"]
    assert set(record["accuracy"]["test"]) == {*record["tasks"], "average"}
    assert record["params"]["trainable"] == 1024 and record["train_images_per_s"] > 0
    assert record["config"]["model"]["arch"] == "cpb-tiny"
    # the run's logs and checkpoints stay in outputs/, never in results/; the finished run's checkpoint
    # is removed (runtime.keep_checkpoint=nothing, the default), and with it its emptied folder
    assert (cwd / "outputs" / "checkpoints").is_dir() and list((cwd / "outputs").rglob("*.log"))
    assert not list((cwd / "outputs" / "checkpoints").iterdir()) and record["checkpoint_kept"] == "nothing"
    assert sorted(p.name for p in (cwd / "results" / "runs").iterdir()) == [
        f"{record['run_id']}.curves.csv", f"{record['run_id']}.json"]  # its curves beside it, nothing else
    # open_clip's INFO lines go to the log file only, not to the console
    assert "Parsing model identifier" not in proc.stdout + proc.stderr
    assert any("Parsing model identifier" in p.read_text() for p in (cwd / "outputs").rglob("*.log"))


def test_rerun_of_a_complete_run_is_skipped(toy_default_run):
    cwd, _ = toy_default_run
    proc = bench_run("runtime.progress=false", cwd=cwd)
    assert proc.returncode == 0 and "already complete" in proc.stderr + proc.stdout


def test_help_and_cfg_job(tmp_path):
    proc = bench_run("--help", cwd=tmp_path)
    assert proc.returncode == 0
    from bench.methods import METHODS
    choices = next(line for line in proc.stdout.splitlines() if line.strip().startswith("method:"))
    assert set(METHODS) <= set(choices.split(":", 1)[1].replace(",", " ").split())
    proc = bench_run("method=full", "dataset=officehome", "--cfg", "job", cwd=tmp_path)
    assert proc.returncode == 0 and "optimizer: adamw" in proc.stdout and "arch: ${dataset.model.arch}" in proc.stdout


def test_unknown_method_and_dataset_name_the_choices(tmp_path):
    proc = bench_run("method=nope", cwd=tmp_path)
    assert proc.returncode != 0 and "coop" in proc.stderr and "zeroshot" in proc.stderr
    proc = bench_run("dataset=nope", cwd=tmp_path)
    assert proc.returncode != 0 and "officehome" in proc.stderr and "minidomainnet" in proc.stderr


# in this process (the run's own error handling, as bench.run calls it); the command line's own
# path to exit 2 is covered by the config-error cases in test_startup and test_command_faults
def test_missing_dataset_root_is_one_clear_paragraph(tmp_path, capsys):
    code, out = launch(["dataset=officehome", f"dataset.root={tmp_path / 'missing'}", "model=tiny"], capsys)
    assert code == 2
    assert "Traceback" not in out and "dataset.root" in out


def test_offline_pretrained_tag_is_one_clear_paragraph(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out = launch(["model=vit_b16", "model.cache_dir=" + str(tmp_path / "hub"), *runtime_overrides(tmp_path)],
                       capsys)
    assert code == 2
    assert "Traceback" not in out
    assert "model.pretrained=/path/to" in out and "not in the local cache" in out


def test_impossible_config_is_a_clear_error(tmp_path):
    proc = bench_run("method.mode=grouped", "runtime.progress=false", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "method.mode" in proc.stderr


def test_unknown_optimizer_is_a_clear_error(tmp_path):
    proc = bench_run("train.optimizer=adam", "runtime.progress=false", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "one of sgd, adamw" in proc.stderr
