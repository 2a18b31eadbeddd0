"""The sweep command (bench/sweep.py): a preset's grid expands to runs; `run_here` runs the
missing runs and then nothing.  Sweeps on SLURM: tests/bench/test_sweep_slurm.py."""
from __future__ import annotations

from helpers import SMALL_TOY_EVAL, runtime_overrides

import pytest

from bench.sweep import SweepError, expand_grid, preset_from


def test_grid_expansion():
    preset = preset_from({"name": "g", "fixed": ["dataset=toy"],
                          "grid": {"method": ["method=zeroshot", "method=coop method.mode=st"], "seed": [1, 2]}}, "test")
    runs = expand_grid(preset, ["train.epochs=1"])
    assert runs == [["dataset=toy", "method=zeroshot", "seed=1", "train.epochs=1"],
                    ["dataset=toy", "method=zeroshot", "seed=2", "train.epochs=1"],
                    ["dataset=toy", "method=coop", "method.mode=st", "seed=1", "train.epochs=1"],
                    ["dataset=toy", "method=coop", "method.mode=st", "seed=2", "train.epochs=1"]]


def test_sweep_run_here_runs_the_missing_runs_and_then_nothing(tmp_path):
    from bench.sweep import run_here, status
    preset = tmp_path / "tiny_sweep.yaml"
    preset.write_text("name: tiny_sweep\nfixed: [dataset=toy, runtime.progress=false]\n"
                      "grid:\n  method: [method=zeroshot]\n  seed: [1, 2]\n")
    extra = runtime_overrides(tmp_path) + SMALL_TOY_EVAL
    assert run_here(str(preset), extra) == {"complete": 2, "busy elsewhere": 0, "failed": 0}
    records = sorted((tmp_path / "results" / "runs").glob("*.json"))
    written = [r.stat().st_mtime_ns for r in records]
    assert len(records) == 2 and list(status(str(preset), extra)) == ["COMPLETE"]
    run_here(str(preset), extra)  # again: both runs are found complete, nothing is redone
    assert [r.stat().st_mtime_ns for r in records] == written


@pytest.mark.parametrize("values, expected", [
    ({"fixed": [], "grid": {}}, "lacks name: a preset has a `name`"),
    ({"name": "p", "fixed": [], "grid": {}, "gird": {}}, "Unknown setting gird. Did you mean grid?"),
    ({"name": "p", "fixed": "dataset=toy", "grid": {}}, "fixed='dataset=toy' is not allowed: it must be a list of a string"),
    ({"name": "p", "fixed": [], "grid": {"seed": 1}}, "the grid axis seed is not a list of values"),
    ({"name": "p", "fixed": [], "grid": {"seed": "all"}}, "the grid axis seed is not a list of values"),
])
def test_a_bad_preset_is_one_clear_error_naming_its_file(values, expected):
    with pytest.raises(SweepError, match="Sweep preset configs/sweep/p.yaml") as error:
        preset_from(values, "configs/sweep/p.yaml")
    assert expected in str(error.value)


def test_every_shipped_preset_is_a_valid_sweep_preset():
    from bench.app import CONFIG_DIR
    from pathlib import Path

    from bench.sweep import load_preset
    for path in sorted((Path(CONFIG_DIR) / "sweep").glob("*.yaml")):
        preset = load_preset(path.stem)
        assert preset.name == path.stem and expand_grid(preset)


def test_status_without_overrides_finds_the_launch_made_with_them(tmp_path, capsys):
    """A sweep launched with `seed=7` is the one `status` (and `cancel`) shows without overrides,
    and says so; once the preset was also launched plainly, a plain `status` means that one."""
    from bench.sweep import remember_launch, status
    preset = tmp_path / "remembered.yaml"
    preset.write_text("name: remembered\nfixed: [dataset=toy]\ngrid: {method: [method=zeroshot]}\n")
    remember_launch(str(preset), ["seed=7"])  # what `launch` notes before it submits
    runs = [run for members in status(str(preset), []).values() for run in members]
    assert "with seed=7 (it was launched with overrides only" in capsys.readouterr().out
    assert [r["seed"] for r in runs] == [7]
    remember_launch(str(preset), [])
    runs = [run for members in status(str(preset), []).values() for run in members]
    assert "launched with overrides only" not in capsys.readouterr().out and [r["seed"] for r in runs] == [1]
