"""Build tests/data/workspace-v2/: a small workspace as an earlier release of tostrack left it.

tests/test_upgrade.py opens a copy of it with the code of today and checks that it upgrades. The
folder is kept in git as this script made it, so run this script only with the release whose
workspace you want to keep (it wrote workspace-v2 at schema version 2, before the store owned the
notify tables; made at commit 00da8a3). Usage:

    python tests/data/make_workspace_fixture.py [OUTPUT_DIR]

It serves the demo's sample documents on 127.0.0.1 and runs the pipeline three times: version 1,
version 2 (one substantive change, one cosmetic), and a run where one document is gone (a failure).
Recipients are one immediate and one daily digest, so the outbox and digest tables hold rows.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
import threading
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

from tostrack.pipeline import run
from tostrack.workspace import Workspace

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "workspace-v2"


def _demo_files() -> tuple[dict[str, bytes], dict[str, bytes], list[dict]]:
    data = resources.files("tostrack") / "demo_data"
    versions = [
        {f"/{f.name}": f.read_bytes() for f in (data / v).iterdir() if f.name.endswith(".html")}
        for v in ("v1", "v2")
    ]
    declarations = tomllib.loads((data / "sources.toml").read_text(encoding="utf-8"))["sources"]
    return versions[0], versions[1], declarations


def _serve(pages: dict[str, bytes]) -> ThreadingHTTPServer:
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

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _config(port: int, declarations: list[dict]) -> str:
    lines = ["[fetch]", "retries = 0", "delay = 0", "confirm_delay = 0", ""]
    for decl in declarations:
        select = ", ".join(f'"{s}"' for s in decl["select"])
        lines += [
            "[[sources]]",
            f'id = "{decl["id"]}"',
            f'title = "{decl["title"]}"',
            f'url = "http://127.0.0.1:{port}/{decl["file"]}"',
            f"select = [{select}]",
            "",
        ]
    lines += [
        "[[recipients]]",
        'email = "legal@example.com"',
        'mode = "immediate"',
        "",
        "[[recipients]]",
        'email = "digest@example.com"',
        'mode = "daily"',
        "",
    ]
    return "\n".join(lines)


def build(output: Path) -> Path:
    v1, v2, declarations = _demo_files()
    if output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True)
    pages = dict(v1)
    server = _serve(pages)
    try:
        port = server.server_address[1]
        (output / "tostrack.toml").write_text(_config(port, declarations), encoding="utf-8")
        run(Workspace.open(output), force=True, send=False)
        pages.clear()
        pages.update(v2)
        run(Workspace.open(output), force=True, send=False)
        pages.pop(f"/{declarations[1]['file']}")
        run(Workspace.open(output), force=True, send=False)
    finally:
        server.shutdown()
        server.server_close()
    # Keep only what an upgrade reads: the config, the database and the captures.
    for generated in ("reports", "outbox", "preview"):
        shutil.rmtree(output / generated, ignore_errors=True)
    for lock in output.glob(".tostrack*"):
        lock.unlink()
    db = sqlite3.connect(output / "tostrack.db")
    db.execute("PRAGMA journal_mode=DELETE")  # one file, no -wal/-shm beside it
    db.execute("VACUUM")
    db.close()
    return output


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTPUT))
