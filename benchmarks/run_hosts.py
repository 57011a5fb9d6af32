"""Time `tostrack run` over many sources on many hosts, with confirmations of changes.

    python benchmarks/run_hosts.py                        # 300 sources, 30 hosts, 30 changes
    python benchmarks/run_hosts.py --hosts 10 --per-host 5 --changes 10 --confirm-delay 2

Serves `--per-host` documents from each of `--hosts` HTTP servers on 127.0.0.2, 127.0.0.3, ...
(on ports of 127.0.0.1 where those addresses cannot be bound), each answering after
`--latency` seconds; tracks them all in a fresh workspace (first run), changes one clause of
`--changes` documents spread over the hosts, and runs again with `confirm_delay`, timing that
run. Prints the wall time next to what fetching one source after another would take (every
request, every per-host delay and every confirmation delay in a row, as before issue #14).
Target (issue #14): at most 3 confirmation delays of wall time.
"""

from __future__ import annotations

import resource
import shutil
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import click

CLAUSES = 20


def _document(host: int, doc: int, changed: bool) -> str:
    clauses = [
        f"<p>{n}. Clause {n} of document {doc} on host {host}: you may use the service for "
        "lawful purposes and must keep your account details up to date.</p>"
        for n in range(1, CLAUSES + 1)
    ]
    if changed:
        clauses[2] = (
            "<p>3. You may not use output of the service to develop models that compete with "
            "us.</p>"
        )
    return (
        f"<html><head><title>Terms {host}-{doc}</title></head><body><main>"
        f"<h1>Terms {host}-{doc}</h1>{''.join(clauses)}</main></body></html>"
    )


class Site:
    """One host: an HTTP server answering /doc-N after `latency` seconds."""

    def __init__(self, number: int, address: str, latency: float) -> None:
        self.number = number
        self.changed: set[int] = set()
        self.requests = 0
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                time.sleep(latency)
                doc = int(self.path.rsplit("-", 1)[-1])
                data = _document(site.number, doc, doc in site.changed).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                site.requests += 1

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((address, 0), Handler)
        self.base = f"http://{address}:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _sites(count: int, latency: float) -> list[Site]:
    sites = []
    for n in range(count):
        try:
            sites.append(Site(n, f"127.0.0.{n + 2}", latency))
        except OSError:  # a system that routes only 127.0.0.1: one port per host
            sites.append(Site(n, "127.0.0.1", latency))
    return sites


def _config(sites: list[Site], per_host: int, delay: float, confirm: float, hosts: int) -> str:
    lines = [
        "[fetch]",
        "retries = 0",
        f'delay = "{delay}s"',
        f'confirm_delay = "{confirm}s"',
        f"max_hosts = {hosts}",
        'browser = "never"',
        "",
    ]
    return "\n".join(lines + source_lines(sites, per_host))


def source_lines(sites: list[Site], per_host: int) -> list[str]:
    """tostrack.toml's [[sources]]: `per_host` documents of each site."""
    lines = []
    for site in sites:
        for doc in range(per_host):
            lines += [
                "[[sources]]",
                f'id = "host{site.number}/doc-{doc}"',
                f'url = "{site.base}/doc-{doc}"',
                'select = ["main"]',
                "",
            ]
    return lines


def _run(root: Path) -> tuple[float, float, list[str]]:
    from tostrack.pipeline import run
    from tostrack.workspace import Workspace

    cpu, wall = time.process_time(), time.perf_counter()
    result = run(Workspace.open(root), force=True, send=False)
    return time.perf_counter() - wall, time.process_time() - cpu, [r.status for r in result.results]


@click.command()
@click.option("--hosts", default=30, show_default=True, type=click.IntRange(1, 250))
@click.option("--per-host", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--changes", default=30, show_default=True, type=click.IntRange(min=0))
@click.option("--confirm-delay", default=5.0, show_default=True, type=float)
@click.option("--delay", default=0.5, show_default=True, type=float, help="[fetch] delay.")
@click.option("--latency", default=0.05, show_default=True, type=float, help="Server answer.")
@click.option("--max-hosts", default=30, show_default=True, type=click.IntRange(min=1))
def main(
    hosts: int,
    per_host: int,
    changes: int,
    confirm_delay: float,
    delay: float,
    latency: float,
    max_hosts: int,
) -> None:
    """Print the wall time of a run with confirmations over many hosts."""
    sites = _sites(hosts, latency)
    root = Path(tempfile.mkdtemp(prefix="tostrack-hosts-"))
    try:
        (root / "tostrack.toml").write_text(
            _config(sites, per_host, delay, confirm_delay, max_hosts), encoding="utf-8"
        )
        sources = hosts * per_host
        wall, cpu, statuses = _run(root)
        click.echo(
            f"sources                      {sources} on {hosts} hosts ({sites[0].base}, ...)"
        )
        click.echo(
            f"first run                    {wall:.2f} s wall, {cpu:.2f} s CPU "
            f"({statuses.count('first')} first versions)"
        )
        for n in range(changes):  # spread over the hosts: host n % hosts, its document n // hosts
            sites[n % hosts].changed.add((n // hosts) % per_host)
        before = sum(s.requests for s in sites)
        wall, cpu, statuses = _run(root)
        requests = sum(s.requests for s in sites) - before
        changed = statuses.count("changed")
        # One source after another: every request, every delay between two requests to the
        # same host, and every confirmation, in a row (what a run took before issue #14).
        serial = requests * latency + (requests - hosts) * delay + changed * confirm_delay
        host_work = (per_host + -(-changes // hosts)) * (latency + delay)
        click.echo(
            f"run with changes             {wall:.2f} s wall, {cpu:.2f} s CPU; {changed} changed "
            f"(confirmed), {requests} requests, confirm_delay {confirm_delay:g} s, delay "
            f"{delay:g} s, max_hosts {max_hosts}"
        )
        click.echo(
            f"one source after another     {serial:.1f} s ({changed} x {confirm_delay:g} s "
            f"confirmations + {requests} requests and their per-host delays)"
        )
        click.echo(
            f"one confirmation + slowest host  {confirm_delay + host_work:.1f} s; target <= "
            f"{3 * confirm_delay:g} s (3 confirmation delays): "
            + ("met" if wall <= 3 * confirm_delay else "MISSED")
        )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        click.echo(f"peak memory (ru_maxrss)      {peak:.0f} MB")
    finally:
        for site in sites:
            site.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
