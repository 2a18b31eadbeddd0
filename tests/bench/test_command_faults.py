"""Issue 17: every command as careful as bench.run (docs/reliability.md, cases 28 on).

Each case states its input, the exit code and the first words of the one-paragraph message
(or line).  Faults are deterministic: real files and folders, CPB_FAULT hooks
(bench/faults.py) and a real divergence (a huge learning rate), never timing.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import REPO, SMALL_TOY_EVAL, launch, make_imagefolder, train_cfg, wait_for

from bench import faults
from bench.app import compose_config
from bench.experiment import run_experiment


@pytest.fixture(autouse=True)
def _no_leftover_faults(monkeypatch):
    monkeypatch.delenv("CPB_FAULT", raising=False)
    monkeypatch.delenv("CPB_FAULT_STATE", raising=False)
    faults.reset()
    yield
    faults.reset()


def folder(root: Path, *extra: str) -> list[str]:
    """A tiny imagefolder run (2 domains x 3 classes, random-weight tiny CLIP) under `root`."""
    return ["dataset=imagefolder", f"dataset.root={root / 'data'}", "model=tiny", "method=coop", "train.epochs=1",
            "train.steps_per_epoch=2", "train.batch_size=4", "train.warmup_epochs=0", "runtime.progress=false",
            "runtime.num_workers=0", f"runtime.results_dir={root}/runs", f"runtime.checkpoint_dir={root}/ckpt",
            f"runtime.cache_dir={root}/cache", *extra]




def first_line(text: str) -> str:
    """The message: the text after "Error: ", which must be one paragraph without a traceback."""
    assert "Traceback" not in text, text
    message = text.split("Error: ", 1)[1].strip()
    assert "\n" not in message, text
    return message


def _default_signals() -> None:
    # a suite started in the background inherits SIGINT ignored (the shell's rule for `cmd &`); a
    # command gets Ctrl-C with the default disposition, so that is what its signal tests see
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def bench(module: str, *args: str, cwd: Path, env: dict | None = None, timeout: int = 300):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
                                                **(env or {})}, preexec_fn=_default_signals)


# ---- values inside lists ----------------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [
    ("train.betas=[1.5,0.999]", "train.betas=[1.5, 0.999] is not allowed: it must be a list whose every value is "
                                ">= 0 and < 1 (value 1 is 1.5)"),
    ("train.betas=[0.9,0.999,0.5]", "train.betas=[0.9, 0.999, 0.5] is not allowed: it must be a list of exactly 2"),
    ("train.crop_scale=[0.9,0.1]", "train.crop_scale=[0.9, 0.1] is not allowed: it must be a list in non-decreasing"),
    ("train.crop_scale=[0.5]", "train.crop_scale=[0.5] is not allowed: it must be a list of exactly 2 values, not 1"),
    ("train.crop_scale=[0,1]", "train.crop_scale=[0, 1] is not allowed: it must be a list whose every value is "
                               "greater than 0"),
    ("dataset.domains=[]", "dataset.domains=[] is not allowed: it must be a list of at least 1 value(s)"),
    ("method=zeroshot method.templates=[]", "method.templates=[] is not allowed: it must be a list of at least 1"),
])
def test_list_values_are_checked_element_by_element(tmp_path, value, expected):
    proc = bench("bench.run", *value.split(), cwd=tmp_path)
    assert proc.returncode == 2 and first_line(proc.stderr).startswith(expected), proc.stderr


# ---- bench.report ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One complete tiny run: (root, record)."""
    root = tmp_path_factory.mktemp("finished")
    make_imagefolder(root / "data", ["d1", "d2"], ["circle", "square", "star"], n_per_class=8)
    return root, run_experiment(compose_config(folder(root))).to_dict()


def test_report_selects_by_the_dataset_key_and_names_files_after_it(finished, tmp_path):
    root, record = finished
    assert record["dataset_key"] == "imagefolder" and record["checkpoint_kept"] == "nothing"
    proc = bench("bench.report", "--runs", str(root / "runs"), "--out", str(tmp_path), "--dataset", "imagefolder",
                 cwd=tmp_path)
    assert proc.returncode == 0 and (tmp_path / "imagefolder.md").exists(), proc.stdout + proc.stderr


def test_readme_example_finds_office_home_records_by_key(tmp_path):
    """A record as bench.run writes it for Office-Home (display name "Office-Home", key officehome)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    record = json.loads((REPO / "tests" / "fixtures" / "records" / "35da7d632cff.json").read_text())
    record.update(dataset="Office-Home", dataset_key="officehome")
    (runs / "35da7d632cff.json").write_text(json.dumps(record))
    proc = bench("bench.report", "--runs", str(runs), "--out", str(tmp_path / "out"), "--dataset", "officehome",
                 cwd=tmp_path)
    assert proc.returncode == 0 and (tmp_path / "out" / "officehome.md").exists(), proc.stdout + proc.stderr


def test_report_with_an_empty_selection_is_an_error(finished, tmp_path):
    root, _ = finished
    proc = bench("bench.report", "--runs", str(root / "runs"), "--out", str(tmp_path), "--dataset", "officehome",
                 cwd=tmp_path)
    assert proc.returncode == 2
    assert first_line(proc.stderr).startswith("No complete record of dataset officehome to report: the complete "
                                              "records cover imagefolder.")


def report_here(argv, capsys) -> tuple[int, str]:
    """`python -m bench.report` in this process (it imports no torch: nothing to gain from a child)."""
    from bench.report import main
    return command_here(main, argv, capsys)


def test_report_with_a_baseline_that_names_no_row_is_an_error(finished, tmp_path, capsys):
    root, _ = finished
    out = tmp_path / "out"
    code, text = report_here(["--runs", str(root / "runs"), "--out", str(out), "--baseline", "nosuch"], capsys)
    assert code == 2 and not list(out.glob("*"))  # found before anything is written
    assert "--baseline nosuch names no row of the imagefolder table, so its paired differences would silently " \
           "disappear. Its rows can be named as " in text and "coop, coop:mt" in text
    assert report_here(["--runs", str(root / "runs"), "--out", str(out), "--baseline", "coop"], capsys)[0] == 0
    assert "Δ vs" in (out / "imagefolder.md").read_text()


def test_report_over_no_record_offers_no_keys(tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    code, text = report_here(["--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "There is no complete record to report" in text and "--dataset" not in text


@pytest.mark.parametrize("content", [None, "{not json", '{"run_id": "x"}'], ids=["missing", "malformed", "not-a-list"])
def test_report_with_an_unreadable_expected_file_is_an_error(finished, tmp_path, capsys, content):
    root, _ = finished
    expected = tmp_path / "expected.json"
    if content is not None:
        expected.write_text(content)
    code, text = report_here(["--runs", str(root / "runs"), "--out", str(tmp_path / "out"),
                              "--expected", str(expected)], capsys)
    assert code == 2 and f"--expected {expected} cannot be read as a sweep's list of expected runs (" in text
    assert "Traceback" not in text


def test_prepare_refuses_a_set_without_an_equals_sign_before_writing(tmp_path, capsys):
    from bench.prepare import main
    root = tmp_path / "root"
    assert main(["officehome", "--root", str(root), "--set", "num_classes"]) == 2
    assert "The dataset override(s) 'num_classes' have no '=', so they set nothing (or null)." in capsys.readouterr().err
    assert not root.exists()


def command_here(main, argv, capsys) -> tuple[int, str]:
    """A command's `main(argv)` in this process (exit code, stdout + stderr)."""
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize("action", ["list", "status"])
def test_sweep_with_a_misspelt_override_says_what_bench_run_says(action, capsys):
    from bench.sweep import main
    code, text = command_here(main, ["toy_smoke", action, "train.epoch=1"], capsys)
    assert code == 2 and "Traceback" not in text and "+train.epoch" not in text
    assert "train.epoch" in text and "Did you mean train.epochs?" in text


def test_sweep_preset_that_is_not_yaml_and_an_unknown_cluster_are_one_paragraph(tmp_path, capsys):
    from bench.sweep import main
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: broken\nfixed: [dataset=toy\ngrid: {seed: [1]}\n")
    code, text = command_here(main, [str(broken), "list"], capsys)
    assert code == 2 and f"Sweep preset {broken} cannot be read as YAML (" in text and "Traceback" not in text
    code, text = command_here(main, ["toy_smoke", "launch", "--cluster", "nope"], capsys)
    assert code == 2 and "invalid choice: 'nope' (choose from 'slurm', 'local', 'debug')" in text


def test_the_resume_line_of_a_torchrun_worker_is_the_torchrun_command(monkeypatch):
    from bench.errors import resume_command
    monkeypatch.setattr(sys, "orig_argv", ["/usr/bin/python3", "-u", "-m", "bench.run", "method=coop",
                                           "runtime.resume=false"])
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "r1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.delenv("GROUP_WORLD_SIZE", raising=False)
    assert resume_command() == "torchrun --nproc_per_node=2 -m bench.run method=coop"
    monkeypatch.setenv("GROUP_WORLD_SIZE", "2")
    assert resume_command().startswith("torchrun --nproc_per_node=2 --nnodes=2 '<the same rendezvous options>' -m")
    monkeypatch.delenv("TORCHELASTIC_RUN_ID")
    assert resume_command() == "python -u -m bench.run method=coop"


def test_run_help_with_an_unknown_method_is_one_paragraph(capsys):
    from bench.help import help_text
    from bench.errors import guarded
    with pytest.raises(SystemExit) as stop:
        guarded(help_text)(["method=nosuch"])
    text = capsys.readouterr().err
    assert stop.value.code == 2 and "The command line could not be applied" in text and "nosuch" in text


def test_report_to_a_read_only_folder_is_an_error(finished, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    root, _ = finished
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    proc = bench("bench.report", "--runs", str(root / "runs"), "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2 and first_line(proc.stderr).startswith(f"--out={out} is not writable")


def test_report_to_a_folder_that_cannot_be_made_is_an_error(finished, tmp_path):
    root, _ = finished
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = bench("bench.report", "--runs", str(root / "runs"), "--out", str(blocker / "sub"), cwd=tmp_path)
    assert proc.returncode == 2 and first_line(proc.stderr).startswith(f"--out={blocker / 'sub'} is not writable")


def test_report_skips_and_names_a_record_whose_accuracy_is_not_a_number(finished, tmp_path):
    root, record = finished
    runs = tmp_path / "runs"
    shutil.copytree(root / "runs", runs)
    bad = dict(record, run_id="badaccuracy")
    bad["accuracy"] = {"val": dict(record["accuracy"]["val"]), "test": dict(record["accuracy"]["test"], d1="n/a")}
    (runs / "badaccuracy.json").write_text(json.dumps(bad))
    proc = bench("bench.report", "--runs", str(runs), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "skipped `badaccuracy.json`: malformed accuracy: test has values that are not numbers: d1='n/a'" \
        in proc.stdout


# ---- signals -----------------------------------------------------------------------------------
@pytest.mark.long
@pytest.mark.parametrize("fault, code", [("sigint_at_step:2", 130), ("sigterm_at_step:2", 143)])
def test_a_signal_ends_a_run_with_one_line_and_the_resume_command(tmp_path, fault, code, capsys):
    make_imagefolder(tmp_path / "data", ["d1", "d2"], ["circle", "square", "star"], n_per_class=8)
    args = folder(tmp_path, "runtime.checkpoint_every_steps=1", "runtime.resume=false")
    proc = bench("bench.run", *args, cwd=tmp_path, env={"CPB_FAULT": fault})
    assert proc.returncode == code and "Traceback" not in proc.stderr, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(f"Interrupted by {fault.split('_')[0].upper()} at training step 2 of the run; the last "
                           f"checkpoint {tmp_path}/ckpt/")
    assert "(after step 1) is kept. Resume with: python -m bench.run dataset=imagefolder" in line
    assert "runtime.resume=false" not in line  # the resume command resumes, it does not start over
    # the printed command, run here (the signal needed a process; resuming does not)
    resumed, out = launch(line.split("Resume with: python -m bench.run ", 1)[1].split(), capsys)
    assert resumed == 0 and "1 resume(s)" in out, out


# ---- non-finite losses -------------------------------------------------------------------------
def test_a_diverging_run_stops_naming_step_precision_and_lr(tmp_path, capsys):
    make_imagefolder(tmp_path / "data", ["d1", "d2"], ["circle", "square", "star"], n_per_class=8)
    args = folder(tmp_path, "train.lr=1e38", "train.steps_per_epoch=6", "train.max_nonfinite_steps=2",
                  "runtime.checkpoint_every_steps=1", "runtime.keep_checkpoint=everything")
    code, out = launch(args, capsys)
    assert code == 2
    assert first_line(out).startswith("The training loss was NaN or inf for 2 consecutive steps, up to step 3 "
                                      "(train.max_nonfinite_steps=2); each of those updates was skipped "
                                      "(precision auto, learning rate 1e+38).")
    saved = torch.load(next((tmp_path / "ckpt").rglob("checkpoint.pt")), weights_only=False)
    # the last checkpoint: step 2, the streak's first step, whose update was skipped; nothing after it
    assert saved["outcome"]["steps_run"] == 2 and saved["outcome"]["nonfinite_steps"] == 1
    assert all(torch.isfinite(v).all() for v in saved["trainable"].values() if torch.is_tensor(v))


def test_an_epoch_without_a_finite_loss_records_nan_and_a_warning(tmp_path, capsys):
    """lr 1e38: step 1 is finite, and every later loss is not (each update skipped, under the
    limit of 10): epoch 2 has no finite loss, so its loss is NaN, not 0, and the record says why."""
    make_imagefolder(tmp_path / "data", ["d1", "d2"], ["circle", "square", "star"], n_per_class=8)
    code, out = launch(folder(tmp_path, "train.lr=1e38", "train.epochs=2", "train.steps_per_epoch=2",
                              "train.warmup_epochs=0", "train.max_nonfinite_steps=10", "train.selection=last"), capsys)
    assert code == 0, out
    record = json.loads(next((tmp_path / "runs").glob("*.json")).read_text())
    losses = [row["loss"] for row in record["history"]]
    assert record["nonfinite_steps"] == 3 and math.isfinite(losses[0]) and math.isnan(losses[1])
    assert record["warnings"] == ["3 training step(s) had a NaN or inf loss; their updates were skipped (an epoch "
                                  "with no finite loss has loss NaN in the history)."]
    assert out.count("NaN or inf loss") == 1  # the summary prints it once


def test_a_single_non_finite_step_is_skipped_and_counted(tmp_path):
    """One NaN step's update leaves the parameters exactly as they were (the scale-1 scaler)."""
    from bench.step import build_grad_scaler
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    scaler = build_grad_scaler(torch.device("cpu"), train_cfg())
    for loss in ((param * float("nan")).sum(), (param * 2).sum()):
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if not torch.isfinite(loss):
            assert torch.equal(param.detach(), torch.ones(3))  # skipped
    assert torch.allclose(param.detach(), torch.full((3,), 0.8)) and scaler.get_scale() == 1.0


# ---- disk use ----------------------------------------------------------------------------------
@pytest.mark.parametrize("policy, files", [("nothing", []), ("trainable", ["trainable.pt"]),
                                           ("everything", ["checkpoint.pt"])])
def test_keep_checkpoint_leaves_what_it_says(tmp_path, capsys, policy, files):
    make_imagefolder(tmp_path / "data", ["d1", "d2"], ["circle", "square", "star"], n_per_class=8)
    code, out = launch(folder(tmp_path, f"runtime.keep_checkpoint={policy}"), capsys)
    assert code == 0, out
    record = json.loads(next((tmp_path / "runs").glob("*.json")).read_text())
    run_dir = tmp_path / "ckpt" / record["run_id"]
    assert sorted(p.name for p in run_dir.glob("*.pt")) == files
    assert run_dir.exists() == bool(files)  # a finished run leaves no empty folder
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [f"{record['run_id']}{suffix}" for suffix in
                                                                      (".curves.csv", ".json")]
    assert record["checkpoint_kept"] == (policy if policy == "nothing" else f"{policy}: {run_dir / files[0]}")


# ---- ordering: checks before deletion -------------------------------------------------------------
def test_skip_done_false_deletes_nothing_when_a_check_fails(tmp_path, capsys):
    root = make_imagefolder(tmp_path / "data", ["d1", "d2"], ["circle", "square", "star"], n_per_class=8)
    code, out = launch(folder(tmp_path, "runtime.keep_checkpoint=everything"), capsys)
    checkpoint = next((tmp_path / "ckpt").rglob("checkpoint.pt"))
    assert code == 0 and checkpoint.exists()
    image = sorted(Path(root).rglob("*.jpg"))[0]
    size = image.stat().st_size
    image.write_bytes(b"\0" * size)  # damaged, same size: the listing fingerprint (and run id) stay
    code, out = launch(folder(tmp_path, "runtime.keep_checkpoint=everything", "runtime.skip_done=false"), capsys)
    assert code == 2 and first_line(out).startswith("imagefolder: 1 image(s) listed in the splits cannot be read")
    assert checkpoint.exists()  # the image check failed before anything was deleted


# ---- degenerate data ---------------------------------------------------------------------------
def test_few_shot_larger_than_the_images_is_an_error_or_a_stated_warning(tmp_path, capsys):
    make_imagefolder(tmp_path / "data", ["d1", "d2"], ["circle", "square", "star"], n_per_class=8)
    code, out = launch(folder(tmp_path, "dataset.few_shot=50"), capsys)
    assert code == 2 and first_line(out).startswith(
        "dataset.few_shot=50 but some classes have fewer training images: d1: 3 class(es) below, as few as")
    code, out = launch(folder(tmp_path, "dataset.few_shot=50", "dataset.few_shot_short=warn"), capsys)
    record = json.loads(next((tmp_path / "runs").glob("*.json")).read_text())
    assert code == 0 and record["warnings"][0].startswith("dataset.few_shot=50 but some classes have fewer")
    assert "WARNING: dataset.few_shot=50" in out


def test_a_single_class_task_is_an_error(tmp_path, capsys):
    make_imagefolder(tmp_path / "data", ["d1", "d2"], ["circle"], n_per_class=8)
    code, out = launch(folder(tmp_path), capsys)
    assert code == 2 and first_line(out).startswith("Task(s) d1 (circle), d2 (circle) of")
    assert "have a single class: their accuracy would be 100 %" in out


# ---- local sweeps --------------------------------------------------------------------------------
SWEEP_EXTRA = ["train.epochs=1", "train.steps_per_epoch=2", "train.batch_size=4", "runtime.checkpoint_every_steps=1",
               "runtime.progress=false", "runtime.num_workers=0", *SMALL_TOY_EVAL]


def sweep_dirs(root: Path) -> list[str]:
    return [f"runtime.results_dir={root}/results", f"runtime.checkpoint_dir={root}/checkpoints",
            f"runtime.cache_dir={root}/cache"]


def test_sweep_overrides_are_accepted_after_the_options(tmp_path, capsys):
    from bench.sweep import main
    preset = tmp_path / "two.yaml"
    preset.write_text("name: two\nfixed: [dataset=toy, method=coop]\ngrid:\n  seed: [1, 2]\n")
    assert main([str(preset), "list", "--cluster", "local", "train.lr=0.01", "--parallel", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all("train.lr=0.01" in line for line in lines)


def test_local_parallelism_defaults_to_what_the_machine_can_run():
    from bench.sweep import SweepError, local_parallelism, usable_cores
    assert local_parallelism("auto", 4) == (torch.cuda.device_count() or max(1, usable_cores() // 4))
    assert local_parallelism("3", 4) == 3
    with pytest.raises(SweepError, match="--parallel many: pass a number"):
        local_parallelism("many", 4)


def launch_local(tmp_path, seeds: list[int], fault: str) -> tuple[list[dict], list]:
    """A local sweep of the toy's CoOp over `seeds` on one worker, under `fault` (CPB_FAULT; the
    job inherits it); returns the jobs and the (preset, overrides) that `status`/`cancel` take."""
    from bench.sweep import launch
    preset = tmp_path / "sweep.yaml"
    preset.write_text(f"name: sweep\nfixed: [dataset=toy, method=coop]\ngrid:\n  seed: {seeds}\n")
    sweep = [str(preset), SWEEP_EXTRA + sweep_dirs(tmp_path)]
    (tmp_path / "faults" / "held").unlink(missing_ok=True)
    os.environ.update(CPB_FAULT=fault, CPB_FAULT_STATE=str(tmp_path / "faults"))
    try:
        return launch(*sweep, "local", {}, parallel="1"), sweep
    finally:
        del os.environ["CPB_FAULT"], os.environ["CPB_FAULT_STATE"]


@pytest.mark.long
def test_local_sweep_runs_one_at_a_time_and_cancel_stops_it_with_sigterm_in_a_run_or_between_runs(tmp_path):
    from bench.sweep import cancel, status
    held = tmp_path / "faults" / "held"
    submitted, sweep = launch_local(tmp_path, [1, 2], "hold_at_step:2")
    assert len({entry["job"].job_id for entry in submitted}) == 1  # one worker for both runs
    wait_for(held.exists, 120, "the first run to reach step 2")
    assert sorted(status(*sweep)) == ["PENDING", "RUNNING"]  # one at a time
    assert len(cancel(*sweep)) == 1
    wait_for(lambda: "FAILED" in status(*sweep), 60, "the cancelled job to end")
    assert any("SIGTERM at training step 2 of the run; the last checkpoint" in run["detail"]
               for run in status(*sweep)["FAILED"])

    # relaunched, the worker finishes the first run, then is cancelled before it starts the second
    [first, second], _ = launch_local(tmp_path, [1, 2], "hold_before_run:2")
    wait_for(held.exists, 120, "the worker to finish its first run")
    assert sorted(status(*sweep)) == ["COMPLETE", "PENDING"]
    assert len(cancel(*sweep)) == 1
    with pytest.raises(Exception, match="Interrupted by SIGTERM"):
        second["job"].result()  # it stopped instead of going on to the second run
    states = status(*sweep)
    assert sorted(states) == ["COMPLETE", "FAILED"] and "SIGTERM" in states["FAILED"][0]["detail"]
    again, _ = launch_local(tmp_path, [1, 2], "")
    again[0]["job"].result()
    assert list(status(*sweep)) == ["COMPLETE"]


@pytest.mark.long
def test_a_kill_9_of_a_local_jobs_controller_stops_its_worker_too(tmp_path):
    from bench.lock import process_alive
    from bench.sweep import status
    held = tmp_path / "faults" / "held"
    [submitted], sweep = launch_local(tmp_path, [1], "hold_at_step:2")
    wait_for(held.exists, 120, "the worker to reach step 2")
    worker = int(held.read_text())
    os.kill(int(submitted["job"].job_id), signal.SIGKILL)  # the controller: the pid `status` watches
    wait_for(lambda: not process_alive(worker), 60, "the worker to stop with its controller")
    [failed] = status(*sweep)["FAILED"]  # and `status` says so: nothing trains unseen
    assert "Interrupted by SIGTERM at training step 2" in failed["detail"], failed
    [again], _ = launch_local(tmp_path, [1], "")
    again["job"].result()
    assert list(status(*sweep)) == ["COMPLETE"]


# ---- bench.speed -----------------------------------------------------------------------------------
@pytest.mark.parametrize("args, expected", [
    (["speed.methods=[coop,nosuch]"], "speed.methods names an unknown method 'nosuch'. Registered methods: zeroshot"),
    (["speed.methods=[coop:zz]"], "speed.methods: 'coop:zz' is not a mode of coop: it runs in mt, st."),
    (["method=nosuch"], "The command line could not be applied: In 'config': Could not find 'method/nosuch'"),
])
def test_speed_checks_its_command_line_like_bench_run(tmp_path, args, expected):
    proc = bench("bench.speed", "model=tiny", *args, cwd=tmp_path)
    assert proc.returncode == 2 and first_line(proc.stderr).startswith(expected), proc.stderr


# ---- messages that help ----------------------------------------------------------------------------
def test_grouping_errors_name_the_offending_task():
    from bench.methods.contract import MethodError
    from bench.methods.grouping import fixed_groups
    with pytest.raises(MethodError) as error:
        fixed_groups("manual", ["Art", "Clipart", "Product", "Real World"], [["Art", "Clipart"], ["Product", "Real"]])
    assert "(not a task of this run: 'Real'; in no group: 'Real World')" in str(error.value)


@pytest.mark.parametrize("args, expected", [
    (["dataset.root=/tmp/my", "data"], "The command line could not be applied: Error parsing override 'data' "),
    (["model.pretrained=nosuch"], "model.pretrained='nosuch' is neither a pretrained tag of cpb-tiny nor an existing "
                                  "file. Known tags for cpb-tiny: cpb-toy."),
])
def test_messages_give_the_fix(tmp_path, args, expected):
    proc = bench("bench.run", *args, cwd=tmp_path)
    message = first_line(proc.stderr)
    assert proc.returncode == 2 and message.startswith(expected), proc.stderr
    if "data" in args:
        assert "must be quoted for Hydra inside the shell's quotes ('data' has no key=" in message


def test_run_help_shows_the_methods_keys_from_the_schema(tmp_path):
    proc = bench("bench.run", "--help", "method=coop", cwd=tmp_path)
    assert proc.returncode == 0
    assert "  method.n_ctx: an integer, default 16, allowed >= 1\n      context tokens" in proc.stdout
    assert "  train.betas: a list of a number, default [0.9, 0.999], allowed >= 0 and < 1; exactly 2 values" \
        in proc.stdout
    assert "method_schema" not in proc.stdout and "dataset_defaults" not in proc.stdout


def test_pretrain_toy_help_has_help_on_every_option(monkeypatch):
    import argparse

    from bench.pretrain_toy import parse_args
    parsers = []

    def capture(self, *args, **kwargs):
        parsers.append(self)
        raise SystemExit(0)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(SystemExit):
        parse_args([])
    undocumented = [action.option_strings for action in parsers[0]._actions if not action.help]
    assert len(parsers[0]._actions) >= 15 and undocumented == []


# ---- identity ----------------------------------------------------------------------------------------
def test_content_fingerprint_tells_a_damaged_copy_from_the_clean_one(tmp_path):
    from bench.app import check
    from bench.planning import plan_run
    clean = make_imagefolder(tmp_path / "a" / "data", ["d1", "d2"], ["circle", "square"], n_per_class=6)
    damaged = tmp_path / "b" / "data"
    shutil.copytree(clean, damaged)
    image = sorted(damaged.rglob("*.jpg"))[0]
    image.write_bytes(bytes(image.stat().st_size))  # same size, other content
    ids = {kind: [plan_run(check(compose_config(folder(root, f"dataset.fingerprint={kind}")))).run_id
                  for root in (tmp_path / "a", tmp_path / "b")] for kind in ("listing", "content")}
    assert ids["listing"][0] == ids["listing"][1]  # the default reads paths and sizes only
    assert ids["content"][0] != ids["content"][1]
    # ... but with dataset.unreadable=skip the images a run leaves out are part of its data
    skip = [plan_run(check(compose_config(folder(root, "dataset.unreadable=skip")))) for root in (tmp_path / "a",
                                                                                                  tmp_path / "b")]
    assert skip[0].run_id != skip[1].run_id
    assert "-skips-" in skip[1].identity["data_fingerprint"] and "-skips-" not in skip[0].identity["data_fingerprint"]
