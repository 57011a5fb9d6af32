"""Replay a dated history: diff each consecutive pair of versions, as a crawler would have.

Touches no workspace. Each version is extracted, segmented and classified once and then serves
as the new side of one pair and the old side of the next; clause ids carry forward through the
whole history, exactly as when tracking live.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tostrack.errors import InputError
from tostrack.history import dated_files
from tostrack.output import diff_body

__all__ = ["replay_pairs", "version_dirs"]


def version_dirs(directory: Path) -> list[Path]:
    """`directory` itself if it holds dated versions, else every folder below it that does.

    So both `replay corpus/openai/terms-of-use` and `replay corpus` work.
    """
    if not directory.is_dir():
        raise InputError(f"{directory} is not a folder of dated versions")
    if dated_files(directory):
        return [directory]
    found = [d for d in sorted(directory.rglob("*")) if d.is_dir() and dated_files(d)]
    if not found:
        raise InputError(
            f"{directory} has no files named by capture time (e.g. 2024-05-02T00-30-06Z.md), "
            "nor any folder below it that does"
        )
    return found


def replay_pairs(
    dirs: Sequence[Path], severity: Mapping[str, str] | None = None
) -> Iterator[dict[str, Any]]:
    """{"document", "from", "to", "summary", "changes"} for each consecutive pair, in date order."""
    from tostrack.extract import extract_file
    from tostrack.pipeline import analyse, compare_clauses

    for given in dirs:
        for directory in version_dirs(Path(given)):
            previous_name, previous_clauses = None, None
            for _captured_at, path in dated_files(directory):
                clauses = analyse(extract_file(path))
                if previous_clauses is not None:
                    diff = compare_clauses(previous_clauses, clauses, severity)
                    yield {
                        "document": str(directory),
                        "from": previous_name,
                        "to": path.name,
                        **diff_body(diff),
                    }
                    clauses = diff.new_clauses  # ids inherited: stable through the history
                previous_name, previous_clauses = path.name, clauses
