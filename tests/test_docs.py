"""Every command shown in a ```bash block of the README and of docs/*.md is run here, or, where it
cannot run on a CPU test machine, checked as far as it can be without running it; and the
add-a-method example of docs/architecture.md runs as written.

Commands run in this process (never a fresh Python per command): the toy default run is the
session's `toy_default_run`; reports run on tests/fixtures/records (and on the toy default
run's record), `bench.check` on a generated Office-Home tree standing in for /data/office_home.
A command that is only checked names its reason in ONLY_CHECKED: its arguments are parsed by
the command's own parser and its Hydra overrides composed and checked as `bench.run` does before
anything loads, so a misspelt key, value, preset, option or file name fails here."""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.util
import io
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import torch
from helpers import OH_CLASSES, OH_DOMAINS, REPO, make_imagefolder, make_tasks, runtime_overrides, typed
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from bench import check as check_command, prepare, pretrain_toy, report, sweep
from bench.app import CONFIG_DIR, build_method, compose_command_line, compose_config, check, check_command_line, check_speed_command_line, method_config
from bench.datasets.archives import list_urls
from bench.help import help_text
from bench.methods import METHODS

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FIXTURE_RECORDS = REPO / "tests" / "fixtures" / "records"

#: why a shown command is checked but not run here
ONLY_CHECKED = {
    "pip": "installs packages from an index (network); .ci/run runs the README's on a fresh machine",
    "pytest": "the test suite itself, which .ci/run runs",
    "train": "trains a model: minutes to hours, most on real datasets, OpenAI weights or a GPU",
    "multirun": "a Hydra multirun submitted to SLURM with GPUs: every run's overrides and the launcher's are checked",
    "torchrun": "several GPUs or nodes: torchrun's arguments are parsed by torch.distributed.run's own parser "
                "(tests/bench/test_distributed.py runs 2 CPU processes under torchrun)",
    "srun": "a SLURM allocation of GPUs: the command it starts is checked",
    "sweep-real-data": "plans runs on Office-Home (fingerprinting its images): the preset's grid is expanded and "
                       "every override it produces composed and checked",
    "sweep-trains": "trains every run of the preset: its grid is expanded and every override it produces "
                    "composed and checked (a toy preset's `list`, where shown, runs here)",
    "sweep-submit": "submits to SLURM: the grid is checked and the --param options by submitit's own validation",
    "prepare": "needs the real downloads (GBs): parsed by bench.prepare's parser, each archive named among the "
               "downloads `--urls` lists",
    "speed": "measures for minutes (tests/bench/test_speed.py runs a reduced one): the overrides are checked",
    "pretrain": "2.7 minutes of pretraining; `python -m pytest -m slow` regenerates the file and checks its hash",
}


@dataclasses.dataclass(frozen=True)
class Shown:
    page: str
    line: int
    argv: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: {shlex.join(self.argv)}"


def brace_expanded(word: str) -> list[str]:
    """The shell's brace expansion of one word: `{a,b}_{x,y}.txt` is four words."""
    found = re.search(r"\{([^{}]*,[^{}]*)\}", word)
    if not found:
        return [word]
    return [expanded for choice in found.group(1).split(",")
            for expanded in brace_expanded(word[:found.start()] + choice + word[found.end():])]


def bash_commands(path: Path) -> list[Shown]:
    """The commands of a page's ```bash blocks: continuation lines joined, comments dropped, `&&` split."""
    text, shown = path.read_text(), []
    for block in re.finditer(r"```bash\n(.*?)```", text, flags=re.S):
        first = text[:block.start(1)].count("\n") + 1
        lines = block.group(1).split("\n")
        index = 0
        while index < len(lines):
            start, logical = index, lines[index]
            while logical.endswith("\\"):
                index += 1
                logical = logical[:-1] + " " + lines[index]
            index += 1
            words = [w for word in shlex.split(logical, comments=True) for w in brace_expanded(word)]
            while words:
                cut = words.index("&&") if "&&" in words else len(words)
                shown.append(Shown(str(path.relative_to(REPO)), first + start, tuple(words[:cut])))
                words = words[cut + 1:]
    return shown


SHOWN = [command for page in PAGES for command in bash_commands(page)]


# ---- what each command is checked against ------------------------------------------------------------
def composed_with_launcher(overrides: list[str]) -> None:
    """Compose a command line with Hydra's own config, so that `hydra/launcher=...` and
    `hydra.launcher.*` overrides must exist too (bench.app drops them from what it checks)."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        compose(config_name="config", overrides=overrides, return_hydra_config=True)


def check_multirun(overrides: list[str]) -> None:
    """`bench.run -m`: every combination the sweep expands to, checked as a single run is."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    combinations = [list(c) for batch in BasicSweeper.split_arguments(parsed, None) for c in batch]
    for combination in covering(combinations):
        check_command_line(combination)
    composed_with_launcher(combinations[0])


def covering(lines: list[list[str]]) -> list[list[str]]:
    """A few lines that hold every override of `lines` (greedy set cover): each override a preset's
    grid produces is composed and checked at least once, without composing its every run."""
    left, chosen = {o for line in lines for o in line}, []
    while left:
        best = max(lines, key=lambda line: len(left & set(line)))
        chosen.append(best)
        left -= set(best)
    return chosen


@functools.cache
def checked_grid(preset_name: str, extra: tuple[str, ...]) -> int:
    """Expand a preset's grid as `bench.sweep` does and check a covering set of its command
    lines; of a search, trial 0 of each point chosen (every drawn value lies in its setting's
    range: a search space checks its bounds against the schema at import)."""
    preset = sweep.load_preset(preset_name)
    points = sweep.expand_grid(dataclasses.replace(preset, search=None), list(extra))
    runs = sweep.expand_grid(preset, list(extra))
    for point in covering(points):
        stem = point[:len(point) - len(extra)]
        check_command_line(next(run for run in runs if run[:len(stem)] == stem))
    return len(runs)


def exit_code(function, *args) -> tuple[int, str]:
    """A command's main in this process: its exit status and what it printed."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            return function(*args) or 0, printed.getvalue()
    except SystemExit as stop:
        return (stop.code if isinstance(stop.code, int) else 1), printed.getvalue()


# ---- the commands -----------------------------------------------------------------------------------
def bench_run(args: list[str], context) -> str | None:
    if "--help" in args:
        assert "method" in help_text([a for a in args if a != "--help"])
        return None
    if "-m" in args:
        check_multirun([a for a in args if a != "-m"])
        return "multirun"
    if args[-2:] == ["--cfg", "job"]:  # what --cfg job prints: the composed config, checked
        config = compose_command_line(args[:-2])
        check(config)
        assert f"name: {config.method.name}" in OmegaConf.to_yaml(config)
        return None
    if not args:  # the toy default, run once per session (tests/conftest.py)
        _, proc = context.getfixturevalue("toy_default_run")
        assert proc.returncode == 0, proc.stderr[-3000:]
        return None
    check_command_line(args)
    return "train"


def bench_sweep(args: list[str], context) -> str | None:
    options = sweep.parser().parse_intermixed_args(args)
    preset = sweep.load_preset(options.preset)
    extra = tuple(options.overrides)
    on_toy = compose_config([*preset.fixed, *extra]).dataset.name == "toy"
    if options.action == "launch" and options.cluster != "local":
        import submitit  # noqa: PLC0415 - only these lines need it

        executor = submitit.AutoExecutor(folder=context.getfixturevalue("tmp_path") / "submitit", cluster="debug")
        executor.update_parameters(**sweep.executor_params(options.param))  # an unknown key: NameError
        checked_grid(options.preset, extra)
        return "sweep-submit"
    if not on_toy:
        checked_grid(options.preset, extra)
        return "sweep-real-data"
    if options.action != "list":
        checked_grid(options.preset, extra)
        return "sweep-trains"
    context.getfixturevalue("toy_dataset")  # generated once per session
    code, printed = exit_code(sweep.main, [*args, *runtime_overrides(context.getfixturevalue("tmp_path"))])
    assert code == 0 and "method=" in printed, printed[-3000:]
    return None


class FiguresAskedFor:
    """Stands in for the report's FigureDrawer: the figures are asked for, not drawn (drawing
    them costs seconds a command; tests/bench/test_report.py draws them)."""

    def __init__(self, processes: int):
        self.asked = []

    def draw(self, plot, *args) -> None:
        self.asked.append(plot.__name__)

    def then(self, finish, *args) -> None:
        """A page waits for its figures: with none drawn, none is written (tests/bench/test_report_page.py)."""

    def __enter__(self) -> "FiguresAskedFor":
        return self

    def __exit__(self, *exc_info) -> None:
        return None


def reported(args: tuple[str, ...], runs: Path, out: Path) -> tuple[str, ...]:
    """`bench.report *args` on the records in `runs`, written to `out`: the files it wrote."""
    code, printed = exit_code(report.main, [*args, "--runs", str(runs), "--out", str(out)])
    assert code == 0, printed[-3000:]
    return tuple(sorted(p.name for p in out.iterdir()))


def bench_report(args: list[str], context) -> str | None:
    runs = FIXTURE_RECORDS
    if "toy" in args:  # the toy default run's record
        runs = context.getfixturevalue("toy_default_run")[0] / "results" / "runs"
    context.getfixturevalue("monkeypatch").setattr(report, "FigureDrawer", FiguresAskedFor)
    out = context.getfixturevalue("tmp_path_factory").mktemp("report")
    written = reported(tuple(args), runs, out)
    assert any(name.endswith(".md") for name in written) and any(name.endswith(".csv") for name in written)
    return None


def bench_check(args: list[str], context) -> str | None:
    """Run on a generated Office-Home tree of 3 classes standing in for the real one."""
    root = make_imagefolder(context.getfixturevalue("tmp_path") / "office_home", OH_DOMAINS, OH_CLASSES)
    args = [f"dataset.root={root}" if a.startswith("dataset.root=") else a for a in args]
    code, printed = exit_code(check_command.main, [*args, f"dataset.num_classes={len(OH_CLASSES)}"])
    assert code == 0 and "Real World" in printed, printed[-3000:]
    return None


def bench_prepare(args: list[str], context) -> str | None:
    options = prepare.parser().parse_args(args)
    if options.urls:
        code, printed = exit_code(prepare.main, args)
        assert code == 0 and all(line in printed for line in list_urls(options.name)), printed[-3000:]
        return None
    downloads = "\n".join(list_urls(options.name))
    unnamed = [a for a in options.archive
               if not re.search(rf"(?<![\w-]){re.escape(Path(a).name.split('.')[0])}(?![\w-])", downloads)]
    assert options.root and not unnamed, f"not among {options.name}'s downloads: {unnamed}"
    return "prepare"


def bench_speed(args: list[str], context) -> str | None:
    from bench.speed.__main__ import FLAGS  # noqa: PLC0415 - the command's own flag table

    check_speed_command_line([FLAGS.get(a, a) for a in args])
    return "speed"


def bench_speed_startup(args: list[str], context) -> str | None:
    from bench.speed import startup  # noqa: PLC0415 - the command's own settings

    startup.config_from(args)
    return "speed"


def bench_speed_data_loading(args: list[str], context) -> str | None:
    from bench.speed import data_loading  # noqa: PLC0415 - the command's own settings

    data_loading.config_from(args)
    return "speed"


def bench_pretrain_toy(args: list[str], context) -> str | None:
    pretrain_toy.parse_args(args)
    return "pretrain"


BENCH = {"bench.run": bench_run, "bench.sweep": bench_sweep, "bench.report": bench_report,
         "bench.check": bench_check, "bench.prepare": bench_prepare, "bench.speed": bench_speed,
         "bench.pretrain_toy": bench_pretrain_toy, "bench.speed.startup": bench_speed_startup,
         "bench.speed.data_loading": bench_speed_data_loading}


def python_module(argv: list[str], context) -> str | None:
    assert argv[:2] == ["python", "-m"], argv
    module, args = argv[2], argv[3:]
    if module == "pytest":
        assert set(args) <= {"-q"}, args
        return "pytest"
    assert module in BENCH, f"no check for `python -m {module}`: add one to tests/test_docs.py"
    return BENCH[module](args, context)


def pip(argv: list[str], context) -> str:
    assert argv[:3] == ["pip", "install", "-e"], argv
    extras = re.fullmatch(r"\.\[(.+)\]", argv[3]).group(1).split(",")
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras) <= set(declared), extras
    return "pip"


def torchrun(argv: list[str], context) -> str:
    from torch.distributed.run import get_args_parser  # noqa: PLC0415 - torch's own parser

    options = get_args_parser().parse_args(argv[1:])
    assert options.module and options.training_script in BENCH, argv
    BENCH[options.training_script](list(options.training_script_args), context)
    return "torchrun"


def srun(argv: list[str], context) -> str:
    start = argv.index("python")
    assert all(a.startswith("--") for a in argv[1:start]), argv
    python_module(argv[start:], context)
    return "srun"


PROGRAMS = {"python": python_module, "pip": pip, "torchrun": torchrun, "srun": srun}


def run_or_check(argv: list[str], context) -> str | None:
    """Run a shown command here (None) or check it and return why it is only checked."""
    assert argv[0] in PROGRAMS, f"no check for `{argv[0]}`: add one to tests/test_docs.py"
    return PROGRAMS[argv[0]](argv, context)


# ---- the tests ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shown", SHOWN, ids=str)
def test_every_shown_command_runs_or_is_checked(shown, request):
    reason = run_or_check(list(shown.argv), request)
    assert reason is None or reason in ONLY_CHECKED, reason


def test_every_page_with_a_bash_block_yields_its_commands():
    pages = {str(p.relative_to(REPO)) for p in PAGES if "```bash" in p.read_text()}
    assert pages == {shown.page for shown in SHOWN} and len(SHOWN) >= 40


@pytest.mark.parametrize("argv", [
    "python -m bench.run method=coop train.epoch=1",
    "python -m bench.run method=coops",
    "python -m bench.run -m method=coop,nosuch seed=1,2",
    "python -m bench.run -m method=coop hydra/launcher=slurm hydra.launcher.gpus_per_nod=4",
    "python -m bench.sweep officehome_papers list",
    "python -m bench.sweep toy_smoke lists",
    "python -m bench.sweep officehome_paper launch --param slurm_partitio=gpu",
    "python -m bench.report --baselines coop:mt",
    "python -m bench.prepare officehome --archive OfficeHome.zip --root /data/office_home",
    "python -m bench.speed speed.method=coop",
    "torchrun --standalone --nproc_per_nodes=4 -m bench.run method=full",
    "python -m bench.unknown",
], ids=str)
def test_a_misspelt_command_fails_its_check(argv, request):
    with pytest.raises((Exception, SystemExit)):  # noqa: B017 - each command's own error type
        with contextlib.redirect_stderr(io.StringIO()):
            run_or_check(shlex.split(argv), request)


def test_the_add_a_method_example_registers_builds_and_trains(tmp_path, tiny_clip):
    page = (REPO / "docs" / "architecture.md").read_text()
    code = next(block for block in re.findall(r"```python\n(.*?)```", page, flags=re.S) if "register_method" in block)
    path = tmp_path / "mycoop.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location("docs_mycoop", path)
    try:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
        assert METHODS["mycoop"].label == "MyCoOp"
        assert typed(method_config, {"name": "mycoop"}).n_ctx == 4
        tasks = make_tasks(2)
        for mode, sets in (("mt", 1), ("st", 2)):
            method = build_method(typed(method_config, {"name": "mycoop", "mode": mode}), tiny_clip, tasks)
            assert sum(p.numel() for _, p in method.trainable_parameters()) == sets * 4 * tiny_clip.text_width
            logits = method(torch.randn(2, 3, 64, 64), torch.tensor([0, 1]))
            logits[torch.isfinite(logits)].sum().backward()
            assert method.ctx.grad is not None and method.ctx.grad.abs().sum() > 0
    finally:
        METHODS.pop("mycoop", None)


def heading_anchors(page: Path) -> set[str]:
    """The anchors GitHub gives a page's headings (lower case, punctuation dropped, spaces -> -)."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
            for title in re.findall(r"^#+ (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_link_and_anchor_in_the_docs_resolves(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"\w+://", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: {target} does not exist"
        assert not anchor or anchor in heading_anchors(resolved), f"{page.name}: no heading for #{anchor}"
