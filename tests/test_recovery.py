"""Getting back what the database lost (issue 11, problems 6 and 7, and the orphan capture).

Real parts only: a real HTTP server on 127.0.0.1, real SQLite files, the real CLI, and kill -9
through the TOSTRACK_CRASH_AT hook (the same mechanism as the outbox's crash tests).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import TERMS_V1, TERMS_V2, run_python, source_config, write_config
from pytest_httpserver import HTTPServer

from tostrack.cli import cli
from tostrack.faults import CRASH_ENV
from tostrack.store import Store

PRIVACY_V1 = """<!DOCTYPE html><html><head><title>Acme Privacy Policy</title></head><body><main>
<h1>Acme Privacy Policy</h1>
<h2>1. What we collect</h2>
<p>1.1 We collect the account details you give us and the prompts you send to the service.</p>
<p>1.2 We keep usage logs for thirty days to keep the service secure and reliable.</p>
<h2>2. Your rights</h2>
<p>2.1 You may ask us to delete your account and the data linked to it at any time.</p>
</main></body></html>"""
PRIVACY_V2 = PRIVACY_V1.replace("thirty days", "two years, and we may use them to train our models")


def _serve(httpserver: HTTPServer, pages: dict[str, str]) -> None:
    httpserver.clear()
    for path, html in pages.items():
        httpserver.expect_request(path).respond_with_data(
            html, content_type="text/html; charset=utf-8"
        )


def _invoke(ws: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--workspace", str(ws), *args])


def _snapshot_of_db(ws: Path) -> dict[str, object]:
    """What the database says about versions and diffs, in a comparable form."""
    with Store(ws) as store:
        versions = [
            (
                v.source_id,
                v.captured_at,
                v.path.relative_to(ws).as_posix(),
                v.text_sha256,
                v.snapshot_sha256,
                v.effective_date,
                v.clause_count,
                tuple(c.id for c in v.load()[1]),
            )
            for sid in store.tracked_source_ids()
            for v in store.versions(sid)
        ]
        diffs = [
            (
                d.source_id,
                d.from_version.captured_at,
                d.to_version.captured_at,
                d.summary,
                d.substantive,
                d.severity,
                d.kind,
                tuple(
                    (c.kind, tuple(x.id for x in c.new), tuple(c.labels_added)) for c in d.changes
                ),
            )
            for d in store.diffs()
        ]
    return {"versions": versions, "diffs": diffs}


def _outbox(ws: Path) -> list[tuple[str, str]]:
    db = sqlite3.connect(ws / "tostrack.db")
    try:
        return db.execute("SELECT kind, key FROM outbox ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # no outbox table yet
        return []
    finally:
        db.close()


def _two_versions(httpserver: HTTPServer, ws: Path) -> None:
    _serve(httpserver, {"/terms": TERMS_V1})
    write_config(ws, source_config(httpserver.url_for("/terms")))
    assert _invoke(ws, "run", "--force", "--no-send").exit_code == 0
    _serve(httpserver, {"/terms": TERMS_V2})
    assert _invoke(ws, "run", "--force", "--no-send").exit_code == 0


# -- problem 6: an emptied or corrupt database --------------------------------------------------


def test_emptied_database_is_refused_then_rebuilt_without_alerting(
    httpserver: HTTPServer, workspace_dir: Path
) -> None:
    ws = workspace_dir
    _two_versions(httpserver, ws)
    before = _snapshot_of_db(ws)
    assert len(before["versions"]) == 2 and len(before["diffs"]) == 1
    for suffix in ("-wal", "-shm"):
        Path(str(ws / "tostrack.db") + suffix).unlink(missing_ok=True)
    (ws / "tostrack.db").write_bytes(b"")  # emptied: SQLite opens it as a new, empty database

    refused = _invoke(ws, "run", "--force")
    assert refused.exit_code == 2, refused.output
    assert "tostrack rebuild" in refused.output and "records no version" in refused.output
    with Store(ws) as store:  # the refusal recorded nothing: no "first version" again
        assert store.tracked_source_ids() == []

    rebuilt = _invoke(ws, "rebuild")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "2 version(s) of 1 source(s), 1 with substantive changes" in rebuilt.output
    assert "nobody was notified" in rebuilt.output
    assert _snapshot_of_db(ws) == before  # versions, clause ids and diffs as they were
    assert _outbox(ws) == []

    # The next run carries on: same page, nothing new, nobody told about the old change.
    again = _invoke(ws, "run", "--force")
    assert again.exit_code == 0, again.output
    assert "first version" not in again.output and "changed" not in again.output
    assert _outbox(ws) == []
    status = _invoke(ws, "status", "--format", "json")
    (row,) = json.loads(status.output)
    assert row["state"] == "ok" and row["versions"] == 2


def test_corrupt_database_says_to_rebuild_and_is_kept_aside(
    httpserver: HTTPServer, workspace_dir: Path
) -> None:
    ws = workspace_dir
    _two_versions(httpserver, ws)
    before = _snapshot_of_db(ws)
    for suffix in ("-wal", "-shm"):
        Path(str(ws / "tostrack.db") + suffix).unlink(missing_ok=True)
    garbage = b"this is not SQLite at all\n" * 400
    (ws / "tostrack.db").write_bytes(garbage)

    for command in (("run", "--force"), ("status",)):
        result = _invoke(ws, *command)
        assert result.exit_code == 2, result.output
        assert "tostrack rebuild" in result.output and "internal error" not in result.output

    rebuilt = _invoke(ws, "rebuild")
    assert rebuilt.exit_code == 0, rebuilt.output
    (aside,) = ws.glob("tostrack.db.before-rebuild-*")
    assert aside.read_bytes() == garbage  # the damaged file is kept, for whoever wants to look
    assert _snapshot_of_db(ws) == before


def test_rebuild_refuses_a_healthy_database_unless_forced(
    httpserver: HTTPServer, workspace_dir: Path
) -> None:
    ws = workspace_dir
    _two_versions(httpserver, ws)
    before = _snapshot_of_db(ws)
    refused = _invoke(ws, "rebuild")
    assert refused.exit_code == 2 and "--force" in refused.output
    forced = _invoke(ws, "rebuild", "--force")
    assert forced.exit_code == 0, forced.output
    assert _snapshot_of_db(ws) == before
    assert len(list(ws.glob("tostrack.db.before-rebuild-*"))) == 1


def test_rebuild_with_no_captures_is_an_error(workspace_dir: Path) -> None:
    write_config(workspace_dir, source_config("http://127.0.0.1:9/terms"))
    result = _invoke(workspace_dir, "rebuild")
    assert result.exit_code == 2 and "nothing to rebuild from" in result.output


# -- the orphan capture: kill -9 between the folder rename and the database commit -------------


def _run_child(ws: Path, crash_at: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash_at:
        env[CRASH_ENV] = crash_at
    return run_python("-m", "tostrack", "--workspace", str(ws), "run", "--force", env=env)


def test_kill_between_rename_and_commit_leaves_an_orphan_that_is_adopted_and_alerted_once(
    httpserver: HTTPServer, workspace_dir: Path
) -> None:
    ws = workspace_dir
    _serve(httpserver, {"/terms": TERMS_V1})
    write_config(ws, source_config(httpserver.url_for("/terms")))
    assert _run_child(ws, None).returncode == 0
    _serve(httpserver, {"/terms": TERMS_V2})
    crashed = _run_child(ws, "after-rename")
    assert crashed.returncode == -9, crashed.stderr
    folders = sorted(
        p for p in (ws / "snapshots" / "acme" / "terms").iterdir() if not p.name.startswith(".")
    )
    assert len(folders) == 2  # the new capture is on disk ...
    with Store(ws) as store:
        assert len(store.versions("acme/terms")) == 1  # ... but no row points at it: an orphan
        assert store.pending_captures() == [folders[1]]

    rerun = _run_child(ws, None)
    assert rerun.returncode == 0, rerun.stderr
    assert f"adopted  acme/terms: capture {folders[1].name}" in rerun.stdout
    with Store(ws) as store:
        versions = store.versions("acme/terms")
        assert [v.path for v in versions] == folders  # adopted, not fetched and stored twice
        (diff,) = store.diffs("acme/terms")
        assert diff.substantive and diff.to_version.path == folders[1]
        assert store.pending_captures() == [] and store.unindexed_captures() == []
    changes = [key for kind, key in _outbox(ws) if kind == "change"]
    assert changes == [f"diff:{diff.id}:legal@example.com"]  # the held-back alert, queued once

    third = _run_child(ws, None)
    assert third.returncode == 0, third.stderr
    assert "adopted" not in third.stdout
    assert [key for kind, key in _outbox(ws) if kind == "change"] == changes


# A run with the clock stopped at one moment: two runs of it capture in the same second.
_RUN_AT_ONE_MOMENT = """
import sys
from datetime import UTC, datetime
from tostrack import clock
clock.now = lambda: datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
from tostrack.cli import cli
cli.main(sys.argv[1:], prog_name="tostrack")
"""


def test_a_capture_killed_in_the_same_second_as_the_current_version_is_adopted(
    httpserver: HTTPServer, workspace_dir: Path
) -> None:
    """Captures have a second's precision; the second capture of a second goes to <stamp>.2.
    Killed after its rename, it is still the newer one, and adopted (it was refused as "not
    newer" when only the times were compared)."""
    ws = workspace_dir
    _serve(httpserver, {"/terms": TERMS_V1})
    write_config(ws, source_config(httpserver.url_for("/terms")))

    def run(crash_at: str | None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
        if crash_at:
            env[CRASH_ENV] = crash_at
        return run_python(
            "-c", _RUN_AT_ONE_MOMENT, "--workspace", str(ws), "run", "--force", env=env
        )

    assert run(None).returncode == 0
    _serve(httpserver, {"/terms": TERMS_V2})
    assert run("after-rename").returncode == -9
    folders = sorted(p.name for p in (ws / "snapshots" / "acme" / "terms").iterdir())
    assert folders == ["2026-03-01T12-00-00Z", "2026-03-01T12-00-00Z.2"]

    rerun = _run_child(ws, None)
    assert rerun.returncode == 0, rerun.stderr
    assert "adopted  acme/terms: capture 2026-03-01T12-00-00Z.2" in rerun.stdout
    with Store(ws) as store:
        versions = store.versions("acme/terms")
        assert [v.path.name for v in versions] == folders
        (diff,) = store.diffs("acme/terms")
        assert diff.substantive and diff.to_version.path.name == folders[1]
        assert store.pending_captures() == []


def test_capture_order_puts_a_seconds_later_folders_after_its_first() -> None:
    from tostrack.store import capture_order

    at = "2026-03-01T12:00:00Z"
    names = ["2026-03-01T12-00-00Z.10", "2026-03-01T12-00-00Z", "2026-03-01T12-00-00Z.2"]
    ordered = sorted(names, key=lambda name: capture_order(at, Path(name)))
    assert ordered == ["2026-03-01T12-00-00Z", "2026-03-01T12-00-00Z.2", "2026-03-01T12-00-00Z.10"]
    assert capture_order("2026-03-01T12:00:01Z", Path("x")) > capture_order(at, Path(names[0]))
    for odd in ("2026-03-01T12-00-00Z.²", "2026-03-01T12-00-00Z.02", "2026-03-01T12-00-00Z.0"):
        assert capture_order(at, Path(odd)) == (at, 1)  # not a number _stamp_folder writes


def test_rebuild_orders_the_captures_of_one_second_by_their_folders_number(
    workspace_dir: Path,
) -> None:
    """Eleven captures in one second: <stamp>, <stamp>.2 ... <stamp>.11; rebuild records them
    in that order (by name, .10 and .11 came before .2), each diffed against the one before."""
    from tostrack.models import Clause, Document, Snapshot

    at = "2026-03-01T12:00:00Z"
    write_config(workspace_dir, source_config("http://127.0.0.1:1/terms"))
    with Store(workspace_dir) as store:
        previous = None
        for n in range(1, 12):
            snapshot = Snapshot(
                "acme/terms", "http://127.0.0.1:1/terms", at, 200, "text/html", b"<p>%d</p>" % n
            )
            clause = Clause(id="c1", section="1", heading=("Fees",), text=f"Fees rise {n}%.")
            previous, _ = store.save_version(
                (snapshot,), Document(blocks=()), (clause,), previous=previous
            )
        written = [v.path.name for v in store.versions("acme/terms")]
    assert written == ["2026-03-01T12-00-00Z"] + [f"2026-03-01T12-00-00Z.{n}" for n in range(2, 12)]
    rebuilt = _invoke(workspace_dir, "rebuild", "--force")
    assert rebuilt.exit_code == 0, rebuilt.output
    with Store(workspace_dir) as store:
        versions = store.versions("acme/terms")
        assert [v.path.name for v in versions] == written
        texts = [v.load()[1][0].text for v in versions]
        assert texts == [f"Fees rise {n}%." for n in range(1, 12)]
        diffs = store.diffs("acme/terms")
        pairs = sorted(
            ((d.from_version.path.name, d.to_version.path.name) for d in diffs),
            key=lambda pair: written.index(pair[1]),
        )
        assert pairs == list(zip(written, written[1:]))


def test_kill_on_the_very_first_capture_is_adopted_not_refused(
    httpserver: HTTPServer, workspace_dir: Path
) -> None:
    ws = workspace_dir
    _serve(httpserver, {"/terms": TERMS_V1})
    write_config(ws, source_config(httpserver.url_for("/terms")))
    assert _run_child(ws, "after-rename").returncode == -9
    rerun = _run_child(ws, None)
    assert rerun.returncode == 0, rerun.stderr
    assert "adopted  acme/terms" in rerun.stdout
    with Store(ws) as store:
        assert len(store.versions("acme/terms")) == 1


def test_an_unindexed_capture_is_reported_at_start(
    httpserver: HTTPServer, workspace_dir: Path
) -> None:
    """A capture no row points at and no pending note names (say, a database restored from an
    older backup) is reported, with the way to adopt it."""
    ws = workspace_dir
    _two_versions(httpserver, ws)
    with Store(ws) as store:
        last = store.current_version("acme/terms")
        with store.transaction() as db:
            db.execute("DELETE FROM changes")
            db.execute("DELETE FROM diffs")
            db.execute("DELETE FROM versions WHERE id = ?", (last.id,))
    result = _invoke(ws, "run", "--force", "--no-send")
    assert "1 capture(s) in snapshots/ are not in the database" in result.stderr
    assert "tostrack rebuild" in result.stderr


# -- problem 7: missing evidence --------------------------------------------------------------


def _two_sources(url_terms: str, url_privacy: str) -> str:
    return (
        source_config(url_terms)
        + f"""
[[sources]]
id = "acme/privacy"
title = "Acme Privacy Policy"
url = "{url_privacy}"
select = ["main"]
"""
    )


@pytest.mark.parametrize("lost", ["folder", "version.json"])
def test_missing_evidence_fails_that_source_and_the_others_go_on(
    httpserver: HTTPServer, workspace_dir: Path, lost: str
) -> None:
    ws = workspace_dir
    _serve(httpserver, {"/terms": TERMS_V1, "/privacy": PRIVACY_V1})
    write_config(ws, _two_sources(httpserver.url_for("/terms"), httpserver.url_for("/privacy")))
    assert _invoke(ws, "run", "--force", "--no-send").exit_code == 0
    terms = ws / "snapshots" / "acme" / "terms"
    if lost == "folder":
        shutil.rmtree(terms)  # every snapshot of one source deleted
    else:
        for path in terms.glob("*/version.json"):
            path.unlink()
    _serve(httpserver, {"/terms": TERMS_V2, "/privacy": PRIVACY_V2})

    for _ in range(2):  # and again next time: the other source is never held hostage
        result = _invoke(ws, "run", "--force", "--no-send")
        assert result.exit_code == 3, result.output
        assert "internal error" not in result.output
        assert "failed   acme/terms: evidence-missing" in result.stderr
        _serve(httpserver, {"/terms": TERMS_V2, "/privacy": PRIVACY_V1 if _ else PRIVACY_V2})
    with Store(ws) as store:
        assert len(store.versions("acme/privacy")) == 2  # changed in the first run
        (failure, *_) = store.failures("acme/terms")
        assert failure.reason == "evidence-missing" and "tostrack rebuild" in failure.detail

    status = _invoke(ws, "status")
    assert status.exit_code == 3
    line = next(x for x in status.output.splitlines() if "acme/terms" in x)
    assert "evidence-missing" in line and "snapshots/" in line
    assert "acme/privacy" in status.output


# -- schema 1 databases (before diff kinds and redirects) ---------------------------------------


def test_a_schema_1_database_is_read_as_is_and_migrated_on_write(
    httpserver: HTTPServer, workspace_dir: Path
) -> None:
    ws = workspace_dir
    _two_versions(httpserver, ws)
    before = _snapshot_of_db(ws)
    db = sqlite3.connect(ws / "tostrack.db")
    db.execute("ALTER TABLE diffs DROP COLUMN kind")
    db.execute("ALTER TABLE versions DROP COLUMN redirect")
    db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")  # as schema 1 wrote it
    db.commit()
    db.close()
    for command in (("status",), ("history", "acme/terms"), ("report",)):  # opened read-only
        result = _invoke(ws, *command)
        assert result.exit_code == 0, result.output
    assert _invoke(ws, "run", "--force", "--no-send").exit_code == 0  # migrates
    db = sqlite3.connect(ws / "tostrack.db")
    assert "kind" in {r[1] for r in db.execute("PRAGMA table_info(diffs)")}
    db.close()
    assert _snapshot_of_db(ws) == before


def test_an_import_killed_after_a_rename_is_adopted_by_the_next_import(
    workspace_dir: Path, tmp_path: Path
) -> None:
    ws = workspace_dir
    write_config(ws, source_config("http://127.0.0.1:9/terms"))
    dated = tmp_path / "history"
    dated.mkdir()
    (dated / "2026-01-01T00-00-00Z.html").write_text(TERMS_V1, encoding="utf-8")
    (dated / "2026-02-01T00-00-00Z.html").write_text(TERMS_V2, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    command = [
        sys.executable,
        "-m",
        "tostrack",
        "--workspace",
        str(ws),
        "import",
        "acme/terms",
        str(dated),
    ]
    crashed = subprocess.run(
        command,
        env={**env, CRASH_ENV: "after-rename"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert crashed.returncode == -9, crashed.stderr
    again = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert again.returncode == 0, again.stderr
    with Store(ws) as store:
        versions = store.versions("acme/terms")
        assert [v.captured_at for v in versions] == ["2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"]
        assert store.unindexed_captures() == [] and store.pending_captures() == []
        assert all(v.origin == "import" for v in versions)
    assert _outbox(ws) == []  # an import never alerts, adopted or not
