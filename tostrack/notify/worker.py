"""The outbox worker: send what is queued, so that no message is lost or doubled.

Every notification is rendered and stored in the workspace database (with its fixed Message-ID)
before anything is sent. A message then moves queued -> in-flight -> sent:

  COMMIT the claim (this sender, until when)                    state still "queued"
  connect, MAIL, RCPT, DATA (354), the dot-stuffed message      state still "queued"
  COMMIT "in-flight" (only if the claim is still ours)
  the final "." and the server's reply                          COMMIT "sent"

An SMTP server throws away a DATA that never got its final dot, so a message still "queued"
after a crash is safe to send again, once its claim has expired (at once on the embedded store,
where the workspace lock says the claimant is dead). A message found "in-flight" with an expired
claim may have reached the server: it is never sent again, and is reported once as "delivery
uncertain". Workers sharing a PostgreSQL each claim different messages, so they send at once.
Without an [smtp] table (or with dry_run) each message is written once as an .eml file in
outbox/ instead.

A chat or webhook message (channel "apprise") is one HTTP request, with no final dot to hold
back: it is committed "in-flight" just before Apprise sends it, and "sent" when Apprise says
it was taken (see tostrack.notify.chat for how a failure is told apart from an uncertain send).
"""

from __future__ import annotations

import json
import smtplib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tostrack import clock, faults
from tostrack.errors import InputError, StorageError
from tostrack.notify import chat
from tostrack.notify.compose import catch_up
from tostrack.notify.digests import queue_digests
from tostrack.notify.headers import slug
from tostrack.notify.smtp import (
    ClaimLost,
    Connection,
    Rejected,
    SmtpSettings,
    Temporary,
    Uncertain,
    describe,
    send_one,
)
from tostrack.store import Store, write_atomic
from tostrack.workers import DEFAULT_LEASE, others_running, worker_name
from tostrack.workspace import Workspace

BACKOFF_FIRST = 300  # seconds; doubled on each failed attempt


BACKOFF_MAX = 6 * 3600


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


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(BACKOFF_FIRST * 2 ** max(attempts - 1, 0), BACKOFF_MAX))


def _requeue(
    store: Store,
    row: Any,
    reason: str,
    now: datetime,
    errors: list[str],
    where: str,
    worker: str,
) -> None:
    attempts = row["attempts"] + 1
    retry = now + _backoff(attempts)
    store.mark_message(
        row["id"],
        "queued",
        worker,
        last_error=reason,
        attempts=attempts,
        next_attempt_at=clock.iso(retry),
    )
    errors.append(
        f"{row['recipient']}: {where}: {reason}; kept in the outbox, retry after "
        f"{retry:%Y-%m-%d %H:%M} UTC"
    )


def _eml_name(row: Any) -> str:
    if row["channel"] == "apprise":  # a chat message's preview: its title and text
        return f"{row['id']:06d}-{row['kind']}-chat-{slug(row['recipient'])}.txt"
    return f"{row['id']:06d}-{row['kind']}-{slug(row['recipient'])}.eml"


def _preview_bytes(row: Any) -> bytes:
    if row["channel"] != "apprise":
        return bytes(row["message"])
    data = json.loads(bytes(row["message"]))
    return f"To: {row['recipient']}\nTitle: {data['title']}\n\n{data['body']}\n".encode()


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
        fix = (
            f"{folder} is a file: move it away so tostrack can keep messages there"
            if folder.exists() and not folder.is_dir()
            else f"make {folder} a folder this user can write to"
        )
        raise StorageError(
            f"cannot write the message {path.name}: {exc.strerror or exc}; {fix}. "
            "The message stays queued."
        ) from None


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
        _write_eml(path, _preview_bytes(row))
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
    worker: str | None = None,
) -> SendSummary:
    """Send every message that is due, or write it as an .eml in outbox/ when there is no [smtp].

    ignore_backoff: also send messages waiting out a retry backoff (a person running
    `tostrack notify` after fixing the mail server wants them to go now; `run` keeps the
    backoff). dry_run: see preview_pending (nothing is sent, no state changes). worker: who
    claims the messages (on a shared database, other workers send the ones they claim).
    """
    if dry_run:
        return preview_pending(workspace, store)
    now = now or clock.now()
    worker = worker or worker_name()
    lease = workspace.config.store.lease if workspace.config.store else DEFAULT_LEASE
    smtp_settings = SmtpSettings.from_settings(workspace.settings)
    chat.check_recipients(workspace.config)  # Apprise missing, a bad URL: said before sending
    # Another live run queues the diffs it recorded itself, at its end: adopting them now would
    # tell of them twice. Only the diffs of runs that are gone are caught up (and on a shared
    # database, none recorded after this moment: by a run that starts while we catch up).
    if not others_running(store, worker):
        catch_up(workspace, store, before=clock.now_iso() if store.database else None)
    queue_digests(workspace, store, now)
    sent = failed = written_count = 0
    errors: list[str] = []
    written: list[Path] = []
    outcomes: list[Outcome] = []

    # A message left in-flight by a dead sender may have reached the server: say so, once.
    for row in store.abandoned_in_flight():
        on_chat = row["channel"] == "apprise"
        where = "the receiver's log or channel" if on_chat else "the mail server's log"
        reason = (
            "the sending run stopped while the request was out"
            if on_chat
            else "the sending run stopped after the final dot"
        )
        if not store.mark_abandoned(row["id"], reason):
            continue  # another worker reported it, or its sender is alive after all
        errors.append(
            f"delivery uncertain: {row['message_id']} to {row['recipient']} "
            f"({row['subject'][:80]}); "
            f"a run stopped while sending it, check {where} before resending"
        )
        outcomes.append(
            Outcome(
                row["id"],
                row["recipient"],
                row["subject"],
                "uncertain",
                f"a run stopped while sending it; check {where}",
            )
        )

    horizon = "9999" if ignore_backoff else clock.iso(now)

    def claimed(chat_messages: bool) -> Iterator[Any]:
        """Due messages, each claimed by this worker just before it is handled, in id order
        (the cursor keeps a message requeued by this send from coming round again)."""
        last = 0
        while True:
            row = store.claim_message(worker, lease, horizon, chat=chat_messages, after=last)
            if row is None:
                return
            last = row["id"]
            try:
                yield row
            except GeneratorExit:  # stopped before marking it (an error, a full disk): give back
                store.release_message(row["id"], worker)
                raise

    for row in claimed(chat_messages=True):
        outcome = _send_chat(store, row, now, errors, worker)
        if outcome is None:
            continue  # its claim expired before sending and another worker has it now
        outcomes.append(outcome)
        sent += outcome.state == "sent"
        failed += outcome.state in ("failed", "rejected")

    def summary() -> SendSummary:
        return SendSummary(
            sent, failed, errors, written, written_count, outcomes, store.queued_count()
        )

    if not store.has_due_messages(horizon, chat=False):
        return summary()

    if smtp_settings is None:
        for row in claimed(chat_messages=False):
            data = bytes(row["message"])
            path = _unused_eml_path(workspace.outbox_dir / _eml_name(row), data)
            _write_eml(path, data)
            store.mark_message(
                row["id"],
                "written",
                worker,
                sent_at=clock.now_iso(),
                delivered_to=f"file:{path}",
                last_error=None,
            )
            written.append(path)
            written_count += 1
            outcomes.append(
                Outcome(row["id"], row["recipient"], row["subject"], "written", str(path))
            )
        return summary()

    smtp_settings.password()  # a missing password is a configuration error, said before connecting
    conn = Connection(smtp_settings)
    where = f"{smtp_settings.host}:{smtp_settings.port}"
    connect_error = ""

    def failed_one(row: Any, state: str, reason: str) -> None:
        outcomes.append(Outcome(row["id"], row["recipient"], row["subject"], state, reason))

    try:
        for row in claimed(chat_messages=False):
            if connect_error:  # the server is unreachable: do not knock once per message
                failed += 1
                _requeue(store, row, connect_error, now, errors, where, worker)
                failed_one(row, "failed", f"{where}: {connect_error}")
                continue
            try:
                send_one(conn, store, row, worker)
            except ClaimLost:
                continue  # its claim expired mid-send and another worker has it now
            except Uncertain as exc:
                store.mark_message(row["id"], "uncertain", worker, last_error=str(exc))
                errors.append(
                    f"delivery uncertain: {row['message_id']} to {row['recipient']}: "
                    f"{exc} after the "
                    "message was sent; it is not sent again"
                )
                failed_one(row, "uncertain", f"{exc} after the message was sent; not sent again")
                conn.close()
                continue
            except Rejected as exc:
                failed += 1
                store.mark_message(
                    row["id"],
                    "rejected",
                    worker,
                    last_error=str(exc),
                    attempts=row["attempts"] + 1,
                )
                errors.append(f"{row['recipient']}: {where} refused the message for good: {exc}")
                failed_one(row, "rejected", f"{where} refused it for good: {exc}")
                conn.reset()
                continue
            except (Temporary, smtplib.SMTPException, OSError) as exc:
                failed += 1
                reason = str(exc) if isinstance(exc, Temporary) else describe(exc)
                if conn.smtp is None:
                    connect_error = reason
                _requeue(store, row, reason, now, errors, where, worker)
                failed_one(row, "failed", f"{where}: {reason}")
                conn.reset()
                continue
            store.mark_message(
                row["id"],
                "sent",
                worker,
                sent_at=clock.now_iso(),
                delivered_to=f"smtp:{where}",
                last_error=None,
            )
            faults.crash_point("after-mark-sent")
            sent += 1
            outcomes.append(Outcome(row["id"], row["recipient"], row["subject"], "sent", where))
    finally:
        conn.close()
    return summary()


def _send_chat(
    store: Store, row: Any, now: datetime, errors: list[str], worker: str
) -> Outcome | None:
    """Send one chat or webhook message through Apprise, committing "in-flight" first."""
    data = json.loads(bytes(row["message"]))
    target = row["recipient"]

    def outcome(state: str, detail: str) -> Outcome:
        return Outcome(row["id"], row["recipient"], row["subject"], state, detail)

    try:
        url = chat.resolve(data["target"])
    except chat.ChatTemporary as exc:
        _requeue(store, row, str(exc), now, errors, target, worker)
        return outcome("failed", str(exc))
    faults.crash_point("before-chat-send")
    # From here the receiver may get the message: never sent again automatically.
    if not store.start_sending(row["id"], worker, row["attempts"] + 1):
        return None
    try:
        chat.send(url, data["title"], data["body"], data.get("format", "text"))
    except chat.ChatTemporary as exc:
        _requeue(store, row, str(exc), now, errors, target, worker)
        return outcome("failed", f"{target}: {exc}")
    except chat.ChatRejected as exc:
        store.mark_message(row["id"], "rejected", worker, last_error=str(exc))
        errors.append(f"{target} refused the message for good: {exc}")
        return outcome("rejected", f"{target} refused it for good: {exc}")
    except chat.ChatUncertain as exc:
        store.mark_message(row["id"], "uncertain", worker, last_error=str(exc))
        errors.append(
            f"delivery uncertain: {row['message_id']} to {target}: {exc}; it is not sent again "
            "(check the channel, then `tostrack outbox resend` if it never arrived)"
        )
        return outcome("uncertain", f"{exc}; not sent again")
    faults.crash_point("after-chat-send")
    store.mark_message(
        row["id"],
        "sent",
        worker,
        sent_at=clock.now_iso(),
        delivered_to=f"apprise:{target}",
        last_error=None,
    )
    return outcome("sent", target)


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
            f"message {message_id} is {row['state']}: "
            "only uncertain or rejected messages are sent again"
        )
    store.requeue_message(message_id)
    return {"id": message_id, "recipient": row["recipient"], "was": row["state"]}
