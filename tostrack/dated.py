"""A folder of dated versions: one file per capture, named by its time (2024-05-02T00-30-06Z.md).

Read by `tostrack import` (history.py) and by replay.py; kept apart from both so neither
imports the other for it.
"""

from __future__ import annotations

import re
from pathlib import Path

from tostrack.media import SUFFIX_TYPES

_STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2})-(\d{2})-(\d{2})Z")


def dated_files(directory: Path) -> list[tuple[str, Path]]:
    """(capture time ISO, path) for each file named like 2024-05-02T00-30-06Z.md, oldest first."""
    found = []
    for path in sorted(directory.iterdir()):
        match = _STAMP.match(path.name)
        if match and path.suffix.lower() in SUFFIX_TYPES:
            day, h, m, s = match.groups()
            found.append((f"{day}T{h}:{m}:{s}Z", path))
    return found
