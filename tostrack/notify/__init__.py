"""Who is told what, and an outbox that neither loses nor doubles a message.

recipients.py  who is told: [[recipients]] and [notify] operators
compose.py     the messages about a recorded diff or a broken source, built and queued
digests.py     daily and weekly digests
smtp.py        the mail server: settings, connection, one message sent
chat.py        chat and webhook targets through Apprise (the extra tostrack[chat])
worker.py      the outbox worker: sends what is queued (or writes .eml files without [smtp])
headers.py     text fit for a header line

The messages and their states are kept by the store (tostrack.store.outbox). Import from here;
the modules of this package import each other directly, never this __init__.
"""

from tostrack.notify.chat import check_recipients as check_channels
from tostrack.notify.compose import (
    enqueue_diff,
    enqueue_diffs,
    enqueue_operator,
    queue_operator_alert,
    subject_for,
)
from tostrack.notify.headers import header_safe
from tostrack.notify.recipients import MODES, WEEKDAYS, Recipient, operators, recipients
from tostrack.notify.smtp import TLS_MODES, SmtpSettings
from tostrack.notify.worker import (
    Outcome,
    SendSummary,
    outbox_rows,
    preview_pending,
    requeue,
    send_pending,
)

__all__ = [
    "MODES",
    "TLS_MODES",
    "WEEKDAYS",
    "Outcome",
    "Recipient",
    "SendSummary",
    "SmtpSettings",
    "check_channels",
    "enqueue_diff",
    "enqueue_diffs",
    "enqueue_operator",
    "header_safe",
    "operators",
    "outbox_rows",
    "preview_pending",
    "queue_operator_alert",
    "recipients",
    "requeue",
    "send_pending",
    "subject_for",
]
