"""Run identity (bench/identity.py): what a run computes, and nothing else, names it."""
from __future__ import annotations

import shutil

import pytest
from helpers import make_imagefolder

from bench.app import check, compose_config
from bench.errors import ConfigError, UserError
from bench.experiment import run_experiment
from bench.planning import plan_run
from bench.identity import file_sha256, weights_fingerprint
from bench.methods import METHODS


def plan_of(cfg):
    return plan_run(check(cfg))


DOMAINS, CLASSES = ["d1", "d2"], ["circle", "square", "star"]


def overrides(root, out, *extra):
    return ["dataset=imagefolder", f"dataset.root={root}", "model=tiny", "method=coop", "train.epochs=1",
            "train.steps_per_epoch=2", "train.batch_size=4", "train.warmup_epochs=0", "runtime.progress=false",
            "runtime.num_workers=0", f"runtime.results_dir={out}/runs", f"runtime.checkpoint_dir={out}/ckpt",
            *extra]


@pytest.fixture
def two_roots(tmp_path):
    first = make_imagefolder(tmp_path / "pacs", DOMAINS, CLASSES, n_per_class=10)
    second = make_imagefolder(tmp_path / "vlcs", DOMAINS, CLASSES, n_per_class=11)
    return first, second


def test_same_config_on_two_roots_gives_two_runs_and_two_records(two_roots, tmp_path):
    first, second = two_roots
    a = run_experiment(compose_config(overrides(first, tmp_path))).to_dict()
    b = run_experiment(compose_config(overrides(second, tmp_path))).to_dict()
    assert a["run_id"] != b["run_id"] and a["data_fingerprint"] != b["data_fingerprint"]
    assert sorted(p.stem for p in (tmp_path / "runs").glob("*.json")) == sorted([a["run_id"], b["run_id"]])
    assert b["history"], "the second dataset was trained, not taken from the first one's record"


def test_moving_a_dataset_keeps_its_identity(two_roots, tmp_path):
    first, _ = two_roots
    moved = tmp_path / "elsewhere"
    shutil.copytree(first, moved)
    assert (plan_of(compose_config(overrides(first, tmp_path))).run_id
            == plan_of(compose_config(overrides(moved, tmp_path))).run_id)


def test_a_corrupted_copy_is_trained_not_resumed(two_roots, tmp_path):
    first, _ = two_roots
    clean = run_experiment(compose_config(overrides(first, tmp_path))).to_dict()
    corrupted = tmp_path / "corrupted"
    shutil.copytree(first, corrupted)
    victim = corrupted / "d1" / "circle" / "00003.jpg"
    victim.write_bytes(victim.read_bytes()[:20])
    again = overrides(corrupted, tmp_path, "runtime.skip_done=false")
    plan = plan_of(compose_config(again))
    assert plan.run_id != clean["run_id"] and not plan.checkpoint_path.exists()
    clean_record = (tmp_path / "runs" / f"{clean['run_id']}.json").read_bytes()
    with pytest.raises(UserError, match="00003.jpg"):  # by default a broken image stops the run
        run_experiment(compose_config(again))
    skipped = run_experiment(compose_config(again + ["dataset.unreadable=skip"])).to_dict()
    assert skipped["run_id"] != clean["run_id"] and skipped["history"]
    assert (tmp_path / "runs" / f"{clean['run_id']}.json").read_bytes() == clean_record


def test_a_checkpoint_of_another_run_is_refused(two_roots, tmp_path):
    first, second = two_roots
    a = plan_of(compose_config(overrides(first, tmp_path, "train.epochs=2", "runtime.checkpoint_every_steps=1",
                                         "runtime.keep_checkpoint=everything")))
    b = plan_of(compose_config(overrides(second, tmp_path, "train.epochs=2")))
    run_experiment(a.cfg)
    b.checkpoint_path.parent.mkdir(parents=True)
    shutil.copy(a.checkpoint_path, b.checkpoint_path)
    with pytest.raises(ConfigError, match=f"written for run {a.run_id}, not for this run \\({b.run_id}\\)"):
        run_experiment(b.cfg)


def test_skip_done_false_trains_again_from_scratch(two_roots, tmp_path, caplog):
    first, _ = two_roots
    kept = "runtime.keep_checkpoint=everything"  # the default (nothing) removes a finished run's checkpoint
    done = run_experiment(compose_config(overrides(first, tmp_path, kept))).to_dict()
    checkpoint = plan_of(compose_config(overrides(first, tmp_path, kept))).checkpoint_path
    assert checkpoint.exists()
    with caplog.at_level("INFO", logger="bench.run"):
        again = run_experiment(compose_config(overrides(first, tmp_path, "runtime.skip_done=false"))).to_dict()
    assert "Starting over" in caplog.text
    assert again["run_id"] == done["run_id"] and again["accuracy"] == done["accuracy"]


def test_speed_switches_and_runtime_do_not_change_identity_but_settings_do(two_roots, tmp_path):
    first, _ = two_roots
    base = plan_of(compose_config(overrides(first, tmp_path))).run_id
    same = plan_of(compose_config(overrides(first, tmp_path / "x", "method.truncate_text=false",
                                             "runtime.num_workers=2"))).run_id
    other_lr = plan_of(compose_config(overrides(first, tmp_path, "train.lr=0.02"))).run_id
    other_seed = plan_of(compose_config(overrides(first, tmp_path, "seed=2")))
    assert same == base and other_lr != base and other_seed.run_id != base
    assert other_seed.experiment_id == plan_of(compose_config(overrides(first, tmp_path))).experiment_id


def test_weights_are_named_by_tag_or_content(tmp_path):
    one, two = tmp_path / "a.bin", tmp_path / "b.bin"
    one.write_bytes(b"weights one")
    two.write_bytes(b"weights two")
    cache = str(tmp_path / "cache")
    assert weights_fingerprint("none", cache) == "none" and weights_fingerprint("openai", cache) == "tag:openai"
    assert weights_fingerprint(str(one), cache) != weights_fingerprint(str(two), cache)
    assert weights_fingerprint(str(one), cache) == "sha256:" + file_sha256(str(one), cache)
    assert str(one) in (tmp_path / "cache" / "weights_sha256.json").read_text()  # the hash is cached
    from bench.pretrain_toy import TOY_CHECKPOINT_SHA256
    assert weights_fingerprint("cpb-toy", cache) == f"sha256:{TOY_CHECKPOINT_SHA256}"  # our tag: its file


#: The run id of every registered method and mode on the toy default, as they were before the
#: re-layering (issue 16): a new setting, a moved default or a refactor must not change them.
TOY_DEFAULT_RUN_IDS = {
    "zeroshot:mt": "fbcd85b50fa2",
    "full:mt": "f3d38990335f",
    "full:st": "68103aedc688",
    "coop:mt": "3c5389b6038a",
    "coop:st": "9db6f3c79b29",
    "cocoop:mt": "b03f0230fc55",
    "cocoop:st": "42a7184cae78",
    "vpt:mt": "9b23edd6a781",
    "vpt:st": "80e36b5fe1d0",
    "maple:mt": "ac2ac2f54b0a",
    "maple:st": "53eac795d6b2",
    "mmap:grouped": "0a1107ec5767",
    "mmap:mt": "02e213ee2cf5",
    "mmap:st": "85f522196070",
    "clip_adapter:mt": "a84806210f43",
    "clip_adapter:st": "dd43063c9be4",
    "bitfit:mt": "5db33897a907",
    "bitfit:st": "49ed7b4da79a",
    "lora:mt": "ecab349f7a67",
    "lora:st": "897179c340ed",
}


def test_the_toy_default_run_ids_do_not_change():
    ids = {f"{name}:{mode}": plan_run(check(compose_config([f"method={name}", f"method.mode={mode}"]))).run_id
           for name, cls in METHODS.items() for mode in cls.modes}
    assert ids == TOY_DEFAULT_RUN_IDS
