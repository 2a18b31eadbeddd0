"""protocol=leave_one_out (bench/protocols.py): bad input, the run id, no target image in a
training or validation loader, selection on the sources' val or the target's (oracle), presets."""
from __future__ import annotations

import json

import pytest

from bench.app import check, compose_config
from bench.data import MultiTaskData
from bench.datasets import build_dataset
from bench.planning import plan_run
from bench.protocols import TaskRoles, task_roles
from bench.sweep import expand_grid, load_preset
from bench.check import load_dataset_config
from helpers import (DN_DOMAINS, OH_CLASSES, OH_DOMAINS, SMALL_TOY_EVAL, launch, make_imagefolder, make_minidomainnet,
                     train_cfg, dn_cfg, oh_cfg, runtime_overrides, write_domainnet_tree)

LOO = ["protocol=leave_one_out"]
DOMAINNET = ["clipart", "infograph", "painting", "quickdraw", "real", "sketch"]


def make_domainnet(root):
    """Full DomainNet's layout: the official <domain>_{train,test}.txt lists at the root."""
    return write_domainnet_tree(root, DOMAINNET, ".", per_class=6, n_train=4)


@pytest.mark.parametrize("overrides, words", [
    (LOO, ["needs the held-out domain", "photo, sketch, clipart, painting"]),
    (LOO + ["dataset.target=skecth"], ["not a domain", "photo, sketch, clipart, painting"]),
    (["dataset.target=sketch"], ["protocol=multitask", "nothing to hold out"]),
    (LOO + ["dataset.target=sketch", "dataset.domains=[sketch]"], ["leaves no source domain"]),
    (LOO + ["dataset.target=sketch", "method.mode=st"], ["nothing learned", "method.mode=mt"]),
    (LOO + ["dataset.target=sketch", "method=mmap", "method.mode=grouped"], ["nothing learned", "mt"]),
    (["protocol=leave_none_out"], ["not a protocol", "multitask, leave_one_out, sequential"]),
    (["train.selection=oracle"], ["only protocol=leave_one_out"]),
    (["dataset.task_order=[photo,sketch]"], ["only means something under protocol=sequential"]),
])
def test_bad_protocol_settings_are_one_paragraph_and_exit_2(overrides, words, capsys, tmp_path):
    code, out = launch(overrides + runtime_overrides(tmp_path), capsys)
    assert code == 2, out
    for word in words:
        assert word in out
    assert "Traceback" not in out
    assert not (tmp_path / "results").exists()  # nothing ran


def test_protocol_is_in_the_run_id_only_when_not_the_default():
    default = plan_run(check(compose_config([])))
    assert "protocol" not in default.identity["config"] and "target" not in default.identity["config"]["dataset"]
    held = {t: plan_run(check(compose_config(LOO + [f"dataset.target={t}"]))) for t in ("photo", "sketch")}
    assert held["photo"].identity["config"]["protocol"] == "leave_one_out"
    assert len({default.run_id, held["photo"].run_id, held["sketch"].run_id}) == 3


def test_the_roles_of_the_tasks():
    tasks = ["a", "b", "c"]
    assert task_roles("multitask", tasks) == TaskRoles(*[("a", "b", "c")] * 3)
    assert task_roles("leave_one_out", tasks, "b") == TaskRoles(("a", "c"), ("a", "c"), ("a", "b", "c"))
    assert task_roles("leave_one_out", tasks, "b", "oracle") == TaskRoles(("a", "c"), ("b",), ("a", "b", "c"))


def _loader_paths(loader) -> set[str]:
    samples = loader.dataset.images.samples
    return {samples[int(i)][0] for batch in loader for i in batch.indices}


@pytest.mark.parametrize("layout", ["officehome", "minidomainnet", "domainnet"])
@pytest.mark.parametrize("selection", ["val", "oracle"])
@pytest.mark.parametrize("sampling", ["all", "round_robin"])
def test_no_target_image_reaches_a_training_or_validation_loader(layout, selection, sampling, tmp_path, tiny_clip):
    if layout == "officehome":
        dataset = build_dataset(oh_cfg(make_imagefolder(tmp_path / "oh", OH_DOMAINS, OH_CLASSES)))
        target = "Real World"
    elif layout == "minidomainnet":
        dataset = build_dataset(dn_cfg(make_minidomainnet(tmp_path / "dn")))
        target = DN_DOMAINS[1]
    else:
        dataset = build_dataset(load_dataset_config("domainnet", [f"dataset.root={make_domainnet(tmp_path / 'd')}",
                                                                  "dataset.num_classes=3", "dataset.val_fraction=0.3"]))
        target = "quickdraw"
    roles = task_roles("leave_one_out", dataset.task_names, target, selection)
    data = MultiTaskData(dataset, tiny_clip, train_cfg(batch_size=2, task_sampling=sampling, eval_batch_size=7),
                         seed=1, roles=roles)
    target_paths = {p for split in ("train", "val", "test") for p, _ in getattr(dataset.task(target), split)}
    source_train = {p for t in dataset.tasks if t.name != target for p, _ in t.train}
    trained = set()
    for epoch in range(3):
        trained |= _loader_paths(data.train_loader(epoch))
    assert trained and not trained & target_paths
    assert trained <= source_train
    validated = _loader_paths(data.eval_loader("val"))
    if selection == "val":
        assert validated and not validated & target_paths
        assert data.eval_task_names("val") == [t for t in dataset.task_names if t != target]
    else:  # oracle: the target's validation split alone
        assert validated == {p for p, _ in dataset.task(target).val}
        assert data.eval_task_names("val") == [target]
    assert {p for p, _ in dataset.task(target).test} <= _loader_paths(data.eval_loader("test"))


@pytest.mark.parametrize("selection", ["val", "oracle"])
def test_a_leave_one_out_run_tests_the_target_and_states_its_selection(selection, capsys, tmp_path):
    code, out = launch(LOO + SMALL_TOY_EVAL + ["dataset.target=sketch", f"train.selection={selection}", "dataset.few_shot=2",
                              "train.epochs=2", "train.warmup_epochs=0", "runtime.progress=false"]
                       + runtime_overrides(tmp_path), capsys)
    assert code == 0, out
    (path,) = (tmp_path / "results" / "runs").glob("*.json")
    record = json.loads(path.read_text())
    assert (record["protocol"], record["target"], record["selection"]) == ("leave_one_out", "sketch", selection)
    sources = ["photo", "clipart", "painting"]
    assert set(record["accuracy"]["val"]) == ({*sources, "average"} if selection == "val" else {"sketch", "average"})
    assert set(record["accuracy"]["test"]) == {*sources, "sketch", "average"}
    assert all(set(row["val"]) == set(record["accuracy"]["val"]) for row in record["history"])


def test_zero_shot_is_a_leave_one_out_baseline(capsys, tmp_path):
    code, out = launch(LOO + SMALL_TOY_EVAL + ["dataset.target=painting", "method=zeroshot"] + runtime_overrides(tmp_path),
                       capsys)
    assert code == 0, out


def test_dg_presets_run_every_method_in_a_mode_that_serves_the_target_on_every_target():
    for name, targets in (("toy_dg", ["photo", "sketch", "clipart", "painting"]), ("officehome_dg", OH_DOMAINS),
                          ("minidomainnet_dg", DN_DOMAINS),
                          ("domainnet_dg", DOMAINNET)):
        runs = expand_grid(load_preset(name))
        assert all("protocol=leave_one_out" in r for r in runs)
        assert not [r for r in runs if "method.mode=st" in r or "method.mode=grouped" in r]
        chosen = {next(o for o in r if o.startswith("dataset.target=")).split("=", 1)[1].strip('"') for r in runs}
        assert chosen == set(targets)
        for run in runs[:: max(1, len(runs) // 7)]:
            check(compose_config(run))  # every run's config is valid


def test_the_report_writes_the_held_out_domain_table_apart_from_the_multitask_one(capsys, tmp_path):
    from bench.report import load_records, write_report
    quick = ["dataset.few_shot=2", "train.epochs=1", "train.warmup_epochs=0", "runtime.progress=false", *SMALL_TOY_EVAL]
    for method in ("zeroshot", "coop"):
        for target in ("sketch", "photo"):
            code, out = launch(LOO + [f"method={method}", f"dataset.target={target}"] + quick
                               + runtime_overrides(tmp_path), capsys)
            assert code == 0, out
    code, out = launch(["method=zeroshot"] + quick + runtime_overrides(tmp_path), capsys)  # a multitask run beside them
    assert code == 0, out
    records, problems = load_records(tmp_path / "results" / "runs")
    assert len(records) == 5 and not problems
    written = {p.name for p in write_report(records, problems, tmp_path / "out",
                                            curves_from=tmp_path / "results" / "runs")}
    assert {"toy.md", "toy-dg.md", "toy-dg.csv", "toy-dg.tex", "toy-dg_held_out.png", "toy-dg.html"} <= written
    assert "toy-dg_curves.png" in written  # a row's learning curves: its runs over every held-out domain
    page = (tmp_path / "out" / "toy-dg.html").read_text()  # its page: the held-out figure, each target's runs
    assert 'id="figure-held_out"' in page and "<th scope=\"col\">held-out domain</th>" in page
    dg = (tmp_path / "out" / "toy-dg.md").read_text()
    assert "held-out-domain test accuracy" in dg and "source domains (training-domain validation)" in dg
    header = next(line for line in dg.splitlines() if line.startswith("| Method"))
    assert [c.strip() for c in header.split("|")[3:6]] == ["photo", "sketch", "Average"]
    assert "Δ vs Zero-shot-MT" in header
    rows = [line for line in dg.splitlines() if line.startswith("| ") and "Method" not in line]
    assert len(rows) == 2  # one row per method and mode, the two held-out domains as columns
    assert "leave-one-domain-out" not in (tmp_path / "out" / "toy.md").read_text()
