"""The foundation: the layers of the code, no import cycle, no import hidden in a function,
and import names that cannot collide with another package's (docs/architecture.md)."""
from __future__ import annotations

import ast
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FOLDERS = {"bench": REPO / "bench", "bench.methods": REPO / "methods", "bench.datasets": REPO / "datasets"}

#: From the foundation up; a module may import its own layer's modules and those below, never above.
LAYERS = (
    ("schema", ["bench.schema", "bench.errors"]),
    ("helpers", ["bench.config_checks", "bench.world", "bench.seeding", "bench.atomic_io", "bench.faults", "bench.malloc", "bench.speedups",
                 "bench.lock", "bench.import_names", "bench.observers", "bench.shipped_weights", "bench.device", "bench.records", "bench.distributed",
                 "bench.search_space", "bench.statistics", "bench.curves", "bench.retention", "bench.protocols", "bench.continual"]),
    ("models and data", ["bench.blocks", "bench.clip", "bench.models", "bench.datasets", "bench.data",
                         "bench.input_checks", "bench.schedule", "bench.step", "bench.identity", "bench.data_warnings",
                         "bench.nonfinite"]),
    ("methods", ["bench.methods"]),
    ("engine", ["bench.engine"]),
    ("run wiring", ["bench.app", "bench.planning", "bench.experiment", "bench.grouping_files", "bench.sequential"]),
    ("commands", ["bench.run", "bench.sweep", "bench.report", "bench.report_plots", "bench.report_sequential",
                  "bench.report_page", "bench.comparison_page", "bench.comparison", "bench.speed", "bench.check",
                  "bench.prepare", "bench.pretrain_toy", "bench.help", "bench"]),
)


def project_modules() -> dict[str, Path]:
    modules = {}
    for package, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[0] in ("methods", "datasets") and package == "bench":
                continue
            name = ".".join((package, *parts)).removesuffix(".__init__")
            modules[name] = path
    return modules


def layer_of(module: str) -> int:
    best = None
    for index, (_, members) in enumerate(LAYERS):
        for member in members:
            if module == member or module.startswith(member + "."):
                if best is None or len(member) > len(best[1]):
                    best = (index, member)
    assert best is not None, f"{module} is in no layer: add it to LAYERS and to docs/architecture.md's layers"
    return best[0]


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path) -> list[tuple[str, int, bool]]:
    """(imported project module, line, inside a function) for every import statement."""
    tree = ast.parse(path.read_text())
    known = project_modules()
    found = []

    def visit(node, in_function: bool):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            names = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                target = _absolute(module, child, path.name == "__init__.py")
                names = [f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target
                         for alias in child.names]
            for name in names:
                if name.split(".")[0] == "bench":
                    while name not in known and "." in name:
                        name = name.rsplit(".", 1)[0]
                    found.append((name, child.lineno, in_function))
            visit(child, inside)

    visit(tree, False)
    return found


def type_checking_lines(path: Path) -> set[int]:
    tree = ast.parse(path.read_text())
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            lines |= {n.lineno for n in ast.walk(node) if hasattr(n, "lineno")}
    return lines


def test_every_module_sits_in_a_layer_and_imports_nothing_above_it():
    wrong = []
    for module, path in project_modules().items():
        skip = type_checking_lines(path)
        for imported, line, _ in imports_of(module, path):
            if line not in skip and layer_of(imported) > layer_of(module):
                wrong.append(f"{path.relative_to(REPO)}:{line} {module} ({LAYERS[layer_of(module)][0]}) imports "
                             f"{imported} ({LAYERS[layer_of(imported)][0]})")
    assert not wrong, "\n".join(wrong)


def test_the_schema_imports_nothing_of_the_project():
    path = project_modules()["bench.schema"]
    assert imports_of("bench.schema", path) == []


def test_no_import_cycle_among_project_modules():
    modules = project_modules()
    graph = {m: {i for i, line, _ in imports_of(m, p) if line not in type_checking_lines(p) and i != m}
             for m, p in modules.items()}
    # a package's __init__ importing its own submodules is how a registry fills; that is not a cycle
    # unless a submodule imports the package back, which the edges below keep
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, stack: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + ".") and node in FOLDERS:
                continue  # bench.methods -> bench.methods.coop: the registry filling itself
            if state.get(nxt) == 1:
                cycle.extend(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
                return True
            if state.get(nxt) is None and visit(nxt, stack + [nxt]):
                return True
        state[node] = 2
        return False

    for module in sorted(graph):
        if state.get(module) is None and visit(module, [module]):
            break
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_no_project_import_inside_a_function():
    hidden = [f"{path.relative_to(REPO)}:{line} imports {imported}"
              for module, path in project_modules().items()
              for imported, line, in_function in imports_of(module, path)
              if in_function and "# deferred:" not in path.read_text().splitlines()[line - 1]]
    assert not hidden, "function-level project imports (give a `# deferred: <reason>` comment or move up):\n" \
        + "\n".join(hidden)


def _python(code: str, cwd: Path, pythonpath: list[str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(pythonpath)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.long
def test_every_module_imports_at_top_level_in_a_fresh_interpreter_in_any_order(tmp_path):
    modules = sorted(m for m in project_modules() if not m.endswith("__main__"))
    orders = [modules[::-1], random.Random(1).sample(modules, len(modules))]  # two orders: enough to catch an order-dependent import
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\nprint('ok')"
    for order in orders:
        proc = subprocess.run([sys.executable, "-c", code, *order], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


# ---- import names that cannot collide ----------------------------------------------------------------
STAND_IN = "WHO = 'stand-in'\n"
CHECK = ("import datasets, methods, bench.datasets, bench.methods\n"
         "assert datasets.WHO == 'stand-in' and methods.WHO == 'stand-in', (datasets, methods)\n"
         "assert 'toy' in bench.datasets.DATASETS and 'coop' in bench.methods.METHODS\n"
         "print(bench.datasets.__file__)\n")


@pytest.fixture
def stand_ins(tmp_path) -> Path:
    """Top-level packages `datasets` and `methods` (as Hugging Face's `datasets` would be)."""
    folder = tmp_path / "stand_ins"
    for name in ("datasets", "methods"):
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(STAND_IN)
    return folder


@pytest.mark.parametrize("where", ["elsewhere", "repository root"])
def test_other_datasets_and_methods_packages_do_not_shadow_ours_editable(stand_ins, tmp_path, where):
    cwd = REPO if where == "repository root" else tmp_path
    proc = _python(CHECK, cwd, [str(stand_ins)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().startswith(str(REPO / "datasets"))


def test_our_folder_imported_as_top_level_says_what_it_is(tmp_path):
    proc = _python("import datasets", REPO)
    assert proc.returncode != 0 and "is clip-prompt-bench's bench.datasets" in proc.stderr


def test_other_datasets_and_methods_packages_do_not_shadow_ours_installed(stand_ins, tmp_path):
    wheel, site = tmp_path / "wheel", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(REPO),
                    "-w", str(wheel)], check=True, capture_output=True, timeout=600)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                    *map(str, wheel.glob("*.whl"))], check=True, capture_output=True, timeout=600)
    proc = _python(CHECK, tmp_path, [str(stand_ins), str(site)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().startswith(str(site / "bench" / "datasets"))
