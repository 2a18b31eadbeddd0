"""Errors a user can fix: `bench.run` prints their one-paragraph message, no traceback."""


class ConfigError(Exception):
    """A configuration that cannot run (what was asked, why it cannot run, how to fix it)."""


class StorageError(ConfigError):
    """A file the harness must write or read back cannot be: a full disk, a read-only or
    unwritable folder, a corrupt checkpoint (names the file and the fix)."""


class OutOfSpaceError(StorageError):
    """No space left on the disk of a file being written (the previous file is kept)."""


class RecordError(StorageError):
    """A result record on disk that cannot be trusted (e.g. marked complete but incomplete)."""


class RunBusyError(ConfigError):
    """The same run (same run id) is already running elsewhere."""
