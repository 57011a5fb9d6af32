"""Who is told what: the messages about a recorded diff or a broken source, built and queued.

Every notification is rendered and stored in the outbox (tostrack.store) with its fixed
Message-ID before anything is sent; tostrack.notify.worker sends it.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any

from tostrack import clock, faults
from tostrack.models import Change
from tostrack.notify.headers import header_safe, slug
from tostrack.notify.recipients import Recipient, operators, recipients
from tostrack.notify.smtp import sender_address
from tostrack.render.email import attachable, diff_view
from tostrack.render.views import headline, most_severe, text_redline
from tostrack.store import OutgoingMessage, Store, StoredDiff
from tostrack.workspace import Workspace


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


def templates(workspace: Workspace) -> Any:
    from tostrack.templating import environment

    env = environment(workspace.templates_dir)
    env.filters["text_redline"] = text_redline
    return env


def build(
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
    sender = sender_address(workspace)
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = header_safe(subject)
    msg["Date"] = format_datetime(clock.now())
    # Short enough never to be folded onto a second header line (some readers keep the fold).
    msg["Message-ID"] = f"<{uuid.uuid4().hex[:20]}.{slug(key)[:16]}@{header_safe(domain)}>"
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


def outgoing(key: str, kind: str, recipient: str, msg: EmailMessage) -> OutgoingMessage:
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
        env = env or templates(workspace)
        view = diff_view(store, stored, report_path, changes, workspace)
        subject = subject_for(view["title"], changes, view["covered"])
        msg = build(
            workspace,
            key=key,
            recipient=recipient.email,
            subject=subject,
            text=env.get_template("email/change.txt").render(**view, item=view, subject=subject),
            html=env.get_template("email/change.html").render(**view, item=view, subject=subject),
            attachment=attachable(report_path),
            attachment_name=f"{slug(stored.source_id)}-change-{stored.id}.html",
            extra_headers=[("X-Tostrack-Source", stored.source_id)],
        )
        messages.append((key, recipient.email, msg))
    added = _commit_diff_messages(store, stored, messages, digest, report_path)
    faults.crash_point("after-enqueue")
    return added


def _commit_diff_messages(
    store: Store,
    stored: StoredDiff,
    messages: list[tuple[str, str, Any]],
    digest: Sequence[Any] = (),
    report_path: Path | str | None = None,
) -> int:
    """Queue a diff's messages and digest items, and mark the diff notified, in one
    transaction: a crash leaves all of it or none (then catch_up queues it again)."""
    return store.record_diff_messages(
        stored.id,
        [outgoing(key, "change", address, msg) for key, address, msg in messages],
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
        env = env or templates(workspace)
        view = diff_view(store, stored, report_path or "", (), workspace)
        old = stored.from_version.effective_date or "no date"
        new = stored.to_version.effective_date or "no date"
        subject = header_safe(
            f"{view['title']}: effective date now {new} (was {old}), no clause changed"
        )
        msg = build(
            workspace,
            key=key,
            recipient=recipient.email,
            subject=subject,
            text=env.get_template("email/effective_date.txt").render(**view, subject=subject),
            extra_headers=[("X-Tostrack-Source", stored.source_id)],
        )
        messages.append((key, recipient.email, msg))
    return _commit_diff_messages(store, stored, messages)


def catch_up(workspace: Workspace, store: Store) -> int:
    """Queue diffs that a crashed run recorded but never got to enqueue."""
    added = 0
    for diff_id in store.unnotified_diff_ids():
        stored = store.diff(diff_id)
        added += enqueue_diff(workspace, store, stored, _report_path(workspace, store, stored))
    return added


def _report_path(workspace: Workspace, store: Store, stored: StoredDiff) -> Path | str:
    """The diff's change report, rendering it if the crashed run did not get that far."""
    try:
        from tostrack import render

        path = render.change_report_path(workspace.reports_dir, stored)
        return path if path.exists() else render.render_diff(workspace, store, stored)
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
    env = templates(workspace)
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
        msg = build(
            workspace,
            key=key,
            recipient=address,
            subject=subject,
            text=text,
            extra_headers=[("X-Tostrack-Source", source_id)],
        )
        added += store.insert_messages([outgoing(key, "operator", address, msg)])
    return added
