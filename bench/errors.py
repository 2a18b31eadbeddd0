"""Errors a user can fix, and the one guard every command line runs under.

Every such error subclasses `UserError` and carries one paragraph: what was asked, why it
cannot run, how to fix it.  `bench.run`, `bench.sweep`, `bench.report`, `bench.speed` and
`bench.check` run under `guarded`, which prints that paragraph and exits 2 instead of
showing a traceback.
"""
from __future__ import annotations

import functools
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


def guarded(main: F) -> F:
    """Run a command-line entry point; a `UserError` prints its paragraph and exits 2."""
    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as error:
            print(f"\nError: {error}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
    return wrapper
