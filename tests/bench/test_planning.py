"""Planning (bench/planning.py): `plan_runs` names exactly the runs that planning each command
line alone names, whether its checked configs come from Hydra or from the plan cache; the
cache's fingerprint moves with every file and environment variable that decides a config,
and the data is listed afresh on every call."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil

import pytest
from helpers import REPO, runtime_overrides, write_image

import bench.planning as planning
from bench.app import check, compose_config
from bench.planning import config_cache_dir, configs_fingerprint, plan_run, plan_runs


def _lines(root, tmp_path) -> list[list[str]]:
    return [[f"method={name}", "dataset=officehome", f"dataset.root={root}", "dataset.num_classes=null",
             f"seed={seed}", "model=tiny",
             *runtime_overrides(tmp_path)] for name in ("zeroshot", "coop", "vpt") for seed in (1, 2)]


def _same(plan, alone) -> None:
    assert (plan.run_id, plan.experiment_id, plan.record_path, plan.checkpoint_path) == \
        (alone.run_id, alone.experiment_id, alone.record_path, alone.checkpoint_path)
    assert plan.identity == alone.identity and dataclasses.asdict(plan.cfg) == dataclasses.asdict(alone.cfg)


def test_plan_runs_names_the_runs_plan_run_names_cold_and_from_the_cache(officehome_root, tmp_path, monkeypatch):
    monkeypatch.setenv("CPB_CACHE", str(tmp_path / "cache"))
    lines = _lines(officehome_root, tmp_path)
    alone = [plan_run(check(compose_config(line))) for line in lines]
    cold = plan_runs(lines)
    assert len({p.run_id for p in cold}) == len(lines) and list(config_cache_dir().glob("*.json"))
    monkeypatch.setattr(planning, "compose_command_line", lambda overrides: pytest.fail("composed again"))
    warm = plan_runs(lines)
    for plans in (cold, warm):
        for plan, reference in zip(plans, alone):
            _same(plan, reference)
    write_image(officehome_root / "Art" / "Alarm_Clock" / "extra.jpg", 3)  # the data changed: other runs
    assert not {p.run_id for p in plan_runs(lines)} & {p.run_id for p in alone}


def test_a_damaged_plan_cache_is_composed_again(officehome_root, tmp_path, monkeypatch):
    monkeypatch.setenv("CPB_CACHE", str(tmp_path / "cache"))
    lines = _lines(officehome_root, tmp_path)[:2]
    first = plan_runs(lines)
    (cache_file,) = config_cache_dir().glob("*.json")
    cache_file.write_text("{not json")
    for plan, reference in zip(plan_runs(lines), first):
        _same(plan, reference)
    assert len(json.loads(cache_file.read_text())) == 2


def test_the_fingerprint_moves_with_every_file_and_read_variable(tmp_path, monkeypatch):
    tree = tmp_path / "configs"
    shutil.copytree(REPO / "configs", tree, symlinks=False)
    monkeypatch.delenv("CPB_DATA", raising=False)
    before = configs_fingerprint([tree])
    assert configs_fingerprint([tree]) == before
    monkeypatch.setenv("CPB_DATA", "/elsewhere")  # read by the dataset YAMLs (oc.env:CPB_DATA)
    assert configs_fingerprint([tree]) != before
    monkeypatch.delenv("CPB_DATA")
    monkeypatch.setenv("CPB_UNREAD", "x")  # read by nothing: no new fingerprint
    assert configs_fingerprint([tree]) == before
    yaml = tree / "dataset" / "toy.yaml"
    yaml.write_text(yaml.read_text() + "\n# a comment\n")
    assert configs_fingerprint([tree]) != before
    os.utime(yaml, ns=(0, 0))
    assert configs_fingerprint([tree]) != before


def test_the_plan_cache_keeps_only_the_newest_files(tmp_path):
    folder = tmp_path / "plans"
    folder.mkdir()
    for age in range(planning.PLAN_FILES_KEPT + 3):
        path = folder / f"{age:02d}.json"
        path.write_text("{}")
        os.utime(path, ns=(10**18 - age * 10**9, 10**18 - age * 10**9))  # 00.json the newest
    (folder / "notes.txt").write_text("not a plan file")
    planning.prune_plan_cache(folder)
    assert sorted(p.name for p in folder.iterdir()) == \
        [f"{age:02d}.json" for age in range(planning.PLAN_FILES_KEPT)] + ["notes.txt"]
