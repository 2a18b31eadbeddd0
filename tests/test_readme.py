"""The README starts small and says what happens: at most 200 lines, its two set-up commands
exactly what .ci/run runs, the toy default's printed table what the toy default prints, and a
link to every page of docs/.  Its commands (and those of docs/) are run or checked by
tests/test_docs.py."""
from __future__ import annotations

import re
import shlex

from helpers import REPO

README = REPO / "README.md"


def section(title: str) -> str:
    return README.read_text().split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_readme_starts_small():
    assert len(README.read_text().splitlines()) <= 200


def test_the_two_set_up_commands_are_what_ci_runs():
    block = re.search(r"```bash\n(.*?)```", section("Set-up in two commands"), flags=re.S).group(1)
    shown = [shlex.split(line, comments=True) for line in block.splitlines()]
    assert shown == [["pip", "install", "-e", ".[test]", "&&", "python", "-m", "bench.run"],
                     ["python", "-m", "pytest", "-q"]]
    ci = [shlex.split(line, comments=True) for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert ["python", "-m", "pip", "install", "-q", "-e", ".[test]"] in ci  # -q: CI's quieter pip
    assert ["python", "-m", "pytest", "-q"] in ci


def printed_table(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"\w+ \(\w+\) on toy", line))
    end = next(i for i, line in enumerate(lines) if line.startswith("trainable parameters:"))
    return lines[start:end + 1]


def test_the_printed_table_is_what_the_toy_default_prints(toy_default_run):
    """The same rows, columns and parameter line; each accuracy within 1 point of the README's
    (training on another CPU type may round differently in the last bits)."""
    _, proc = toy_default_run
    shown, printed = printed_table(section("Set-up in two commands")), printed_table(proc.stdout)
    assert len(shown) == len(printed) and shown[0] == printed[0] and shown[-1] == printed[-1], proc.stdout
    number = re.compile(r"\d+(?:\.\d+)?")
    for ours, theirs in zip(shown[1:-1], printed[1:-1]):
        assert number.sub("#", ours).split() == number.sub("#", theirs).split(), (ours, theirs)
        for a, b in zip(number.findall(ours), number.findall(theirs)):
            assert abs(float(a) - float(b)) <= 1.0, (ours, theirs)


def test_the_readme_links_every_docs_page():
    linked = set(re.findall(r"\]\((docs/[\w-]+\.md)\)", README.read_text()))
    assert linked == {f"docs/{page.name}" for page in (REPO / "docs").glob("*.md")}
