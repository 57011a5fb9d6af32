"""Several `tostrack run` processes, on any number of machines, sharing one PostgreSQL store.

Without a broker: each worker claims hosts' leases (tostrack.store.leases), up to [fetch]
max_hosts at a time, tracks those hosts' due sources, and releases them, until no host is left
that another live worker does not hold. So a host is fetched by one worker at a time (politeness
holds across machines), and a source is fetched once per round: a worker that claims a host
after another has done it finds its sources no longer due. A killed worker's lease expires
([store] lease, renewed after each source recorded) and its host is claimed again. The outbox is
sent by the one worker holding the "outbox" lease.

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


def claimed_batches(
    store: Store, sources: Sequence[Source], worker: str, lease: float, max_hosts: int
) -> Iterator[list[Source]]:
    """The sources of the hosts this worker claims, up to max_hosts hosts a batch (the run
    fetches a batch's hosts at once), each batch's leases released when the next is asked for.
    The caller checks that each source is still due: another worker may have just done it. A
    host is host[:port], as the fetcher's per-host throttle counts it."""
    by_host: dict[str, list[Source]] = {}
    for source in sources:
        by_host.setdefault(_lease_name(source), []).append(source)
    while by_host:
        claimed: list[str] = []
        while len(claimed) < max(max_hosts, 1):
            name = store.claim_lease(sorted(set(by_host) - set(claimed)), worker, lease)
            if name is None:
                break
            claimed.append(name)
        if not claimed:
            return  # every host left is being fetched by a live worker
        try:
            yield [source for name in claimed for source in by_host.pop(name)]
        finally:
            for name in claimed:
                store.release_lease(name, worker)


def renew_host(store: Store, source: Source, worker: str, lease: float) -> None:
    """After each source recorded: a host with many sources stays ours while we work on it."""
    store.renew_lease(_lease_name(source), worker, lease)


def _lease_name(source: Source) -> str:
    return f"host:{host_key(source.url)}"


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
