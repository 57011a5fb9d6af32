"""Time: the only place that reads the clock, and the one ISO 8601 format tostrack writes.

Every time tostrack records is UTC to the second, written like 2026-11-25T06:45:00Z. Durations
("90s", "30m", "1h30m", "1d", "1w") have their one parser here too.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def now() -> datetime:
    """The current moment, timezone-aware UTC."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """2026-11-25T06:45:00Z for a moment (a naive one is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(ISO_FORMAT)


def now_iso() -> str:
    """The current moment as tostrack writes it: 2026-11-25T06:45:00Z."""
    return iso(now())


def parse_iso(text: str) -> datetime:
    """The moment that iso() wrote; ValueError for anything else."""
    return datetime.strptime(text, ISO_FORMAT).replace(tzinfo=UTC)


# -- durations ---------------------------------------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?\s*[smhdw]\s*)+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")


def parse_duration(value: Any) -> float:
    """Seconds from 90, 1.5, "90", "90s", "2m", "1h30m", "1d" or "1w"; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a duration")  # noqa: TRY004 - one error type for callers
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        elif text and _DURATION.fullmatch(text):
            seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(text))
        else:
            raise ValueError(f"{value!r} is not a duration")
    else:
        raise ValueError(f"{type(value).__name__} is not a duration")  # noqa: TRY004
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{value!r} is not a duration of zero or more")
    return seconds
