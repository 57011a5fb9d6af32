"""Talking to the mail server: the [smtp] settings, one connection, one message sent with the
final dot committed as "in-flight" first (see tostrack.notify.worker)."""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from email.utils import parseaddr
from typing import Any

from tostrack import config, faults
from tostrack.notify.headers import header_safe
from tostrack.store import Store
from tostrack.workspace import Workspace

TLS_MODES = config.TLS_MODES


DEFAULT_FROM = config.DEFAULT_FROM


SmtpSettings = config.SmtpConfig


def sender_address(workspace: Workspace) -> str:
    smtp = SmtpSettings.from_settings(workspace.settings)
    return smtp.sender if smtp else DEFAULT_FROM


def describe(exc: BaseException) -> str:
    """A short, traceback-free reason for stderr."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"login refused ({exc.smtp_code}); check username and password_env"
    if isinstance(exc, smtplib.SMTPResponseException):
        text = (
            exc.smtp_error.decode(errors="replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
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


class Rejected(Exception):
    """The server refused this message for good (5xx)."""


class Temporary(Exception):
    """The server refused this message for now (4xx, or an unexpected reply)."""


def _dot_stuffed(message: bytes) -> bytes:
    data = re.sub(rb"\r\n|\r|\n", b"\r\n", message)
    data = re.sub(rb"(?m)^\.", b"..", data)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def _check(code: int, reply: bytes, expected: tuple[int, ...]) -> None:
    if code in expected:
        return
    error = smtplib.SMTPResponseException(code, reply)
    raise (Rejected if 500 <= code < 600 else Temporary)(describe(error))


class Connection:
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

    def abandon(self) -> None:
        """Drop the connection mid-DATA, saying nothing more (a QUIT would be read as data)."""
        if self.smtp is not None:
            self.smtp.close()
            self.smtp = None

    def close(self) -> None:
        if self.smtp is None:
            return
        try:
            self.smtp.quit()
        except (smtplib.SMTPException, OSError):
            self.smtp.close()
        self.smtp = None


def send_one(conn: Connection, store: Store, row: Any, worker: str) -> None:
    """Send one message worker claimed; raises on failure. Commits "in-flight" just before the
    final dot (ClaimLost, with the dot held back, when the claim went to another worker)."""
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
    if not store.start_sending(row["id"], worker, row["attempts"] + 1):
        conn.abandon()  # no final dot: the server throws the unfinished DATA away
        raise ClaimLost(row["id"])
    smtp.send(b".\r\n")
    faults.crash_point("after-final-dot")
    try:
        code, reply = smtp.getreply()
    except (smtplib.SMTPException, OSError) as exc:
        raise Uncertain(describe(exc)) from None
    if code != 250:
        store.refused_after_sending(row["id"], worker)  # the server answered: it does not have it
        _check(code, reply, (250,))


class ClaimLost(Exception):
    """The message's claim expired before its final dot and another worker has it now."""


class Uncertain(Exception):
    """The final dot went out but no answer came back: the server may have the message."""
