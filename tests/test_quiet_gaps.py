"""Alerts that used to go missing quietly (issue 11, problems 9 and 11).

Real parts only: a real HTTP server on 127.0.0.1, real SQLite files, the real CLI, kill -9
through the TOSTRACK_CRASH_AT hook.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

from click.testing import CliRunner, Result
from conftest import TERMS_V1, TERMS_V2, source_config, write_config
from pytest_httpserver import HTTPServer

from tostrack.cli import cli
from tostrack.faults import CRASH_ENV
from tostrack.fetch.health import likely_cause
from tostrack.models import Failure, Source
from tostrack.pipeline import is_due
from tostrack.store import Store

# The same terms with only the announced date moved ("Effective Sept 28" -> "Oct 8").
DATED_1 = TERMS_V1.replace("Last updated: May 1, 2026", "Effective: September 28, 2026")
DATED_2 = TERMS_V1.replace("Last updated: May 1, 2026", "Effective: October 8, 2026")


def _serve(httpserver: HTTPServer, html: str, path: str = "/terms") -> str:
    httpserver.clear()
    httpserver.expect_request(path).respond_with_data(html, content_type="text/html; charset=utf-8")
    return httpserver.url_for(path)


def _invoke(ws: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--workspace", str(ws), *args])


def _outbox(ws: Path, kind: str | None = None) -> list[tuple[str, str, bytes]]:
    db = sqlite3.connect(ws / "tostrack.db")
    try:
        rows = db.execute("SELECT kind, key, message FROM outbox ORDER BY id").fetchall()
    except sqlite3.OperationalError:
        rows = []
    finally:
        db.close()
    return [r for r in rows if kind is None or r[0] == kind]


def _text(message: bytes) -> str:
    msg = message_from_bytes(message, policy=default_policy)
    return msg.get_body(("plain",)).get_content()


OPERATORS = """
[notify]
operators = ["ops@example.com"]
broken_after = {n}
"""


# -- problem 9: the operator's "broken" alert ------------------------------------------------


def test_broken_alert_fires_once_at_and_after_broken_after(
    httpserver: HTTPServer, workspace_dir: Path
) -> None:
    ws = workspace_dir
    httpserver.expect_request("/terms").respond_with_data("down", status=500)
    write_config(ws, source_config(httpserver.url_for("/terms")) + OPERATORS.format(n=2))
    for n in range(1, 5):
        result = _invoke(ws, "run", "--force", "--no-send")
        assert result.exit_code == 3
        assert len(_outbox(ws, "operator")) == (0 if n < 2 else 1)
    ((_, key, message),) = _outbox(ws, "operator")
    assert key.startswith("op:broken:acme/terms:1:")
    assert "http-500" in str(message_from_bytes(message, policy=default_policy)["Subject"])


def test_a_streak_already_past_broken_after_still_alerts(
    httpserver: HTTPServer, workspace_dir: Path
) -> None:
    """What the old `==` lost for good: a streak that went past broken_after without its alert
    (a kill between the failure's commit and the alert's, in the old code)."""
    ws = workspace_dir
    httpserver.expect_request("/terms").respond_with_data("down", status=500)
    write_config(ws, source_config(httpserver.url_for("/terms")) + OPERATORS.format(n=3))
    with Store(ws) as store:
        for day in range(1, 5):
            store.record_failure(Failure("acme/terms", f"2026-11-0{day}T00:00:00Z", "http-500", ""))
    assert _invoke(ws, "run", "--force", "--no-send").exit_code == 3  # the 5th failure in a row
    assert len(_outbox(ws, "operator")) == 1


def test_kill_inside_the_failure_transaction_keeps_neither_then_both(
    httpserver: HTTPServer, workspace_dir: Path
) -> None:
    ws = workspace_dir
    httpserver.expect_request("/terms").respond_with_data("down", status=500)
    write_config(ws, source_config(httpserver.url_for("/terms")) + OPERATORS.format(n=1))
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    command = [
        sys.executable,
        "-m",
        "tostrack",
        "--workspace",
        str(ws),
        "run",
        "--force",
        "--no-send",
    ]
    crashed = subprocess.run(
        command,
        env={**env, CRASH_ENV: "in-failure-transaction"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert crashed.returncode == -9, crashed.stderr
    with Store(ws) as store:
        assert store.failures("acme/terms") == []  # the failure and its alert went together
    assert _outbox(ws, "operator") == []
    rerun = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert rerun.returncode == 3, rerun.stderr
    with Store(ws) as store:
        assert len(store.failures("acme/terms")) == 1
    assert len(_outbox(ws, "operator")) == 1


def test_an_invalid_operator_address_is_reported_not_dropped(
    httpserver: HTTPServer, workspace_dir: Path
) -> None:
    ws = workspace_dir
    httpserver.expect_request("/terms").respond_with_data("down", status=500)
    config = source_config(httpserver.url_for("/terms")) + OPERATORS.format(n=1).replace(
        "ops@example.com", "ops at example dot com"
    )
    write_config(ws, config)
    result = _invoke(ws, "run", "--force", "--no-send")
    assert result.exit_code == 2, result.output
    assert "operators" in result.output and "internal error" not in result.output
    # Fixed, the next run alerts: nothing was marked "told" while the address was wrong.
    write_config(ws, source_config(httpserver.url_for("/terms")) + OPERATORS.format(n=1))
    assert _invoke(ws, "run", "--force", "--no-send").exit_code == 3
    assert len(_outbox(ws, "operator")) == 1


def test_a_page_alternating_every_run_reaches_broken(
    httpserver: HTTPServer, workspace_dir: Path
) -> None:
    ws = workspace_dir
    url = _serve(httpserver, TERMS_V1)
    write_config(ws, source_config(url) + OPERATORS.format(n=3))
    assert _invoke(ws, "run", "--force", "--no-send").exit_code == 0
    _serve(httpserver, TERMS_V2)
    assert _invoke(ws, "run", "--force", "--no-send").exit_code == 0  # a real change, recorded
    outcomes = []
    for html in (TERMS_V1, TERMS_V2, TERMS_V1, TERMS_V2):
        _serve(httpserver, html)
        outcomes.append(_invoke(ws, "run", "--force", "--no-send").exit_code)
    assert outcomes == [3, 3, 3, 3]  # every flip is a failure: the streak never resets
    (row,) = json.loads(_invoke(ws, "status", "--format", "json").output)
    assert row["state"] == "broken" and row["last_failure_reason"] == "unstable"
    assert row["consecutive_failures"] == 4
    assert len(_outbox(ws, "operator")) == 1
    with Store(ws) as store:
        assert len(store.versions("acme/terms")) == 2  # no version for a flip
    # It settles on B (the stored version): two quiet checks in a row and it recovers.
    _serve(httpserver, TERMS_V2)
    assert _invoke(ws, "run", "--force", "--no-send").exit_code == 0
    (row,) = json.loads(_invoke(ws, "status", "--format", "json").output)
    assert row["state"] == "ok"


def test_a_revert_that_stays_is_accepted_after_three_fetches(
    httpserver: HTTPServer, workspace_dir: Path
) -> None:
    ws = workspace_dir
    url = _serve(httpserver, TERMS_V1)
    write_config(ws, source_config(url))
    _invoke(ws, "run", "--force", "--no-send")
    _serve(httpserver, TERMS_V2)
    _invoke(ws, "run", "--force", "--no-send")
    _serve(httpserver, TERMS_V1)  # back to the earlier text, and it stays
    codes = [_invoke(ws, "run", "--force", "--no-send") for _ in range(3)]
    assert [c.exit_code for c in codes] == [3, 3, 0]
    assert "changed  acme/terms" in codes[2].output
    with Store(ws) as store:
        versions = store.versions("acme/terms")
        assert len(versions) == 3 and versions[2].text_sha256 == versions[0].text_sha256
        assert store.diffs("acme/terms")[0].substantive  # recorded (and alerted) like any change
    (row,) = json.loads(_invoke(ws, "status", "--format", "json").output)
    assert row["state"] == "ok"


# -- problem 11 --------------------------------------------------------------------------------


def test_an_effective_date_only_change_is_recorded_and_shown_not_alerted(
    httpserver: HTTPServer, workspace_dir: Path
) -> None:
    ws = workspace_dir
    url = _serve(httpserver, DATED_1)
    write_config(ws, source_config(url))
    assert _invoke(ws, "run", "--force").exit_code == 0
    _serve(httpserver, DATED_2)
    result = _invoke(ws, "run", "--force")
    assert result.exit_code == 0, result.output
    assert "dated    acme/terms: effective date now 2026-10-08 (no clause changed)" in result.stdout
    with Store(ws) as store:
        v1, v2 = store.versions("acme/terms")
        assert (v1.effective_date, v2.effective_date) == ("2026-09-28", "2026-10-08")
        (diff,) = store.diffs("acme/terms")
        assert diff.effective_date_only and not diff.substantive and diff.changes == ()
    assert _outbox(ws) == []  # not alerted by default

    history = json.loads(_invoke(ws, "history", "acme/terms", "--format", "json").output)
    last = history["versions"][-1]
    assert last["effective_date_only"] and last["previous_effective_date"] == "2026-09-28"
    assert "effective date 2026-09-28 -> 2026-10-08 only" in _invoke(ws, "history").output
    status = _invoke(ws, "status")
    assert "effective 2026-10-08 (date changed" in status.output
    (row,) = json.loads(_invoke(ws, "status", "--format", "json").output)
    assert row["effective_date_changed_at"] == diff.detected_at

    reports = ws / "reports"
    timeline = (reports / "documents" / "acme" / "terms.html").read_text(encoding="utf-8")
    assert "Effective date changed" in timeline
    page = (reports / "changes" / "acme" / "terms" / f"{diff.id}.html").read_text(encoding="utf-8")
    assert "Only the effective date changed: 28 Sep 2026 → 8 Oct 2026" in page
    feed = (reports / "feed.xml").read_text(encoding="utf-8")
    assert "Only the effective date changed" in feed


def test_effective_date_changes_reach_recipients_who_ask(
    httpserver: HTTPServer, workspace_dir: Path
) -> None:
    ws = workspace_dir
    url = _serve(httpserver, DATED_1)
    config = (
        source_config(url)
        + '\n[[recipients]]\nemail = "dates@example.com"\neffective_date_changes = true\n'
    )
    write_config(ws, config)
    _invoke(ws, "run", "--force")
    _serve(httpserver, DATED_2)
    assert _invoke(ws, "run", "--force").exit_code == 0
    ((_, key, message),) = _outbox(ws)
    assert key.endswith(":dates@example.com")  # legal@example.com did not ask
    msg = message_from_bytes(message, policy=default_policy)
    assert "effective date now 2026-10-08 (was 2026-09-28)" in str(msg["Subject"])


def test_every_source_failing_ends_with_one_summary_line(workspace_dir: Path) -> None:
    ws = workspace_dir
    config = (
        source_config("http://tostrack-test-host.invalid/terms")
        + """
[[sources]]
id = "acme/privacy"
title = "Acme Privacy"
url = "http://tostrack-other-host.invalid/privacy"
"""
    )
    write_config(ws, config)
    result = _invoke(ws, "run")
    assert result.exit_code == 3
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("all 2 source(s) failed: DNS lookups failed")
    assert result.stderr.count("all 2 source(s) failed") == 1
    # status agrees: failing sources are exit 3 (README: exit codes), not 0
    status = _invoke(ws, "status")
    assert status.exit_code == 3 and "2 failing" in status.output


def test_likely_cause_names_the_common_environments() -> None:
    def fails(reason: str, detail: str) -> list[Failure]:
        return [Failure(f"p/{i}", "2026-11-27T00:00:00Z", reason, detail) for i in range(3)]

    assert "DNS" in likely_cause(fails("connection", "x: cannot connect (Failed to resolve 'x')"))
    assert "no network" in likely_cause(
        fails("connection", "x: [Errno 101] Network is unreachable")
    )
    assert "timed out" in likely_cause(fails("timeout", "x: no answer in 30s"))
    assert "refused" in likely_cause(fails("connection", "x: Connection refused"))
    assert "blocked" in likely_cause(fails("challenge", "x is a bot challenge"))


def test_a_failed_source_is_due_at_the_next_run_not_a_day_later() -> None:
    source = Source(id="acme/terms", urls=("https://acme.example/terms",), interval=86400)
    checked = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
    ok = {"last_checked_at": "2026-11-27T06:00:00Z", "consecutive_failures": 0}
    failed = {**ok, "consecutive_failures": 1}
    next_hour = checked + timedelta(hours=1)
    assert not is_due(source, ok, next_hour)
    assert is_due(source, failed, next_hour)  # an hourly cron retries it at once
    assert not is_due(source, {**ok, "consecutive_failures": 3}, next_hour)  # backing off: 4 h
    assert is_due(source, {**ok, "consecutive_failures": 3}, checked + timedelta(hours=4))
    assert not is_due(source, {**ok, "consecutive_failures": 30}, checked + timedelta(hours=23))


def test_status_exit_codes(httpserver: HTTPServer, workspace_dir: Path) -> None:
    ws = workspace_dir
    url = _serve(httpserver, TERMS_V1)
    write_config(ws, source_config(url))
    _invoke(ws, "run", "--force", "--no-send")
    assert _invoke(ws, "status").exit_code == 0
    httpserver.clear()
    httpserver.expect_request("/terms").respond_with_data("down", status=503)
    _invoke(ws, "run", "--force", "--no-send")
    status = _invoke(ws, "status")
    assert status.exit_code == 3 and "FAILING" in status.output  # one failure: failing, exit 3


def test_email_links_use_base_url_and_topic_names(
    httpserver: HTTPServer, workspace_dir: Path
) -> None:
    ws = workspace_dir
    url = _serve(httpserver, TERMS_V1)
    write_config(
        ws, source_config(url) + '\n[report]\nbase_url = "https://intranet.example/tostrack/"\n'
    )
    _invoke(ws, "run", "--force")
    _serve(httpserver, TERMS_V2)
    assert _invoke(ws, "run", "--force").exit_code == 0
    ((_, _, message),) = _outbox(ws, "change")
    text = _text(message)
    with Store(ws) as store:
        (diff,) = store.diffs("acme/terms")
    assert (
        f"Full report: https://intranet.example/tostrack/changes/acme/terms/{diff.id}.html" in text
    )
    assert "file://" not in text
    assert "Competing models" in text and "competing-models" not in text


def test_a_cross_host_redirect_is_recorded_and_shown(
    httpserver: HTTPServer, workspace_dir: Path
) -> None:
    ws = workspace_dir
    # localhost and 127.0.0.1: two host names for one test server
    moved = f"http://127.0.0.1:{httpserver.port}/moved-terms"
    httpserver.expect_request("/terms").respond_with_data(
        "", status=301, headers={"Location": moved}
    )
    httpserver.expect_request("/moved-terms").respond_with_data(TERMS_V1, content_type="text/html")
    declared = f"http://localhost:{httpserver.port}/terms"
    write_config(ws, source_config(declared))
    result = _invoke(ws, "run", "--force", "--no-send")
    assert result.exit_code == 0, result.output
    assert f"redirect acme/terms: {declared} -> {moved}" in result.output
    with Store(ws) as store:
        version = store.current_version("acme/terms")
        assert version.redirect == f"{declared} -> {moved}"
        meta = version.snapshot_meta()[0]
        assert meta["requested_url"] == declared and meta["url"] == moved
    history = json.loads(_invoke(ws, "history", "acme/terms", "--format", "json").output)
    assert history["versions"][0]["redirect"] == f"{declared} -> {moved}"
    timeline = (ws / "reports" / "documents" / "acme" / "terms.html").read_text(encoding="utf-8")
    assert "fetched from another host" in timeline and moved in timeline
    # ... and on the change report of a later version fetched the same way
    httpserver.clear()
    httpserver.expect_request("/terms").respond_with_data(
        "", status=301, headers={"Location": moved}
    )
    httpserver.expect_request("/moved-terms").respond_with_data(TERMS_V2, content_type="text/html")
    assert _invoke(ws, "run", "--force", "--no-send").exit_code == 0
    with Store(ws) as store:
        (diff,) = store.diffs("acme/terms")
    page = (ws / "reports" / "changes" / "acme" / "terms" / f"{diff.id}.html").read_text(
        encoding="utf-8"
    )
    assert "fetched from another host than declared" in page and moved in page


def test_a_broken_operator_template_override_does_not_lose_the_alert(
    httpserver: HTTPServer, workspace_dir: Path
) -> None:
    """The alert is queued inside the failure's transaction: a template that cannot render must
    not roll the failure back (and stop every run) nor drop the alert."""
    ws = workspace_dir
    httpserver.expect_request("/terms").respond_with_data("down", status=500)
    write_config(ws, source_config(httpserver.url_for("/terms")) + OPERATORS.format(n=1))
    (ws / "templates" / "email").mkdir(parents=True)
    (ws / "templates" / "email" / "operator.txt").write_text("{{ oops( }}", encoding="utf-8")
    result = _invoke(ws, "run", "--force", "--no-send")
    assert result.exit_code == 3, result.output
    ((_, _, message),) = _outbox(ws, "operator")
    assert "could not be rendered" in _text(message) and "http-500" in _text(message)
    with Store(ws) as store:
        assert len(store.failures("acme/terms")) == 1
