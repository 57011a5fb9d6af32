"""`tostrack store migrate` and `tostrack store check`, through the real CLI, on real SQLite
files and a real PostgreSQL (tests/postgres_cluster.py; those cases skip, saying why, when no
cluster can be started here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import write_config
from postgres_cluster import free_port

from tostrack.cli import cli
from tostrack.config import StoreConfig
from tostrack.models import Clause, Document, Failure, Snapshot
from tostrack.pipeline import compare_clauses
from tostrack.store import OutgoingMessage, Store
from tostrack.store.transfer import compare_records

OLD = (
    Clause("c-1", "1 Use", ("1 Use",), "You may use the service for lawful purposes."),
    Clause("c-2", "2 Law", ("2 Law",), "The laws of England govern these terms."),
)
NEW = (
    OLD[0],
    Clause("c-2", "2 Law", ("2 Law",), "The laws of Ireland govern these terms."),
    Clause("c-3", "3 Output", ("3 Output",), "You may not use output to build rival models."),
)


def _snapshot(at: str, body: bytes, source_id: str = "acme/terms") -> Snapshot:
    return Snapshot(source_id, "https://acme.test/terms", at, 200, "text/html", body)


def fill(store: Store, source_id: str = "acme/terms") -> None:
    """Two versions and their diff, a failure, a queued message with bytes that are not text."""
    first, _ = store.save_version(
        [_snapshot("2026-05-01T08:00:00Z", b"<p>one</p>", source_id)],
        Document((), title="Acme Terms"),
        OLD,
        title="Acme Terms",
        url="https://acme.test/terms",
    )
    store.save_version(
        [_snapshot("2026-06-09T08:00:00Z", b"<p>two \xff\xfe</p>", source_id)],
        Document((), title="Acme Terms", effective_date="2026-06-09"),
        NEW,
        title="Acme Terms",
        diff=compare_clauses(OLD, NEW),
        previous=first,
    )
    store.record_failure(Failure(source_id, "2026-06-10T08:00:00Z", "timeout", "50% lost?"))
    (diff_id,) = store.unnotified_diff_ids()
    message = OutgoingMessage(
        "change:1", "change", "legal@example.com", "x", "<1@t>", b"Subject: x\r\n\r\n\x00\xff"
    )
    store.record_diff_messages(diff_id, [message], [(diff_id, "legal@example.com", "daily", "r")])


def tostrack(root: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--workspace", str(root), *args])


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write_config(root, '[[recipients]]\nemail = "legal@example.com"\n')
    with Store(root) as store:
        fill(store)
    return root


# -- store migrate --------------------------------------------------------------------------


def test_migrate_copies_every_table_and_reports_the_same_tallies(
    workspace: Path, postgres_url: str
) -> None:
    result = tostrack(workspace, "store", "migrate", "--to", postgres_url)
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split() for line in result.output.splitlines() if line}
    for table, rows in (("versions", "2"), ("diffs", "1"), ("failures", "1"), ("outbox", "1")):
        _, source_rows, source_sum, target_rows, target_sum = lines[table]
        assert (source_rows, source_sum) == (rows, target_sum) and target_rows == rows
    assert "leases" not in lines  # who holds what is not copied
    assert "All 10 tables agree" in result.output

    shared = StoreConfig(postgres_url)
    with Store(workspace) as embedded, Store(workspace, database=shared) as copy:
        assert all(t.agrees for t in compare_records(embedded, copy))
        (diff,) = copy.diffs()
        assert diff.changes == embedded.diffs()[0].changes
        (row,) = copy.due_messages("9999")
        assert bytes(row["message"]) == b"Subject: x\r\n\r\n\x00\xff"
        # the ids were copied as they were: the next row gets a new one, never a taken one
        version, _ = copy.save_version(
            [_snapshot("2026-07-01T08:00:00Z", b"<p>three</p>")],
            Document((), title="Acme Terms"),
            NEW,
            previous=copy.current_version("acme/terms"),
        )
        assert version.id == 3
        # and a difference, however small, shows in the tallies
        copy.db.execute("UPDATE failures SET detail = 'changed'")
        differing = {t.table for t in compare_records(embedded, copy) if not t.agrees}
        assert differing == {"failures", "versions", "sources"}


def test_migrate_refuses_a_target_with_records_unless_replace(
    workspace: Path, postgres_url: str, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    with Store(other, database=StoreConfig(postgres_url)) as store:
        fill(store, "nimbus/terms")
    refused = tostrack(workspace, "store", "migrate", "--to", postgres_url)
    assert refused.exit_code == 2
    assert "already holds records (" in refused.output and "--replace" in refused.output
    assert "Traceback" not in refused.output
    with Store(other, database=StoreConfig(postgres_url)) as store:
        assert store.tracked_source_ids() == ["nimbus/terms"]  # untouched

    replaced = tostrack(workspace, "store", "migrate", "--to", postgres_url, "--replace")
    assert replaced.exit_code == 0, replaced.output
    assert "after deleting the" in replaced.output
    with Store(other, database=StoreConfig(postgres_url)) as store:
        assert store.tracked_source_ids() == ["acme/terms"]


def test_a_killed_migration_leaves_the_target_empty_and_runs_again(
    workspace: Path, postgres_url: str
) -> None:
    command = [sys.executable, "-m", "tostrack", "-w", str(workspace), "store", "migrate"]
    env = {**os.environ, "TOSTRACK_CRASH_AT": "before-copy-commit"}
    killed = subprocess.run(
        [*command, "--to", postgres_url], env=env, capture_output=True, text=True, timeout=60
    )
    assert killed.returncode == -9
    with Store(workspace, database=StoreConfig(postgres_url)) as store:
        assert not store.has_versions() and store.all_source_states() == []
    again = tostrack(workspace, "store", "migrate", "--to", postgres_url)
    assert again.exit_code == 0, again.output


def test_migrate_without_a_database_a_target_or_a_server_says_so(
    workspace: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    write_config(empty, "")
    down = f"postgresql://tostrack@127.0.0.1:{free_port()}/tostrack"
    for root, args, message in (
        (empty, ["--to", down], "has no SQLite database to copy"),
        (workspace, [], "no PostgreSQL to copy into: give --to"),
        (workspace, ["--to", "mysql://db/x"], "use a PostgreSQL URL"),
        (workspace, ["--to", "postgresql://u:hunter2@db/x"], "password"),
    ):
        result = tostrack(root, "store", "migrate", *args)
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
        assert "hunter2" not in result.output
    assert not (empty / "tostrack.db").exists()  # nothing made where nothing was


def test_migrate_to_a_server_that_is_down(workspace: Path) -> None:
    pytest.importorskip("psycopg", reason="psycopg is not installed")
    down = f"postgresql://tostrack@127.0.0.1:{free_port()}/tostrack"
    result = tostrack(workspace, "store", "migrate", "--to", down)
    assert result.exit_code == 2
    assert "cannot connect to the database postgresql://127.0.0.1:" in result.output
