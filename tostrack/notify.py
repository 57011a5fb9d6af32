"""Who is told what, and an outbox that neither loses nor doubles a message.

Every notification is rendered and stored in the workspace database (with its fixed Message-ID)
before anything is sent. A message then moves queued -> in-flight -> sent:

  connect, MAIL, RCPT, DATA (354), the dot-stuffed message      state still "queued"
  COMMIT "in-flight"
  the final "." and the server's reply                          COMMIT "sent"

An SMTP server throws away a DATA that never got its final dot, so a message still "queued"
after a crash is safe to send again. A message found "in-flight" may have reached the server: it
is never sent again, and is reported once as "delivery uncertain". Without an [smtp] table (or
with dry_run) each message is written once as an .eml file in outbox/ instead.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any

from tostrack import clock, config, faults
from tostrack.config import Settings
from tostrack.errors import InputError, StorageError
from tostrack.models import SEVERITY_RANK, Change
from tostrack.store import OutgoingMessage, Store, StoredDiff, write_atomic
from tostrack.workspace import Workspace

MODES = config.MODES
TLS_MODES = config.TLS_MODES
WEEKDAYS = config.WEEKDAYS
BACKOFF_FIRST = 300  # seconds; doubled on each failed attempt
BACKOFF_MAX = 6 * 3600
MAX_ATTACHMENT = 5 * 1024 * 1024
DEFAULT_FROM = config.DEFAULT_FROM


# -- settings (tostrack.config reads and checks them when the workspace is opened) -----------

Recipient = config.Recipient
SmtpSettings = config.SmtpConfig


def recipients(settings: Settings | config.Config) -> tuple[Recipient, ...]:
    """The [[recipients]] tables, checked."""
    return _config(settings).recipients


def operators(settings: Settings | config.Config) -> tuple[str, ...]:
    """[notify] operators, checked."""
    return _config(settings).notify.operators


def _config(settings: Settings | config.Config) -> config.Config:
    return settings if isinstance(settings, config.Config) else settings.config


# -- small helpers ----------------------------------------------------------------------------


_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def _has_control(text: str) -> bool:
    return bool(_CONTROL.search(text))


def header_safe(text: str, limit: int = 200) -> str:
    """Text that came from a page, made fit for one header line: no CR, LF or other controls."""
    flat = " ".join(_CONTROL.sub(" ", text).split())
    return flat if len(flat) <= limit else flat[: limit - 3].rstrip() + "..."


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:60] or "message"


# -- what a change looks like in an email ------------------------------------------------------


def _severity_rank(change: Change) -> int:
    return SEVERITY_RANK.get(change.severity, 0)


def most_severe(changes: Sequence[Change]) -> Change | None:
    best: Change | None = None
    for change in changes:  # first of the most severe, in document order
        if best is None or _severity_rank(change) > _severity_rank(best):
            best = change
    return best


def headline(change: Change, covered: Collection[str] | None = None) -> str:
    """classify's phrase for one change; `covered` (the labels the new version still carries)
    when it stands for the whole diff, so a topic still covered is never called gone."""
    try:
        from tostrack.classify import change_headline
    except ImportError:
        change_headline = None
    if change_headline is not None:
        try:
            text = change_headline(change, covered)
        except Exception:  # noqa: BLE001 - a headline is cosmetic; never lose the email for it
            text = ""
        if text:
            return str(text)
    section = _section(change)
    verb = {"added": "added", "removed": "removed", "split": "split", "merged": "merged"}.get(
        change.kind, "changed"
    )
    return f"a clause was {verb}" + (f" in {section}" if section else "")


def subject_for(
    title: str, changes: Sequence[Change], covered: Collection[str] | None = None
) -> str:
    top = most_severe(changes)
    if top is None:
        return header_safe(f"{title}: no substantive change")
    text = f"{title}: {headline(top, covered)}"
    if len(changes) > 1:
        text += f" (and {len(changes) - 1} more change{'s' if len(changes) > 2 else ''})"
    return header_safe(text)


def covered_labels(stored: StoredDiff) -> frozenset[str] | None:
    """The labels the clauses of the diff's new version carry (None if it cannot be read)."""
    try:
        _, clauses = stored.to_version.load()
    except (OSError, ValueError, KeyError):
        return None
    return frozenset(label for clause in clauses for label in clause.labels)


def _section(change: Change) -> str:
    clauses = change.new or change.old
    return " + ".join(c.section or c.id for c in clauses)


def _redline(change: Change) -> list[tuple[str, str]]:
    if change.redline:
        return [(op, text) for op, text in change.redline]
    old = " ".join(c.full_text for c in change.old)
    new = " ".join(c.full_text for c in change.new)
    ops = []
    if old:
        ops.append(("delete", old))
    if old and new:
        ops.append(("equal", " "))
    if new:
        ops.append(("insert", new))
    return ops


def _text_redline(ops: Sequence[tuple[str, str]]) -> str:
    out = []
    for op, text in ops:
        if op == "insert":
            out.append("{+" + text + "+}")
        elif op == "delete":
            out.append("[-" + text + "-]")
        else:
            out.append(text)
    return "".join(out)


def topic_names(labels: Iterable[str]) -> list[str]:
    """Label ids as readers know them ("competing-models" -> "Competing models")."""
    try:
        from tostrack.classify import taxonomy

        names = {label.id: label.name for label in taxonomy()}
    except (ImportError, AttributeError, KeyError, OSError, ValueError):
        names = {}
    return [names.get(label) or label for label in labels]


def _change_view(change: Change) -> dict[str, Any]:
    ops = _redline(change)
    return {
        "kind": change.kind,
        "moved": change.moved,
        "section": _section(change),
        "headline": headline(change),
        "severity": change.severity,
        # Topic names, not ids: the reader is a lawyer, not the configuration file.
        "labels": topic_names(change.labels),
        "labels_added": topic_names(change.labels_added),
        "labels_removed": topic_names(change.labels_removed),
        "label_ids": list(change.labels),
        "redline": ops,
        "text_redline": " ".join(_text_redline(ops).split()),
    }


def _evidence(stored: StoredDiff) -> list[dict[str, Any]]:
    try:
        meta = stored.to_version.snapshot_meta()
    except (OSError, ValueError, KeyError):
        meta = []
    if not meta:
        return [
            {
                "url": "",
                "sha256": stored.to_version.snapshot_sha256,
                "fetched_at": stored.to_version.captured_at,
            }
        ]
    return [
        {"url": m.get("url", ""), "sha256": m.get("sha256", ""), "fetched_at": m.get("fetched_at", "")}
        for m in meta
    ]


def _title(store: Store, stored: StoredDiff) -> str:
    state = store.source_state(stored.source_id) or {}
    return state.get("title") or stored.to_version.title or stored.source_id


def _attachable(report_path: Path | str) -> Path | None:
    if not report_path:
        return None
    path = Path(report_path)
    try:
        return path if path.is_file() and path.stat().st_size <= MAX_ATTACHMENT else None
    except OSError:
        return None


def _report_uri(report_path: Path | str, workspace: Workspace | None = None) -> str:
    """The change report's address: under [report] base_url when the reports are published."""
    if not report_path:
        return ""
    if workspace is not None:
        base = workspace.config.report.base_url  # checked: empty or http(s), ending in "/"
        if isinstance(base, str) and base.lower().startswith(("http://", "https://")):
            from urllib.parse import quote

            try:
                rel = Path(report_path).resolve().relative_to(workspace.reports_dir.resolve())
            except ValueError:
                rel = None
            if rel is not None:
                return base.rstrip("/") + "/" + quote(rel.as_posix())
    try:
        return Path(report_path).resolve().as_uri()
    except ValueError:
        return ""


def diff_view(
    store: Store,
    stored: StoredDiff,
    report_path: Path | str,
    changes: Sequence[Change],
    workspace: Workspace | None = None,
) -> dict[str, Any]:
    """Everything the change templates show about one recorded diff."""
    title = _title(store, stored)
    substantive = [c for c in stored.changes if c.substantive]
    top = most_severe(changes)
    covered = covered_labels(stored) if top else None
    return {
        "title": title,
        "source_id": stored.source_id,
        "headline": headline(top, covered) if top else "",
        "covered": covered,
        "severity": top.severity if top else "none",
        # Most severe first, document order within a severity: the reader may stop early.
        "changes": [_change_view(c) for c in sorted(changes, key=lambda c: -_severity_rank(c))],
        "other_changes": max(0, len(substantive) - len(changes)),
        "cosmetic": sum(1 for c in stored.changes if not c.substantive),
        "effective_date": stored.to_version.effective_date,
        "previous_effective_date": stored.from_version.effective_date,
        "detected_at": stored.detected_at,
        "previous_captured_at": stored.from_version.captured_at,
        "report_path": str(report_path) if report_path else "",
        "report_uri": _report_uri(report_path, workspace),
        "effective_date_only": stored.effective_date_only,
        "attached": _attachable(report_path) is not None,
        "evidence": _evidence(stored),
    }


# -- building messages ------------------------------------------------------------------------


def _templates(workspace: Workspace) -> Any:
    from tostrack.templating import environment

    env = environment(workspace.templates_dir)
    env.filters["text_redline"] = _text_redline
    return env


def _sender(workspace: Workspace) -> str:
    smtp = SmtpSettings.from_settings(workspace.settings)
    return smtp.sender if smtp else DEFAULT_FROM


def _build(
    workspace: Workspace,
    *,
    key: str,
    recipient: str,
    subject: str,
    text: str,
    html: str | None = None,
    attachment: Path | None = None,
    attachment_name: str = "",
    extra_headers: Sequence[tuple[str, str]] = (),
) -> EmailMessage:
    sender = _sender(workspace)
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = header_safe(subject)
    msg["Date"] = format_datetime(clock.now())
    # Short enough never to be folded onto a second header line (some readers keep the fold).
    msg["Message-ID"] = f"<{uuid.uuid4().hex[:20]}.{_slug(key)[:16]}@{header_safe(domain)}>"
    msg["Auto-Submitted"] = "auto-generated"
    for name, value in extra_headers:
        msg[name] = header_safe(value)
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    if attachment is not None:
        msg.add_attachment(
            attachment.read_bytes(),
            maintype="text",
            subtype="html",
            filename=attachment_name or attachment.name,
        )
    return msg


def _outgoing(key: str, kind: str, recipient: str, msg: EmailMessage) -> OutgoingMessage:
    return OutgoingMessage(
        key=key,
        kind=kind,
        recipient=recipient,
        subject=str(msg["Subject"]),
        message_id=str(msg["Message-ID"]),
        data=msg.as_bytes(policy=SMTP_POLICY),
    )


def enqueue_diff(
    workspace: Workspace, store: Store, stored: StoredDiff, report_path: Path | str | None
) -> int:
    """Queue the email about one recorded diff for every recipient whose filters it matches.

    Immediate recipients get one message each; digest recipients get the diff kept for their
    next daily/weekly digest. Idempotent: returns how many messages or digest items are new.
    Everything is recorded in one transaction, with a note that this diff has been handled.
    """
    if stored.effective_date_only:
        return _enqueue_effective_date(workspace, store, stored, report_path)
    if not stored.substantive:
        return 0
    messages: list[tuple[str, str, EmailMessage]] = []
    digest: list[Recipient] = []
    env = None
    for recipient in recipients(workspace.settings):
        if not recipient.wants_source(stored.source_id):
            continue
        changes = recipient.matching(stored.changes)
        if not changes:
            continue
        if recipient.mode != "immediate":
            digest.append(recipient)
            continue
        key = f"diff:{stored.id}:{recipient.email.lower()}"
        if store.has_message(key):
            continue
        env = env or _templates(workspace)
        view = diff_view(store, stored, report_path, changes, workspace)
        subject = subject_for(view["title"], changes, view["covered"])
        msg = _build(
            workspace,
            key=key,
            recipient=recipient.email,
            subject=subject,
            text=env.get_template("email/change.txt").render(**view, item=view, subject=subject),
            html=env.get_template("email/change.html").render(**view, item=view, subject=subject),
            attachment=_attachable(report_path),
            attachment_name=f"{_slug(stored.source_id)}-change-{stored.id}.html",
            extra_headers=[("X-Tostrack-Source", stored.source_id)],
        )
        messages.append((key, recipient.email, msg))
    added = _commit_diff_messages(store, stored, messages, digest, report_path)
    faults.crash_point("after-enqueue")
    return added


def _commit_diff_messages(
    store: Store, stored: StoredDiff, messages: list[tuple[str, str, Any]],
    digest: Sequence[Any] = (), report_path: Path | str | None = None,
) -> int:
    """Queue a diff's messages and digest items, and mark the diff notified, in one
    transaction: a crash leaves all of it or none (then _catch_up queues it again)."""
    return store.record_diff_messages(
        stored.id,
        [_outgoing(key, "change", address, msg) for key, address, msg in messages],
        [(recipient.email, recipient.mode) for recipient in digest],
        str(report_path or ""),
    )


def _enqueue_effective_date(
    workspace: Workspace, store: Store, stored: StoredDiff, report_path: Path | str | None
) -> int:
    """Only the announced effective date moved: one message to each recipient who asked
    (effective_date_changes = true), whatever their mode; nobody else is told."""
    messages = []
    env = None
    for recipient in recipients(workspace.settings):
        if not recipient.effective_date_changes or not recipient.wants_source(stored.source_id):
            continue
        key = f"diff:{stored.id}:{recipient.email.lower()}"
        if store.has_message(key):
            continue
        env = env or _templates(workspace)
        view = diff_view(store, stored, report_path or "", (), workspace)
        old = stored.from_version.effective_date or "no date"
        new = stored.to_version.effective_date or "no date"
        subject = header_safe(f"{view['title']}: effective date now {new} (was {old}), no clause changed")
        msg = _build(
            workspace,
            key=key,
            recipient=recipient.email,
            subject=subject,
            text=env.get_template("email/effective_date.txt").render(**view, subject=subject),
            extra_headers=[("X-Tostrack-Source", stored.source_id)],
        )
        messages.append((key, recipient.email, msg))
    return _commit_diff_messages(store, stored, messages)


def _catch_up(workspace: Workspace, store: Store) -> int:
    """Queue diffs that a crashed run recorded but never got to enqueue."""
    added = 0
    for diff_id in store.unnotified_diff_ids():
        stored = store.diff(diff_id)
        added += enqueue_diff(workspace, store, stored, _report_path(workspace, store, stored))
    return added


def _report_path(workspace: Workspace, store: Store, stored: StoredDiff) -> Path | str:
    """The diff's change report, rendering it if the crashed run did not get that far."""
    try:
        from tostrack import report

        path = report.change_report_path(workspace.reports_dir, stored)
        return path if path.exists() else report.render_diff(workspace, store, stored)
    except Exception:  # noqa: BLE001 - a missing link must not stop the email
        return ""


def enqueue_operator(
    workspace: Workspace, store: Store, kind: str, source_id: str, detail: str
) -> int:
    """Tell the operators that a source broke or recovered; one "broken" per breakage."""
    with store.transaction():
        return queue_operator_alert(workspace, store, kind, source_id, detail)


def queue_operator_alert(
    workspace: Workspace, store: Store, kind: str, source_id: str, detail: str
) -> int:
    """enqueue_operator inside a transaction the caller holds (that of the failure itself).

    The once-per-breakage flag is set in the same transaction as the messages, so ">=
    broken_after" fires once, and a kill loses both or neither.
    """
    if kind not in ("broken", "recovered"):
        raise ValueError(f"operator message kind must be 'broken' or 'recovered', not {kind!r}")
    broken, incident = store.operator_alert_state(source_id)
    if (kind == "broken" and broken) or (kind == "recovered" and not broken):
        return 0  # already told about this breakage / never told it broke
    if kind == "broken":
        incident += 1
    store.set_operator_alert(source_id, kind == "broken", incident)
    addresses = operators(workspace.settings)
    if not addresses:
        return 0
    state = store.source_state(source_id) or {}
    env = _templates(workspace)
    view = {
        "kind": kind,
        "source_id": source_id,
        "title": state.get("title") or source_id,
        "url": state.get("url") or "",
        "detail": detail,
        "failures": state.get("consecutive_failures") or 0,
        "broken_since": state.get("broken_since") or "",
        "at": clock.now_iso(),
    }
    reason = detail.partition(":")[0] if detail else ""
    subject = f"[tostrack] source {kind}: {view['title']}" + (
        f" ({reason})" if kind == "broken" and reason else ""
    )
    try:
        text = env.get_template("email/operator.txt").render(**view)
    except Exception as exc:  # noqa: BLE001 - a broken template override must not lose the alert
        text = (
            f"Source {kind}: {view['title']} ({source_id})\n{view['url']}\n\n{detail}\n\n"
            f"(templates/email/operator.txt could not be rendered: {exc})\n"
        )
    added = 0
    for address in addresses:
        key = f"op:{kind}:{source_id}:{incident}:{address.lower()}"
        msg = _build(
            workspace,
            key=key,
            recipient=address,
            subject=subject,
            text=text,
            extra_headers=[("X-Tostrack-Source", source_id)],
        )
        added += store.insert_messages([_outgoing(key, "operator", address, msg)])
    return added


# -- digests ----------------------------------------------------------------------------------


def _period_start(mode: str, now: datetime, hour: int, weekday: int) -> datetime:
    """The most recent moment a daily/weekly digest fell due."""
    start = now.astimezone(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    if mode == "daily":
        return start - timedelta(days=1) if start > now else start
    start -= timedelta(days=(start.weekday() - weekday) % 7)
    return start - timedelta(days=7) if start > now else start


def _digest_schedule(settings: Settings | config.Config) -> tuple[int, int]:
    table = _config(settings).notify
    return table.digest_hour, table.weekday_index


def _queue_digests(workspace: Workspace, store: Store, now: datetime) -> int:
    hour, weekday = _digest_schedule(workspace.settings)
    added = 0
    for recipient, mode in store.digest_groups():
        start = _period_start(mode, now, hour, weekday)
        rows = store.digest_items(recipient, mode, clock.iso(start))
        if not rows:
            continue
        key = f"digest:{mode}:{clock.iso(start)}:{recipient.lower()}"
        if store.has_message(key):
            continue  # this period's digest went out already; these wait for the next one
        filters = next(
            (r for r in recipients(workspace.settings) if r.email == recipient and r.mode == mode),
            Recipient(recipient, mode=mode),
        )
        items = []
        for row in rows:
            stored = store.diff(row["diff_id"])
            changes = filters.matching(stored.changes) or stored.changes
            items.append(diff_view(store, stored, row["report_path"], changes, workspace))
        titles = list(dict.fromkeys(item["title"] for item in items))
        count = sum(len(item["changes"]) for item in items)
        label = "Daily" if mode == "daily" else "Weekly"
        subject = (
            f"{label} digest: {count} change{'s' if count != 1 else ''} in "
            + (titles[0] if len(titles) == 1 else f"{len(titles)} documents ({', '.join(titles)})")
        )
        env = _templates(workspace)
        view = {"mode": mode, "label": label, "items": items, "subject": subject, "since": clock.iso(start)}
        msg = _build(
            workspace,
            key=key,
            recipient=recipient,
            subject=subject,
            text=env.get_template("email/digest.txt").render(**view),
            html=env.get_template("email/digest.html").render(**view),
        )
        added += store.queue_digest(_outgoing(key, "digest", recipient, msg), [row["id"] for row in rows])
    return added


# -- sending ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What became of one message in a send: sent (the SMTP server took it), written (an .eml in
    outbox/, no [smtp] table), preview (dry run), failed (kept queued), rejected, uncertain."""

    message: int
    recipient: str
    subject: str
    state: str
    detail: str = ""


@dataclass(frozen=True)
class SendSummary:
    sent: int = 0  # taken by the SMTP server
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    written_eml: list[Path] = field(default_factory=list)  # outbox/*.eml, or previews on a dry run
    written: int = 0  # written to outbox/ as .eml (no [smtp]): not sent
    outcomes: list[Outcome] = field(default_factory=list)
    queued: int = 0  # still queued after this send (waiting out a retry backoff)


def _describe(exc: BaseException) -> str:
    """A short, traceback-free reason for stderr."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"login refused ({exc.smtp_code}); check username and password_env"
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        return f"server said {exc.smtp_code} {header_safe(text, 120)}"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return "the server closed the connection"
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return f"the server does not support this: {exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        return "host name not found"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return header_safe(str(exc), 160) or type(exc).__name__


class _Rejected(Exception):
    """The server refused this message for good (5xx)."""


class _Temporary(Exception):
    """The server refused this message for now (4xx, or an unexpected reply)."""


def _dot_stuffed(message: bytes) -> bytes:
    data = re.sub(rb"\r\n|\r|\n", b"\r\n", message)
    data = re.sub(rb"(?m)^\.", b"..", data)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def _check(code: int, reply: bytes, expected: tuple[int, ...]) -> None:
    if code in expected:
        return
    error = smtplib.SMTPResponseException(code, reply)
    raise (_Rejected if 500 <= code < 600 else _Temporary)(_describe(error))


class _Connection:
    """One SMTP session, opened lazily and reused for every message of a send."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self.smtp: smtplib.SMTP | None = None

    def open(self) -> smtplib.SMTP:
        if self.smtp is not None:
            return self.smtp
        s = self.settings
        context = ssl.create_default_context(cafile=s.ca_file or None)
        helo = socket.gethostname() or "localhost"
        if s.tls == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                s.host, s.port, local_hostname=helo, timeout=s.timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(s.host, s.port, local_hostname=helo, timeout=s.timeout)
        try:
            smtp.ehlo_or_helo_if_needed()
            if s.tls == "starttls":
                smtp.starttls(context=context)
                smtp.ehlo()
            if s.username:
                smtp.login(s.username, s.password())
        except BaseException:
            smtp.close()
            raise
        self.smtp = smtp
        faults.crash_point("after-connect")
        return smtp

    def reset(self) -> None:
        """After a failed message: clear the transaction, or drop a connection that is gone."""
        if self.smtp is None:
            return
        try:
            code, _ = self.smtp.rset()
            if code == 250:
                return
        except (smtplib.SMTPException, OSError):
            pass
        self.close()

    def close(self) -> None:
        if self.smtp is None:
            return
        try:
            self.smtp.quit()
        except (smtplib.SMTPException, OSError):
            self.smtp.close()
        self.smtp = None


def _send_one(conn: _Connection, store: Store, row: Any) -> None:
    """Send one stored message; raises on failure. Commits "in-flight" just before the final dot."""
    smtp = conn.open()
    sender = parseaddr(conn.settings.sender)[1]
    rcpt = parseaddr(row["recipient"])[1]
    code, reply = smtp.mail(sender)
    _check(code, reply, (250,))
    code, reply = smtp.rcpt(rcpt)
    _check(code, reply, (250, 251))
    smtp.putcmd("data")
    code, reply = smtp.getreply()
    _check(code, reply, (354,))
    smtp.send(_dot_stuffed(bytes(row["message"])))
    faults.crash_point("before-final-dot")
    # From here the server may hold the message: never send it again automatically.
    store.mark_message(row["id"], "in-flight", attempts=row["attempts"] + 1)
    smtp.send(b".\r\n")
    faults.crash_point("after-final-dot")
    try:
        code, reply = smtp.getreply()
    except (smtplib.SMTPException, OSError) as exc:
        raise _Uncertain(_describe(exc)) from None
    if code != 250:
        store.mark_message(row["id"], "queued")  # the server answered: it did not take the message
        _check(code, reply, (250,))


class _Uncertain(Exception):
    """The final dot went out but no answer came back: the server may have the message."""


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(BACKOFF_FIRST * 2 ** max(attempts - 1, 0), BACKOFF_MAX))


def _requeue(store: Store, row: Any, reason: str, now: datetime, errors: list[str], where: str) -> None:
    attempts = row["attempts"] + 1
    retry = now + _backoff(attempts)
    store.mark_message(row["id"], "queued", last_error=reason, attempts=attempts, next_attempt_at=clock.iso(retry))
    errors.append(
        f"{row['recipient']}: {where}: {reason}; kept in the outbox, retry after "
        f"{retry:%Y-%m-%d %H:%M} UTC"
    )


def _eml_name(row: Any) -> str:
    return f"{row['id']:06d}-{row['kind']}-{_slug(row['recipient'])}.eml"


def _unused_eml_path(path: Path, data: bytes) -> Path:
    """`path`, or a numbered sibling when `path` already holds a different message: outbox ids
    restart after `tostrack rebuild`, and an earlier message file must never be overwritten.
    The same message written again (a retry after a crash) keeps its name."""
    candidate, n = path, 1
    while candidate.exists() and candidate.read_bytes() != data:
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def _write_eml(path: Path, data: bytes) -> None:
    try:
        write_atomic(path, data)
    except OSError as exc:
        folder = path.parent
        fix = (f"{folder} is a file: move it away so tostrack can keep messages there"
               if folder.exists() and not folder.is_dir() else
               f"make {folder} a folder this user can write to")
        raise StorageError(f"cannot write the message {path.name}: {exc.strerror or exc}; {fix}. "
                           "The message stays queued.") from None


def preview_pending(workspace: Workspace, store: Store) -> SendSummary:
    """A dry run: write every queued message (backoff or not) as an .eml under preview/,
    replacing the previous previews. Sends nothing and changes no state."""
    folder = workspace.preview_dir
    if folder.is_dir():
        for old in folder.glob("*.eml"):
            old.unlink(missing_ok=True)
    rows = store.messages_in_state("queued")
    written, outcomes = [], []
    for row in rows:
        path = folder / _eml_name(row)
        _write_eml(path, bytes(row["message"]))
        written.append(path)
        outcomes.append(Outcome(row["id"], row["recipient"], row["subject"], "preview", str(path)))
    return SendSummary(written_eml=written, outcomes=outcomes, queued=len(rows))


def send_pending(
    workspace: Workspace,
    store: Store,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    ignore_backoff: bool = False,
) -> SendSummary:
    """Send every message that is due, or write it as an .eml in outbox/ when there is no [smtp].

    ignore_backoff: also send messages waiting out a retry backoff (a person running
    `tostrack notify` after fixing the mail server wants them to go now; `run` keeps the
    backoff). dry_run: see preview_pending (nothing is sent, no state changes).
    """
    if dry_run:
        return preview_pending(workspace, store)
    now = now or clock.now()
    smtp_settings = SmtpSettings.from_settings(workspace.settings)
    _catch_up(workspace, store)
    _queue_digests(workspace, store, now)
    sent = failed = written_count = 0
    errors: list[str] = []
    written: list[Path] = []
    outcomes: list[Outcome] = []

    # A message left in-flight by a crashed run may have reached the server: say so, once.
    for row in store.messages_in_state("in-flight"):
        store.mark_message(row["id"], "uncertain", last_error="the sending run stopped after the final dot")
        errors.append(
            f"delivery uncertain: {row['message_id']} to {row['recipient']} ({row['subject'][:80]}); "
            "a run stopped while sending it, check the mail server's log before resending"
        )
        outcomes.append(Outcome(row["id"], row["recipient"], row["subject"], "uncertain",
                                "a run stopped while sending it; check the mail server's log"))

    horizon = "9999" if ignore_backoff else clock.iso(now)
    due = store.due_messages(horizon)

    def summary() -> SendSummary:
        return SendSummary(sent, failed, errors, written, written_count, outcomes, store.queued_count())

    if not due:
        return summary()

    if smtp_settings is None:
        for row in due:
            data = bytes(row["message"])
            path = _unused_eml_path(workspace.outbox_dir / _eml_name(row), data)
            _write_eml(path, data)
            store.mark_message(row["id"], "written", sent_at=clock.now_iso(), delivered_to=f"file:{path}",
                  last_error=None)
            written.append(path)
            written_count += 1
            outcomes.append(Outcome(row["id"], row["recipient"], row["subject"], "written", str(path)))
        return summary()

    smtp_settings.password()  # a missing password is a configuration error, said before connecting
    conn = _Connection(smtp_settings)
    where = f"{smtp_settings.host}:{smtp_settings.port}"
    connect_error = ""

    def failed_one(row: Any, state: str, reason: str) -> None:
        outcomes.append(Outcome(row["id"], row["recipient"], row["subject"], state, reason))

    try:
        for row in due:
            if connect_error:  # the server is unreachable: do not knock once per message
                failed += 1
                _requeue(store, row, connect_error, now, errors, where)
                failed_one(row, "failed", f"{where}: {connect_error}")
                continue
            try:
                _send_one(conn, store, row)
            except _Uncertain as exc:
                store.mark_message(row["id"], "uncertain", last_error=str(exc))
                errors.append(
                    f"delivery uncertain: {row['message_id']} to {row['recipient']}: {exc} after the "
                    "message was sent; it is not sent again"
                )
                failed_one(row, "uncertain", f"{exc} after the message was sent; not sent again")
                conn.close()
                continue
            except _Rejected as exc:
                failed += 1
                store.mark_message(row["id"], "rejected", last_error=str(exc), attempts=row["attempts"] + 1)
                errors.append(f"{row['recipient']}: {where} refused the message for good: {exc}")
                failed_one(row, "rejected", f"{where} refused it for good: {exc}")
                conn.reset()
                continue
            except (_Temporary, smtplib.SMTPException, OSError) as exc:
                failed += 1
                reason = str(exc) if isinstance(exc, _Temporary) else _describe(exc)
                if conn.smtp is None:
                    connect_error = reason
                _requeue(store, row, reason, now, errors, where)
                failed_one(row, "failed", f"{where}: {reason}")
                conn.reset()
                continue
            store.mark_message(row["id"], "sent", sent_at=clock.now_iso(), delivered_to=f"smtp:{where}", last_error=None)
            faults.crash_point("after-mark-sent")
            sent += 1
            outcomes.append(Outcome(row["id"], row["recipient"], row["subject"], "sent", where))
    finally:
        conn.close()
    return summary()


def outbox_rows(store: Store) -> list[dict[str, Any]]:
    """The outbox without message bodies, newest first (for status output and tests)."""
    return store.outbox_listing()


def requeue(store: Store, message_id: int) -> dict[str, Any]:
    """Put an "uncertain" or "rejected" message back in the queue, by hand, after checking the
    mail server's log: the next run or `tostrack notify` sends it again."""
    row = store.outbox_message(message_id)
    if row is None:
        raise InputError(f"no message {message_id} in the outbox; `tostrack outbox` lists them")
    if row["state"] not in ("uncertain", "rejected"):
        raise InputError(
            f"message {message_id} is {row['state']}: only uncertain or rejected messages are sent again"
        )
    store.requeue_message(message_id)
    return {"id": message_id, "recipient": row["recipient"], "was": row["state"]}


__all__ = [
    "Outcome",
    "Recipient",
    "SendSummary",
    "SmtpSettings",
    "enqueue_diff",
    "enqueue_operator",
    "header_safe",
    "outbox_rows",
    "preview_pending",
    "recipients",
    "requeue",
    "send_pending",
]
