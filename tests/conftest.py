"""Shared fixtures. Everything here is real: files in tmp_path, servers on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from postgres_cluster import Cluster, Unavailable

TERMS_V1 = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Acme Terms</title>\
</head>
<body><header>Menu <a href="/x?sid=1">Pricing</a></header><main>
<h1>Acme AI Terms</h1>
<p>Last updated: May 1, 2026</p>
<h2>1. Use of the service</h2>
<p>1.1 You may use the service for lawful purposes in line with these terms.</p>
<p>1.2 You may not reverse engineer or decompile any part of the service.</p>
<h2>2. Disputes</h2>
<p>2.1 These terms are governed by the laws of England and Wales.</p>
</main><footer>footer</footer></body></html>
"""

TERMS_V2 = TERMS_V1.replace(
    "1.2 You may not reverse engineer or decompile any part of the service.",
    "1.2 You may not reverse engineer or decompile any part of the service, or use its output to "
    "develop models that compete with Acme.",
).replace("Last updated: May 1, 2026", "Last updated: June 9, 2026")


def run_python(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """A child Python (`-m tostrack ...`, `-c CODE ...`), its output captured as text; a test
    reads its return code (a kill -9 shows as -9)."""
    return subprocess.run(
        [sys.executable, *args],
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# Same text as V1; only markup, whitespace and a tracking id differ.
TERMS_V1_RERENDERED = TERMS_V1.replace("sid=1", "sid=2").replace(
    "<p>1.1 You may use", "<p class='x'>\n  1.1   You may use"
)


def write_config(root: Path, body: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "tostrack.toml"
    path.write_text(body, encoding="utf-8")
    return path


def source_config(url: str, extra: str = "") -> str:
    return f"""
[fetch]
retries = 0
confirm_delay = 0

[[sources]]
id = "acme/terms"
title = "Acme AI Terms"
url = "{url}"
select = ["main"]
{extra}

[[recipients]]
email = "legal@example.com"
"""


@pytest.fixture
def workspace_dir(tmp_path: Path) -> Path:
    return tmp_path / "ws"


# -- a real PostgreSQL (tests/postgres_cluster.py) ----------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The superuser URL of a throw-away cluster started once per session; the tests that need
    it skip, saying why, when PostgreSQL or psycopg is not there."""
    try:
        import psycopg  # noqa: F401 - only to know whether the extra is installed
    except ImportError:
        pytest.skip("psycopg is not installed: pip install 'tostrack[postgres]'")
    cluster = Cluster()
    try:
        url = cluster.start()
    except Unavailable as exc:
        cluster.stop()
        pytest.skip(f"PostgreSQL cannot be started here: {exc}")
    try:
        yield url
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A URL whose tables live in a fresh schema of their own: each test starts empty, and
    making a schema is much cheaper than making a database."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}")
    return f"{postgres_server}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_table(request: pytest.FixtureRequest) -> str:
    """What a test's tostrack.toml adds to run on each backend: nothing (the embedded store),
    then a [store] table naming a fresh PostgreSQL schema (skipped, saying why, where no cluster
    can be started). A short lease: a killed worker's hosts and messages are waited out."""
    if request.param == "sqlite":
        return ""
    url = request.getfixturevalue("postgres_url")
    return f'\n[store]\nurl = "{url}"\nlease = "1s"\n'
