"""Who is told what: the messages about a recorded diff or a broken source, built and queued.

Every notification is rendered and stored in the outbox (tostrack.store) with its fixed
Message-ID before anything is sent; tostrack.notify.worker sends it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Collection, Sequence
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any

from tostrack import clock, faults
from tostrack.models import SEVERITY_RANK, Change
from tostrack.notify.headers import header_safe, slug
from tostrack.notify.recipients import Recipient, operators, recipients
from tostrack.notify.smtp import sender_address
from tostrack.render.email import attachable, diff_view, opening
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
    """Queue the messages about one recorded diff (see enqueue_diffs)."""
    return enqueue_diffs(workspace, store, [(stored, report_path)])


def enqueue_diffs(
    workspace: Workspace,
    store: Store,
    recorded: Sequence[tuple[StoredDiff, Path | str | None]],
) -> int:
    """Queue the messages about the diffs recorded in one run, for every recipient whose
    filters they match: one message per recipient and provider, whatever the number of that
    provider's documents that changed (one upstream event, one message).

    Immediate recipients get one message for each of their targets (e-mail, chat, webhook);
    digest recipients get the diffs kept for their next daily/weekly digest. Idempotent:
    returns how many messages or digest items are new. Each provider's messages, digest items
    and notified marks are recorded in one transaction.
    """
    added = 0
    groups: dict[str, list[tuple[StoredDiff, Path | str | None]]] = {}
    for stored, report_path in recorded:
        if stored.effective_date_only:
            added += _enqueue_effective_date(workspace, store, stored, report_path)
        elif stored.substantive:
            groups.setdefault(stored.source_id.partition("/")[0], []).append((stored, report_path))
    for group in groups.values():
        added += _enqueue_group(workspace, store, group)
    return added


def _enqueue_group(
    workspace: Workspace, store: Store, group: Sequence[tuple[StoredDiff, Path | str | None]]
) -> int:
    messages: list[OutgoingMessage] = []
    digest: list[tuple[int, str, str, str]] = []
    env = None
    for recipient in recipients(workspace.settings):
        items = []
        for stored, report_path in group:
            if recipient.wants_source(stored.source_id):
                changes = recipient.matching(stored.changes)
                if changes:
                    items.append((stored, report_path, changes))
        if not items:
            continue
        if recipient.mode != "immediate":
            digest += [
                (stored.id, target, recipient.mode, str(report_path or ""))
                for stored, report_path, _ in items
                for target in targets_of(recipient)
            ]
            continue
        ids = ",".join(str(stored.id) for stored, _, _ in items)
        views = [
            diff_view(store, stored, report_path, changes, workspace)
            for stored, report_path, changes in items
        ]
        subject = group_subject(views, [changes for _, _, changes in items])
        key = f"diff:{ids}:{recipient.email.lower()}"
        if recipient.email and not store.has_message(key):
            env = env or templates(workspace)
            first, report_path = items[0][0], items[0][1]
            context = {
                **views[0],
                "item": views[0],
                "items": views,
                "subject": subject,
                "opening": opening(views),
            }
            msg = build(
                workspace,
                key=key,
                recipient=recipient.email,
                subject=subject,
                text=env.get_template("email/change.txt").render(**context),
                html=env.get_template("email/change.html").render(**context),
                attachment=attachable(report_path),
                attachment_name=f"{slug(first.source_id)}-change-{first.id}.html",
                extra_headers=[("X-Tostrack-Source", first.source_id)],
            )
            messages.append(outgoing(key, "change", recipient.email, msg))
        for target in recipient.chat_targets:
            key = f"diff:{ids}:{chat_key(target)}"
            if not store.has_message(key):
                messages.append(chat_message(key, "change", target, recipient, subject, views))
    added = store.record_diff_messages([stored.id for stored, _ in group], messages, digest)
    faults.crash_point("after-enqueue")
    return added


def group_subject(views: Sequence[dict[str, Any]], changes: Sequence[Sequence[Change]]) -> str:
    """One document: its subject_for. Several (of one provider): the most severe headline,
    then how many more changes in how many other documents."""
    if len(views) == 1:
        return subject_for(views[0]["title"], changes[0], views[0]["covered"])
    top = max(range(len(views)), key=lambda i: SEVERITY_RANK.get(views[i]["severity"], 0))
    others = sum(len(c) for c in changes) - 1
    text = f"{views[top]['title']}: {views[top]['headline']}"
    text += (
        f" (and {others} more change{'s' if others != 1 else ''} in "
        f"{len(views) - 1} other document{'s' if len(views) > 2 else ''})"
    )
    return header_safe(text)


def targets_of(recipient: Recipient) -> tuple[str, ...]:
    """Everything a recipient is told through: its address and its chat targets."""
    return ((recipient.email,) if recipient.email else ()) + recipient.chat_targets


def chat_key(target: str) -> str:
    """A target as outbox keys name it: a digest, never the URL (it may hold a token)."""
    return "chat:" + hashlib.sha256(target.encode("utf-8")).hexdigest()[:16]


def chat_message(
    key: str,
    kind: str,
    target: str,
    recipient: Recipient,
    subject: str,
    views: Sequence[dict[str, Any]],
    text: str | None = None,
) -> OutgoingMessage:
    """A chat or webhook message, sized for its target: text for chat (trimmed to what the
    target takes and a person reads), the change summary for a JSON webhook. Stored with its
    target ("env:NAME" for a URL from the environment: the URL is read again when sent)."""
    from tostrack.notify import chat
    from tostrack.render.chat import chat_text, webhook_json

    try:
        url = chat.resolve(target)
        limits = chat.limits_for(url, recipient.max_length)
        shown = f"${target[4:]}" if target.startswith("env:") else chat.masked(url)
    except chat.ChatTemporary:  # the variable is unset here; the send will say so
        limits = chat.TargetLimits(recipient.max_length or chat.READABLE_LENGTH, False, False)
        shown = f"${target[4:]}"
    message_id = f"{uuid.uuid4().hex[:20]}.{slug(key)[:16]}@tostrack"
    title = header_safe(subject, chat.TITLE_LENGTH)
    if limits.json:
        room = limits.body - len(title) - chat.ENVELOPE
        body = webhook_json(views, message_id=message_id, headline=title, limit=room)
    else:
        room = limits.body - (len(title) + 2 if limits.title_in_body else 0)
        body = text if text is not None else chat_text(views, room)
    data = {"target": target, "title": title, "body": body, "format": "text"}
    return OutgoingMessage(
        key=key,
        kind=kind,
        recipient=shown,
        subject=title,
        message_id=message_id,
        data=json.dumps(data, ensure_ascii=False).encode("utf-8"),
        channel="apprise",
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
        view = diff_view(store, stored, report_path or "", (), workspace)
        old = stored.from_version.effective_date or "no date"
        new = stored.to_version.effective_date or "no date"
        subject = header_safe(
            f"{view['title']}: effective date now {new} (was {old}), no clause changed"
        )
        for target in recipient.chat_targets:
            key = f"diff:{stored.id}:{chat_key(target)}"
            if not store.has_message(key):
                text = subject + (f"\nReport: {view['report_uri']}" if view["report_uri"] else "")
                messages.append(
                    chat_message(key, "change", target, recipient, subject, [view], text)
                )
        key = f"diff:{stored.id}:{recipient.email.lower()}"
        if not recipient.email or store.has_message(key):
            continue
        env = env or templates(workspace)
        msg = build(
            workspace,
            key=key,
            recipient=recipient.email,
            subject=subject,
            text=env.get_template("email/effective_date.txt").render(**view, subject=subject),
            extra_headers=[("X-Tostrack-Source", stored.source_id)],
        )
        messages.append(outgoing(key, "change", recipient.email, msg))
    return store.record_diff_messages(stored.id, messages)


def catch_up(workspace: Workspace, store: Store, before: str | None = None) -> int:
    """Queue diffs that a crashed run recorded but never got to enqueue (detected by `before`,
    an ISO time, when given: a run starting after that is alive and queues its own)."""
    recorded = []
    for diff_id in store.unnotified_diff_ids(before):
        stored = store.diff(diff_id)
        recorded.append((stored, _report_path(workspace, store, stored)))
    return enqueue_diffs(workspace, store, recorded) if recorded else 0


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
