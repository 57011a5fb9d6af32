"""Fetch many hosts at once, each host one request at a time: a bounded pool of host lanes.

A run hands every due source to a HostPool, keyed by its host. Up to `max_hosts` hosts are
fetched at once; the jobs of one host run one after another, in the order they were given (the
Fetcher's throttle spaces them by `delay` as before). A job may be given a time before which it
must not start (a confirming re-fetch `confirm_delay` after the first): it waits in its lane
without holding a worker, so other hosts, and other jobs of its own host, go on meanwhile.

Results come back as futures. The pool never touches the store: the run's own thread, the only
writer, takes the results in its own order, so what is recorded does not depend on timing.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Self


@dataclass(order=True)
class _Job:
    not_before: float
    order: int
    run: Callable[[], Any] = field(compare=False)
    future: Future[Any] = field(compare=False)


class HostPool:
    """Run jobs concurrently across hosts, serially within a host; use as a context manager."""

    def __init__(self, max_hosts: int) -> None:
        if max_hosts < 1:
            raise ValueError("max_hosts must be 1 or more")
        self.max_hosts = max_hosts
        self._lanes: dict[str, list[_Job]] = {}
        self._busy: set[str] = set()
        self._changed = threading.Condition()
        self._order = itertools.count()
        self._workers: list[threading.Thread] = []
        self._closed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(wait=exc[0] is None)

    def submit(self, host: str, job: Callable[[], Any], *, not_before: float = 0.0) -> Future[Any]:
        """Run job() once no other job of `host` runs, and not before time.monotonic() reaches
        `not_before`; its result or exception lands in the future returned."""
        future: Future[Any] = Future()
        with self._changed:
            if self._closed:
                raise RuntimeError("the host pool is closed")
            self._lanes.setdefault(host, []).append(
                _Job(not_before, next(self._order), job, future)
            )
            # One worker per host with work, up to max_hosts: an idle pool costs no threads.
            if len(self._workers) < min(self.max_hosts, len(self._lanes)):
                worker = threading.Thread(target=self._work, name="tostrack-fetch", daemon=True)
                self._workers.append(worker)
                worker.start()
            self._changed.notify_all()
        return future

    def close(self, *, wait: bool = True) -> None:
        """Stop the workers; jobs not started are cancelled. With wait, let running jobs end."""
        with self._changed:
            self._closed = True
            for lane in self._lanes.values():
                for job in lane:
                    job.future.cancel()
                lane.clear()
            self._changed.notify_all()
        if wait:
            for worker in self._workers:
                worker.join()

    def _next(self) -> tuple[str, _Job] | float | None:
        """The job to run now (the oldest ready one of an idle host), else when one will be
        ready (None: nothing queued). Called with the lock held."""
        now = time.monotonic()
        chosen: tuple[str, _Job] | None = None
        wake: float | None = None
        for host, lane in self._lanes.items():
            if host in self._busy:
                continue
            for job in lane:  # in the order given; a job waiting for its time lets later ones by
                if job.not_before <= now:
                    if chosen is None or job.order < chosen[1].order:
                        chosen = (host, job)
                    break
                wake = job.not_before if wake is None else min(wake, job.not_before)
        return chosen if chosen is not None else wake

    def _work(self) -> None:
        while True:
            with self._changed:
                while True:
                    if self._closed:
                        return
                    picked = self._next()
                    if isinstance(picked, tuple):
                        break
                    self._changed.wait(None if picked is None else picked - time.monotonic())
                host, job = picked
                self._lanes[host].remove(job)
                self._busy.add(host)
            try:
                if job.future.set_running_or_notify_cancel():
                    try:
                        result = job.run()
                    except BaseException as exc:  # the caller sees it where it takes the result
                        job.future.set_exception(exc)
                    else:
                        job.future.set_result(result)
            finally:
                with self._changed:
                    self._busy.discard(host)
                    self._changed.notify_all()
