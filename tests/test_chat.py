"""Chat and webhook recipients through Apprise, against real receivers on 127.0.0.1.

The receiver is a real HTTP server in a thread (http.server), scripted to fail, stall or kill
the sending process; sends go through the real Apprise plugins (json://, form://, mmost://,
workflows:// pointed at 127.0.0.1). Slack's and Discord's plugins post to fixed hosts
(hooks.slack.com, discord.com) and cannot be pointed at a local receiver; they are checked for
their URL form only.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_notify import make_diff, workspace

from tostrack import faults, notify
from tostrack.errors import ConfigError
from tostrack.models import Change, Clause
from tostrack.store import Store

pytest.importorskip("apprise")


class Receiver:
    """Records every request; answers with the scripted statuses, then 200."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        self.delay = 0.0  # seconds to wait before answering
        self.kill_pid = 0  # SIGKILL this process when a request arrives, before answering
        self.lock = threading.Lock()

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length)
        with self.lock:
            status = self.statuses.pop(0) if self.statuses else 200
            self.requests.append(
                {
                    "path": handler.path,
                    "type": handler.headers.get("Content-Type", ""),
                    "body": body,
                    "status": status,
                }
            )
        if self.kill_pid:
            os.kill(self.kill_pid, signal.SIGKILL)
            time.sleep(0.2)
        if self.delay:
            time.sleep(self.delay)
        handler.send_response(status)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def delivered(self) -> list[dict]:
        """The requests the receiver took (answered 2xx)."""
        with self.lock:
            return [r for r in self.requests if 200 <= r["status"] < 300]

    def wait_for(self, n: int, timeout: float = 5.0) -> int:
        deadline = time.monotonic() + timeout
        while len(self.requests) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return len(self.requests)


def _serve(recorder: Receiver, tls: ssl.SSLContext | None = None) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            recorder.handle(self)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[tuple[Receiver, int]]:
    """The same receiver over HTTPS, with a self-signed certificate."""
    from test_notify import _self_signed

    cert, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    recorder = Receiver()
    server = _serve(recorder, context)
    try:
        yield recorder, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, int]]:
    recorder = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            recorder.handle(self)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def hook_config(url: str, extra: str = "", base_url: str = "https://terms.example/reports/") -> str:
    return f'[report]\nbase_url = "{base_url}"\n\n[[recipients]]\nurl = "{url}"\n{extra}\n'


def summary_of(request: dict) -> dict:
    """What a JSON webhook receiver does: read Apprise's envelope, then tostrack's summary."""
    envelope = json.loads(request["body"])
    return json.loads(envelope["message"])


def states(store: Store) -> list[str]:
    return [row["state"] for row in notify.outbox_rows(store)]


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('url = "slak://a/b/c"', "Did you mean 'slack'"),
        ('url = "msteams://a/b/c"', "workflows://"),
        ('url = "slack://abc"', "incomplete or malformed"),
        ('url = "no-scheme"', "must be an Apprise URL such as"),
        ('urls = ["json://127.0.0.1/hook", 3]', "urls"),
        ('url_env = "not a name"', "url_env"),
        ('url = "json://127.0.0.1/hook"\nulr = "x"', "Did you mean 'url'"),
        ('min_severity = "high"', "email, url, urls or url_env"),
    ],
)
def test_bad_chat_recipients_are_config_errors(tmp_path: Path, table: str, message: str) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "tostrack.toml").write_text(f"[[recipients]]\n{table}\n", encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "tostrack", "--workspace", str(root), "config", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_config_check_accepts_chat_urls_and_never_prints_them(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    secret = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"
    root.mkdir()
    (root / "tostrack.toml").write_text(
        f'[[recipients]]\nurls = ["{secret}", "json://127.0.0.1:9/hook"]\n'
        '[[recipients]]\nurl_env = "TOSTRACK_TEAMS_URL"\nmin_severity = "high"\n',
        encoding="utf-8",
    )
    env = {**os.environ, "TOSTRACK_TEAMS_URL": "workflows://prod.example:443/abc/def"}
    proc = subprocess.run(
        [sys.executable, "-m", "tostrack", "--workspace", str(root), "config", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 recipient(s)" in proc.stdout and "3 chat or webhook target(s)" in proc.stdout
    assert "TIiajkdnlazkcOXrIdevi7FQ" not in proc.stdout + proc.stderr
    env["TOSTRACK_TEAMS_URL"] = "teams://nope"
    bad = subprocess.run(
        [sys.executable, "-m", "tostrack", "--workspace", str(root), "config", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert bad.returncode == 2 and "$TOSTRACK_TEAMS_URL" in bad.stderr
    assert "nope" not in bad.stderr  # the value of a secret is never repeated


MISSING_APPRISE = """
import sys
sys.modules["apprise"] = None  # as if tostrack[chat] were not installed
from tostrack.cli import main
sys.argv = ["tostrack", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("command", [["config", "check"], ["notify"], ["run"]])
def test_missing_extra_is_a_clear_config_error(tmp_path: Path, command: list[str]) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "tostrack.toml").write_text(
        '[registry]\ninclude = []\n[[recipients]]\nurl = "json://127.0.0.1:9/hook"\n',
        encoding="utf-8",
    )
    proc = subprocess.run(
        [sys.executable, "-c", MISSING_APPRISE, "--workspace", str(root), *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "pip install 'tostrack[chat]'" in proc.stderr and "Traceback" not in proc.stderr


def test_email_recipients_do_not_need_apprise(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "tostrack.toml").write_text(
        '[[recipients]]\nemail = "legal@example.com"\n', encoding="utf-8"
    )
    proc = subprocess.run(
        [sys.executable, "-c", MISSING_APPRISE, "--workspace", str(root), "config", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_recipient_config_values() -> None:
    from tostrack import config

    parsed = config.parse(
        {
            "recipients": [
                {"url": "json://127.0.0.1/hook", "labels": ["competing-models"]},
                {"urls": ["form://127.0.0.1/a", "json://127.0.0.1/b"], "max_length": 500},
                {"url_env": ["HOOK_A", "HOOK_B"], "mode": "daily"},
            ]
        }
    )
    first, second, third = parsed.recipients
    assert first.urls == ("json://127.0.0.1/hook",) and first.email == ""
    assert second.urls == ("form://127.0.0.1/a", "json://127.0.0.1/b")
    assert second.max_length == 500
    assert third.url_env == ("HOOK_A", "HOOK_B") and third.mode == "daily"
    with pytest.raises(ConfigError, match="max_length"):
        config.parse({"recipients": [{"url": "json://h/p", "max_length": 10}]})


# -- delivery, exactly once -------------------------------------------------------------------


def test_json_webhook_gets_the_change_once_and_names_the_clause(
    tmp_path: Path, receiver: tuple[Receiver, int]
) -> None:
    hook, port = receiver
    ws = workspace(tmp_path / "ws", hook_config(f"json://127.0.0.1:{port}/hook"))
    with Store(ws.root) as store:
        stored = make_diff(store)
        assert notify.enqueue_diff(ws, store, stored, "") == 1
        assert notify.enqueue_diff(ws, store, stored, "") == 0  # queued once
        summary = notify.send_pending(ws, store)
        assert summary.sent == 1 and summary.errors == []
        assert notify.send_pending(ws, store).sent == 0  # a repeat sends nothing
        rows = notify.outbox_rows(store)
    assert [r["state"] for r in rows] == ["sent"] and rows[0]["channel"] == "apprise"
    assert rows[0]["recipient"] == f"json://127.0.0.1:{port}/hook"
    (request,) = hook.delivered()
    assert request["path"] == "/hook" and request["type"] == "application/json"
    data = summary_of(request)
    assert data["type"] == "tostrack.change" and data["severity"] == "high"
    assert data["id"] == rows[0]["message_id"]  # a receiver can drop a resent duplicate by id
    (document,) = data["documents"]
    assert document["source"] == "nimbus/terms-of-use"
    (change,) = document["changes"]
    assert change["kind"] == "modified" and change["labels_added"] == ["competing-models"]
    assert change["new"]["id"] == "c-2" and change["new"]["section"] == "2 Use › 2.3"
    assert change["topics"] == ["Competing models"] and change["severity"] == "high"
    assert "compet" in change["headline"].lower()


def test_outage_keeps_the_message_queued_with_backoff_then_delivers_once(
    tmp_path: Path, receiver: tuple[Receiver, int]
) -> None:
    hook, port = receiver
    hook.statuses = [500, 503]
    ws = workspace(tmp_path / "ws", hook_config(f"json://127.0.0.1:{port}/hook"))
    now = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)
    with Store(ws.root) as store:
        notify.enqueue_diff(ws, store, make_diff(store), "")
        first = notify.send_pending(ws, store, now=now)
        assert first.sent == 0 and first.failed == 1
        assert "answered 500" in first.errors[0] and "retry after" in first.errors[0]
        (row,) = notify.outbox_rows(store)
        assert row["state"] == "queued" and row["attempts"] == 1 and row["next_attempt_at"]
        # Within the backoff nothing is tried; after it, the receiver is still down (503).
        assert notify.send_pending(ws, store, now=now + timedelta(minutes=1)).outcomes == []
        second = notify.send_pending(ws, store, now=now + timedelta(minutes=6))
        assert second.failed == 1 and "answered 503" in second.errors[0]
        assert notify.outbox_rows(store)[0]["attempts"] == 2
        third = notify.send_pending(ws, store, now=now + timedelta(hours=1))
        assert third.sent == 1
        assert notify.send_pending(ws, store, now=now + timedelta(days=1)).outcomes == []
    assert len(hook.requests) == 3 and len(hook.delivered()) == 1


def test_receiver_not_listening_is_retried(tmp_path: Path) -> None:
    from test_notify import free_port

    port = free_port()  # nothing listens there
    ws = workspace(tmp_path / "ws", hook_config(f"json://127.0.0.1:{port}/hook"))
    with Store(ws.root) as store:
        notify.enqueue_diff(ws, store, make_diff(store), "")
        summary = notify.send_pending(ws, store)
        assert summary.failed == 1 and "connection refused" in summary.errors[0]
        assert states(store) == ["queued"]


def test_a_4xx_is_rejected_for_good_and_resent_by_hand(
    tmp_path: Path, receiver: tuple[Receiver, int]
) -> None:
    hook, port = receiver
    hook.statuses = [404]
    ws = workspace(tmp_path / "ws", hook_config(f"json://127.0.0.1:{port}/hook"))
    with Store(ws.root) as store:
        notify.enqueue_diff(ws, store, make_diff(store), "")
        summary = notify.send_pending(ws, store, ignore_backoff=True)
        assert summary.failed == 1 and "refused the message for good" in summary.errors[0]
        assert states(store) == ["rejected"]
        assert notify.send_pending(ws, store, ignore_backoff=True).outcomes == []
        (row,) = notify.outbox_rows(store)
        notify.requeue(store, row["id"])
        assert notify.send_pending(ws, store).sent == 1
    assert len(hook.delivered()) == 1


def test_no_answer_in_time_is_uncertain_and_never_sent_twice(
    tmp_path: Path, receiver: tuple[Receiver, int]
) -> None:
    hook, port = receiver
    hook.delay = 1.5  # the receiver got the request, and answers after Apprise stopped waiting
    ws = workspace(tmp_path / "ws", hook_config(f"json://127.0.0.1:{port}/hook?rto=0.5"))
    with Store(ws.root) as store:
        notify.enqueue_diff(ws, store, make_diff(store), "")
        summary = notify.send_pending(ws, store)
        assert summary.sent == 0 and "delivery uncertain" in summary.errors[0]
        assert states(store) == ["uncertain"]
        assert notify.send_pending(ws, store, ignore_backoff=True).outcomes == []
    assert len(hook.requests) == 1


CHILD = """
import json, sys
from pathlib import Path
from tostrack import notify
from tostrack.store import Store
from tostrack.workspace import Workspace

ws = Workspace.open(Path(sys.argv[1]))
with Store(ws.root) as store:
    for diff_id in store.unnotified_diff_ids():
        notify.enqueue_diff(ws, store, store.diff(diff_id), "")
    summary = notify.send_pending(ws, store)
print(json.dumps({"sent": summary.sent, "errors": summary.errors}))
"""


def _child(root: Path, crash_at: str | None = None, **popen: object) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != faults.CRASH_ENV}
    if crash_at:
        env[faults.CRASH_ENV] = crash_at
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


@pytest.mark.parametrize("step", [*faults.CHAT_STEPS, "after-enqueue", "after-mark-sent"])
def test_kill_9_at_each_step_of_a_chat_send_delivers_at_most_once(
    tmp_path: Path, receiver: tuple[Receiver, int], step: str
) -> None:
    hook, port = receiver
    ws = workspace(tmp_path / "ws", hook_config(f"json://127.0.0.1:{port}/hook"))
    with Store(ws.root) as store:
        make_diff(store)
    code, _, err = _finish(_child(ws.root, step))
    if step == "after-mark-sent":  # an e-mail step: no e-mail here, the child finishes
        assert code == 0, err
    else:
        assert code == -9, err
    code, out, err = _finish(_child(ws.root))
    assert code == 0, err
    result = json.loads(out)
    if step == "after-chat-send":  # taken by the receiver, "sent" never committed
        assert result["sent"] == 0 and "delivery uncertain" in result["errors"][0]
    elif step == "after-mark-sent":
        assert result == {"sent": 0, "errors": []}
    else:  # nothing had gone out: the rerun sends it
        assert result == {"sent": 1, "errors": []}
    code, out, _ = _finish(_child(ws.root))
    assert json.loads(out) == {"sent": 0, "errors": []}
    assert len(hook.delivered()) == 1


def test_killed_while_the_receiver_holds_the_request(
    tmp_path: Path, receiver: tuple[Receiver, int]
) -> None:
    """A real kill during the send: the receiver SIGKILLs the sender when the request arrives."""
    hook, port = receiver
    ws = workspace(tmp_path / "ws", hook_config(f"json://127.0.0.1:{port}/hook"))
    with Store(ws.root) as store:
        make_diff(store)
    proc = _child(ws.root)
    hook.kill_pid = proc.pid
    code, _, _ = _finish(proc)
    assert code == -9 and len(hook.requests) == 1
    hook.kill_pid = 0
    code, out, err = _finish(_child(ws.root))
    assert code == 0, err
    result = json.loads(out)
    assert result["sent"] == 0 and "delivery uncertain" in result["errors"][0]
    assert "receiver's log or channel" in result["errors"][0]
    listing = subprocess.run(
        [sys.executable, "-m", "tostrack", "--workspace", str(ws.root), "outbox"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "uncertain" in listing.stdout and f"json://127.0.0.1:{port}/hook" in listing.stdout
    message = listing.stdout.split()[0]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tostrack",
            "--workspace",
            str(ws.root),
            "outbox",
            "resend",
            message,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    code, out, _ = _finish(_child(ws.root))
    assert json.loads(out)["sent"] == 1  # resent by hand, after checking the channel
    assert len(hook.requests) == 2


def test_secret_url_from_the_environment_is_never_stored(
    tmp_path: Path, receiver: tuple[Receiver, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    hook, port = receiver
    secret = f"json://tostrack:s3cret-token@127.0.0.1:{port}/hook"
    ws = workspace(tmp_path / "ws", '[[recipients]]\nurl_env = "TOSTRACK_TEST_HOOK"\n')
    with Store(ws.root) as store:
        notify.enqueue_diff(ws, store, make_diff(store), "")
        monkeypatch.delenv("TOSTRACK_TEST_HOOK", raising=False)
        with pytest.raises(ConfigError, match=r"\$TOSTRACK_TEST_HOOK is not set"):
            notify.send_pending(ws, store)
        monkeypatch.setenv("TOSTRACK_TEST_HOOK", secret)
        assert notify.send_pending(ws, store).sent == 1
        assert notify.outbox_rows(store)[0]["recipient"] == "$TOSTRACK_TEST_HOOK"
    assert len(hook.delivered()) == 1
    assert b"s3cret-token" not in (ws.root / "tostrack.db").read_bytes()
    assert "s3cret-token" not in (ws.root / "tostrack.toml").read_text()


def test_email_and_chat_of_one_diff_are_queued_together(
    tmp_path: Path, receiver: tuple[Receiver, int]
) -> None:
    hook, port = receiver
    config = f'[[recipients]]\nemail = "legal@example.com"\nurl = "json://127.0.0.1:{port}/hook"\n'
    ws = workspace(tmp_path / "ws", config)
    with Store(ws.root) as store:
        assert notify.enqueue_diff(ws, store, make_diff(store), "") == 2
        summary = notify.send_pending(ws, store)
        channels = sorted((r["channel"], r["state"]) for r in notify.outbox_rows(store))
    assert channels == [("apprise", "sent"), ("email", "written")]
    assert summary.sent == 1 and summary.written == 1 and len(hook.delivered()) == 1


# -- messages sized for the target ------------------------------------------------------------


def _many_changes(n: int) -> tuple[tuple[Change, ...], tuple[Clause, ...], tuple[Clause, ...]]:
    """n reworded clauses on competing models, each with long new wording."""
    changes, old, new = [], [], []
    for i in range(1, n + 1):
        before = Clause(f"c-{i}", f"{i} Use", (f"{i} Use",), f"Clause {i} says very little.")
        wording = (
            f"Clause {i}: you may not use the service or its output to develop models that "
            "compete with the provider, nor let a third party do so on your behalf, in any "
            "country, for any purpose, whether or not for profit, during the term and after it."
        )
        after = Clause(f"c-{i}", f"{i} Use", (f"{i} Use",), wording, labels=("competing-models",))
        old.append(before)
        new.append(after)
        changes.append(
            Change(
                "modified",
                True,
                (before,),
                (after,),
                labels=("competing-models",),
                labels_added=("competing-models",),
                severity="high" if i <= 2 else "medium",
            )
        )
    return tuple(changes), tuple(old), tuple(new)


def test_chat_text_is_trimmed_to_the_target_with_more_and_the_report_link(
    tmp_path: Path, receiver: tuple[Receiver, int]
) -> None:
    hook, port = receiver
    ws = workspace(
        tmp_path / "ws", hook_config(f"mmost://127.0.0.1:{port}/tok3n", "max_length = 900")
    )
    changes, old, new = _many_changes(8)
    report = ws.reports_dir / "changes" / "nimbus-terms-of-use" / "1.html"
    report.parent.mkdir(parents=True)
    report.write_text("<p>report</p>", encoding="utf-8")
    with Store(ws.root) as store:
        stored = make_diff(store, changes, old_clauses=old, new_clauses=new)
        notify.enqueue_diff(ws, store, stored, report)
        assert notify.send_pending(ws, store).sent == 1
    (request,) = hook.delivered()
    assert request["path"] == "/hooks/tok3n"  # Mattermost's incoming webhook, on 127.0.0.1
    text = json.loads(request["body"])["text"]
    assert len(text) <= 900  # the title, which Mattermost folds into the text, included
    assert text.count("• HIGH") == 2 and "(Competing models)" in text  # names, not ids
    assert "competing-models" not in text
    assert "> Clause 1: you may not use the service" in text and "…" in text  # quoted, trimmed
    link = "https://terms.example/reports/changes/nimbus-terms-of-use/1.html"
    shown = text.count("• ")
    assert f"…and {8 - shown} more changes: {link}" in text


def test_json_summary_stays_parseable_when_trimmed(
    tmp_path: Path, receiver: tuple[Receiver, int]
) -> None:
    hook, port = receiver
    ws = workspace(
        tmp_path / "ws", hook_config(f"json://127.0.0.1:{port}/hook", "max_length = 2500")
    )
    changes, old, new = _many_changes(12)
    with Store(ws.root) as store:
        stored = make_diff(store, changes, old_clauses=old, new_clauses=new)
        notify.enqueue_diff(ws, store, stored, "")
        assert notify.send_pending(ws, store).sent == 1
    (request,) = hook.delivered()
    assert len(request["body"]) <= 2500
    (document,) = summary_of(request)["documents"]
    assert 0 < len(document["changes"]) < 12
    assert len(document["changes"]) + document["more_changes"] == 12
    assert document["changes"][0]["severity"] == "high"  # the most severe are kept


def test_slack_and_discord_urls_are_checked_but_cannot_be_pointed_at_a_local_receiver() -> None:
    from tostrack.notify import chat

    slack = chat.limits_for("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ")
    assert slack.body == chat.READABLE_LENGTH and slack.title_in_body is False
    discord = chat.limits_for("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js")
    assert discord.body <= 2000  # Discord takes 2,000; a person reads 1,800
    assert chat.url_problem("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js") == ""
    teams = chat.limits_for("workflows://prod.example:443/abc/def")
    assert teams.body == 1000
    assert "TIiajkdnlazkcOXrIdevi7FQ" not in chat.masked(
        "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"
    )


def test_schema_3_outbox_gains_its_channel_column(tmp_path: Path) -> None:
    import sqlite3

    from tostrack.store import SCHEMA_VERSION

    Store(tmp_path).close()
    db = sqlite3.connect(tmp_path / "tostrack.db")
    db.execute("ALTER TABLE outbox DROP COLUMN channel")  # the outbox as schema 3 made it
    db.execute(
        "INSERT INTO outbox (key, kind, recipient, subject, message_id, message, created_at)"
        " VALUES ('diff:1:a@example.com', 'change', 'a@example.com', 's', '<m>', x'00', 'now')"
    )
    db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with Store(tmp_path, read_only=True) as store:  # read, not migrated: still listed
        assert [row["channel"] for row in store.outbox_listing()] == ["email"]
    with Store(tmp_path) as store:
        assert [row["channel"] for row in store.outbox_listing()] == ["email"]
    db = sqlite3.connect(tmp_path / "tostrack.db")
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
        str(SCHEMA_VERSION),
    )
    db.close()


# -- one upstream event, one message -------------------------------------------------------------


def _sources(httpserver, documents: dict[str, str]) -> str:
    tables = []
    for source_id, path in documents.items():
        tables.append(
            f'[[sources]]\nid = "{source_id}"\ntitle = "{source_id}"\n'
            f'url = "{httpserver.url_for(path)}"\nselect = ["main"]\n'
        )
    return "[fetch]\nretries = 0\nconfirm_delay = 0\ndelay = 0\n\n" + "\n".join(tables)


def test_documents_of_one_provider_changed_in_one_run_make_one_message(
    tmp_path: Path, receiver: tuple[Receiver, int], httpserver
) -> None:
    from conftest import TERMS_V1, TERMS_V2

    from tostrack.pipeline import run
    from tostrack.workspace import Workspace

    hook, port = receiver
    documents = {"acme/terms": "/terms", "acme/api-terms": "/api", "zenith/terms": "/zenith"}
    for path in documents.values():
        httpserver.expect_request(path).respond_with_data(TERMS_V1, content_type="text/html")
    config = _sources(httpserver, documents) + (
        f'\n[[recipients]]\nemail = "legal@example.com"\nurl = "json://127.0.0.1:{port}/hook"\n'
    )
    ws = workspace(tmp_path / "ws", config)
    run(ws, force=True)
    assert hook.requests == []  # a first version alerts nobody
    httpserver.clear()
    for path in documents.values():
        httpserver.expect_request(path).respond_with_data(TERMS_V2, content_type="text/html")
    result = run(Workspace.open(ws.root), force=True)
    assert result.notification_errors == ()
    # acme's two documents in one message, zenith's in another; the same for e-mail.
    bodies = [summary_of(r) for r in hook.delivered()]
    assert sorted(b["provider"] for b in bodies) == ["acme", "zenith"]
    acme = next(b for b in bodies if b["provider"] == "acme")
    assert sorted(d["source"] for d in acme["documents"]) == ["acme/api-terms", "acme/terms"]
    assert all(d["changes"] and d["report_url"] for d in acme["documents"])
    assert "1 other document" in acme["headline"]
    mails = sorted((ws.root / "outbox").glob("*-change-*.eml"))
    assert len(mails) == 2
    from test_notify import parse

    grouped = [m for m in mails if "other document" in str(parse(m.read_bytes())["Subject"])]
    (mail,) = grouped
    text = parse(mail.read_bytes()).get_body(("plain",)).get_content()
    assert "== acme/terms (acme/terms) ==" in text and "== acme/api-terms" in text
    # A repeat finds nothing new and sends nothing again.
    run(Workspace.open(ws.root), force=True)
    assert len(hook.delivered()) == 2 and len(list((ws.root / "outbox").glob("*.eml"))) == 2


def test_teams_workflow_gets_a_message_within_its_1000_characters(
    tmp_path: Path, tls_receiver: tuple[Receiver, int]
) -> None:
    """Microsoft Teams through Power Automate Workflows, pointed at a local HTTPS receiver."""
    hook, port = tls_receiver
    url = f"workflows://127.0.0.1:{port}/wf123/sig456?verify=no"
    ws = workspace(tmp_path / "ws", hook_config(url))
    changes, old, new = _many_changes(6)
    with Store(ws.root) as store:
        stored = make_diff(store, changes, old_clauses=old, new_clauses=new)
        notify.enqueue_diff(ws, store, stored, "")
        assert notify.send_pending(ws, store).sent == 1
    (request,) = hook.delivered()
    assert request["path"].startswith("/workflows/wf123/triggers/manual/paths/invoke")
    card = json.loads(request["body"])
    texts = [
        block.get("text", "")
        for attachment in card["attachments"]
        for block in attachment["content"]["body"]
    ]
    body = "\n".join(texts)
    assert "HIGH" in body and "Competing models" in body
    assert "more changes" in body
    assert len(body) <= 1000 + 250  # Teams' body limit, and the title beside it


def test_a_daily_chat_recipient_gets_one_digest_message(
    tmp_path: Path, receiver: tuple[Receiver, int]
) -> None:
    hook, port = receiver
    now = datetime.now(UTC)
    config = f'[[recipients]]\nurl = "mmost://127.0.0.1:{port}/tok3n"\nmode = "daily"\n'
    ws = workspace(tmp_path / "ws", config)
    with Store(ws.root) as store:
        assert notify.enqueue_diff(ws, store, make_diff(store), "") == 1  # a digest item
        assert notify.send_pending(ws, store, now=now).outcomes == []  # the day is not over
        day = notify.send_pending(ws, store, now=now + timedelta(days=1))
        assert day.sent == 1 and day.errors == []
        assert notify.send_pending(ws, store, now=now + timedelta(days=1, hours=1)).sent == 0
        (row,) = notify.outbox_rows(store)
    assert row["kind"] == "digest" and row["channel"] == "apprise"
    (request,) = hook.delivered()
    text = json.loads(request["body"])["text"]
    assert text.startswith("Daily digest: 1 change in Nimbus AI Terms of Use")
    assert "(Competing models)" in text


def test_apprise_never_retries_nor_splits_a_message_whatever_the_url_asks() -> None:
    from tostrack.notify import chat

    plugin = chat.plugin_for("json://127.0.0.1/hook?retry=3&overflow=split")
    assert plugin.retry == 0 and str(plugin.overflow_mode.value) == "truncate"
