"""A capture folder is renamed into place only once every file of it is on disk.

The store writes a capture's files and raw objects, fsyncs them together and notes the folder
as pending meanwhile; a write that fails on the way must leave neither a folder nor a row.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from tostrack.errors import StorageError
from tostrack.models import Clause, Document, Snapshot
from tostrack.store import Store


def _snapshot(at: str, body: bytes) -> Snapshot:
    return Snapshot("acme/terms", "file:///terms", at, 200, "text/html", body)


def _clauses(text: str) -> tuple[Clause, ...]:
    return (Clause(id="c1", section="1", heading=("Fees",), text=text),)


def test_a_disk_full_while_saving_leaves_no_folder_and_no_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store(tmp_path) as store:
        first, _ = store.save_version(
            (_snapshot("2026-01-01T00:00:00Z", b"<p>one</p>"),),
            Document(blocks=()),
            _clauses("Fees are due monthly."),
        )

        def full(fd: int) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "fsync", full)
        with pytest.raises(StorageError, match="disk full"):
            store.save_version(
                (_snapshot("2026-02-01T00:00:00Z", b"<p>two</p>"),),
                Document(blocks=()),
                _clauses("Fees are due yearly."),
                previous=first,
            )
        monkeypatch.undo()
        assert [v.captured_at for v in store.versions("acme/terms")] == [first.captured_at]
        assert sorted(p.name for p in first.path.parent.iterdir()) == [first.path.name]
        assert store.pending_captures() == []  # the note of a folder never renamed is dropped
        assert store.stored_clauses(first) == first.load()[1]
        objects = sorted((tmp_path / "snapshots" / "sha256").rglob("*"))
        assert not [p for p in objects if p.name.startswith(".")]  # no temporary object left
        again, _ = store.save_version(
            (_snapshot("2026-02-01T00:00:00Z", b"<p>two</p>"),),
            Document(blocks=()),
            _clauses("Fees are due yearly."),
            previous=first,
        )
        assert again.load()[1] == _clauses("Fees are due yearly.")
        assert [p.name for p in sorted(again.path.iterdir())] == [
            "snapshot.json",
            "version.json",
            "version.txt",
        ]
