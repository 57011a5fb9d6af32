"""A workspace made by an earlier release opens with today's code and is upgraded in place.

tests/data/workspace-v2/ was written by tests/data/make_workspace_fixture.py with the release at
schema version 2; each test works on a copy.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from tostrack.cli import cli
from tostrack.store import Store

FIXTURE = Path(__file__).parent / "data" / "workspace-v2"


@pytest.fixture
def old_workspace(tmp_path: Path) -> Path:
    root = tmp_path / "workspace"
    shutil.copytree(FIXTURE, root)
    return root


def _schema_version(db_path: Path) -> str:
    db = sqlite3.connect(db_path)
    try:
        return db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    finally:
        db.close()


def test_fixture_is_the_old_release(old_workspace: Path) -> None:
    assert _schema_version(old_workspace / "tostrack.db") == "2"


def test_old_workspace_keeps_its_records(old_workspace: Path) -> None:
    with Store(old_workspace) as store:
        assert sorted(store.tracked_source_ids()) == ["corvid/usage-policy", "nimbus/terms-of-use"]
        assert [len(store.versions(s)) for s in sorted(store.tracked_source_ids())] == [2, 2]
        diffs = store.diffs()
        assert len(diffs) == 2
        assert any(d.substantive for d in diffs)
        assert store.failures("corvid/usage-policy")


def test_old_workspace_reads_through_the_cli(old_workspace: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["--workspace", str(old_workspace), "status", "--format", "json"])
    assert result.exit_code == 3, result.output  # corvid's last check failed
    states = {row["id"]: row["state"] for row in json.loads(result.output)}
    assert states == {"nimbus/terms-of-use": "ok", "corvid/usage-policy": "failing"}
    result = runner.invoke(cli, ["--workspace", str(old_workspace), "outbox", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert [row["state"] for row in json.loads(result.output)] == ["queued"]
    result = runner.invoke(cli, ["--workspace", str(old_workspace), "report"])
    assert result.exit_code == 0, result.output
    assert (old_workspace / "reports" / "index.html").exists()
