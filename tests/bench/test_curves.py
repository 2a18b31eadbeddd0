"""Learning curves (bench/curves.py through the Trainer's observers): the CSV beside the record,
TensorBoard event files, a piped run's log without carriage returns, and resumes."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.curves import CURVE_COLUMNS, CurveLogger, read_epoch_curves

REPO = Path(__file__).resolve().parents[2]
TASKS = ["photo", "sketch", "clipart", "painting"]  # the toy dataset's domains


def _run(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    """A tiny CoOp run (2 epochs x 3 steps) with its output piped, as in a batch job's log."""
    return subprocess.run(
        [sys.executable, "-m", "bench.run", "method=coop", "model=tiny", "train.epochs=2", "train.steps_per_epoch=3",
         "train.batch_size=4", f"runtime.results_dir={tmp_path}/runs", f"runtime.checkpoint_dir={tmp_path}/ck",
         "runtime.log_every_steps=2", "runtime.progress=true", *overrides],
        cwd=REPO, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def piped_run(tmp_path_factory):
    """One piped run for the tests below, with TensorBoard event files when the extra is installed."""
    tmp_path = tmp_path_factory.mktemp("curves")
    try:
        import tensorboard  # noqa: F401 - only whether the extra is installed
        extra = ["runtime.logger=tensorboard"]
    except ImportError:
        extra = []
    return tmp_path, _run(tmp_path, *extra)


def _rows(tmp_path: Path) -> tuple[list[str], list[dict]]:
    (path,) = (tmp_path / "runs").glob("*.curves.csv")
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        return list(reader.fieldnames), list(reader)


def test_a_piped_run_writes_one_line_per_epoch_and_its_curves_csv(piped_run):
    tmp_path, proc = piped_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    output = proc.stdout + proc.stderr
    assert "\r" not in output  # no progress-bar fragments in a log
    assert "epoch 1/2 loss" in output and "epoch 2/2 loss" in output
    columns, rows = _rows(tmp_path)
    assert columns == [*CURVE_COLUMNS, *[f"val {t}" for t in TASKS], "val average"]
    # every 2 steps (2, 4, 6) and at each epoch end (3, 6): one row per logged step
    assert [(r["kind"], int(r["step"])) for r in rows] == [("step", 2), ("epoch", 3), ("step", 4), ("step", 6),
                                                          ("epoch", 6)]
    epochs = [r for r in rows if r["kind"] == "epoch"]
    assert all(0 <= float(r["val average"]) <= 100 and float(r["loss"]) > 0 for r in epochs)
    assert all(r["val photo"] == "" for r in rows if r["kind"] == "step")
    assert float(epochs[0]["lr"]) == pytest.approx(1e-5) and float(epochs[1]["lr"]) == pytest.approx(0.002)


def test_tensorboard_event_files_read_back_with_tensorboards_reader(piped_run):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tmp_path, proc = piped_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    (folder,) = (tmp_path / "runs").glob("*.tb")
    events = EventAccumulator(str(folder))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"epoch/loss", "epoch/lr", "epoch/val/average", "step/loss", "step/lr"} <= tags
    assert {f"epoch/val/{t}" for t in TASKS} <= tags
    assert [e.step for e in events.Scalars("epoch/val/average")] == [3, 6]
    assert [e.step for e in events.Scalars("step/loss")] == [2, 4, 6]
    _, rows = _rows(tmp_path)
    csv_average = [float(r["val average"]) for r in rows if r["kind"] == "epoch"]
    assert [e.value for e in events.Scalars("epoch/val/average")] == pytest.approx(csv_average)


def test_a_task_name_with_a_space_keeps_it_in_its_tensorboard_tag(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = CurveLogger(tmp_path / "run.curves.csv", ["Real World"], tensorboard_dir=tmp_path / "tb")
    logger.on_start(0)
    logger.on_epoch_end(3, {"epoch": 1, "loss": 2.5, "lr": 0.1, "val": {"Real World": 40.0, "average": 40.0}})
    logger.on_end()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert "epoch/val/Real World" in events.Tags()["scalars"]  # not epoch/val/Real/World


def test_the_loss_since_the_last_step_row_survives_a_resume(tmp_path):
    """A checkpoint between two step rows keeps the loss summed so far (the logger's state): the
    row after the resume covers every_steps steps, as the uninterrupted run's does."""
    def logged(resume_after=None):
        path = tmp_path / f"{resume_after}.curves.csv"
        logger = CurveLogger(path, [], every_steps=3)
        logger.on_start(0)
        for step in range(1, 7):
            logger.on_step(step, 1, torch.tensor(float(step)), 0.1)
            if step == resume_after:  # a checkpoint, then a new process from it
                state = logger.state_dict()
                logger = CurveLogger(path, [], every_steps=3)
                logger.load_state_dict(state)
                logger.on_start(step)
        return [(r["step"], r["loss"]) for r in csv.DictReader(path.open(newline=""))]
    assert logged() == logged(resume_after=4) == [("3", "2.0"), ("6", "5.0")]


def test_a_resumed_run_drops_the_rows_after_its_checkpoint(tmp_path):
    path = tmp_path / "run.curves.csv"
    first = CurveLogger(path, ["A"], every_steps=1)
    first.on_start(0)
    for step in range(1, 5):
        first.on_step(step, 1, torch.tensor(float(step)), 0.1)
    first.on_epoch_end(4, {"epoch": 1, "loss": 2.5, "lr": 0.1, "val": {"A": 50.0, "average": 50.0}})
    first.on_step(5, 2, torch.tensor(5.0), 0.1)   # logged, then the run is killed before its checkpoint
    again = CurveLogger(path, ["A"], every_steps=1)
    again.on_start(4)                               # the checkpoint was taken after step 4
    again.on_step(5, 2, torch.tensor(7.0), 0.1)
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(r["kind"], r["step"], r["loss"]) for r in rows] == [
        ("step", "1", "1.0"), ("step", "2", "2.0"), ("step", "3", "3.0"), ("step", "4", "4.0"),
        ("epoch", "4", "2.5"), ("step", "5", "7.0")]
    assert list(read_epoch_curves(path)["val A"]) == [50.0]


def test_a_fresh_start_replaces_old_curves_and_a_step_without_images_is_not_a_loss(tmp_path):
    path = tmp_path / "run.curves.csv"
    old = CurveLogger(path, ["A"], every_steps=2)
    old.on_start(0)
    old.on_step(1, 1, torch.tensor(1.0), 0.1)
    old.on_step(2, 1, None, 0.1)                    # a step whose images were all unreadable
    new = CurveLogger(path, ["A"], every_steps=2)
    with path.open(newline="") as file:
        assert [r["loss"] for r in csv.DictReader(file)] == ["1.0"]
    new.on_start(0)
    with path.open(newline="") as file:
        assert list(csv.DictReader(file)) == []
    assert read_epoch_curves(path) is None and read_epoch_curves(tmp_path / "absent.csv") is None


def test_publish_curves_moves_a_finished_runs_curves_beside_its_record(tmp_path):
    from bench.curves import publish_curves
    live, results = tmp_path / "checkpoints" / "r1", tmp_path / "runs"
    live.mkdir(parents=True)
    (live / "r1.curves.csv").write_text("kind,epoch\n")
    (live / "r1.stage2.curves.csv").write_text("kind,epoch\n")
    (live / "checkpoint.pt").write_text("not a curve")
    (live / "r1.tb").mkdir()
    (live / "r1.tb" / "events").write_text("new")
    (results / "r1.tb").mkdir(parents=True)
    (results / "r1.tb" / "old-events").write_text("a rerun's earlier events")
    publish_curves(live, results, "r1")
    assert sorted(p.name for p in live.iterdir()) == ["checkpoint.pt"]
    assert (results / "r1.stage2.curves.csv").exists()
    assert (results / "r1.curves.csv").read_text() == "kind,epoch\n"
    assert sorted(p.name for p in (results / "r1.tb").iterdir()) == ["events"]
    publish_curves(live, results, "r1")  # nothing left to move: a no-op
    assert (results / "r1.curves.csv").exists()


def test_a_sequential_runs_stage_curves_read_as_one_run_with_epochs_over_the_stages(tmp_path):
    from bench.curves import read_stage_curves, stage_curves_path
    for stage, domain in enumerate(["photo", "sketch"]):
        stage_curves_path(tmp_path, "r", stage).write_text(
            f"kind,epoch,step,loss,lr,val {domain},val average\n"
            f"epoch,1,2,1.0,0.1,50,50\nstep,2,3,0.9,0.1,,\nepoch,2,4,0.8,0.1,60,60\n")
    frame = read_stage_curves(tmp_path, "r", 3)  # a third stage with no curves (nothing trained) is left out
    assert list(frame["epoch"]) == [1, 2, 3, 4] and list(frame["stage"]) == [1, 1, 2, 2]
    assert list(frame["val photo"].dropna()) == [50, 60] and list(frame["val sketch"].dropna()) == [50, 60]
    assert read_stage_curves(tmp_path, "nothing", 2) is None
