"""Errors a user can fix, and the one guard every command line runs under.

Every such error subclasses `UserError` and carries one paragraph: what was asked, why it
cannot run, how to fix it.  `bench.run`, `bench.sweep`, `bench.report`, `bench.speed` and
`bench.check` run under `guarded`, which prints that paragraph and exits 2 instead of
showing a traceback.
"""
from __future__ import annotations

import functools
import os
import shlex
import signal
import sys
from typing import Callable, TypeVar

EXIT_USER_ERROR = 2
F = TypeVar("F", bound=Callable)


class UserError(Exception):
    """A problem the user can fix; its message is one self-contained paragraph."""


class ConfigError(UserError):
    """A configuration that cannot run (what was asked, why it cannot run, how to fix it)."""


class StorageError(UserError):
    """A file the harness must write or read back cannot be: a full disk, a read-only or
    unwritable folder, a corrupt checkpoint (names the file and the fix)."""


class OutOfSpaceError(StorageError):
    """No space left on the disk of a file being written (the previous file is kept)."""


class RecordError(StorageError):
    """A result record on disk that cannot be trusted (e.g. marked complete but incomplete)."""


class RunBusyError(UserError):
    """The same run (same run id) is already running elsewhere."""


class Interrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C) or SIGTERM (`kill`, a scheduler) stopped the command; the training loop
    adds `where` it stopped and which checkpoint is kept (bench/engine.py)."""

    def __init__(self, signal_name: str = "SIGINT", where: str = ""):
        super().__init__(f"{signal_name} {where}".strip())  # what a job's error file shows
        self.signal_name, self.where = signal_name, where


def raise_on_signal(signum: int, frame) -> None:
    """A signal handler: SIGTERM (or SIGINT) raises `Interrupted`, so the run unwinds like Ctrl-C."""
    raise Interrupted(signal.Signals(signum).name)


#: options that make a relaunch start over: left out of the command that resumes an interrupted run
_START_OVER = ("runtime.resume=false", "runtime.skip_done=false")


def resume_command() -> str:
    """The command line of this process, as the command that resumes it; in a worker that
    torchrun started (TORCHELASTIC_RUN_ID set), the torchrun command, which restarts every rank."""
    argv = list(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    argv[0] = "python" if "python" in argv[0] else argv[0]
    argv = [a for a in argv if a.lower() not in _START_OVER]
    if "TORCHELASTIC_RUN_ID" in os.environ and "-m" in argv:  # torchrun runs `python -u -m bench.run ...`
        launcher = ["torchrun", f"--nproc_per_node={os.environ['LOCAL_WORLD_SIZE']}"]
        nodes = int(os.environ["GROUP_WORLD_SIZE"]) if "GROUP_WORLD_SIZE" in os.environ else 1
        if nodes > 1:  # its rendezvous options are the launcher's own, not visible to a worker
            launcher += [f"--nnodes={nodes}", "<the same rendezvous options>"]
        return shlex.join(launcher + argv[argv.index("-m"):])
    return shlex.join(argv)


def interrupted_line(stop: KeyboardInterrupt) -> str:
    """The one line an interrupted command prints: where it stopped, what is kept, how to resume."""
    name = stop.signal_name if isinstance(stop, Interrupted) else "SIGINT"
    where = stop.where if isinstance(stop, Interrupted) and stop.where else (
        "outside the training loop; every checkpoint already written is kept")
    return f"Interrupted by {name} {where}. Resume with: {resume_command()}"


def guarded(main: F) -> F:
    """Run a command-line entry point; a `UserError` prints its paragraph and exits 2; SIGINT and
    SIGTERM print one line (`interrupted_line`) and exit 128 + the signal number, as a shell does."""
    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as error:
            print(f"\nError: {error}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt as stop:
            print(f"\n{interrupted_line(stop)}", file=sys.stderr)
            name = stop.signal_name if isinstance(stop, Interrupted) else "SIGINT"
            sys.exit(128 + signal.Signals[name].value)
    return wrapper
