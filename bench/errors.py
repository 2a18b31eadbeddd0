"""Errors a user can fix: `bench.run` prints their one-paragraph message, no traceback."""


class ConfigError(Exception):
    """A configuration that cannot run (what was asked, why it cannot run, how to fix it)."""
