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
from tostrack.errors import StorageError
from tostrack.store import SCHEMA_VERSION, Store

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


def test_opening_for_writing_upgrades_to_the_current_schema(old_workspace: Path) -> None:
    with Store(old_workspace) as store:
        assert store.outbox_listing()[0]["state"] == "queued"
    assert _schema_version(old_workspace / "tostrack.db") == str(SCHEMA_VERSION)
    with Store(old_workspace) as store:  # a second open migrates nothing more
        assert len(store.diffs()) == 2


def test_old_outbox_is_sent_after_the_upgrade(old_workspace: Path) -> None:
    result = CliRunner().invoke(cli, ["--workspace", str(old_workspace), "notify"])
    assert result.exit_code == 0, result.output
    assert len(list((old_workspace / "outbox").glob("*-change-*.eml"))) == 1
    assert _schema_version(old_workspace / "tostrack.db") == str(SCHEMA_VERSION)


def test_a_database_from_a_newer_tostrack_is_refused_untouched(old_workspace: Path) -> None:
    db = sqlite3.connect(old_workspace / "tostrack.db")
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(StorageError, match="newer tostrack"):
        Store(old_workspace)
    assert _schema_version(old_workspace / "tostrack.db") == str(SCHEMA_VERSION + 1)
    result = CliRunner().invoke(cli, ["--workspace", str(old_workspace), "notify"])
    assert result.exit_code != 0 and "newer tostrack" in result.output
    assert "Traceback" not in result.output
