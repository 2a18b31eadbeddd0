"""`python -m bench.speed.startup [key=value ...]`: how long the commands that need no model take.

Each path is a fresh `python` process, timed from its start to its exit (wall seconds) with
its peak resident memory (the child's own `ru_maxrss`, from `os.wait4`).  Rounds interleave
every path with the yardstick `python -c "import torch, open_clip"`, the cost every command
paid before it answered anything, so a busy machine slows both alike; the table gives per
path the median over `rounds` rounds, the spread (min-max), the ratio of the medians to the
yardstick's and the goal of issue 27 (--help and config errors at most 1.0 s and under
200 MiB, `bench.report` on 1,000 records at most 2.5 s, `bench.sweep PRESET status` on a
60-run preset at most 1.5 s).

The report reads `records` generated records: the preset's own runs (so `status` finds them
complete) and copies of them under other seeds.  Settings: `StartupSpeedConfig` in
bench/schema.py.  Example: ``python -m bench.speed.startup rounds=7``.
"""
from __future__ import annotations

import dataclasses
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from omegaconf import OmegaConf
from tabulate import tabulate

from bench.errors import UserError, guarded
from bench.identity import experiment_id_of, run_id_of
from bench.planning import plan_runs
from bench.records import RunRecord, write_record
from bench.schema import StartupSpeedConfig, defaults_of
from bench.sweep import expand_grid, load_preset
from bench.config_checks import check_section, instantiate

YARDSTICK = "import torch, open_clip"


@dataclasses.dataclass(frozen=True)
class Probe:
    """One timed command: its label, its arguments after `python`, the exit status it must end
    with, and its goal (seconds, MiB; None: none)."""

    label: str
    args: tuple[str, ...]
    exit_status: int = 0
    goal_s: float | None = None
    goal_mib: float | None = None


@dataclasses.dataclass
class Timing:
    seconds: list[float] = dataclasses.field(default_factory=list)
    peak_mib: list[float] = dataclasses.field(default_factory=list)


def config_from(argv: Sequence[str]) -> StartupSpeedConfig:
    """`key=value` arguments over the schema's defaults, checked (a bad one is a ConfigError)."""
    node = OmegaConf.merge(defaults_of(StartupSpeedConfig), OmegaConf.from_dotlist(list(argv)))
    check_section(node, StartupSpeedConfig, "")
    return instantiate(StartupSpeedConfig, OmegaConf.to_container(node, resolve=True))


def runtime_overrides(folder: Path) -> list[str]:
    return [f"runtime.results_dir={folder}/results/runs", f"runtime.checkpoint_dir={folder}/checkpoints"]


def write_records(cfg: StartupSpeedConfig, folder: Path) -> int:
    """`cfg.records` records in `<folder>/results/runs`: first the preset's own runs, then copies
    of them under other seeds (their ids recomputed, so the report sees distinct runs).
    Returns how many runs the preset has."""
    preset = load_preset(cfg.preset)  # the command lines of `bench.sweep PRESET status`: its plan cache is warm
    plans = plan_runs(expand_grid(preset, [*runtime_overrides(folder), f"runtime.sweep={preset.name}"]))
    draw = random.Random(0)
    for index in range(cfg.records):
        plan = plans[index % len(plans)]
        ident = {**plan.identity, "config": dict(plan.identity["config"])}
        ident["config"]["seed"] = plan.cfg.seed + 100 * (index // len(plans))
        tasks = [task.name for task in plan.dataset.tasks]
        accuracy = {split: {task: round(draw.uniform(20, 95), 2) for task in tasks} for split in ("val", "test")}
        for split in accuracy:
            accuracy[split]["average"] = round(statistics.fmean(accuracy[split].values()), 2)
        trainable = 1000 * (1 + index % len(plans))
        listed = {split: {task.name: len(task.split(split)) for task in plan.dataset.tasks}
                  for split in ("train", "val", "test")}
        images = {split: {task: {"listed": n, "skipped": 0, **({"evaluated": n} if split != "train" else {})}
                          for task, n in listed[split].items()} for split in listed}
        record = RunRecord(
            run_id=run_id_of(ident), experiment_id=experiment_id_of(ident),
            status="complete", method=plan.cfg.method.name, mode=plan.cfg.method.mode, dataset=plan.dataset.name,
            model=plan.cfg.model.arch, pretrained=str(plan.cfg.model.pretrained), seed=ident["config"]["seed"],
            tasks=tasks, accuracy=accuracy, images=images,
            params={"trainable": trainable, "total": 10 ** 6, "trainable_percent": trainable / 10 ** 4},
            config=ident["config"], data_fingerprint=ident["data_fingerprint"],
            weights_fingerprint=ident["weights_fingerprint"], sweep=plan.cfg.runtime.sweep,
            dataset_key=plan.cfg.dataset.name, wall_time_s=60.0, train_time_s=50.0, protocol=plan.cfg.protocol,
            selection=plan.cfg.train.selection, selected_epoch=1, resumes=0)
        write_record(record, Path(plan.cfg.runtime.results_dir) / f"{record.run_id}.json")
    return len(plans)


def probes(cfg: StartupSpeedConfig, folder: Path, preset_runs: int) -> list[Probe]:
    runs = str(folder / "results" / "runs")
    module = ("-m",)
    return [
        Probe(f"yardstick: python -c \"{YARDSTICK}\"", ("-c", YARDSTICK)),
        Probe("bench.run --help", (*module, "bench.run", "--help"), 0, 1.0, 200),
        Probe("bench.run train.lr=abc (a config error)", (*module, "bench.run", "train.lr=abc"), 2, 1.0, 200),
        Probe("bench.run method=nosuch (an unknown method)", (*module, "bench.run", "method=nosuch"), 2, 1.0, 200),
        Probe("bench.run --cfg job", (*module, "bench.run", "--cfg", "job"), 0, 1.0, 200),
        Probe("bench.sweep --help", (*module, "bench.sweep", "--help"), 0, 1.0, 200),
        Probe(f"bench.report on {cfg.records} records",
              (*module, "bench.report", "--runs", runs, "--out", str(folder / "report")), 0, 2.5),
        Probe(f"bench.sweep {cfg.preset} status ({preset_runs} runs)",
              (*module, "bench.sweep", cfg.preset, "status", *runtime_overrides(folder)), 0, 1.5),
    ]


#: Starts the timed command and reports (seconds, peak KiB, exit status).  A fork of this large
#: process would carry its memory high-water mark into the child's `ru_maxrss` (Linux keeps the
#: peak of the memory image that exec replaced), so a minimal interpreter spawns the command.
LAUNCHER = """
import os, sys, time
log = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
start = time.perf_counter()
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ,
                     file_actions=[(os.POSIX_SPAWN_DUP2, log, 1), (os.POSIX_SPAWN_DUP2, log, 2)])
_, status, usage = os.wait4(pid, 0)
print(time.perf_counter() - start, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def time_once(probe: Probe, cwd: Path) -> tuple[float, float]:
    """(wall seconds, peak MiB) of one fresh process; an unexpected exit status is an error."""
    log = cwd / "startup-output.txt"
    launched = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, str(log), sys.executable, *probe.args],
                              cwd=cwd, capture_output=True, text=True, check=True)
    seconds, peak_kib, code = launched.stdout.split()
    if int(code) != probe.exit_status:
        raise UserError(f"`python {' '.join(probe.args)}` ended with exit status {code}, not {probe.exit_status}:\n"
                        + log.read_text(errors="replace")[-2000:])
    return float(seconds), int(peak_kib) / 1024  # ru_maxrss is in KiB on Linux


def measure(cfg: StartupSpeedConfig, todo: list[Probe], cwd: Path) -> dict[str, Timing]:
    timings = {probe.label: Timing() for probe in todo}
    for round_ in range(cfg.warmup_rounds + cfg.rounds):
        for probe in todo:
            seconds, mib = time_once(probe, cwd)
            if round_ >= cfg.warmup_rounds:
                timings[probe.label].seconds.append(seconds)
                timings[probe.label].peak_mib.append(mib)
        print(f"round {round_ + 1} of {cfg.warmup_rounds + cfg.rounds}"
              + (" (warm-up)" if round_ < cfg.warmup_rounds else ""), file=sys.stderr)
    return timings


def table(todo: list[Probe], timings: dict[str, Timing]) -> str:
    yardstick = statistics.median(timings[todo[0].label].seconds)
    rows = []
    for probe in todo:
        seconds, mib = timings[probe.label].seconds, timings[probe.label].peak_mib
        median = statistics.median(seconds)
        goal = " and ".join(g for g in ((f"<= {probe.goal_s:g} s" if probe.goal_s else ""),
                                        (f"< {probe.goal_mib:g} MiB" if probe.goal_mib else "")) if g)
        met = (probe.goal_s is None or median <= probe.goal_s) and \
              (probe.goal_mib is None or statistics.median(mib) < probe.goal_mib)
        rows.append([probe.label, f"{median:.2f}", f"{min(seconds):.2f}-{max(seconds):.2f}", f"{median / yardstick:.2f}",
                     f"{statistics.median(mib):.0f}", goal or "-", ("yes" if met else "NO") if goal else "-"])
    return tabulate(rows, headers=["path", "median s", "min-max s", "x yardstick", "peak MiB", "goal", "met"],
                    tablefmt="github", disable_numparse=True)


def run(cfg: StartupSpeedConfig) -> str:
    folder = Path(os.path.expanduser(cfg.folder)) if cfg.folder else Path(tempfile.mkdtemp(prefix="cpb-startup-"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        print(f"writing {cfg.records} records and planning preset {cfg.preset} in {folder} ...", file=sys.stderr)
        preset_runs = write_records(cfg, folder)
        todo = probes(cfg, folder, preset_runs)
        timings = measure(cfg, todo, folder)
        text = (table(todo, timings) + f"\n\n{cfg.rounds} rounds (+{cfg.warmup_rounds} warm-up) on "
                f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} at the end")
        print(text)
        if cfg.output:
            Path(cfg.output).parent.mkdir(parents=True, exist_ok=True)
            Path(cfg.output).write_text(text + "\n")
        return text
    finally:
        if not cfg.folder:
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(__doc__.strip())
        print("\nsettings:", ", ".join(f"{f.name}={f.default}" for f in dataclasses.fields(StartupSpeedConfig)))
        return 0
    guarded(lambda: run(config_from(args)))()
    return 0


if __name__ == "__main__":
    sys.exit(main())
