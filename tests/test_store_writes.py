"""A capture folder is renamed into place only once every file of it is on disk.

The store writes a capture's files and raw objects, fsyncs them together and notes the folder
as pending meanwhile; a write that fails on the way must leave neither a folder nor a row.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from conftest import TERMS_V1, run_python, source_config, write_config

from tostrack.errors import StorageError
from tostrack.faults import CRASH_ENV
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


# The child imports with the store's "after-rename" crash point made to kill it at the third
# capture: the first two were renamed into place and their rows written, but not yet committed.
_KILLED_AT_THIRD_CAPTURE = """
import os, signal, sys
from tostrack import faults
from tostrack.cli import cli

renamed = []

def crash_point(step):
    if step == "after-rename":
        renamed.append(step)
        if len(renamed) == 3:
            os.kill(os.getpid(), signal.SIGKILL)

faults.crash_point = crash_point
cli(sys.argv[1:])
"""


def test_an_import_killed_inside_a_batch_is_adopted_whole_by_the_next(
    workspace_dir: Path, tmp_path: Path
) -> None:
    write_config(workspace_dir, source_config("http://127.0.0.1:9/terms"))
    dated = tmp_path / "history"
    dated.mkdir()
    laws = ["England and Wales", "Ireland", "the Netherlands", "Scotland"]
    for month, law in enumerate(laws, start=1):
        (dated / f"2026-0{month}-01T00-00-00Z.html").write_text(
            TERMS_V1.replace("England and Wales", law), encoding="utf-8"
        )
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    args = ["--workspace", str(workspace_dir), "import", "acme/terms", str(dated)]
    crashed = run_python("-c", _KILLED_AT_THIRD_CAPTURE, *args, env=env)
    assert crashed.returncode == -9, crashed.stderr
    with Store(workspace_dir) as store:
        assert store.versions("acme/terms") == []  # the batch was never committed ...
        assert len(store.pending_captures()) == 3  # ... but every renamed capture was noted
    again = run_python("-m", "tostrack", *args, env=env)
    assert again.returncode == 0, again.stderr
    with Store(workspace_dir) as store:
        versions = store.versions("acme/terms")
        assert [v.captured_at for v in versions] == [
            f"2026-0{month}-01T00:00:00Z" for month in range(1, 5)
        ]
        assert all(v.origin == "import" for v in versions)
        assert len(store.diffs("acme/terms")) == 3
        assert store.unindexed_captures() == [] and store.pending_captures() == []
        assert (
            store.db.execute("SELECT COUNT(*) FROM meta WHERE key LIKE 'pending:%'").fetchone()[0]
            == 0
        )
