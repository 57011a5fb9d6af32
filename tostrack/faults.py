"""Crash injection, for the tests that prove a kill at the worst moment loses nothing.

TOSTRACK_CRASH_AT=<step> makes the process kill itself (as kill -9 would) when it reaches that
step. Shipped code marks each step with crash_point(step) and nothing else; without the variable
a crash point does nothing.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "TOSTRACK_CRASH_AT"
STORE_STEPS = ("after-rename", "in-failure-transaction", "before-copy-commit")
NOTIFY_STEPS = (
    "after-enqueue",
    "after-connect",
    "before-final-dot",
    "after-final-dot",
    "after-mark-sent",
)
# A chat or webhook send (tostrack.notify.worker): before "in-flight" is committed, and after
# Apprise said the receiver took it but before "sent" is committed.
CHAT_STEPS = ("before-chat-send", "after-chat-send")
STEPS = STORE_STEPS + NOTIFY_STEPS + CHAT_STEPS


def crash_point(step: str) -> None:
    """Die here when TOSTRACK_CRASH_AT names this step."""
    if step not in STEPS:
        raise ValueError(f"unknown crash point {step!r}; add it to tostrack.faults.STEPS")
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)
