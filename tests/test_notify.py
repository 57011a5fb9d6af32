"""Notifications: recipients, digests, operator alerts, the outbox, and SMTP exactly once.

Everything is real: a SQLite workspace in tmp_path, an aiosmtpd server on 127.0.0.1, child
processes killed with SIGKILL at each step of sending. The tests taking `backend` run on a real
PostgreSQL too (tests/postgres_cluster.py; skipped, saying why, where none can be started).
"""

from __future__ import annotations

import email
import email.policy
import itertools
import json
import os
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tostrack import faults, notify
from tostrack.errors import ConfigError
from tostrack.models import Change, Clause, Diff, Document, Snapshot
from tostrack.store import Store, StoredDiff
from tostrack.workspace import Workspace

RECIPIENT = 'email = "legal@example.com"'
_stamps = itertools.count(1)

OLD = Clause("c-2", "2 Use › 2.3", ("2 Use",), "You may not reverse engineer the service.")
NEW = Clause(
    "c-2",
    "2 Use › 2.3",
    ("2 Use",),
    "You may not reverse engineer the service, or use its output to develop competing models.",
    labels=("competing-models",),
)
COMPETING = Change(
    "modified",
    True,
    (OLD,),
    (NEW,),
    redline=(
        ("equal", "You may not reverse engineer the service"),
        ("delete", "."),
        ("insert", ", or use its output to develop competing models."),
    ),
    labels=("competing-models",),
    labels_added=("competing-models",),
    severity="high",
)
LAW_OLD = Clause("c-9", "9 Disputes", ("9 Disputes",), "The laws of England govern these terms.")
LAW_NEW = Clause(
    "c-9",
    "9 Disputes",
    ("9 Disputes",),
    "The laws of Ireland govern these terms.",
    labels=("governing-law",),
)
GOVERNING_LAW = Change(
    "modified",
    True,
    (LAW_OLD,),
    (LAW_NEW,),
    redline=(
        ("equal", "The laws of "),
        ("delete", "England"),
        ("insert", "Ireland"),
        ("equal", " govern these terms."),
    ),
    labels=("governing-law",),
    severity="low",
)
COSMETIC = Change("modified", False, (LAW_OLD,), (LAW_OLD,), severity="none")


def _stamp() -> str:
    n = next(_stamps)
    return f"2026-03-{1 + n // 1440:02d}T{(n // 60) % 24:02d}:{n % 60:02d}:00Z"


def make_diff(
    store: Store,
    changes: tuple[Change, ...] = (COMPETING,),
    *,
    source_id: str = "nimbus/terms-of-use",
    title: str = "Nimbus AI Terms of Use",
    old_clauses: tuple[Clause, ...] = (OLD, LAW_OLD),
    new_clauses: tuple[Clause, ...] = (NEW, LAW_OLD),
) -> StoredDiff:
    """Record two hand-built versions of a document and the diff between them."""
    previous = store.current_version(source_id)
    if previous is None:
        first = Snapshot(
            source_id, "https://nimbus.test/terms", _stamp(), 200, "text/html", b"<p>one</p>"
        )
        previous, _ = store.save_version(
            [first], Document((), title=title), old_clauses, title=title, url=first.url
        )
    body = f"<p>two {next(_stamps)}</p>".encode()
    snap = Snapshot(source_id, "https://nimbus.test/terms", _stamp(), 200, "text/html", body)
    document = Document((), title=title, effective_date="2026-04-01")
    _, diff_id = store.save_version(
        [snap],
        document,
        new_clauses,
        title=title,
        url=snap.url,
        diff=Diff(changes),
        previous=previous,
        notify=any(c.substantive for c in changes),
    )
    assert diff_id is not None
    return store.diff(diff_id)


STORE_TABLE = ""  # the [store] table of the backend under test; none: the embedded store


@pytest.fixture
def backend(store_table: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test on the embedded store, then on PostgreSQL (conftest.store_table): the
    workspaces it makes get the backend's [store] table. (Killed senders on PostgreSQL, whose
    claims are waited out, are tested in test_workers.py.)"""
    monkeypatch.setitem(globals(), "STORE_TABLE", store_table)
    return store_table


def workspace(root: Path, config: str = f"[[recipients]]\n{RECIPIENT}\n") -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    (root / "tostrack.toml").write_text(config + STORE_TABLE, encoding="utf-8")
    return Workspace.open(root)


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def outbox(store: Store) -> list[dict]:
    return notify.outbox_rows(store)


# -- .eml output, content -----------------------------------------------------------------------


def test_eml_has_subject_redline_evidence_and_report(tmp_path: Path, backend: str) -> None:
    ws = workspace(tmp_path / "ws")
    report = tmp_path / "report.html"
    report.write_text("<html><body><h1>Full report</h1></body></html>", encoding="utf-8")
    with ws.open_store() as store:
        stored = make_diff(store, (COMPETING, GOVERNING_LAW, COSMETIC))
        assert notify.enqueue_diff(ws, store, stored, report) == 1
        assert notify.enqueue_diff(ws, store, stored, report) == 0  # idempotent
        summary = notify.send_pending(ws, store)
        again = notify.send_pending(ws, store)
    assert (
        summary.written == 1 and summary.sent == 0 and summary.failed == 0 and summary.errors == []
    )
    assert again.written == 0 and again.written_eml == []
    (path,) = summary.written_eml
    assert path.parent == ws.outbox_dir and list(ws.outbox_dir.glob("*.eml")) == [path]
    msg = parse(path.read_bytes())
    subject = str(msg["Subject"])
    assert subject.startswith("Nimbus AI Terms of Use: ")
    assert "compet" in subject.lower() and "1 more change" in subject
    assert msg["To"] == "legal@example.com" and msg["Message-ID"]
    assert msg.get_content_type() == "multipart/mixed"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    for body in (text, html):
        assert "2 Use › 2.3" in body and "9 Disputes" in body
        # topic names, not label ids (issue 11)
        assert "Competing models" in body and "competing-models" not in body and "high" in body
        assert "2026-04-01" in body  # effective date
        assert stored.to_version.snapshot_meta()[0]["sha256"] in body
        assert stored.to_version.snapshot_meta()[0]["fetched_at"] in body
        assert report.resolve().as_uri() in body
    assert "{+, or use its output to develop competing models.+}" in " ".join(text.split())
    assert "[-England-]{+Ireland+}" in text
    assert "<del" in html and "<ins" in html and "Ireland</ins>" in html
    assert "<link" not in html and "<style" not in html and "src=" not in html  # inline only
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_filename() == f"nimbus-terms-of-use-change-{stored.id}.html"
    assert "Full report" in attachment.get_content()


def test_recipient_filters_and_severity(tmp_path: Path) -> None:
    config = textwrap.dedent(
        """
        [[recipients]]
        email = "all@example.com"

        [[recipients]]
        email = "openai@example.com"
        providers = ["openai"]

        [registry]
        include = ["openai"]

        [[sources]]
        id = "nimbus/terms-of-use"
        url = "https://nimbus.test/terms"

        [[recipients]]
        email = "nimbus-doc@example.com"
        sources = ["nimbus/terms-of-use"]

        [[recipients]]
        email = "law@example.com"
        labels = ["governing-law"]

        [[recipients]]
        email = "urgent@example.com"
        min_severity = "high"

        [[recipients]]
        email = "medium@example.com"
        min_severity = "medium"
        labels = ["governing-law"]
        """
    )
    ws = workspace(tmp_path / "ws", config)
    with ws.open_store() as store:
        law_only = make_diff(store, (GOVERNING_LAW,))
        both = make_diff(store, (COMPETING, GOVERNING_LAW))
        assert notify.enqueue_diff(ws, store, law_only, "") == 3
        assert notify.enqueue_diff(ws, store, both, "") == 4
        rows = outbox(store)
        emls = {p.name: parse(p.read_bytes()) for p in notify.send_pending(ws, store).written_eml}
    by_diff: dict[str, set[str]] = {}
    for row in rows:
        by_diff.setdefault(row["key"].split(":")[1], set()).add(row["recipient"])
    assert by_diff[str(law_only.id)] == {
        "all@example.com",
        "nimbus-doc@example.com",
        "law@example.com",
    }
    assert by_diff[str(both.id)] == {
        "all@example.com",
        "nimbus-doc@example.com",
        "law@example.com",
        "urgent@example.com",
    }
    # a recipient filtered on a label hears about that change only, and is told there is more
    law_mail = [m for m in emls.values() if m["To"] == "law@example.com" and "Ireland" in str(m)]
    assert len(law_mail) == 2
    texts = [m.get_body(("plain",)).get_content() for m in law_mail]
    assert all("competing" not in t.lower() for t in texts)
    assert any("1 more in the full report" in t for t in texts)


def test_cosmetic_diff_alerts_nobody(tmp_path: Path) -> None:
    ws = workspace(tmp_path / "ws")
    with ws.open_store() as store:
        stored = make_diff(store, (COSMETIC,))
        assert notify.enqueue_diff(ws, store, stored, "") == 0
        assert notify.send_pending(ws, store).written_eml == []


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('email = "legal@example.com"\nmode = "hourly"', "mode = 'hourly' is not valid"),
        ('email = "not an address"', "not an email address"),
        ('email = "a@example.com\\r\\nBcc: x@evil.test"', "not an email address"),
        ('email = "legal@example.com"\nmin_severity = "urgent"', "min_severity"),
        ('email = "Jörg <jörg@example.com>"', "non-ASCII"),
        ('email = "legal@example.com"\nlabels = "x"\nproviders = [1]', "list of strings"),
    ],
)
def test_bad_recipients_are_config_errors(tmp_path: Path, table: str, message: str) -> None:
    # Checked when the workspace is opened, before any change is recorded (a "dayly" mode used
    # to pass until the first change, whose email was then never queued).
    with pytest.raises(ConfigError, match=message):
        workspace(tmp_path / "ws", f"[[recipients]]\n{table}\n")


def test_password_in_file_or_missing_env_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="password_env"):
        workspace(tmp_path / "ws", '[smtp]\nhost = "127.0.0.1"\npassword = "hunter2"\n')
    ws = workspace(
        tmp_path / "ws2",
        f'[smtp]\nhost = "127.0.0.1"\nusername = "u"\npassword_env = "TOSTRACK_TEST_UNSET_PW"\n'
        f"[[recipients]]\n{RECIPIENT}\n",
    )
    with ws.open_store() as store:
        notify.enqueue_diff(ws, store, make_diff(store), "")
        with pytest.raises(ConfigError, match="TOSTRACK_TEST_UNSET_PW"):
            notify.send_pending(ws, store)
        assert [r["state"] for r in outbox(store)] == ["queued"]  # nothing lost


def test_header_injection_from_page_text_is_neutralised(tmp_path: Path) -> None:
    evil = "Nimbus Terms\r\nBcc: x@evil.test\r\nX-Evil: 1"
    bad_new = Clause("c-2", "2\r\nBcc: x@evil.test", ("2",), "Use.\r\nBcc: x@evil.test\r\n\r\nbody")
    change = Change(
        "modified",
        True,
        (OLD,),
        (bad_new,),
        redline=(("insert", "\r\nBcc: x@evil.test\r\n"),),
        labels_added=("competing-models",),
        severity="high",
    )
    ws = workspace(tmp_path / "ws")
    with ws.open_store() as store:
        stored = make_diff(store, (change,), title=evil, new_clauses=(bad_new,))
        notify.enqueue_diff(ws, store, stored, "")
        (path,) = notify.send_pending(ws, store).written_eml
    raw = path.read_bytes()
    msg = parse(raw)
    assert msg["Bcc"] is None and msg["X-Evil"] is None
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert not any(line.lower().startswith((b"bcc:", b"x-evil:")) for line in head.splitlines())
    assert all(part["Bcc"] is None and part["X-Evil"] is None for part in msg.walk())
    assert "Bcc: x@evil.test" in msg.get_body(("plain",)).get_content()  # shown, as text
    assert "Nimbus Terms Bcc: x@evil.test X-Evil: 1" in str(msg["Subject"])
    assert notify.header_safe("a\rb\nc\x00d\u2028e\x85f") == "a b c d e f"


# -- digests and catch-up ------------------------------------------------------------------------


def test_daily_and_weekly_digests_one_message_per_period(tmp_path: Path, backend: str) -> None:
    now = datetime.now(UTC)
    weekday = notify.WEEKDAYS[(now + timedelta(days=3)).weekday()]  # due in 2 to 4 days
    config = textwrap.dedent(
        f"""
        [notify]
        digest_hour = 7
        digest_weekday = "{weekday}"

        [[recipients]]
        email = "daily@example.com"
        mode = "daily"

        [[recipients]]
        email = "weekly@example.com"
        mode = "weekly"
        """
    )
    ws = workspace(tmp_path / "ws", config)
    with ws.open_store() as store:
        first = make_diff(store, (COMPETING,))
        second = make_diff(store, (GOVERNING_LAW,))
        assert notify.enqueue_diff(ws, store, first, "") == 2
        assert notify.enqueue_diff(ws, store, second, "") == 2
        assert notify.enqueue_diff(ws, store, second, "") == 0
        assert notify.send_pending(ws, store, now=now).written == 0  # the period has not ended
        day = notify.send_pending(ws, store, now=now + timedelta(days=1))
        assert day.written == 1
        assert notify.send_pending(ws, store, now=now + timedelta(days=1, hours=1)).written == 0
        week = notify.send_pending(ws, store, now=now + timedelta(days=7))
        assert week.written == 1
        third = make_diff(store, (GOVERNING_LAW,))
        notify.enqueue_diff(ws, store, third, "")
        later = notify.send_pending(ws, store, now=now + timedelta(days=9))
    (daily,) = [parse(p.read_bytes()) for p in day.written_eml]
    (weekly,) = [parse(p.read_bytes()) for p in week.written_eml]
    assert daily["To"] == "daily@example.com" and weekly["To"] == "weekly@example.com"
    assert str(daily["Subject"]) == "Daily digest: 2 changes in Nimbus AI Terms of Use"
    body = daily.get_body(("plain",)).get_content()
    assert "Competing models" in body and "[-England-]{+Ireland+}" in body
    assert [parse(p.read_bytes())["To"] for p in later.written_eml] == ["daily@example.com"]


def test_diff_recorded_but_never_enqueued_is_caught_up(tmp_path: Path, backend: str) -> None:
    """A run killed between recording a change and queueing its email loses nothing."""
    ws = workspace(tmp_path / "ws")
    with ws.open_store() as store:
        make_diff(store)
        summary = notify.send_pending(ws, store)
        assert summary.written == 1
        assert notify.send_pending(ws, store).written == 0


def test_operator_alerts_once_per_breakage(tmp_path: Path, backend: str) -> None:
    config = (
        '[notify]\noperators = ["ops@example.com", "oncall@example.com"]\n'
        f"[[recipients]]\n{RECIPIENT}\n"
    )
    ws = workspace(tmp_path / "ws", config)
    with ws.open_store() as store:
        assert notify.enqueue_operator(ws, store, "recovered", "nimbus/terms", "") == 0
        assert notify.enqueue_operator(ws, store, "broken", "nimbus/terms", "http-503: down") == 2
        assert notify.enqueue_operator(ws, store, "broken", "nimbus/terms", "http-503: down") == 0
        assert notify.enqueue_operator(ws, store, "broken", "corvid/policy", "timeout: slow") == 2
        assert notify.enqueue_operator(ws, store, "recovered", "nimbus/terms", "") == 2
        assert notify.enqueue_operator(ws, store, "recovered", "nimbus/terms", "") == 0
        assert (
            notify.enqueue_operator(ws, store, "broken", "nimbus/terms", "challenge: bot wall") == 2
        )
        summary = notify.send_pending(ws, store)
    subjects = [str(parse(p.read_bytes())["Subject"]) for p in summary.written_eml]
    assert sorted(set(subjects)) == [
        "[tostrack] source broken: corvid/policy (timeout)",
        "[tostrack] source broken: nimbus/terms (challenge)",
        "[tostrack] source broken: nimbus/terms (http-503)",
        "[tostrack] source recovered: nimbus/terms",
    ]
    assert len(subjects) == 8
    # operator alerts never go to change recipients, and change alerts never to operators
    assert {str(parse(p.read_bytes())["To"]) for p in summary.written_eml} == {
        "ops@example.com",
        "oncall@example.com",
    }


# -- a real SMTP server ---------------------------------------------------------------------------


class Recorder:
    """An aiosmtpd handler that keeps every accepted message; can refuse or drop on demand."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.lock = threading.Lock()
        self.data_replies: list[str] = []  # replies to give to the next DATA commands
        self.drop_rcpt = 0  # drop the connection on the next N RCPT commands

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.drop_rcpt:
            self.drop_rcpt -= 1
            server.transport.close()
            return "421 closing"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_replies:
            return self.data_replies.pop(0)
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    def wait_for(self, n: int, timeout: float = 3.0) -> int:
        deadline = time.monotonic() + timeout
        while self.count() < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.count()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server() -> Iterator[tuple[Recorder, int]]:
    handler = Recorder()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def smtp_config(port: int, extra: str = "", tls: str = "none") -> str:
    return textwrap.dedent(
        f"""
        [smtp]
        host = "127.0.0.1"
        port = {port}
        tls = "{tls}"
        from = "tostrack <alerts@tostrack.test>"
        timeout = 5
        {extra}

        [[recipients]]
        {RECIPIENT}
        """
    )


def test_smtp_delivers_exactly_once_with_the_stored_message(
    tmp_path: Path, smtp_server: tuple[Recorder, int], backend: str
) -> None:
    handler, port = smtp_server
    ws = workspace(tmp_path / "ws", smtp_config(port))
    with ws.open_store() as store:
        stored = make_diff(store, (COMPETING,))
        notify.enqueue_diff(ws, store, stored, "")
        notify.enqueue_operator(ws, store, "broken", "x/y", "http-500")  # no operators: nothing
        summary = notify.send_pending(ws, store)
        assert notify.send_pending(ws, store).sent == 0
        (row,) = outbox(store)
    assert summary.sent == 1 and summary.errors == [] and summary.written_eml == []
    assert not ws.outbox_dir.exists()
    ((mail_from, rcpts, content),) = handler.messages
    assert mail_from == "alerts@tostrack.test" and rcpts == ["legal@example.com"]
    msg = parse(content)
    assert msg["Message-ID"].strip() == row["message_id"] and row["state"] == "sent"
    assert "compet" in str(msg["Subject"]).lower()


def test_dot_lines_in_page_text_survive_smtp(
    tmp_path: Path, smtp_server: tuple[Recorder, int]
) -> None:
    handler, port = smtp_server
    dotted = Clause("c-2", "2", ("2",), "first line\n.\n..\n.second")
    change = Change(
        "added", True, (), (dotted,), labels_added=("competing-models",), severity="high"
    )
    ws = workspace(tmp_path / "ws", smtp_config(port))
    with ws.open_store() as store:
        stored = make_diff(store, (change,), new_clauses=(dotted,))
        notify.enqueue_diff(ws, store, stored, "")
        raw = bytes(store.db.execute("SELECT message FROM outbox").fetchone()[0])
        assert notify.send_pending(ws, store).sent == 1
    (_, _, content) = handler.messages[0]
    assert (
        parse(content).get_body(("plain",)).get_content()
        == parse(raw).get_body(("plain",)).get_content()
    )


def test_smtp_login_with_password_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, str]] = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        seen.append((auth_data.login.decode(), auth_data.password.decode()))
        ok = auth_data.login == b"alerts" and auth_data.password == b"s3cret"
        return AuthResult(success=ok, handled=False)

    handler = Recorder()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,
    )
    controller.start()
    try:
        monkeypatch.setenv("TOSTRACK_TEST_SMTP_PW", "s3cret")
        ws = workspace(
            tmp_path / "ws",
            smtp_config(port, 'username = "alerts"\npassword_env = "TOSTRACK_TEST_SMTP_PW"'),
        )
        with ws.open_store() as store:
            notify.enqueue_diff(ws, store, make_diff(store), "")
            monkeypatch.setenv("TOSTRACK_TEST_SMTP_PW", "wrong")
            refused = notify.send_pending(ws, store)
            assert refused.failed == 1 and "login refused" in refused.errors[0]
            assert "Traceback" not in refused.errors[0]
            monkeypatch.setenv("TOSTRACK_TEST_SMTP_PW", "s3cret")
            later = datetime.now(UTC) + timedelta(hours=1)
            assert notify.send_pending(ws, store, now=later).sent == 1
    finally:
        controller.stop()
    assert handler.count() == 1 and ("alerts", "s3cret") in seen
    assert "s3cret" not in (tmp_path / "ws" / "tostrack.toml").read_text()


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    x509 = pytest.importorskip("cryptography.x509")
    from ipaddress import IPv4Address

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize("tls", ["starttls", "ssl"])
def test_smtp_tls_with_a_private_certificate(tmp_path: Path, tls: str) -> None:
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    handler = Recorder()
    port = free_port()
    if tls == "starttls":
        controller = Controller(
            handler, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True
        )
    else:
        controller = Controller(
            handler,
            hostname="127.0.0.1",
            port=port,
            ssl_context=context,
            server_hostname="127.0.0.1",
        )
    controller.start()
    try:
        untrusted = workspace(tmp_path / "untrusted", smtp_config(port, tls=tls))
        with untrusted.open_store() as store:
            notify.enqueue_diff(untrusted, store, make_diff(store), "")
            summary = notify.send_pending(untrusted, store)
        assert summary.failed == 1 and "TLS failed" in summary.errors[0]
        trusted = workspace(tmp_path / "trusted", smtp_config(port, f'ca_file = "{cert}"', tls=tls))
        with trusted.open_store() as store:
            notify.enqueue_diff(trusted, store, make_diff(store), "")
            assert notify.send_pending(trusted, store).sent == 1
    finally:
        controller.stop()
    assert handler.count() == 1


def test_refused_connection_keeps_message_and_retries_with_backoff(
    tmp_path: Path, backend: str
) -> None:
    port = free_port()  # nothing listens here yet
    ws = workspace(tmp_path / "ws", smtp_config(port))
    now = datetime.now(UTC)
    with ws.open_store() as store:
        notify.enqueue_diff(ws, store, make_diff(store), "")
        notify.enqueue_diff(ws, store, make_diff(store, (GOVERNING_LAW,)), "")
        first = notify.send_pending(ws, store, now=now)
        assert first.sent == 0 and first.failed == 2
        assert all("connection refused" in e and "retry after" in e for e in first.errors)
        rows = outbox(store)
        assert {r["state"] for r in rows} == {"queued"} and {r["attempts"] for r in rows} == {1}
        handler = Recorder()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            assert (
                notify.send_pending(ws, store, now=now + timedelta(minutes=1)).sent == 0
            )  # backoff
            retry = notify.send_pending(ws, store, now=now + timedelta(hours=1))
            assert retry.sent == 2 and retry.errors == []
            assert notify.send_pending(ws, store, now=now + timedelta(days=1)).sent == 0
        finally:
            controller.stop()
    assert handler.count() == 2


def test_dry_run_previews_elsewhere_and_changes_no_state(tmp_path: Path) -> None:
    """Problem 3: a dry run used to mark the message sent, with the .eml as its destination."""
    port = free_port()
    ws = workspace(tmp_path / "ws", smtp_config(port))
    with ws.open_store() as store:
        notify.enqueue_diff(ws, store, make_diff(store), "")
        assert notify.send_pending(ws, store).failed == 1  # nobody listens: queued, with a backoff
        before = outbox(store)
        dry = notify.send_pending(ws, store, dry_run=True)
        assert dry.sent == dry.written == 0 and dry.errors == []
        (preview,) = dry.written_eml
        assert preview.parent == ws.preview_dir and not ws.outbox_dir.exists()
        assert parse(preview.read_bytes())["To"] == "legal@example.com"
        assert [o.state for o in dry.outcomes] == ["preview"]
        assert outbox(store) == before  # same state, attempts, next attempt, error
        assert before[0]["state"] == "queued"
        again = notify.send_pending(ws, store, dry_run=True)
        assert list(ws.preview_dir.glob("*.eml")) == [preview] and outbox(store) == before
    handler = Recorder()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with ws.open_store() as store:
            sent = notify.send_pending(ws, store, ignore_backoff=True)
            assert sent.sent == 1 and outbox(store)[0]["state"] == "sent"
    finally:
        controller.stop()
    assert handler.count() == 1 and again.outcomes[0].state == "preview"


def test_manual_notify_sends_now_and_says_what_it_did(tmp_path: Path, backend: str) -> None:
    """Problem 4: after an SMTP outage, `tostrack notify` sent nothing and said nothing (the
    message waited for its retry time); `run` keeps the backoff."""
    from click.testing import CliRunner

    from tostrack.cli import cli

    port = free_port()
    ws = workspace(tmp_path / "ws", smtp_config(port))
    with ws.open_store() as store:
        notify.enqueue_diff(ws, store, make_diff(store), "")
    runner = CliRunner()
    down = runner.invoke(cli, ["--workspace", str(ws.root), "notify"])
    assert down.exit_code == 3
    assert "failed   legal@example.com" in down.output and "connection refused" in down.output
    handler = Recorder()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with ws.open_store() as store:  # what `run` does: the backoff holds
            assert notify.send_pending(ws, store).sent == 0
        assert handler.count() == 0
        fixed = runner.invoke(cli, ["--workspace", str(ws.root), "notify"])
        assert fixed.exit_code == 0, fixed.output
        assert "sent     legal@example.com" in fixed.output and "1 sent" in fixed.output
        again = runner.invoke(cli, ["--workspace", str(ws.root), "notify"])
        assert again.exit_code == 0 and "nothing queued" in again.output
    finally:
        controller.stop()
    assert handler.count() == 1


def test_written_is_not_sent(tmp_path: Path, backend: str) -> None:
    """Problem 5: without [smtp], an .eml in outbox/ was reported as "sent"."""
    from click.testing import CliRunner

    from tostrack.cli import cli

    ws = workspace(tmp_path / "ws")
    with ws.open_store() as store:
        notify.enqueue_diff(ws, store, make_diff(store), "")
    runner = CliRunner()
    result = runner.invoke(cli, ["--workspace", str(ws.root), "notify"])
    assert result.exit_code == 0, result.output
    assert "written  legal@example.com" in result.output and "1 written" in result.output
    assert "sent " not in result.output
    with ws.open_store() as store:
        (row,) = outbox(store)
    assert row["state"] == "written" and row["delivered_to"].startswith("file:")
    listing = runner.invoke(cli, ["--workspace", str(ws.root), "outbox"])
    assert " written " in listing.output and " sent " not in listing.output


def test_an_earlier_message_file_is_never_overwritten(tmp_path: Path) -> None:
    """After `tostrack rebuild` outbox ids start again at 1: a new message written to outbox/
    must not replace an older .eml that happens to have the same name."""
    ws = workspace(tmp_path / "ws")
    with ws.open_store() as store:
        notify.enqueue_diff(ws, store, make_diff(store), "")
        (row,) = outbox(store)
        older = ws.outbox_dir / notify.worker._eml_name(row)
        older.parent.mkdir(parents=True, exist_ok=True)
        older.write_bytes(b"an earlier message, kept as evidence")
        notify.send_pending(ws, store)
        (row,) = outbox(store)
        (message,) = store.db.execute("SELECT message FROM outbox").fetchone()
    assert older.read_bytes() == b"an earlier message, kept as evidence"
    written = Path(row["delivered_to"].removeprefix("file:"))
    assert written != older and written.read_bytes() == bytes(message)


def test_451_and_dropped_connection_are_retried_and_delivered_once(
    tmp_path: Path, smtp_server: tuple[Recorder, int], backend: str
) -> None:
    handler, port = smtp_server
    handler.data_replies = ["451 4.3.0 Try again later"]
    handler.drop_rcpt = 0
    ws = workspace(tmp_path / "ws", smtp_config(port))
    now = datetime.now(UTC)
    with ws.open_store() as store:
        notify.enqueue_diff(ws, store, make_diff(store), "")
        first = notify.send_pending(ws, store, now=now)
        assert first.failed == 1 and "451" in first.errors[0]
        handler.drop_rcpt = 1
        second = notify.send_pending(ws, store, now=now + timedelta(hours=1))
        assert second.failed == 1 and second.sent == 0
        (row,) = outbox(store)
        assert row["state"] == "queued" and row["attempts"] == 2
        third = notify.send_pending(ws, store, now=now + timedelta(hours=2))
        assert third.sent == 1
        assert notify.send_pending(ws, store, now=now + timedelta(days=2)).sent == 0
    assert handler.count() == 1


def test_permanent_refusal_is_reported_once_and_not_retried(
    tmp_path: Path, smtp_server: tuple[Recorder, int], backend: str
) -> None:
    handler, port = smtp_server
    handler.data_replies = ["550 5.7.1 Message rejected as spam"]
    ws = workspace(tmp_path / "ws", smtp_config(port))
    now = datetime.now(UTC)
    with ws.open_store() as store:
        notify.enqueue_diff(ws, store, make_diff(store), "")
        first = notify.send_pending(ws, store, now=now)
        assert first.failed == 1 and "550" in first.errors[0] and "for good" in first.errors[0]
        later = notify.send_pending(ws, store, now=now + timedelta(days=1))
        assert later.sent == later.failed == 0 and later.errors == []
        assert outbox(store)[0]["state"] == "rejected"
    assert handler.count() == 0


# -- kill -9 at each step ------------------------------------------------------------------------

CHILD = """
import json, sys
from tostrack import notify
from tostrack.workspace import Workspace

ws = Workspace.open(sys.argv[1])
with ws.open_store() as store:
    for stored in store.diffs():
        notify.enqueue_diff(ws, store, stored, "")
    summary = notify.send_pending(ws, store)
print(json.dumps({"sent": summary.sent, "errors": summary.errors}))
"""


def _child(root: Path, crash_at: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != faults.CRASH_ENV}
    if crash_at:
        env[faults.CRASH_ENV] = crash_at
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(root)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("step", faults.NOTIFY_STEPS)
def test_kill_9_at_each_step_delivers_exactly_once(
    tmp_path: Path, smtp_server: tuple[Recorder, int], step: str
) -> None:
    handler, port = smtp_server
    ws = workspace(tmp_path / "ws", smtp_config(port))
    with ws.open_store() as store:
        make_diff(store)
    crashed = _child(ws.root, step)
    assert crashed.returncode == -9, crashed.stderr
    if step in ("after-enqueue", "after-connect", "before-final-dot"):
        time.sleep(0.2)
        assert handler.count() == 0  # an unfinished DATA is discarded by the server
    else:
        assert handler.wait_for(1) == 1
    rerun = _child(ws.root, None)
    assert rerun.returncode == 0, rerun.stderr
    result = json.loads(rerun.stdout)
    time.sleep(0.1)
    assert handler.count() == 1
    if step == "after-final-dot":
        assert result["sent"] == 0
        assert len(result["errors"]) == 1 and "delivery uncertain" in result["errors"][0]
    elif step == "after-mark-sent":
        assert result == {"sent": 0, "errors": []}
    else:
        assert result == {"sent": 1, "errors": []}
    third = _child(ws.root, None)  # "delivery uncertain" is said once, nothing is sent again
    assert json.loads(third.stdout) == {"sent": 0, "errors": []}
    assert handler.count() == 1


def test_notify_command_after_a_crash(tmp_path: Path, smtp_server: tuple[Recorder, int]) -> None:
    handler, port = smtp_server
    ws = workspace(tmp_path / "ws", smtp_config(port))
    with ws.open_store() as store:
        make_diff(store)
        make_diff(store, (GOVERNING_LAW,))
    assert _child(ws.root, "before-final-dot").returncode == -9
    env = {k: v for k, v in os.environ.items() if k != faults.CRASH_ENV}
    proc = subprocess.run(
        [sys.executable, "-m", "tostrack", "--workspace", str(ws.root), "notify"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 sent" in proc.stdout and proc.stderr == ""
    assert handler.count() == 2


def test_run_killed_while_mailing_then_rerun_mails_once(
    tmp_path: Path, smtp_server: tuple[Recorder, int], httpserver
) -> None:
    """The whole `tostrack run`, killed before the final dot, then cron's next run."""
    from conftest import TERMS_V1, TERMS_V2, source_config

    handler, port = smtp_server
    httpserver.expect_request("/terms").respond_with_data(TERMS_V1, content_type="text/html")
    config = (
        source_config(httpserver.url_for("/terms")) + smtp_config(port).split("[[recipients]]")[0]
    )
    ws = workspace(tmp_path / "ws", config)
    env = {k: v for k, v in os.environ.items() if k != faults.CRASH_ENV}
    command = [sys.executable, "-m", "tostrack", "--workspace", str(ws.root), "run", "--force"]
    first = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert first.returncode == 0, first.stderr
    httpserver.clear()
    httpserver.expect_request("/terms").respond_with_data(TERMS_V2, content_type="text/html")
    crashed = subprocess.run(
        command,
        env={**env, faults.CRASH_ENV: "before-final-dot"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert crashed.returncode == -9
    assert handler.count() == 0
    rerun = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "sent     1 notification(s)" in rerun.stdout and rerun.stderr == ""
    assert handler.count() == 1
    assert "compet" in str(parse(handler.messages[0][2])["Subject"]).lower()


# -- an email a lawyer acts on ----------------------------------------------------------------


def test_email_opens_with_what_changed_and_what_to_do(tmp_path: Path) -> None:
    ws = workspace(tmp_path / "ws")
    with ws.open_store() as store:
        stored = make_diff(store, (GOVERNING_LAW, COMPETING), new_clauses=(NEW, LAW_NEW))
        notify.enqueue_diff(ws, store, stored, "")
        notify.send_pending(ws, store)
    (eml,) = (ws.root / "outbox").glob("*.eml")
    msg = parse(eml.read_bytes())
    subject = str(msg["Subject"])
    assert subject.startswith("Nimbus AI Terms of Use: a clause now bans")  # the most severe
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert text.index("What changed") < text.index("What to do") < text.index("{+")
    assert "Read clause 2.3: it now bans using the service or its output" in text
    assert "read it now" in text
    legend = text.index("How to read the redlines")
    assert legend < text.index("[-England-]") and legend < text.index("1. 2 Use › 2.3")
    assert "Topics: Competing models" in text and "competing-models" not in text
    assert html.index("What to do") < html.index("How to read the redlines")
    assert html.index("How to read the redlines") < html.index("2 Use › 2.3</strong>")
    assert "Read clause 2.3: it now bans" in html and "competing-models" not in html


def test_a_future_effective_date_is_said_plainly() -> None:
    from tostrack.render.email import action_sentence, clause_name, effective_sentence

    view = {
        "title": "Nimbus AI Terms of Use",
        "effective_date": "2026-07-01",
        "effective_in_future": True,
        "detected_at": "2026-06-09T06:00:00Z",
    }
    assert effective_sentence(view) == (
        "The new terms of Nimbus AI Terms of Use take effect on 1 Jul 2026 (22 days after the "
        "change was seen); until then the current terms apply."
    )
    past = {**view, "effective_in_future": False, "previous_effective_date": "2026-01-01"}
    assert effective_sentence(past) == "Nimbus AI Terms of Use is now effective as of 1 Jul 2026."
    assert clause_name("4 Restrictions › 4.2") == "clause 4.2"
    assert clause_name("") == "the changed clause"
    assert clause_name("4 Inputs, Outputs › (1)") == "clause 4(1)"
    change = {"section": "4 Restrictions › 4.2", "headline": "a new clause bans scraping"}
    assert action_sentence(change) == "Read the new clause 4.2: it bans scraping."
