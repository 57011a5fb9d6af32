"""Several `tostrack run` processes, on any number of machines, sharing one PostgreSQL store.

Without a broker: each worker claims hosts' leases (tostrack.store.leases), up to [fetch]
max_hosts at a time, tracks those hosts' due sources, and releases them, until no host is left
that another live worker does not hold. So a host is fetched by one worker at a time (politeness
holds across machines), and a source is fetched once per round: a worker that claims a host
after another has done it finds its sources no longer due. A killed worker's lease expires
([store] lease, renewed after each source recorded) and its host is claimed again. A worker
that finds every host left held by live workers waits for them, so that a killed worker's hosts
are done by the others once its lease expires, in the same round.

Every worker sends the outbox: each message is claimed by one of them (tostrack.store.outbox),
so workers send different messages at once and none is sent twice. Each run also holds a "run:"
lease while it works: diffs a run recorded are queued by that run at its end, so only when no
other run is alive does a worker queue the diffs a crashed run left unnotified.

The embedded SQLite store keeps the workspace lock instead (a second run exits 75).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from tostrack.fetch.throttle import host_key
from tostrack.models import Source
from tostrack.store import Store

RUN = "run:"  # the lease a run holds while it works (diffs recorded, not yet queued)
DEFAULT_LEASE = 600.0  # seconds, as [store] lease defaults


def worker_name() -> str:
    """This process, as leases name it: machine, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def claimed_batches(
    store: Store, sources: Sequence[Source], worker: str, lease: float, max_hosts: int
) -> Iterator[list[Source]]:
    """The sources of the hosts this worker claims, up to max_hosts hosts a batch (the run
    fetches a batch's hosts at once), each batch's leases released when the next is asked for.
    The caller checks that each source is still due: another worker may have just done it. A
    host is host[:port], as the fetcher's per-host throttle counts it. When every host left is
    held by another worker, this one waits: a live holder releases it done, a dead one's lease
    expires and its sources are this worker's."""
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
        if not claimed:  # every host left is being fetched by another worker
            time.sleep(min(max(lease / 20, 0.2), 1.0))  # one cheap query a second at most
            store.renew_leases(worker, lease)  # waiting is not dying: the run lease holds
            continue
        try:
            yield [source for name in claimed for source in by_host.pop(name)]
        finally:
            for name in claimed:
                store.release_lease(name, worker)


def renew_host(store: Store, source: Source, worker: str, lease: float) -> None:
    """After each source recorded: a host with many sources stays ours while we work on it (and
    the run's own lease with it)."""
    store.renew_leases(worker, lease)


def _lease_name(source: Source) -> str:
    return f"host:{host_key(source.url)}"


@contextmanager
def running(store: Store, shared: bool, worker: str, lease: float) -> Iterator[None]:
    """Hold this run's lease while it tracks and queues (nothing to hold on the embedded store)."""
    if not shared:
        yield
        return
    store.drop_expired_leases(RUN)  # the rows of runs that were killed
    store.claim_lease([RUN + worker], worker, lease)
    try:
        yield
    finally:
        store.drop_lease(RUN + worker, worker)


def others_running(store: Store, worker: str) -> bool:
    """Whether another live run may have recorded diffs it has not queued yet."""
    return store.database is not None and store.others_hold(RUN, worker)
