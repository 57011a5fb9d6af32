"""`tostrack demo`: the whole pipeline, offline, on sample documents written for tostrack.

A tiny HTTP server on 127.0.0.1 serves version 1 of each sample document; a run records them.
The server then switches to version 2 and a second run records the changes, renders the
reports and writes the notification emails as .eml files (no mail server is configured).
"""

from __future__ import annotations

import shutil
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

from tostrack.errors import InputError
from tostrack.pipeline import run
from tostrack.workspace import Workspace

MARKER = ".tostrack-demo"


@dataclass(frozen=True)
class DemoOutcome:
    workspace: Path
    index: Path
    reports: tuple[Path, ...]
    emails: tuple[Path, ...]
    lines: tuple[str, ...]


class _Pages:
    """What the demo server serves now; swapped between versions."""

    def __init__(self) -> None:
        self.pages: dict[str, bytes] = {}
        self.lock = threading.Lock()

    def set(self, pages: dict[str, bytes]) -> None:
        with self.lock:
            self.pages = dict(pages)

    def get(self, path: str) -> bytes | None:
        with self.lock:
            return self.pages.get(path)


def _serve(pages: _Pages) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # keep the demo's output readable
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _data() -> resources.abc.Traversable:
    return resources.files("tostrack") / "demo_data"


def _version(n: int) -> dict[str, bytes]:
    folder = _data() / f"v{n}"
    return {
        f"/{item.name}": item.read_bytes()
        for item in folder.iterdir()
        if item.name.endswith(".html")
    }


def _declarations() -> list[dict]:
    return tomllib.loads((_data() / "sources.toml").read_text(encoding="utf-8"))["sources"]


def _config(port: int) -> str:
    lines = [
        "# Written by `tostrack demo`: sample documents served from 127.0.0.1.",
        "[fetch]",
        "retries = 0",
        "delay = 0",
        "confirm_delay = 0",
        "",
    ]
    for decl in _declarations():
        lines += [
            "[[sources]]",
            f'id = "{decl["id"]}"',
            f'title = "{decl["title"]}"',
            f'url = "http://127.0.0.1:{port}/{decl["file"]}"',
            f"select = {decl['select']!r}".replace("'", '"'),
            "",
        ]
    lines += ["[[recipients]]", 'email = "legal@example.com"', 'mode = "immediate"', ""]
    return "\n".join(lines)


def _prepare(directory: Path) -> Path:
    directory = directory.expanduser().resolve()
    if directory.exists() and any(directory.iterdir()):
        if not (directory / MARKER).exists():
            raise InputError(
                f"{directory} exists and is not a tostrack demo folder; choose another with --dir"
            )
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).write_text("made by `tostrack demo`; safe to delete\n")
    return directory


def _files(folder: Path, pattern: str) -> Iterator[Path]:
    return iter(sorted(folder.glob(pattern))) if folder.exists() else iter(())


def run_demo(directory: Path) -> DemoOutcome:
    root = _prepare(directory)
    pages = _Pages()
    pages.set(_version(1))
    server = _serve(pages)
    try:
        (root / "tostrack.toml").write_text(_config(server.server_address[1]), encoding="utf-8")
        first = run(Workspace.open(root), force=True)
        pages.set(_version(2))
        second = run(Workspace.open(root), force=True)
    finally:
        server.shutdown()
        server.server_close()
    lines = []
    for result in (*first.results, *second.results):
        if result.status == "failed" and result.failure:
            lines.append(
                f"{result.source.id}: FAILED {result.failure.reason} {result.failure.detail[:80]}"
            )
    for result in second.results:
        if result.status == "changed":
            lines.append(f"{result.source.id}: {result.substantive} substantive change(s)")
        elif result.status in ("cosmetic", "unchanged"):
            lines.append(f"{result.source.id}: no substantive change ({result.status})")
    return DemoOutcome(
        workspace=root,
        index=root / "reports" / "index.html",
        reports=second.reports,
        emails=tuple(_files(root / "outbox", "*.eml")),
        lines=tuple(lines),
    )
