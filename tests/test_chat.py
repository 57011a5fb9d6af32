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
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tostrack import notify
from tostrack.errors import ConfigError
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
