"""The pipeline end to end against a real HTTP server on 127.0.0.1 and a real store: the tests
taking `store_table` run on the embedded SQLite, then on a real PostgreSQL (conftest)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import (
    TERMS_V1,
    TERMS_V1_RERENDERED,
    TERMS_V2,
    run_python,
    source_config,
    write_config,
)
from pytest_httpserver import HTTPServer

from tostrack.pipeline import run
from tostrack.store import Store
from tostrack.workspace import Workspace


def _store(root: Path) -> Store:
    """The workspace's store, on whichever backend its tostrack.toml names."""
    return Workspace.open(root).open_store()


def _serve(httpserver: HTTPServer, html: str) -> str:
    httpserver.clear()
    httpserver.expect_request("/terms").respond_with_data(
        html, content_type="text/html; charset=utf-8"
    )
    return httpserver.url_for("/terms")


def test_first_run_stores_raw_snapshot_and_version(
    httpserver: HTTPServer, workspace_dir: Path, store_table: str
) -> None:
    url = _serve(httpserver, TERMS_V1)
    write_config(workspace_dir, source_config(url) + store_table)
    result = run(Workspace.open(workspace_dir), force=True, send=False)
    assert [r.status for r in result.results] == ["first"]
    with _store(workspace_dir) as store:
        version = store.current_version("acme/terms")
        assert version is not None
        raw = version.raw_files()
        assert len(raw) == 1 and raw[0].read_bytes() == TERMS_V1.encode()
        meta = version.snapshot_meta()[0]
        assert meta["url"] == url and meta["status"] == 200 and len(meta["sha256"]) == 64
        _, clauses = version.load()
        texts = " ".join(c.text for c in clauses)
        assert "reverse engineer" in texts and "Menu" not in texts  # select = ["main"]
        assert version.effective_date == "2026-05-01"


def test_substantive_change_is_recorded_reported_and_queued(
    httpserver: HTTPServer, workspace_dir: Path, store_table: str
) -> None:
    url = _serve(httpserver, TERMS_V1)
    write_config(workspace_dir, source_config(url) + store_table)
    ws = Workspace.open(workspace_dir)
    run(ws, force=True, send=False)
    _serve(httpserver, TERMS_V2)
    result = run(ws, force=True, dry_run_mail=True)
    (changed,) = result.results
    assert changed.status == "changed" and changed.substantive >= 1
    assert result.reports and result.reports[0].exists()
    with _store(workspace_dir) as store:
        (stored,) = store.diffs("acme/terms")
        modified = [c for c in stored.changes if c.substantive]
        assert any("competing-models" in c.labels_added for c in modified)
        assert stored.severity == "high"
        # ids are inherited: the modified clause keeps the id it had in version 1
        old_ids = {c.id for c in stored.from_version.load()[1]}
        assert all(c.new[0].id in old_ids for c in modified if c.kind == "modified")
    # a dry run previews in preview/ (never outbox/) and leaves the message queued
    assert not (workspace_dir / "outbox").exists()
    emls = list((workspace_dir / "preview").glob("*.eml"))
    assert len(emls) == 1
    assert "compet" in emls[0].read_text(errors="replace").lower()


def test_rerendered_page_is_not_a_change(
    httpserver: HTTPServer, workspace_dir: Path, store_table: str
) -> None:
    url = _serve(httpserver, TERMS_V1)
    write_config(workspace_dir, source_config(url) + store_table)
    ws = Workspace.open(workspace_dir)
    run(ws, force=True, send=False)
    _serve(httpserver, TERMS_V1_RERENDERED)
    result = run(ws, force=True, dry_run_mail=True)
    assert result.results[0].status in ("unchanged", "cosmetic")
    assert not result.eml_files
    with _store(workspace_dir) as store:
        assert all(not d.substantive for d in store.diffs("acme/terms"))


def test_error_page_is_a_failure_not_a_version(
    httpserver: HTTPServer, workspace_dir: Path, store_table: str
) -> None:
    url = _serve(httpserver, TERMS_V1)
    write_config(workspace_dir, source_config(url) + store_table)
    ws = Workspace.open(workspace_dir)
    run(ws, force=True, send=False)
    httpserver.clear()
    httpserver.expect_request("/terms").respond_with_data("Service Unavailable", status=503)
    result = run(ws, force=True, send=False)
    assert result.results[0].status == "failed"
    with _store(workspace_dir) as store:
        assert len(store.versions("acme/terms")) == 1
        assert store.source_state("acme/terms")["consecutive_failures"] == 1
        assert store.diffs("acme/terms") == []


def test_interval_skips_sources_not_due(
    httpserver: HTTPServer, workspace_dir: Path, store_table: str
) -> None:
    url = _serve(httpserver, TERMS_V1)
    write_config(workspace_dir, source_config(url, 'interval = "1d"') + store_table)
    ws = Workspace.open(workspace_dir)
    assert len(run(ws, send=False).results) == 1
    again = run(ws, send=False)
    assert again.results == () and again.skipped_not_due == 1


def test_disk_full_records_nothing_half_written(
    httpserver: HTTPServer, workspace_dir: Path
) -> None:
    """A write that fails midway (file size limit, as on a full disk) leaves no version behind."""
    url = _serve(httpserver, TERMS_V1)
    write_config(workspace_dir, source_config(url))
    run(Workspace.open(workspace_dir), force=True, send=False)  # database exists, version 1 stored
    _serve(httpserver, TERMS_V2 + "<!--" + "x" * 300_000 + "-->")
    script = textwrap.dedent(
        """
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
        from tostrack.cli import main
        sys.argv = ["tostrack", "--workspace", sys.argv[1], "run", "--force", "--no-send"]
        main()
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(workspace_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "cannot write" in proc.stderr
    with _store(workspace_dir) as store:
        assert len(store.versions("acme/terms")) == 1
    leftovers = [p for p in (workspace_dir / "snapshots").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_kill_during_run_then_rerun_records_the_change_once(
    httpserver: HTTPServer, workspace_dir: Path, store_table: str
) -> None:
    url = _serve(httpserver, TERMS_V1)
    write_config(workspace_dir, source_config(url) + store_table)
    run(Workspace.open(workspace_dir), force=True, send=False)
    _serve(httpserver, TERMS_V2)
    env = {**os.environ, "TOSTRACK_WORKSPACE": str(workspace_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tostrack.cli", "run", "--force", "--no-send"], env=env
    )
    try:
        proc.wait(timeout=0.3)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    rerun = run_python("-m", "tostrack.cli", "run", "--force", "--no-send", env=env)
    assert rerun.returncode == 0, rerun.stderr
    with _store(workspace_dir) as store:
        diffs = store.diffs("acme/terms", substantive_only=True)
        assert len(diffs) == 1
        history = [v.text_sha256 for v in store.versions("acme/terms")]
        assert len(history) == len(set(history)) == 2
    assert json.loads(json.dumps(diffs[0].summary))["substantive"] >= 1


def test_flapping_between_two_variants_is_instability_not_a_second_change(
    httpserver: HTTPServer, workspace_dir: Path, store_table: str
) -> None:
    url = _serve(httpserver, TERMS_V1)
    write_config(workspace_dir, source_config(url) + store_table)
    ws = Workspace.open(workspace_dir)
    run(ws, force=True, send=False)
    _serve(httpserver, TERMS_V2)
    assert run(ws, force=True, send=False).results[0].status == "changed"
    _serve(httpserver, TERMS_V1)  # back to the first variant within days: A -> B -> A
    (result,) = run(ws, force=True, send=False).results
    assert result.status == "failed" and result.failure is not None
    assert result.failure.reason == "unstable" and "alternates" in result.failure.detail
    with _store(workspace_dir) as store:
        assert len(store.versions("acme/terms")) == 2 and len(store.diffs("acme/terms")) == 1


def _numbered_terms(count: int) -> str:
    paragraphs = "".join(
        f"<p>{n}. Clause {n}: the customer shall keep account {n} credentials confidential and "
        f"shall tell us within {n + 1} days of any unauthorised use of that account.</p>"
        for n in range(1, count + 1)
    )
    return f"<html><body><main><h1>Acme AI Terms</h1>{paragraphs}</main></body></html>"


def test_collapse_is_a_failure_until_the_same_short_text_comes_back_three_times(
    httpserver: HTTPServer, workspace_dir: Path, store_table: str
) -> None:
    url = _serve(httpserver, _numbered_terms(30))
    write_config(workspace_dir, source_config(url) + store_table)
    ws = Workspace.open(workspace_dir)
    run(ws, force=True, send=False)
    _serve(httpserver, _numbered_terms(4))
    first, second = (run(ws, force=True, send=False).results[0] for _ in range(2))
    assert [first.status, second.status] == ["failed", "failed"]
    assert first.failure is not None and first.failure.reason == "collapsed"
    with _store(workspace_dir) as store:
        assert len(store.versions("acme/terms")) == 1  # the previous version stays current
    (third,) = run(ws, force=True, send=False).results
    assert third.status == "changed"  # a cut confirmed by three identical fetches is real


def test_better_extraction_rules_never_alert(
    httpserver: HTTPServer, workspace_dir: Path, store_table: str
) -> None:
    """A version stored by older extraction rules is re-read from its raw snapshot before
    diffing."""
    url = _serve(httpserver, TERMS_V1)
    write_config(workspace_dir, source_config(url) + store_table)
    ws = Workspace.open(workspace_dir)
    run(ws, force=True, send=False)
    with _store(workspace_dir) as store:
        version = store.current_version("acme/terms")
        assert version is not None
        stored = json.loads((version.path / "version.json").read_text())
    # What an older extractor might have kept: the page's menu as a clause of its own.
    stored["clauses"].insert(
        0, {**stored["clauses"][0], "id": "c-old-menu", "text": "Menu Pricing"}
    )
    (version.path / "version.json").write_text(json.dumps(stored))
    _serve(httpserver, TERMS_V1_RERENDERED)  # new bytes, same text
    result = run(ws, force=True, dry_run_mail=True)
    assert result.results[0].status == "unchanged" and not result.eml_files


def test_one_day_a_week_each_source_is_fetched_without_validators() -> None:
    from datetime import UTC, datetime, timedelta

    from tostrack.pipeline import full_fetch_day

    start = datetime(2026, 11, 2, tzinfo=UTC)
    days = [full_fetch_day("acme/terms", start + timedelta(days=n)) for n in range(14)]
    assert days.count(True) == 2 and days.index(True) + 7 == len(days) - 1 - days[::-1].index(True)
