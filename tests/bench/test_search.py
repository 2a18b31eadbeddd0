"""Hyper-parameter search spaces (bench/search_space.py) and a sweep preset's `search:`
(bench/sweep.py): typed, checked, and drawn deterministically and independently of order."""
from __future__ import annotations

import pytest
import yaml

from bench.errors import ConfigError
from bench.methods import METHODS
from bench.methods.settings import CoOpConfig
from bench.schema import SearchSettings, SweepPreset, TrainConfig
from bench.search_space import Choice, LogUniform, SearchSpace, Uniform, as_overrides
from bench.sweep import SweepError, expand_grid, load_preset, plan

SECTIONS = {"train": TrainConfig, "method": CoOpConfig}


def test_draws_are_deterministic_and_stay_in_their_ranges():
    space = SearchSpace({"train.lr": LogUniform(1e-4, 1e-2), "method.n_ctx": Choice((4, 8, 16)),
                         "train.momentum": Uniform(0.5, 0.99)})
    draws = [space.draw(7, "coop", t) for t in range(20)]
    assert draws == [space.draw(7, "coop", t) for t in range(20)]
    assert all(1e-4 <= d["train.lr"] <= 1e-2 and d["method.n_ctx"] in (4, 8, 16)
               and 0.5 <= d["train.momentum"] <= 0.99 for d in draws)
    assert len({d["train.lr"] for d in draws}) == 20  # every trial its own value
    assert space.draw(8, "coop", 0) != space.draw(7, "coop", 0)  # another search seed
    assert space.draw(7, "vpt", 0)["train.lr"] != space.draw(7, "coop", 0)["train.lr"]  # another method


def test_adding_a_setting_never_shifts_the_others_draws():
    small = SearchSpace({"train.lr": LogUniform(1e-4, 1e-2)})
    large = SearchSpace({"train.lr": LogUniform(1e-4, 1e-2), "train.weight_decay": LogUniform(1e-5, 1e-3),
                         "method.n_ctx": Choice((4, 8))})
    assert [small.draw(0, "coop", t)["train.lr"] for t in range(5)] == \
        [large.draw(0, "coop", t)["train.lr"] for t in range(5)]


@pytest.mark.parametrize("space, words", [
    (SearchSpace({"train.lrate": LogUniform(1e-4, 1e-2)}), "'train.lrate', which is not a setting"),
    (SearchSpace({"method.n_context": Choice((4, 8))}), "'method.n_context', which is not a setting"),
    (SearchSpace({"runtime.device": Choice(("cpu",))}), "'runtime.device', which is not a setting"),
    (SearchSpace({"train.momentum": Uniform(0.5, 1.5)}), "bound 1.5"),
    (SearchSpace({"method.n_ctx": Choice((0, 4))}), "bound 0"),
    (SearchSpace({"method.n_ctx": Choice((4.5,))}), "must be an integer"),
])
def test_unknown_keys_and_out_of_range_bounds_are_clear_errors(space, words):
    with pytest.raises(ConfigError, match="search space of method 'coop'") as error:
        space.check(SECTIONS, "method 'coop'")
    assert words in str(error.value)


def test_a_distribution_that_is_no_range_is_an_error():
    with pytest.raises(ConfigError, match="0 < low <= high"):
        LogUniform(0.0, 1e-2)
    with pytest.raises(ConfigError, match="low <= high"):
        Uniform(1.0, 0.5)


def test_every_registered_space_is_valid_and_zeroshot_has_nothing_to_tune():
    for name, cls in METHODS.items():
        cls.search_space.check({"train": TrainConfig, "method": cls.config_class}, name)
    assert not METHODS["zeroshot"].search_space
    assert all("train.lr" in cls.search_space.settings for name, cls in METHODS.items() if name != "zeroshot")


def test_drawn_values_become_plain_overrides():
    assert as_overrides({"train.lr": 0.00123, "method.n_ctx": 8, "method.csc": True}) == [
        "train.lr=0.00123", "method.n_ctx=8", "method.csc=true"]


def _preset(tmp_path, trials: int, **extra) -> str:
    preset = {"name": "search_test", "fixed": ["dataset=toy", "model=tiny"], "search": {"trials": trials, "seed": 3},
              "grid": {"method": ["method=zeroshot", "method=coop", "method=vpt method.mode=st"], "seed": [1, 2]},
              **extra}
    path = tmp_path / f"search_test_{trials}.yaml"
    path.write_text(yaml.safe_dump(preset))
    return str(path)


def test_a_search_preset_gives_the_same_trials_twice_and_more_trials_keep_the_first(tmp_path):
    two = expand_grid(load_preset(_preset(tmp_path, 2)))
    assert two == expand_grid(load_preset(_preset(tmp_path, 2)))
    # zero-shot has nothing to tune: once per seed; coop and vpt: 2 trials per seed
    assert len(two) == 2 * 1 + 2 * 2 + 2 * 2
    assert sum("runtime.trial=1" in run for run in two) == 4
    three = expand_grid(load_preset(_preset(tmp_path, 3)))
    assert [run for run in three if "runtime.trial=2" not in run] == two
    coop = [run for run in two if "method=coop" in run]
    assert [r for r in coop if "seed=1" in r][0][-4:] == [r for r in coop if "seed=2" in r][0][-4:]  # same draw


def test_the_same_preset_gives_the_same_run_ids(tmp_path):
    extra = [f"runtime.results_dir={tmp_path}/runs", f"runtime.checkpoint_dir={tmp_path}/ck"]
    first, _ = plan(_preset(tmp_path, 2), extra)
    again, _ = plan(_preset(tmp_path, 2), extra)
    assert [r["run_id"] for r in first] == [r["run_id"] for r in again]
    assert len({r["run_id"] for r in first}) == len(first)  # every trial is a run of its own


@pytest.mark.parametrize("search", [{"trials": 0, "seed": 0}, {"trials": 2}, {"trials": 2, "seed": 0, "x": 1},
                                    "grid", {"trials": "2", "seed": 0}])
def test_a_bad_search_block_is_a_clear_error(tmp_path, search):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "bad", "fixed": [], "grid": {"seed": [1]}, "search": search}))
    with pytest.raises(SweepError, match="neither `paper` nor"):
        expand_grid(load_preset(str(path)))


def test_paper_search_is_todays_grid(tmp_path):
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump({"name": "p", "fixed": ["dataset=toy"], "search": "paper",
                                    "grid": {"method": ["method=coop"], "seed": [1, 2]}}))
    assert expand_grid(load_preset(str(path))) == [["dataset=toy", "method=coop", "seed=1"],
                                                   ["dataset=toy", "method=coop", "seed=2"]]


def test_the_grid_takes_each_runs_method_and_protocol_from_hydra():
    """The trials draw from the method the run composes to, and `method: all` follows the protocol
    the command line sets, even where neither appears in the preset's own overrides."""
    searched = SweepPreset(name="x", fixed=["dataset=toy", "method=coop"], grid={"seed": [1]},
                           search=SearchSettings(trials=2, seed=0))
    runs = expand_grid(searched, ["method=vpt"])  # the command line's method wins, as in Hydra
    drawn = [as_overrides(METHODS["vpt"].search_space.draw(0, "vpt", t)) for t in range(2)]
    assert [run[3:-2] for run in runs] == drawn and [run[-1] for run in runs] == ["method=vpt"] * 2
    every = SweepPreset(name="y", fixed=["dataset=toy"], grid={"method": "all"})
    held_out = expand_grid(every, ["protocol=leave_one_out", "dataset.target=sketch"])
    assert held_out and all("method.mode=st" not in " ".join(run) for run in held_out)
    assert any("method.mode=st" in " ".join(run) for run in expand_grid(every))
