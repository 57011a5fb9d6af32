"""Chat and webhook targets through Apprise: checking a URL, its limits, and one send.

Apprise (the optional extra `tostrack[chat]`) is imported here and nowhere else. Apprise tells a
caller only whether a send succeeded; to keep "exactly once" honest, a failed send is read from
the log lines Apprise records during that one call:

  the receiver answered with an HTTP status      it did not take the message: retried (5xx,
                                                 408, 429) or rejected (other 4xx)
  no connection was made (refused, unknown       nothing reached the receiver: retried
  host, connect timeout)
  anything else (read timeout, connection        the receiver may have it: "uncertain",
  dropped after the request went out)            never sent again automatically
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tostrack.config import did_you_mean
from tostrack.errors import ConfigError

EXTRA = "pip install 'tostrack[chat]'"

# Chat is read on a phone between two meetings: even where a target takes 35,000 characters
# (Slack), a message longer than this is not read. A recipient's max_length overrides it.
READABLE_LENGTH = 1800

# The webhooks that get the machine-readable change summary instead of text.
JSON_SCHEMES = ("json", "jsons")

# A title longer than this is cut (Apprise's default title limit is 250).
TITLE_LENGTH = 200

# What Apprise's json:// envelope adds around the body ({"version": …, "title": …, …}).
ENVELOPE = 120


def apprise_module() -> Any:
    """The apprise package, or a ConfigError that says how to install it."""
    try:
        import apprise
    except ImportError:
        raise ConfigError(
            "[[recipients]] with url, urls or url_env send through Apprise, which is not "
            f"installed: {EXTRA}"
        ) from None
    return apprise


def scheme_of(url: str) -> str:
    return url.partition("://")[0].strip().lower() if "://" in url else ""


@functools.lru_cache(maxsize=1)
def known_schemes() -> tuple[str, ...]:
    """Every scheme Apprise can send to (slow: it loads every plugin; only for error hints)."""
    apprise = apprise_module()
    details = apprise.Apprise().details(show_disabled=False)
    schemes: set[str] = set()
    for service in details.get("schemas", []):
        for key in ("protocols", "secure_protocols"):
            schemes.update(str(s).lower() for s in service.get(key) or ())
    return tuple(sorted(schemes))


def url_problem(url: str) -> str:
    """Why Apprise cannot send to url ('' when it can). Never repeats the URL (it may hold a
    token)."""
    if not isinstance(url, str) or not url.strip():
        return "an Apprise URL must be a non-empty string"
    scheme = scheme_of(url)
    if not scheme:
        return 'an Apprise URL starts with its service, e.g. "slack://…" or "json://host/path"'
    if plugin_for(url) is not None:
        return ""
    if scheme in ("msteams", "teams"):
        return (
            "Apprise reaches Microsoft Teams through Power Automate Workflows (Microsoft retired "
            "the Office 365 connectors): use the workflow's URL as workflows://…, see "
            "https://appriseit.com/services/workflows/"
        )
    schemes = known_schemes()
    if scheme not in schemes:
        return (
            f"'{scheme}://' is no service Apprise knows.{did_you_mean(scheme, schemes)} "
            "See https://appriseit.com/services/"
        )
    return (
        f"this {scheme}:// URL is incomplete or malformed (a token or the host is missing); "
        "see https://appriseit.com/services/ for its form"
    )


def plugin_for(url: str) -> Any:
    """Apprise's plugin instance for url (None when Apprise cannot use it), with Apprise's own
    retries off (the outbox retries, and a retry by Apprise after a timeout could double a
    message) and one request per message: a message split into several requests could be
    half delivered, which no outbox state can say. tostrack sizes each message to fit."""
    apprise = apprise_module()
    plugin = apprise.Apprise.instantiate(url.strip())
    if plugin is None:
        return None
    plugin.retry = 0
    plugin.overflow_mode = apprise.OverflowMode.TRUNCATE
    return plugin


@dataclass(frozen=True)
class TargetLimits:
    """How much a target takes: body characters, whether the title is folded into the body
    (then it counts against the same limit), and whether it gets the JSON summary."""

    body: int
    title_in_body: bool
    json: bool


def limits_for(url: str, max_length: int = 0) -> TargetLimits:
    plugin = plugin_for(url)
    scheme = scheme_of(url)
    if plugin is None:
        return TargetLimits(max_length or READABLE_LENGTH, False, scheme in JSON_SCHEMES)
    body = int(getattr(plugin, "body_maxlen", 0) or 32768)
    title_in_body = int(getattr(plugin, "title_maxlen", 0) or 0) <= 0
    is_json = scheme in JSON_SCHEMES
    readable = body if is_json else min(body, READABLE_LENGTH)
    return TargetLimits(min(body, max_length) if max_length else readable, title_in_body, is_json)


def masked(url: str) -> str:
    """url as `tostrack outbox` shows it: Apprise's privacy form (tokens shortened), without
    the query string."""
    plugin = plugin_for(url)
    if plugin is None:
        return f"{scheme_of(url) or 'apprise'}://…"
    return str(plugin.url(privacy=True)).partition("?")[0]


class ChatTemporary(Exception):
    """Nothing reached the receiver, or it answered "not now": send again later."""


class ChatRejected(Exception):
    """The receiver answered that it will never take this message (a 4xx)."""


class ChatUncertain(Exception):
    """The request may have reached the receiver: never sent again automatically."""


_STATUS = re.compile(r"error=(\d{3})")
_NOT_CONNECTED = re.compile(
    r"Connection refused|Failed to establish a new connection|Name or service not known|"
    r"NameResolutionError|nodename nor servname|ConnectTimeout|connect timeout|"
    r"No route to host|Network is unreachable",
    re.IGNORECASE,
)


@contextmanager
def _apprise_debug() -> Iterator[None]:
    """Let Apprise record its debug lines (the socket error behind a failure) for one call."""
    logger = logging.getLogger("apprise")
    before = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.setLevel(before)


def send(url: str, title: str, body: str, body_format: str) -> None:
    """Send one message; raises ChatTemporary, ChatRejected or ChatUncertain when it was not
    delivered for certain."""
    apprise = apprise_module()
    plugin = plugin_for(url)
    if plugin is None:
        raise ChatRejected(url_problem(url) or "Apprise cannot use this URL")
    sender = apprise.Apprise()
    sender.add(plugin)
    with _apprise_debug():
        result = sender.notify(
            body=body, title=title, body_format=body_format, log_level=logging.DEBUG
        )
    if result:
        return
    status_name = getattr(getattr(result, "status", None), "name", "")
    lines = [str(getattr(entry, "message", entry)) for entry in result.logs()]
    text = "\n".join(lines)
    if status_name == "TIMEOUT":
        raise ChatUncertain("no answer before Apprise's deadline")
    answered = _STATUS.search(text)
    if answered:
        code = int(answered.group(1))
        if code >= 500 or code in (408, 425, 429):
            raise ChatTemporary(f"the receiver answered {code}")
        raise ChatRejected(f"the receiver answered {code}")
    if _NOT_CONNECTED.search(text):
        reason = "connection refused" if "refused" in text.lower() else "could not connect"
        raise ChatTemporary(reason)
    if re.search(r"timed out", text, re.IGNORECASE):
        raise ChatUncertain("the request went out but no answer came before the read timeout")
    raise ChatUncertain(
        "Apprise reported a failure after the request may have gone out"
        + (f" ({_short(lines)})" if lines else "")
    )


def _short(lines: list[str]) -> str:
    warnings = [line for line in lines if "error" in line.lower() or "fail" in line.lower()]
    text = (warnings or lines)[-1]
    return " ".join(text.split())[:160]


def resolve(target: str) -> str:
    """A stored target ("env:NAME" or a URL written in the file) as the URL to send to."""
    if target.startswith("env:"):
        name = target[4:]
        value = os.environ.get(name, "").strip()
        if not value:
            raise ChatTemporary(
                f"${name} is not set in this environment (url_env); set it where tostrack runs "
                "(cron starts with an almost empty environment)"
            )
        return value
    return target


def check_recipients(config: Any, *, need_environment: bool = True) -> list[str]:
    """Check the chat targets of [[recipients]] (config: a tostrack.config.Config): Apprise is
    installed and can use every URL. Raises ConfigError listing every problem; returns notes
    (a url_env variable not set here, when need_environment is False: `config check`)."""
    problems: list[str] = []
    notes: list[str] = []
    for n, recipient in enumerate(config.recipients, 1):
        if not recipient.chat_targets:
            continue
        apprise_module()
        at = f"{config.where}: [[recipients]] #{n}"
        for url in recipient.urls:
            problem = url_problem(url)
            if problem:
                problems.append(f"{at} url: {problem}")
        for name in recipient.url_env:
            value = os.environ.get(name, "").strip()
            if not value:
                unset = f"{at} url_env: ${name} is not set in this environment"
                if need_environment:
                    problems.append(
                        f"{unset}; set it where tostrack runs (cron starts with an almost empty "
                        "environment)"
                    )
                else:
                    notes.append(f"{unset}; `run` and `notify` need it")
                continue
            problem = url_problem(value)
            if problem:
                problems.append(f"{at} url_env: ${name} holds a URL Apprise cannot use: {problem}")
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError(
            f"{config.where} has {len(problems)} problems:\n"
            + "\n".join(f"  - {p}" for p in problems)
        )
    return notes


def target_count(config: Any) -> int:
    return sum(len(r.chat_targets) for r in config.recipients)
