"""Golden test of `python -m bench.report` (DomainBed style) and its helpers.

tests/fixtures/records/ holds two datasets' records (several methods/modes, 1-3 seeds), one
broken JSON file and one status "failed" record; tests/fixtures/expected_report/ holds the
exact Markdown, CSV and LaTeX they must produce. After an intended change of the report's
format, regenerate the expected files with
    python -m bench.report --runs tests/fixtures/records --out tests/fixtures/expected_report \
        --expected tests/fixtures/records/sweeps/officehome_paper/expected.json
(and delete the PNGs it writes there), then review the diff.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

from bench import report
from bench.comparison import DuplicateSeedsError
from bench.records import RunRecord
from bench.report_plots import FigureDrawer

RECORDS = REPO / "tests" / "fixtures" / "records"
EXPECTED = REPO / "tests" / "fixtures" / "expected_report"
SWEEP = RECORDS / "sweeps" / "officehome_paper" / "expected.json"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.report", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def cli_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    proc = _run_cli("--runs", str(RECORDS), "--out", str(out), "--expected", str(SWEEP))
    return proc, out


def test_cli_exit_code_zero_with_broken_records(cli_out):
    proc, _ = cli_out
    assert proc.returncode == 0, proc.stderr
    assert "broken_partial.json" in proc.stdout and "not valid JSON" in proc.stdout
    assert "91dbfcf7b0c0.json" in proc.stdout and "status 'failed'" in proc.stdout
    assert "2 of 22 expected run(s) missing or failed" in proc.stdout


@pytest.mark.parametrize("name", ["officehome.md", "officehome.csv", "officehome.tex",
                                  "minidomainnet.md", "minidomainnet.csv", "minidomainnet.tex"])
def test_golden_outputs(cli_out, name):
    _, out = cli_out
    assert (out / name).read_bytes() == (EXPECTED / name).read_bytes(), f"{name} differs from the golden file"


@pytest.mark.parametrize("dataset", ["officehome", "minidomainnet"])
def test_plot_is_a_png(cli_out, dataset):
    _, out = cli_out
    png = out / f"{dataset}_acc_vs_params.png"
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 10_000


def test_figures_drawn_in_forked_processes_are_the_figures_drawn_here(tmp_path):
    records, problems = report.load_records(RECORDS)
    here = report.write_report(records, problems, tmp_path / "here")
    with FigureDrawer(2) as figures:
        forked = report.write_report(records, problems, tmp_path / "forked", figures=figures)
    pngs = sorted(p.name for p in here if p.suffix == ".png")
    assert len(pngs) == 4 and pngs == sorted(p.name for p in forked if p.suffix == ".png")
    for name in pngs:
        assert (tmp_path / "here" / name).read_bytes() == (tmp_path / "forked" / name).read_bytes(), name


def test_a_figure_that_fails_in_a_forked_process_fails_the_report(tmp_path):
    with pytest.raises(ValueError, match="no such column"):
        with FigureDrawer(2) as figures:
            figures.draw(_fails, "no such column")


def _fails(message: str) -> None:
    raise ValueError(message)


def test_hydra_style_arguments(tmp_path):
    proc = _run_cli(f"runs={RECORDS}", f"out={tmp_path}", "dataset=minidomainnet", "split=val")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "index.html", "minidomainnet.csv", "minidomainnet.html", "minidomainnet.md", "minidomainnet.tex",
        "minidomainnet_acc_vs_params.png", "minidomainnet_acc_vs_time.png"]
    assert "# minidomainnet: val accuracy (%)" in (tmp_path / "minidomainnet.md").read_text()


def test_missing_runs_dir_is_a_clear_error(tmp_path):
    proc = _run_cli("--runs", str(tmp_path / "nope"), "--out", str(tmp_path))
    assert proc.returncode == 2 and "No result folder" in proc.stdout


def test_load_records_skips_and_names_broken(tmp_path):
    for f in RECORDS.glob("*.json"):
        shutil.copy(f, tmp_path)
    (tmp_path / "no_keys.json").write_text(json.dumps({"run_id": "no_keys", "status": "complete"}))
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "running.json").write_text(json.dumps({"run_id": "r1", "status": "running"}))
    records, problems = report.load_records(tmp_path)
    assert len(records) == 28
    reasons = {p["file"]: p["reason"] for p in problems}
    assert reasons["broken_partial.json"].startswith("not valid JSON")
    assert reasons["91dbfcf7b0c0.json"] == "status 'failed'"
    assert reasons["no_keys.json"].startswith("missing keys: method, mode, dataset")
    assert reasons["list.json"] == "not a JSON object"
    assert reasons["running.json"] == "status 'running'"


def _record(seed, acc, method="coop", mode="mt", trainable=8192, lr=0.002, weights="tag:openai", data="d1"):
    tasks = ["A", "B"]
    config = {"seed": seed, "method": {"name": method, "mode": mode}, "train": {"lr": lr},
              "model": {"arch": "ViT-B-16", "pretrained": weights.split(":")[-1]}, "dataset": {"name": "toy"}}
    variant = "" if (lr, weights, data) == (0.002, "tag:openai", "d1") else f"-{lr}-{weights}-{data}"
    return RunRecord.from_dict({"run_id": f"{method}{mode}{seed}{variant}", "status": "complete", "method": method,
            "mode": mode, "dataset": "toy", "model": "ViT-B-16", "seed": seed, "tasks": tasks,
            "accuracy": {"test": {"A": acc, "B": acc + 10, "average": acc + 5}},
            "params": {"trainable": trainable, "total": 149620737, "trainable_percent": 100 * trainable / 149620737},
            "config": config, "data_fingerprint": data, "weights_fingerprint": weights})


def test_std_is_the_sample_std_over_seeds():
    recs = [_record(1, 70.0), _record(2, 72.0), _record(3, 74.0), _record(1, 50.0, method="vpt")]
    summary = report.summarize(recs, "toy")
    coop = summary[summary.method == "coop"].iloc[0]
    assert coop["n"] == 3 and coop["A mean"] == pytest.approx(72.0)
    assert coop["A std"] == pytest.approx(2.0)  # ddof=1: sqrt((4 + 0 + 4) / 2)
    assert coop["Average mean"] == pytest.approx(77.0)
    vpt = summary[summary.method == "vpt"].iloc[0]
    assert vpt["n"] == 1 and math.isnan(vpt["A std"])
    table = report.display_table(summary)
    assert table.loc[0, "A"] == "72.00 ± 1.15" and table.loc[1, "A"] == "50.00 ± –"  # mean ± se: 2 / sqrt(3)


def test_two_records_of_one_seed_are_an_error_naming_them_not_two_observations():
    one = _record(1, 70.0)
    for twin in (one, dataclasses.replace(one, run_id="coopmt1-on-2-processes")):  # a copy; another run id
        with pytest.raises(DuplicateSeedsError, match=r"The row CoOp has more than one record of a seed \(seed 1: "
                                                      rf"run ids coopmt1, {twin.run_id}\)"):
            report.summarize([one, twin, _record(2, 72.0)], "toy")


def test_row_order_methods_then_modes():
    recs = [_record(1, 60.0, m, mode) for m, mode in [("zzz", "st"), ("mmap", "grouped"), ("mmap", "st"),
                                                       ("abc", "mt"), ("coop", "mt"), ("zeroshot", "st"),
                                                       ("mmap", "mt"), ("full", "mt")]]
    summary = report.summarize(recs, "toy")
    assert list(zip(summary.method, summary["mode"])) == [
        ("zeroshot", "st"), ("full", "mt"), ("coop", "mt"), ("mmap", "st"), ("mmap", "mt"),
        ("mmap", "grouped"), ("abc", "mt"), ("zzz", "st")]


def test_human_formats():
    assert [report.human_params(n) for n in (0, 512, 8192, 135168, 3555328, 149620737)] == [
        "0", "512", "8.2K", "135.2K", "3.56M", "149.6M"]
    assert [report.human_percent(p) for p in (0, 0.005475, 0.0903, 2.376, 100)] == [
        "0", "0.0055", "0.090", "2.4", "100.0"]


def test_missing_runs_lists_absent_and_failed():
    records = [_record(1, 70.0), _record(2, 71.0)]
    expected = [{"run_id": f"coopmt{s}", "method": "coop", "mode": "mt", "dataset": "toy", "seed": s}
                for s in (1, 2, 3, 4)]
    problems = [{"file": "coopmt4.json", "run_id": "coopmt4", "reason": "status 'failed'"}]
    gone = report.missing_runs(expected, records, problems)
    assert [(g["run_id"], g["seed"], g["reason"]) for g in gone] == [
        ("coopmt3", 3, "missing"), ("coopmt4", 4, "status 'failed'")]
    assert report.missing_runs(expected[:2], records) == []


def test_runs_that_differ_in_a_setting_are_separate_rows_named_by_it():
    recs = [_record(1, 70.0), _record(2, 72.0), _record(1, 50.0, lr=0.02), _record(2, 52.0, lr=0.02),
            _record(3, 54.0, lr=0.02)]
    summary = report.summarize(recs, "toy")
    assert sorted(zip(summary.label, summary.n)) == [("CoOp (train.lr=0.002)", 2), ("CoOp (train.lr=0.02)", 3)]
    row = summary[summary.label == "CoOp (train.lr=0.02)"].iloc[0]
    assert row["A mean"] == pytest.approx(52.0)  # never averaged with the lr=0.002 runs


def test_runs_with_other_weights_are_never_averaged():
    recs = [_record(1, 80.0), _record(1, 20.0, weights="none"), _record(2, 22.0, weights="none")]
    summary = report.summarize(recs, "toy")
    assert len(summary) == 2 and sorted(summary.n) == [1, 2]
    assert any("model.pretrained=none" in label for label in summary.label)
    assert summary["A mean"].max() == pytest.approx(80.0)


def test_same_dataset_name_with_other_data_goes_to_its_own_table(tmp_path):
    recs = [_record(1, 70.0, data="aaaaaaaaaaaa"), _record(1, 30.0, data="bbbbbbbbbbbb")]
    written = report.write_report(recs, [], tmp_path)
    names = sorted(p.name for p in written if p.suffix == ".md")
    assert names == ["toy-aaaaaaaa.md", "toy-bbbbbbbb.md"]
    assert "70.00" in (tmp_path / "toy-aaaaaaaa.md").read_text()
    assert "30.00" not in (tmp_path / "toy-aaaaaaaa.md").read_text()


def test_rows_follow_the_registry_and_every_method_keeps_its_style():
    from bench.methods import METHODS
    recs = [_record(1, 60.0, name, cls.modes[0]) for name, cls in reversed(METHODS.items())]
    summary = report.summarize(recs, "toy")
    assert list(summary.method) == list(METHODS)
    assert list(summary.label) == [cls.label for cls in METHODS.values()]
    styles = [report.method_style(name) for name in METHODS]
    assert len({(tuple(c), m) for c, m in styles}) == len(styles)


def test_a_new_record_is_of_the_current_schema_and_a_read_one_keeps_its_own():
    from bench.records import SCHEMA_VERSION
    values = json.loads(next(RECORDS.glob("*.json")).read_text())
    record = RunRecord.from_dict(values)
    assert record.schema_version == values["schema_version"]
    fields = {k: v for k, v in record.to_dict().items() if k != "schema_version"}
    assert RunRecord(**fields).schema_version == SCHEMA_VERSION  # a writer need not name it
    del values["schema_version"]  # the first schema named none
    assert RunRecord.from_dict(values).schema_version == 1
