"""`python -m bench.sweep PRESET launch|status|list|run|cancel`: non-blocking sweeps on submitit.

A preset (configs/sweep/<name>.yaml) is a grid: `fixed` overrides for every run and a
`grid` of axes whose values are override strings (`method=coop method.mode=st`); the
runs are the cartesian product.  `launch` submits every run that has no complete result
record yet as one submitit job array (SLURM, or local processes) and returns at once;
launching again only submits what is missing (runs are identified by the hash of their
resolved config, as in DomainBed).  `status` says which runs are complete, running,
queued or failed; `cancel` stops its running and pending jobs.  A local sweep (`--cluster
local`) runs at most `--parallel` runs at once (default: what the machine can run).  Each job
is `SweepJob`: a submitit Checkpointable that calls the same
`bench.experiment.run_experiment` as a plain run, and on time-out or preemption requeues itself
and resumes from the run's last checkpoint.
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

import submitit
from omegaconf import OmegaConf

from bench.app import CONFIG_DIR, chosen_method, compose_command_line, compose_config
from bench.atomic_io import write_json_atomic
from bench import faults
from bench.errors import ConfigError, RecordError, RunBusyError, UserError, guarded, raise_on_signal
from bench.lock import holder, lock_path, process_alive
from bench.methods import METHODS
from bench.planning import config_cache_dir, plan_runs
from bench.protocols import UNSEEN_TARGET_MODES
from bench.records import load_complete_record
from bench.schema import SearchSettings, SweepPreset
from bench.search_space import as_overrides
from bench.config_checks import check_section, instantiate

log = logging.getLogger("bench.sweep")


class SweepError(UserError):
    """A sweep that cannot be launched as asked (one paragraph: what, why, how to fix)."""


def load_preset(name: str) -> SweepPreset:
    """A preset by name (configs/sweep/<name>.yaml) or by the path of a YAML file, checked."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else Path(CONFIG_DIR) / "sweep" / f"{name}.yaml"
    if not path.exists():
        choices = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise SweepError(f"Unknown sweep preset '{name}'. Presets in configs/sweep/: {', '.join(choices)}. "
                         "Add a YAML there with `fixed:` overrides and a `grid:` of override lists.")
    try:
        values = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception as error:  # noqa: BLE001 - yaml's and OmegaConf's many error types for a bad file
        detail = " ".join(str(error).split())[:300]
        raise SweepError(f"Sweep preset {path} cannot be read as YAML ({type(error).__name__}: {detail}). Fix the "
                         "file: a preset is a mapping with `name`, a `fixed` list of overrides and a `grid` of "
                         "axes (see configs/sweep/toy_smoke.yaml).") from None
    if not isinstance(values, dict):
        raise SweepError(f"Sweep preset {path} is not a mapping of name, fixed and grid (see "
                         "configs/sweep/toy_smoke.yaml).")
    return preset_from(values, str(path))


def preset_from(values: dict, source: str) -> SweepPreset:
    """The `SweepPreset` of a preset's YAML mapping (`source`: where it came from, for the
    errors): every key known, `name`, `fixed` and `grid` given, each axis a list (or `all` for
    `method`), `search` either `paper` or {trials, seed}."""
    missing = [key for key in ("name", "fixed", "grid") if key not in values]
    if missing:
        raise SweepError(f"Sweep preset {source} lacks {', '.join(missing)}: a preset has a `name`, a list "
                         "of `fixed` overrides and a `grid` of axes (see configs/sweep/toy_smoke.yaml).")
    search = values.get("search", "paper")
    search = None if search == "paper" else search
    if search is not None:  # checked first, for a message of its own
        try:
            if not isinstance(search, dict) or set(search) != {"trials", "seed"}:
                raise ConfigError("it must have exactly the keys trials and seed")
            check_section(OmegaConf.create(search), SearchSettings, "search.")
        except ConfigError as error:
            raise SweepError(f"Sweep preset {values['name']!r} has search: {search!r}, which is neither `paper` "
                             "nor `{trials: K, seed: S}` with integers K >= 1 and S >= 0 (see configs/sweep/"
                             f"toy_search.yaml): {error}") from None
    try:
        node = OmegaConf.create({**values, "search": search})
        check_section(node, SweepPreset, "")
        preset = instantiate(SweepPreset, OmegaConf.to_container(node))
    except ConfigError as error:
        raise SweepError(f"Sweep preset {source}: {error}") from None
    bad_axes = [key for key, axis in preset.grid.items()
                if not isinstance(axis, list) and not (key == "method" and axis == "all")]
    if bad_axes:
        raise SweepError(f"Sweep preset {source}: the grid axis {', '.join(bad_axes)} is not a list of values "
                         "(only `method` may be `all`: every registered method and mode).")
    return preset


def every_method_and_mode(protocol: str = "multitask") -> list[str]:
    """`method: all` in a preset: every registered method in each of its modes (under
    protocol=leave_one_out: each mode that can serve the held-out domain, bench/protocols.py;
    under protocol=sequential with the overrides that spare a mode a warm-up on every domain,
    `MethodConfig.without_warmup_on_every_task`: MmAP grouped's one group)."""
    return [" ".join([f"method={name}", *([f"method.mode={mode}"] if len(cls.modes) > 1 else []),
                      *(cls.config_class.without_warmup_on_every_task(mode) if protocol == "sequential" else ())])
            for name, cls in METHODS.items() for mode in cls.modes
            if protocol != "leave_one_out" or mode in UNSEEN_TARGET_MODES]


def trials(overrides: list[str], method: str, search: SearchSettings) -> list[list[str]]:
    """The search trials of one grid point that runs `method`: trial t adds the settings that
    method's search space draws for (seed, method, t) (bench/search_space.py) and
    `runtime.trial=t`; a method with nothing to tune (an empty space) runs once, as trial 0."""
    space = METHODS[method].search_space
    return [overrides + as_overrides(space.draw(search.seed, method, t)) + [f"runtime.trial={t}"]
            for t in range(search.trials if space else 1)]


def expand_grid(preset: SweepPreset, extra: list[str] = ()) -> list[list[str]]:
    """Every run of the preset as a list of Hydra overrides (preset order, then a search
    trial's drawn settings, extra last).  The protocol (for `method: all`) is what Hydra
    composes from the fixed and extra overrides; each point's method (for its search space) the
    group Hydra's parser reads from its overrides (`bench.app.chosen_method`)."""
    extra = list(extra)
    base = compose_command_line([*preset.fixed, *extra])  # the protocol and the default method, as Hydra composes them
    grid = {key: every_method_and_mode(base.protocol) if key == "method" and values == "all" else values
            for key, values in preset.grid.items()}
    # a value with `=` is overrides (`method=coop method.mode=st`); one without is its key's value, kept
    # whole ("Real World" is one domain, quoted for Hydra)
    axes = [[str(v).split() if "=" in str(v) else [f'"{v}"' if " " in str(v) else str(v)] for v in values]
            for values in grid.values()]
    keys = list(grid)
    points = []
    for combination in itertools.product(*axes):
        overrides = list(preset.fixed)
        for key, value in zip(keys, combination):
            overrides += [v if "=" in v else f"{key}={v}" for v in value]
        points.append(overrides)
    if preset.search is None:
        return [point + extra for point in points]
    methods = [chosen_method(point + extra) or str(base.method.name) for point in points]
    return [run + extra for point, method in zip(points, methods) for run in trials(point, method, preset.search)]


def sweep_dir(cfg_results_dir: str, name: str) -> Path:
    return Path(cfg_results_dir).parent / "sweeps" / name


class SweepJob(submitit.helpers.Checkpointable):
    """One run of a sweep; submitit pickles it, and requeues it on time-out/preemption."""

    def __call__(self, overrides: list[str]) -> dict:
        from bench.experiment import run_experiment  # deferred: torch and open_clip, in the job only (not status)

        logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
        record = run_experiment(compose_config(overrides))
        return {"run_id": record.run_id, "test_average": record.test_average}


class SweepDrain(submitit.helpers.Checkpointable):
    """A local sweep's worker: one of `--parallel` processes that run the sweep's missing runs
    in turn, each from its own starting point; a run another worker computes is skipped (its
    run lock), a finished one is read back (its record), so together they drain the list."""

    def __call__(self, runs: list[list[str]], threads: int) -> dict:
        # submitit's job environment bypasses SIGTERM (on SLURM it precedes a requeue); a local
        # job has no requeue, so `kill` and `bench.sweep PRESET cancel` stop it like Ctrl-C: from
        # the first line, not after the seconds of importing torch
        signal.signal(signal.SIGTERM, raise_on_signal)
        try:
            _die_with_controller()
            import torch  # deferred: a worker trains; `status`, `list` and `cancel` never import torch

            logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
            torch.set_num_threads(threads)
            return drain(runs)
        except KeyboardInterrupt as stop:  # submitit records an Exception as the job's error, not this
            raise JobInterrupted(f"Interrupted by {stop}; `bench.sweep PRESET launch` resumes it") from None


def _die_with_controller() -> None:
    """SIGTERM this worker when its submitit controller dies (Linux's parent-death signal): a
    `kill -9` of the controller, whose pid is the job id `status` watches, then stops the worker
    at its last checkpoint instead of leaving it training runs that `status` calls FAILED."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes  # deferred: Linux only

    parent = os.getppid()
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent:  # the controller died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


class JobInterrupted(RuntimeError):
    """A local sweep job stopped by SIGTERM or SIGINT (its last checkpoint is kept)."""


def drain(runs: list[list[str]]) -> dict[str, int]:
    """Run each of `runs` (override lists) that is not complete and not running elsewhere."""
    from bench.experiment import run_experiment  # deferred: torch and open_clip, for the runs only

    counts = {"complete": 0, "busy elsewhere": 0, "failed": 0}
    for index, overrides in enumerate(runs, start=1):
        faults.before_run(index)
        try:
            run_experiment(compose_config(overrides))
            counts["complete"] += 1
        except RunBusyError:
            counts["busy elsewhere"] += 1
        except UserError as error:  # reported, and the sweep goes on; `status` lists it as FAILED
            print(f"run {' '.join(overrides)} failed: {error}", file=sys.stderr)
            counts["failed"] += 1
    return counts


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def local_parallelism(setting: str, threads_per_run: int) -> int:
    """`--parallel`: a number, or auto = the visible GPUs (one run each), else the usable cores
    // `--threads-per-run` (at least 1)."""
    if setting != "auto":
        if not setting.isdigit() or int(setting) < 1:
            raise SweepError(f"--parallel {setting}: pass a number of runs at once (1, 2, ...) or auto.")
        return int(setting)
    import torch  # deferred: only a launch counts GPUs

    return torch.cuda.device_count() or max(1, usable_cores() // threads_per_run)


def plan(name: str, extra: list[str]) -> tuple[list[dict], Path]:
    preset = load_preset(name)
    name = preset.name
    runs = []
    results_dir = None
    command_lines = expand_grid(preset, [*extra, f"runtime.sweep={name}"])
    for overrides, run in zip(command_lines, plan_runs(command_lines)):
        results_dir = run.cfg.runtime.results_dir
        runs.append({"run_id": run.run_id, "method": run.cfg.method.name, "mode": run.cfg.method.mode,
                     "dataset": run.cfg.dataset.name, "seed": run.cfg.seed, "overrides": overrides,
                     "record": str(run.record_path), "checkpoint_dir": str(run.cfg.runtime.checkpoint_dir)})
    return runs, sweep_dir(results_dir or "results/runs", name)


def run_here(name: str, extra: list[str]) -> dict[str, int]:
    """Run the sweep's missing runs in this process, one after another (a machine without a
    scheduler).  Several such processes may share a sweep: each run's lock sends a process
    past the runs another one is computing, so together they drain it like a work queue."""
    runs, folder = plan(name, extra)
    write_json_atomic(runs, folder / "expected.json")
    counts = drain([run["overrides"] for run in runs])
    print(f"sweep {folder.name}: " + ", ".join(f"{n} {what}" for what, n in counts.items()))
    return counts


def launches_file(name: str) -> Path:
    """The launches of a preset, each with its overrides, kept outside any results folder (an
    override may move that folder): `<runtime.cache_dir>/sweep-launches/<preset>.json`."""
    return config_cache_dir().parent / "sweep-launches" / f"{Path(name).stem}.json"


def remember_launch(name: str, extra: list[str]) -> None:
    path = launches_file(name)
    try:
        launches = json.loads(path.read_text())
    except (OSError, ValueError):
        launches = []
    launches = [entry for entry in launches if entry["overrides"] != list(extra)]
    launches.append({"overrides": list(extra), "launched": time.strftime("%Y-%m-%d %H:%M:%S")})
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(launches, path)
    except (OSError, UserError):
        log.warning("Could not note this launch in %s: status and cancel need its overrides again.", path)


def launch_overrides(name: str, extra: list[str]) -> list[str]:
    """The overrides `status` and `cancel` look at: `extra` when given; without any, those of the
    preset's launch if it was launched only with overrides (the latest, said on the console), so
    a sweep launched with `seed=3` is found again by `status` alone."""
    if extra:
        return extra
    try:
        launches = json.loads(launches_file(name).read_text())
    except (OSError, ValueError):
        return extra
    if not launches or any(entry["overrides"] == [] for entry in launches):
        return extra
    latest = launches[-1]
    others = [" ".join(entry["overrides"]) for entry in launches[:-1]]
    print(f"sweep {Path(name).stem}: the launch of {latest['launched']} with {' '.join(latest['overrides'])} "
          f"(it was launched with overrides only; pass overrides to choose"
          + (f" another: {'; '.join(others)})" if others else " others)"))
    return list(latest["overrides"])


def launch(name: str, extra: list[str], cluster: str | None, executor_params: dict,
           parallel: str = "auto", threads_per_run: int = 4) -> list[dict]:
    runs, folder = plan(name, extra)
    remember_launch(name, extra)
    name = folder.name
    write_json_atomic(runs, folder / "expected.json")
    jobs_file = folder / "jobs.json"
    known = json.loads(jobs_file.read_text()) if jobs_file.exists() else {}
    states = {r["run_id"]: run_state(r, known, folder) for r in runs}
    busy = [r for r in runs if states[r["run_id"]][0] in ("RUNNING", "PENDING")]
    todo = [r for r in runs if states[r["run_id"]][0] not in ("COMPLETE", "RUNNING", "PENDING")]
    # UNKNOWN (SLURM forgot the job) is relaunched: if it still runs, its run lock stops the copy
    print(f"sweep {name}: {len(runs)} runs, {len(runs) - len(todo) - len(busy)} complete, "
          f"{len(busy)} running or pending (left alone), submitting {len(todo)}")
    if not todo:
        return []
    # requeues on time-out/preemption before a job counts as failed
    executor = submitit.AutoExecutor(folder=folder / "submitit" / "%j", cluster=cluster,
                                     slurm_max_num_timeout=20)
    params = {"timeout_min": 720, **executor_params}
    if params.get("gpus_per_node"):  # one process per GPU, as configs/hydra/launcher/slurm.yaml
        params.setdefault("tasks_per_node", max(1, int(params["gpus_per_node"])))
    executor.update_parameters(name=f"cpb-{name}", **params)
    if executor.cluster == "local":  # at most `parallel` runs at once, each worker draining the list
        workers = min(local_parallelism(parallel, threads_per_run), len(todo))
        threads = max(1, usable_cores() // workers)
        lists = [[r["overrides"] for r in todo[w:] + todo[:w]] for w in range(workers)]
        drains = executor.map_array(SweepDrain(), lists, [threads] * workers)
        print(f"  {workers} local worker(s) at once, {threads} thread(s) each (--parallel, --threads-per-run)")
        jobs = [drains[index % workers] for index in range(len(todo))]
    else:
        jobs = executor.map_array(SweepJob(), [r["overrides"] for r in todo])
    for run, job in zip(todo, jobs):
        known[run["run_id"]] = {"job_id": job.job_id, "cluster": executor.cluster}
        print(f"  {job.job_id}  {run['run_id']}  {' '.join(run['overrides'])}")
    write_json_atomic(known, jobs_file)
    return [{"run": r, "job": j} for r, j in zip(todo, jobs)]


SLURM_STATES = {"PENDING": "PENDING", "REQUEUED": "PENDING", "REQUEUE_HOLD": "PENDING", "REQUEUE_FED": "PENDING",
                "CONFIGURING": "PENDING", "SUSPENDED": "PENDING", "RESIZING": "PENDING",
                "RUNNING": "RUNNING", "COMPLETING": "RUNNING", "STAGE_OUT": "RUNNING", "SIGNALING": "RUNNING"}


def run_state(run: dict, jobs: dict, folder: Path) -> tuple[str, str]:
    """(COMPLETE | RUNNING | PENDING | FAILED | NOT SUBMITTED | UNKNOWN, detail) for one run.

    A valid record decides COMPLETE.  Then the scheduler: SLURM's job state, or for a local
    job its process (the job id is its pid) and result file.  The run lock (bench/lock.py)
    adds RUNNING for a run started outside the sweep; a lock left on another host by a job
    the scheduler says has ended is stale and does not keep the run from being relaunched."""
    try:
        if load_complete_record(Path(run["record"])) is not None:
            return "COMPLETE", ""
    except RecordError as error:
        return "FAILED", str(error).split(". ")[0]
    state, detail = _job_state(jobs[run["run_id"]], folder) if run["run_id"] in jobs else ("NOT SUBMITTED", "")
    owner = holder(lock_path(run["checkpoint_dir"], run["run_id"]))
    if state == "RUNNING" and jobs[run["run_id"]]["cluster"] == "local" and owner is None:
        return "PENDING", f"queued in local worker {jobs[run['run_id']]['job_id']}"  # a worker's later run
    if state in ("RUNNING", "PENDING"):
        return state, detail
    if owner is not None and (state == "NOT SUBMITTED" or owner.get("host") == socket.gethostname()):
        return "RUNNING", f"pid {owner.get('pid')} on {owner.get('host')} (run lock)"
    return state, detail


def _job_state(info: dict, folder: Path) -> tuple[str, str]:
    job_folder = folder / "submitit" / "%j"
    if info["cluster"] != "slurm":
        return _local_state(submitit.LocalJob(job_folder, info["job_id"]), info["job_id"])
    try:
        state = submitit.SlurmJob(job_folder, info["job_id"]).state.split()[0]
    except Exception:  # noqa: BLE001 - a job the scheduler forgot is reported, not fatal
        return "UNKNOWN", f"SLURM has no state for job {info['job_id']}"
    if state in SLURM_STATES:
        return SLURM_STATES[state], f"job {info['job_id']}"
    if state.upper() == "UNKNOWN":
        return "UNKNOWN", f"SLURM has no state for job {info['job_id']}"
    return "FAILED", f"job {info['job_id']} {state.lower()} without a record"


def _local_state(job, job_id: str) -> tuple[str, str]:
    """A local job: its process (the job id is its pid) and its result file."""
    result = job.paths.result_pickle
    if result.exists():
        try:
            outcome, value = submitit.core.utils.pickle_load(result)
        except Exception:  # noqa: BLE001 - being written right now
            return "RUNNING", f"process {job_id}"
        if outcome == "error":
            return "FAILED", f"process {job_id}: " + str(value).strip().splitlines()[-1][:200]
        return "FAILED", f"process {job_id} ended without a record"
    if job_id.isdigit() and process_alive(int(job_id)):
        return "RUNNING", f"process {job_id}"
    return "FAILED", f"process {job_id} is gone without a result (killed?)"


def cancel(name: str, extra: list[str]) -> list[str]:
    """Stop the sweep's running and pending jobs: SLURM's `scancel`, or SIGTERM to a local job
    (it stops at once with its last checkpoint kept; `launch` resumes it).  The job ids stopped."""
    runs, folder = plan(name, launch_overrides(name, extra))
    jobs_file = folder / "jobs.json"
    jobs = json.loads(jobs_file.read_text()) if jobs_file.exists() else {}
    stopped: list[str] = []
    for run in runs:
        info = jobs.get(run["run_id"])
        if info is None or info["job_id"] in stopped or run_state(run, jobs, folder)[0] not in ("RUNNING", "PENDING"):
            continue
        if info["cluster"] == "slurm":
            submitit.SlurmJob(folder / "submitit" / "%j", info["job_id"]).cancel(check=False)
        elif info["job_id"].isdigit():
            try:
                os.kill(int(info["job_id"]), signal.SIGTERM)  # submitit's controller forwards it to the run
            except ProcessLookupError:
                continue
        stopped.append(info["job_id"])
    print(f"sweep {folder.name}: cancelled {len(stopped)} job(s)" + (f": {', '.join(stopped)}" if stopped else ""))
    return stopped


def status(name: str, extra: list[str]) -> dict[str, list[dict]]:
    runs, folder = plan(name, launch_overrides(name, extra))
    jobs_file = folder / "jobs.json"
    jobs = json.loads(jobs_file.read_text()) if jobs_file.exists() else {}
    states: dict[str, list[dict]] = {}
    for run in runs:
        state, detail = run_state(run, jobs, folder)
        states.setdefault(state, []).append({**run, "detail": detail})
    for state, members in sorted(states.items()):
        print(f"{state:>16}: {len(members)}")
        if state != "COMPLETE":
            for run in members:
                print(f"{'':>18}{run['run_id']}  {run['detail'] + '  ' if run['detail'] else ''}"
                      f"{' '.join(run['overrides'])}")
    print(summary_line(states))
    return states


#: how `status` counts each state in its closing line
SUMMARY_OF = {"COMPLETE": "complete", "RUNNING": "running", "PENDING": "running", "FAILED": "failed",
              "UNKNOWN": "failed", "NOT SUBMITTED": "missing"}


def summary_line(states: dict[str, list[dict]]) -> str:
    """`N runs: a complete, b running, c failed, d missing; about T left` where T is the mean
    wall time of the complete runs (from their records) times the runs not yet complete (on one
    worker; divide by the number of parallel jobs)."""
    counts = {"complete": 0, "running": 0, "failed": 0, "missing": 0}
    for state, members in states.items():
        counts[SUMMARY_OF.get(state, "failed")] += len(members)
    walls = []
    for run in states.get("COMPLETE", []):
        record = load_complete_record(Path(run["record"]))
        if record is not None and record.wall_time_s is not None:
            walls.append(record.wall_time_s)
    left = sum(counts.values()) - counts["complete"]
    if not left:
        estimate = "nothing left"
    elif walls:
        estimate = f"about {human_duration(left * sum(walls) / len(walls))} left on one worker " \
                   f"(mean wall time {human_duration(sum(walls) / len(walls))} of {len(walls)} finished runs)"
    else:
        estimate = "time left unknown until a run finishes"
    return (f"{sum(counts.values())} runs: " + ", ".join(f"{n} {what}" for what, n in counts.items())
            + f"; {estimate}")


def human_duration(seconds: float) -> str:
    """42 s, 3.5 min, 2.1 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def parser() -> argparse.ArgumentParser:
    """The command line of `python -m bench.sweep` (the docs' commands are parsed by it in tests)."""
    parser = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("preset", help="a sweep preset in configs/sweep/ (e.g. toy_smoke, officehome_paper)")
    parser.add_argument("action", choices=["launch", "status", "list", "run", "cancel"], nargs="?",
                        default="status",
                        help="launch: submit the missing runs (submitit) | status | list | run: run the "
                             "missing runs here, one after another | cancel: stop the running and pending jobs")
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides applied to every run")
    parser.add_argument("--cluster", default=None, choices=("slurm", "local", "debug"),
                        help="slurm | local | debug (default: slurm if available)")
    parser.add_argument("--param", action="append", default=[],
                        help="submitit parameter KEY=VALUE, e.g. --param slurm_partition=gpu --param gpus_per_node=1")
    parser.add_argument("--parallel", default="auto",
                        help="local sweeps: runs at once (default auto: the visible GPUs, else the usable "
                             "cores // --threads-per-run)")
    parser.add_argument("--threads-per-run", type=int, default=4,
                        help="local sweeps on CPU: the cores one run uses, for --parallel auto (default 4)")
    return parser


def executor_params(items: list[str]) -> dict:
    """The submitit parameters of `--param KEY=VALUE` options (digits as integers)."""
    params = {}
    for item in items:
        key, _, value = item.partition("=")
        params[key] = int(value) if value.isdigit() else value
    return params


@guarded
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_intermixed_args(argv)  # overrides before or after the options
    if args.action == "list":
        runs, _ = plan(args.preset, args.overrides)
        for run in runs:
            print(f"{run['run_id']}  {' '.join(run['overrides'])}")
    elif args.action == "status":
        status(args.preset, args.overrides)
    elif args.action == "run":
        run_here(args.preset, args.overrides)
    elif args.action == "cancel":
        cancel(args.preset, args.overrides)
    else:
        launch(args.preset, args.overrides, args.cluster, executor_params(args.param), args.parallel,
               args.threads_per_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
