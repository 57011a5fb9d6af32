"""Daily and weekly digests: the diffs kept for a digest recipient, queued as one message when
the period is over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tostrack import clock, config
from tostrack.config import Settings
from tostrack.notify.compose import build, chat_key, chat_message, outgoing, templates
from tostrack.notify.recipients import Recipient, recipients, workspace_config
from tostrack.render.email import diff_view
from tostrack.store import Store
from tostrack.workspace import Workspace


def _period_start(mode: str, now: datetime, hour: int, weekday: int) -> datetime:
    """The most recent moment a daily/weekly digest fell due."""
    start = now.astimezone(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    if mode == "daily":
        return start - timedelta(days=1) if start > now else start
    start -= timedelta(days=(start.weekday() - weekday) % 7)
    return start - timedelta(days=7) if start > now else start


def _digest_schedule(settings: Settings | config.Config) -> tuple[int, int]:
    table = workspace_config(settings).notify
    return table.digest_hour, table.weekday_index


def queue_digests(workspace: Workspace, store: Store, now: datetime) -> int:
    hour, weekday = _digest_schedule(workspace.settings)
    added = 0
    for recipient, mode in store.digest_groups():
        start = _period_start(mode, now, hour, weekday)
        rows = store.digest_items(recipient, mode, clock.iso(start))
        if not rows:
            continue
        on_chat = recipient.startswith("env:") or "://" in recipient  # a chat target
        key = f"digest:{mode}:{clock.iso(start)}:" + (
            chat_key(recipient) if on_chat else recipient.lower()
        )
        if store.has_message(key):
            continue  # this period's digest went out already; these wait for the next one
        filters = next(
            (
                r
                for r in recipients(workspace.settings)
                if recipient in (r.email, *r.chat_targets) and r.mode == mode
            ),
            Recipient(mode=mode) if on_chat else Recipient(recipient, mode=mode),
        )
        items = []
        for row in rows:
            stored = store.diff(row["diff_id"])
            changes = filters.matching(stored.changes) or stored.changes
            items.append(diff_view(store, stored, row["report_path"], changes, workspace))
        titles = list(dict.fromkeys(item["title"] for item in items))
        count = sum(len(item["changes"]) for item in items)
        label = "Daily" if mode == "daily" else "Weekly"
        subject = f"{label} digest: {count} change{'s' if count != 1 else ''} in " + (
            titles[0] if len(titles) == 1 else f"{len(titles)} documents ({', '.join(titles)})"
        )
        if on_chat:
            message = chat_message(key, "digest", recipient, filters, subject, items)
            added += store.queue_digest(message, [row["id"] for row in rows])
            continue
        env = templates(workspace)
        view = {
            "mode": mode,
            "label": label,
            "items": items,
            "subject": subject,
            "since": clock.iso(start),
        }
        msg = build(
            workspace,
            key=key,
            recipient=recipient,
            subject=subject,
            text=env.get_template("email/digest.txt").render(**view),
            html=env.get_template("email/digest.html").render(**view),
        )
        added += store.queue_digest(
            outgoing(key, "digest", recipient, msg), [row["id"] for row in rows]
        )
    return added
