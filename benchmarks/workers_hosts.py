"""Wall time of one round over 1,000 sources on 50 local hosts with 1, 2 and 4 workers.

    python benchmarks/workers_hosts.py                      # 50 hosts x 20 documents
    python benchmarks/workers_hosts.py --workers 1,2 --per-host 5

Starts a throw-away PostgreSQL cluster the way the tests do (tests/postgres_cluster.py: initdb
in a temp folder, a free port on 127.0.0.1), serves `--per-host` documents from each of
`--hosts` HTTP servers on 127.0.0.2, 127.0.0.3, ... (ports of 127.0.0.1 where those cannot be
bound; benchmarks/run_hosts.py's sites), and for each worker count tracks every source once in
a fresh workspace and a fresh schema: that many `tostrack run` processes started together on
one `[store] url`, timed until the last one exits. Checks that each source was fetched once and
recorded once, and prints a table. On a 2-core machine the curve is the point, not the figures:
a worker is one process, so more than two share the cores.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]  # run_hosts' sites, the tests' cluster

from postgres_cluster import Cluster, Unavailable  # noqa: E402
from run_hosts import Site, _sites, source_lines  # noqa: E402


def _config(url: str, sites: list[Site], per_host: int, delay: float, max_hosts: int) -> str:
    lines = [
        "[store]",
        f'url = "{url}"',
        "",
        "[fetch]",
        "retries = 0",
        f'delay = "{delay}s"',
        "confirm_delay = 0",
        f"max_hosts = {max_hosts}",
        'browser = "never"',
        "",
    ]
    return "\n".join(lines + source_lines(sites, per_host))


def _schema(server_url: str, name: str) -> str:
    """A fresh schema for one measurement, and the URL whose tables live in it."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {name}")
    return f"{server_url}?options=-csearch_path%3D{name}"


def _counts(url: str) -> tuple[int, int]:
    """(versions, sources checked) recorded in the schema of url."""
    import psycopg

    with psycopg.connect(url) as db:
        versions = db.execute("SELECT COUNT(*) FROM versions").fetchone()[0]
        checked = db.execute(
            "SELECT COUNT(*) FROM sources WHERE last_checked_at IS NOT NULL"
        ).fetchone()[0]
    return versions, checked


def _round(root: Path, workers: int) -> tuple[float, float, list[int]]:
    """Start `workers` runs at once: wall seconds until the last exits, CPU seconds of them all,
    and the sources each tracked."""
    cpu = _children_cpu()
    command = [sys.executable, "-m", "tostrack", "--workspace", str(root), "run", "--no-send"]
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}  # this checkout's tostrack
    started = time.perf_counter()
    running = [
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for _ in range(workers)
    ]
    tracked = []
    for process in running:
        out, err = process.communicate(timeout=3600)
        if process.returncode != 0:
            raise click.ClickException(f"a worker exited {process.returncode}: {err.strip()}")
        tracked.append(out.count("tracking "))
    return time.perf_counter() - started, _children_cpu() - cpu, tracked


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@click.command()
@click.option("--hosts", default=50, show_default=True, type=click.IntRange(1, 250))
@click.option("--per-host", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--workers", "counts", default="1,2,4", show_default=True, help="Worker counts.")
@click.option("--delay", default=1.0, show_default=True, type=float, help="[fetch] delay.")
@click.option("--latency", default=0.05, show_default=True, type=float, help="Server answer.")
@click.option("--max-hosts", default=8, show_default=True, type=click.IntRange(min=1))
def main(
    hosts: int, per_host: int, counts: str, delay: float, latency: float, max_hosts: int
) -> None:
    """Print the wall time of one round with each number of workers."""
    try:
        worker_counts = [int(n) for n in counts.split(",") if n.strip()]
    except ValueError:
        raise click.BadParameter(f"not a list of numbers: {counts!r}", param_hint="--workers")
    if not worker_counts or min(worker_counts) < 1:
        raise click.BadParameter("give one or more counts of at least 1", param_hint="--workers")
    cluster = Cluster()
    try:
        server_url = cluster.start()
    except Unavailable as exc:
        cluster.stop()
        raise click.ClickException(f"PostgreSQL cannot be started here: {exc}") from None
    sites = _sites(hosts, latency)
    folder = Path(tempfile.mkdtemp(prefix="tostrack-workers-"))
    sources = hosts * per_host
    rows = []
    try:
        for workers in worker_counts:
            url = _schema(server_url, f"w{workers}_{len(rows)}")
            root = folder / f"ws-{len(rows)}"
            root.mkdir()
            (root / "tostrack.toml").write_text(
                _config(url, sites, per_host, delay, max_hosts), encoding="utf-8"
            )
            before = sum(site.requests for site in sites)
            load = os.getloadavg()[0]
            wall, cpu, tracked = _round(root, workers)
            requests = sum(site.requests for site in sites) - before
            versions, checked = _counts(url)
            once = requests == versions == checked == sources
            rows.append((workers, wall, cpu, load, tracked, requests, once))
    finally:
        for site in sites:
            site.close()
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)
    base = rows[0][1]
    click.echo(
        f"{sources} sources on {hosts} local hosts ({sites[0].base}, ...), one round of first "
        f"versions; [fetch] delay {delay:g} s, max_hosts {max_hosts}, server latency "
        f"{latency:g} s; {os.cpu_count()} CPU cores"
    )
    click.echo(
        "| workers | wall time | vs first row | CPU, all workers | load average at start "
        "| sources per worker | each fetched once |"
    )
    click.echo("|---|---|---|---|---|---|---|")
    for workers, wall, cpu, load, tracked, requests, once in rows:
        shares = "/".join(str(n) for n in tracked)
        check = "yes" if once else f"NO ({requests} requests)"
        click.echo(
            f"| {workers} | {wall:.1f} s | {base / wall:.2f}x | {cpu:.1f} s | {load:.1f} "
            f"| {shares} | {check} |"
        )


if __name__ == "__main__":
    main()
