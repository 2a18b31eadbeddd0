"""protocol=sequential (bench/sequential.py): bad input, the run id, the stages' record, `st`'s
sets bit-identical after later stages (every method with an st mode), what `mt` carries, zero-shot's
flat matrix, selection on the stage's domain, and a run killed in any stage resuming to the
uninterrupted record."""
from __future__ import annotations

import json

import pytest
import torch

from bench import sequential
from bench.app import check, compose_config
from bench.methods import METHODS
from bench.planning import plan_run
from bench.records import problem
from helpers import SMALL_TOY_EVAL, launch, run_killed_at_step, runtime_overrides

SEQ = ["protocol=sequential"]
ORDER = ["photo", "sketch", "clipart", "painting"]
#: a few short steps per stage on a 2-shot subset, a small evaluation
QUICK = ["dataset.few_shot=2", "train.epochs=1", "train.warmup_epochs=0", "train.steps_per_epoch=2",
         "train.batch_size=2", "runtime.progress=false", "runtime.num_workers=0", *SMALL_TOY_EVAL]


def _run(overrides, tmp_path, capsys) -> dict:
    code, out = launch(SEQ + QUICK + overrides + runtime_overrides(tmp_path), capsys)
    assert code == 0, out
    (path,) = (tmp_path / "results" / "runs").glob("*.json")
    return json.loads(path.read_text())


@pytest.mark.parametrize("overrides, words", [
    (["dataset.task_order=[photo,sketch,clipart,watercolour]"], ["unknown: 'watercolour'", "missing: 'painting'"]),
    (["dataset.task_order=[photo,sketch,clipart]"], ["missing: 'painting'", "exactly once"]),
    (["dataset.task_order=[photo,sketch,clipart,painting,photo]"], ["repeated: 'photo'"]),
    (["dataset.target=sketch"], ["nothing to hold out"]),
    (["train.selection=oracle"], ["only protocol=leave_one_out", "its own domain's validation split"]),
    (["method=mmap", "method.mode=grouped"], ["grouping warm-up", "every domain at once", "one_group"]),
])
def test_bad_sequential_settings_are_one_paragraph_and_exit_2(overrides, words, capsys, tmp_path):
    code, out = launch(SEQ + overrides + runtime_overrides(tmp_path), capsys)
    assert code == 2, out
    for word in words:
        assert word in out
    assert "Traceback" not in out
    assert not (tmp_path / "results").exists()  # nothing ran


def test_the_order_is_in_the_run_id_only_under_sequential_and_only_when_not_the_default():
    multitask = plan_run(check(compose_config([])))
    default = plan_run(check(compose_config(SEQ)))
    spelled = plan_run(check(compose_config(SEQ + [f"dataset.task_order=[{','.join(ORDER)}]"])))
    reverse = plan_run(check(compose_config(SEQ + [f"dataset.task_order=[{','.join(ORDER[::-1])}]"])))
    assert default.identity["config"]["protocol"] == "sequential"
    assert "task_order" not in default.identity["config"]["dataset"]
    assert spelled.run_id == default.run_id  # the dataset's own order, spelled out: the same run
    assert reverse.identity["config"]["dataset"]["task_order"] == ORDER[::-1]
    assert len({multitask.run_id, default.run_id, reverse.run_id}) == 3


def test_a_sequential_run_records_both_matrices_the_metrics_and_each_stage(capsys, tmp_path):
    record = _run(["method=coop", f"dataset.task_order=[{','.join(ORDER[::-1])}]"], tmp_path, capsys)
    order = ORDER[::-1]
    assert record["protocol"] == "sequential" and record["task_order"] == order and not problem(record)
    for split in ("val", "test"):
        matrix = record["accuracy_matrix"][split]
        assert len(matrix) == 4 and all(len(row) == 4 for row in matrix)
        assert matrix[-1] == [record["accuracy"][split][d] for d in order]  # the reported accuracy: after the last stage
        assert record["sequential_metrics"][split]["final_average"] == pytest.approx(record["accuracy"][split]["average"])
    assert [s["domain"] for s in record["stages"]] == order and all(s["steps_run"] == 2 for s in record["stages"])
    # model selection within a stage: validation on that stage's domain only
    assert [(row["stage"], set(row["val"])) for row in record["history"]] == [
        (k + 1, {d, "average"}) for k, d in enumerate(order)]
    runs = tmp_path / "results" / "runs"
    assert sorted(p.name.split(".", 1)[1] for p in runs.glob("*.curves.csv")) == [
        f"stage{k}.curves.csv" for k in (1, 2, 3, 4)]
    assert not list((tmp_path / "checkpoints").glob("*/*.pt"))  # stages.pt goes with the checkpoint


def test_zero_shot_measures_one_row_for_every_stage(capsys, tmp_path):
    record = _run(["method=zeroshot"], tmp_path, capsys)
    test = record["accuracy_matrix"]["test"]
    assert all(row == test[0] for row in test)
    metrics = record["sequential_metrics"]["test"]
    assert metrics["forgetting"] == 0.0 and metrics["backward_transfer"] == 0.0
    assert metrics["transfer"] == pytest.approx(sum(test[0][1:]) / 3)


ST_METHODS = sorted(name for name, card in METHODS.items() if "st" in card.modes)


@pytest.mark.parametrize("name", ST_METHODS)
def test_st_sets_are_bit_identical_after_later_stages_and_nothing_is_forgotten(name, capsys, tmp_path, monkeypatch):
    states = []  # the trainable state after each stage (once its unread entries are put back)
    restore = sequential.restore_unread

    def kept(method, saved):
        restore(method, saved)
        states.append((method.task_readers(), method.trainable_state()))
    monkeypatch.setattr(sequential, "restore_unread", kept)
    record = _run([f"method={name}", "method.mode=st"], tmp_path, capsys)
    assert len(states) == 4
    readers, _ = states[0]
    assert readers  # st keeps a set per domain
    for k, (_, after) in enumerate(states):
        for j in range(k):  # domain j's set after stage k is the one stage j left
            for pname, who in readers.items():
                if isinstance(who, frozenset):  # a whole tensor of one set (full fine-tuning's copies)
                    assert j not in who or torch.equal(after[pname], states[j][1][pname]), (pname, j, k)
                    continue
                rows = [r for r, tasks in enumerate(who) if j in tasks]
                assert torch.equal(after[pname][rows], states[j][1][pname][rows]), (pname, j, k)
    changed = [p for p in readers if not torch.equal(states[0][1][p], states[-1][1][p])]
    assert changed  # later stages did train (their own sets)
    for split in ("val", "test"):
        matrix = record["accuracy_matrix"][split]
        assert all(matrix[k][j] == matrix[j][j] for j in range(4) for k in range(j, 4))
        assert record["sequential_metrics"][split]["forgetting"] == 0.0
        assert record["sequential_metrics"][split]["backward_transfer"] == 0.0


def test_mt_carries_one_set_through_the_stages_and_mmap_grouped_keeps_its_groups(capsys, tmp_path, monkeypatch):
    states = []
    restore = sequential.restore_unread
    monkeypatch.setattr(sequential, "restore_unread",
                        lambda method, saved: (restore(method, saved), states.append(method.trainable_state())))
    _run(["method=mmap", "method.mode=grouped", "method.grouping.strategy=manual",
          "method.grouping.groups=[[photo,clipart],[sketch,painting]]"], tmp_path / "g", capsys)
    # stage 2 (sketch) trains group 2's shared set and sketch's own; group 1 and photo's own stay as stage 1 left them
    after_1, after_2 = states[0], states[1]
    assert torch.equal(after_2["group_prompts.source"][0], after_1["group_prompts.source"][0])
    assert not torch.equal(after_2["group_prompts.source"][1], after_1["group_prompts.source"][1])
    assert torch.equal(after_2["task_prompts.source"][0], after_1["task_prompts.source"][0])
    # stage 3 (clipart) trains group 1's shared set again: carried from stage 1, not restarted
    assert not torch.equal(states[2]["group_prompts.source"][0], after_1["group_prompts.source"][0])
    states.clear()
    _run(["method=coop", "method.mode=mt"], tmp_path / "mt", capsys)
    assert all(not torch.equal(a["context"], b["context"]) for a, b in zip(states, states[1:]))


def test_a_sequential_record_without_its_square_matrices_is_not_a_result(capsys, tmp_path):
    record = _run(["method=zeroshot"], tmp_path, capsys)
    broken = {**record, "accuracy_matrix": {**record["accuracy_matrix"], "test": record["accuracy_matrix"]["test"][:3]}}
    assert "accuracy_matrix.test is not 4 x 4" in problem(broken)
    assert "task_order" in problem({**record, "task_order": ORDER[:3]})


# ---- a run killed in any stage resumes to the record of an uninterrupted run -------------------------
RESUME_RUN = ["dataset=toy", "method=coop", *SEQ, *QUICK, "train.steps_per_epoch=3", "runtime.checkpoint_every_steps=1"]


def _comparable(record: dict) -> dict:
    timing = ("train_time_s", "wall_time_s", "resumes")
    return {"run_id": record["run_id"], "accuracy": record["accuracy"], "matrix": record["accuracy_matrix"],
            "metrics": record["sequential_metrics"], "history": record["history"],
            "stages": [{k: v for k, v in s.items() if k not in timing} for s in record["stages"]]}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    from bench.experiment import run_experiment
    root = tmp_path_factory.mktemp("uninterrupted")
    return run_experiment(compose_config(RESUME_RUN + runtime_overrides(root))).to_dict()


# 3 steps per stage: 5 is mid stage 2; 4 and 10 the first steps of stages 2 and 4 (a resume at a stage boundary)
@pytest.mark.parametrize("kill_at_step", [4, 5, 10])
def test_sigkill_in_any_stage_then_resume_gives_the_same_record(tmp_path, uninterrupted, kill_at_step):
    from bench.experiment import run_experiment
    killed = tmp_path / "b"
    run_killed_at_step(kill_at_step, RESUME_RUN, killed, cwd=tmp_path)
    folder = killed / "checkpoints" / uninterrupted["run_id"]
    stages_done = torch.load(folder / "stages.pt", weights_only=False)["stages"]
    assert len(stages_done) == (kill_at_step - 1) // 3
    if (kill_at_step - 1) % 3:  # mid stage: the stage's own checkpoint, stamped with its stage
        checkpoint = torch.load(folder / "checkpoint.pt", weights_only=False)
        assert checkpoint["run_id"] == f"{uninterrupted['run_id']}#stage{(kill_at_step - 1) // 3 + 1}"
    else:  # the stage's first step: the previous stage's checkpoint was dropped, none of this one yet
        assert not (folder / "checkpoint.pt").exists()

    resumed = run_experiment(compose_config(RESUME_RUN + runtime_overrides(killed))).to_dict()
    assert _comparable(resumed) == _comparable(uninterrupted)
    assert resumed["resumes"] == 1 and uninterrupted["resumes"] == 0


def test_a_damaged_stages_checkpoint_is_one_paragraph_and_left_untouched(capsys, tmp_path):
    run = ["method=zeroshot"]
    record = _run(run + ["runtime.keep_checkpoint=everything"], tmp_path, capsys)
    stages = tmp_path / "checkpoints" / record["run_id"] / "stages.pt"
    assert stages.exists()  # kept with everything
    stages.write_bytes(b"not a checkpoint")
    code, out = launch(SEQ + QUICK + run + ["runtime.skip_done=true"] + runtime_overrides(tmp_path), capsys)
    assert code == 0  # the record exists: nothing to resume
    (tmp_path / "results" / "runs" / f"{record['run_id']}.json").unlink()
    code, out = launch(SEQ + QUICK + run + runtime_overrides(tmp_path), capsys)
    assert code != 0 and "cannot be resumed from" in out and "runtime.resume=false" in out and "Traceback" not in out
    assert stages.read_bytes() == b"not a checkpoint"


def test_st_killed_mid_stage_puts_back_the_sets_as_the_stage_found_them(tmp_path):
    """The mid-stage checkpoint holds the other sets as weight decay left them; the resumed stage
    still puts back the values of stages.pt (what the stage started from)."""
    from bench.experiment import run_experiment
    run = RESUME_RUN + ["method.mode=st", "runtime.keep_checkpoint=trainable"]
    reference = run_experiment(compose_config(run + runtime_overrides(tmp_path / "a"))).to_dict()
    killed = tmp_path / "b"
    run_killed_at_step(8, run, killed, cwd=tmp_path)
    resumed = run_experiment(compose_config(run + runtime_overrides(killed))).to_dict()
    assert _comparable(resumed) == _comparable(reference) and resumed["resumes"] == 1
    kept = [torch.load(root / "checkpoints" / reference["run_id"] / "trainable.pt", weights_only=False)["trainable"]
            for root in (tmp_path / "a", killed)]
    assert kept[0].keys() == kept[1].keys() and all(torch.equal(kept[0][n], kept[1][n]) for n in kept[0])


# ---- the report: the incremental table, the stages figure, the matrices; never mixed with multitask -----
def test_the_report_writes_the_incremental_table_figure_and_heatmaps_apart_from_multitask(capsys, tmp_path):
    from bench.report import load_records, write_report
    for method in (["method=zeroshot"], ["method=coop"], ["method=coop", "method.mode=st"]):
        for seed in (1, 2):
            code, out = launch(SEQ + QUICK + method + [f"seed={seed}"] + runtime_overrides(tmp_path), capsys)
            assert code == 0, out
    code, out = launch(QUICK + ["method=zeroshot"] + runtime_overrides(tmp_path), capsys)  # a multitask run beside them
    assert code == 0, out
    records, problems = load_records(tmp_path / "results" / "runs")
    assert len(records) == 7 and not problems
    written = {p.name for p in write_report(records, problems, tmp_path / "out",
                                            curves_from=tmp_path / "results" / "runs")}
    assert {"toy.md", "toy-seq.md", "toy-seq.csv", "toy-seq.tex", "toy-seq_stages.png",
            "toy-seq_matrices.png", "toy-seq_curves.png", "toy-seq.html"} <= written  # the curves: every stage's
    page = (tmp_path / "out" / "toy-seq.html").read_text()  # its results page: sorted by the metrics' means
    assert '<th scope="col" data-type="number"><button type="button">Forgetting</button></th>' in page
    for figure in ("stages", "matrices"):  # both drawn into the page, as SVG
        inside = page.split(f'id="figure-{figure}"', 1)[1].split("</figure>", 1)[0]
        assert "<svg" in inside and "R[stage][domain]" in page, figure
    seq = (tmp_path / "out" / "toy-seq.md").read_text()
    assert "domains in sequence" in seq and "the best validation accuracy of that stage's domain" in seq
    lines = [line for line in seq.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].split("|")[1:-1]]
    assert header[:8] == ["Method", "Mode", "Final average", "Avg incremental", "Forgetting", "BWT", "Transfer",
                          "Transfer − ZS"]
    assert "Δ vs Zero-shot-MT" in header and "Params" in header and header[-1] == "n"
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): dict(zip(header, (c.strip() for c in line.split("|")[1:-1])))
            for line in lines[1:]}
    assert set(rows) == {("Zero-shot", "MT"), ("CoOp", "MT"), ("CoOp", "ST")}
    assert rows[("CoOp", "ST")]["Forgetting"] == "0.00 ± 0.00" and rows[("CoOp", "ST")]["n"] == "2"
    assert rows[("Zero-shot", "MT")]["Transfer − ZS"] == "0.00 ± 0.00"
    csv = (tmp_path / "out" / "toy-seq.csv").read_text().splitlines()[0]
    assert "Forgetting mean" in csv and "R[4,1] se" in csv and "after 2: sketch mean" in csv
    assert "Forgetting" not in (tmp_path / "out" / "toy.md").read_text()  # the multitask table has no sequential row


# ---- sweep presets -----------------------------------------------------------------------------------
def test_seq_presets_run_every_method_and_mode_in_sequence_and_their_configs_are_valid():
    from bench.sweep import expand_grid, load_preset
    every = {(name, mode) for name, card in METHODS.items() for mode in card.modes}
    for name, orders in (("toy_seq", 1), ("toy_seq_orders", 2), ("officehome_seq", 1), ("minidomainnet_seq", 2),
                         ("domainnet_seq", 2)):
        runs = expand_grid(load_preset(name))
        assert all("protocol=sequential" in r for r in runs)
        assert len(runs) == len(every) * 3 * orders
        ran = {(next(o for o in r if o.startswith("method=")).split("=")[1],
                next((o.split("=")[1] for o in r if o.startswith("method.mode=")), "mt")) for r in runs}
        assert ran == every, name
        for run in runs[:: max(1, len(runs) // 9)] + [r for r in runs if "method.mode=grouped" in r][:1]:
            check(compose_config(run))  # every run's config is valid (MmAP grouped without an all-domain warm-up)
    reverse = {o for r in expand_grid(load_preset("toy_seq_orders")) for o in r if o.startswith("dataset.task_order=")}
    assert reverse == {f"dataset.task_order=[{','.join(ORDER)}]", f"dataset.task_order=[{','.join(ORDER[::-1])}]"}
    smoke = expand_grid(load_preset("toy_seq_smoke"))
    assert 2 <= len(smoke) <= 4


def test_a_search_runs_in_sequence_too_and_picks_its_trial_by_the_final_validation_average(tmp_path):
    from bench.report_sequential import sequential_rows
    from bench.records import RunRecord
    from bench.sweep import expand_grid, preset_from
    preset = preset_from({"name": "seq_search", "fixed": ["dataset=toy", "protocol=sequential"],
                          "search": {"trials": 2, "seed": 0}, "grid": {"method": ["method=coop"], "seed": [1]}},
                         "test")
    runs = expand_grid(preset)
    assert len(runs) == 2 and all("runtime.trial=0" in r or "runtime.trial=1" in r for r in runs)
    for run in runs:
        assert check(compose_config(run)).protocol == "sequential"
    # across trials: the best final validation average (the last stage's row), as any search
    base = dict(run_id="a", status="complete", method="coop", mode="mt", dataset="toy", model="m", seed=1,
                tasks=["x", "y"], params={"trainable": 1}, config={"seed": 1}, protocol="sequential",
                task_order=["x", "y"], sweep="s")
    trial = lambda t, final: RunRecord(**{**base, "run_id": f"t{t}", "trial": t,  # noqa: E731
                                          "accuracy": {"val": {"x": final, "y": final, "average": final},
                                                       "test": {"x": 1.0, "y": 1.0, "average": 1.0}},
                                          "accuracy_matrix": {s: [[10.0, 20.0], [final, final]] for s in ("val", "test")}})
    rows, _ = sequential_rows([trial(0, 40.0), trial(1, 60.0)])
    assert [r.run_id for r in rows] == ["t1"]
    assert rows[0].accuracy["test"]["Forgetting"] == 10.0 - 60.0 and rows[0].accuracy["test"]["average"] == 60.0
