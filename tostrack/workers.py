"""Several `tostrack run` processes, on any number of machines, sharing one PostgreSQL store.

Without a broker: each worker claims a host's lease (tostrack.store.leases), tracks that host's
due sources, and releases it, until no host is left that another live worker does not hold. So
a host is fetched by one worker at a time (politeness holds across machines), and a source is
fetched once per round: a worker that claims a host after another has done it finds its sources
no longer due. A killed worker's lease expires ([store] lease, renewed before each source) and
its host is claimed again. The outbox is sent by the one worker holding the "outbox" lease.

The embedded SQLite store keeps the workspace lock instead (a second run exits 75).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from tostrack.fetch.throttle import host_key
from tostrack.models import Source
from tostrack.store import Store

OUTBOX_LEASE = 1800.0  # sending may wait out slow mail servers; a dead sender's lease expires
OUTBOX = "outbox"


def worker_name() -> str:
    """This process, as leases name it: machine, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def claimed_in_turn(
    store: Store, sources: Sequence[Source], worker: str, lease: float
) -> Iterator[Source]:
    """The sources of each host this worker claims, a host at a time (the caller checks that
    each is still due: another worker may have just done it). A host is host[:port], as the
    fetcher's per-host throttle counts it."""
    by_host: dict[str, list[Source]] = {}
    for source in sources:
        by_host.setdefault(f"host:{host_key(source.url)}", []).append(source)
    while by_host:
        name = store.claim_lease(sorted(by_host), worker, lease)
        if name is None:
            return  # every host left is being fetched by a live worker
        try:
            for source in by_host.pop(name):
                if not store.renew_lease(name, worker, lease):
                    break  # our lease ran out and another worker took the host over
                yield source
        finally:
            store.release_lease(name, worker)


@contextmanager
def outbox_turn(store: Store, shared: bool, worker: str | None = None) -> Iterator[bool]:
    """Whether this process sends the outbox now: always on the embedded store (the workspace
    lock is held); on a shared one, only while it holds the outbox lease, so that a message is
    sent by one worker and its in-flight state is read by no other."""
    if not shared:
        yield True
        return
    with store.holding(OUTBOX, worker or worker_name(), OUTBOX_LEASE) as held:
        yield held
