"""Errors a user can act on. The CLI prints their message and exits with their status."""


class TostrackError(Exception):
    """Base class: the message says what went wrong and what to do."""

    exit_code = 2


class ConfigError(TostrackError):
    """tostrack.toml is missing something, malformed, or names an unknown source."""


class InputError(TostrackError):
    """A file given on the command line cannot be read as a document."""


class StorageError(TostrackError):
    """The workspace cannot be written (full disk, permissions, corrupt database)."""


class LockedError(TostrackError):
    """Another tostrack run holds the workspace lock."""

    exit_code = 75  # EX_TEMPFAIL: cron may simply try again later
