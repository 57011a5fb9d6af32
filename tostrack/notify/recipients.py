"""Who is told: the [[recipients]] and [notify] operators of tostrack.toml (read and checked by
tostrack.config when the workspace is opened)."""

from __future__ import annotations

from tostrack import config
from tostrack.config import Settings

MODES = config.MODES


WEEKDAYS = config.WEEKDAYS


Recipient = config.Recipient


def recipients(settings: Settings | config.Config) -> tuple[Recipient, ...]:
    """The [[recipients]] tables, checked."""
    return workspace_config(settings).recipients


def operators(settings: Settings | config.Config) -> tuple[str, ...]:
    """[notify] operators, checked."""
    return workspace_config(settings).notify.operators


def workspace_config(settings: Settings | config.Config) -> config.Config:
    return settings if isinstance(settings, config.Config) else settings.config
