"""`tostrack import` records versions through the step `run` uses (pipeline.record): a file
that is not the document is skipped, never stored as a version, and nobody is alerted."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from conftest import TERMS_V1, TERMS_V2, write_config

from tostrack.cli import cli

# A bot challenge saved by a crawler in place of the terms (written for this test).
CHALLENGE = """<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
<script src="/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1?ray=8f1a2b3c"></script>
</head><body><h2 id="cf-chl-widget">Verifying you are human. This may take a few seconds.</h2>
<p>acme.example needs to review the security of your connection before proceeding.</p>
<noscript>Enable JavaScript and cookies to continue</noscript></body></html>"""


def _history(folder: Path, pages: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    for stamp, page in pages.items():
        (folder / f"{stamp}.html").write_text(page, encoding="utf-8")
    return folder


def test_a_captured_bot_challenge_is_skipped_not_imported(tmp_path: Path) -> None:
    folder = _history(
        tmp_path / "hist",
        {
            "2025-01-01T00-00-00Z": TERMS_V1,
            "2025-02-01T00-00-00Z": CHALLENGE,
            "2025-06-01T00-00-00Z": TERMS_V2,
        },
    )
    ws = tmp_path / "ws"
    write_config(ws, '[[sources]]\nid = "acme/terms"\nurl = "https://acme.example/terms"\n')
    runner = CliRunner()
    result = runner.invoke(cli, ["--workspace", str(ws), "import", "acme/terms", str(folder)])
    assert result.exit_code == 0, result.output
    assert "Imported 2 version(s)" in result.output
    assert "skipped 2025-02-01T00:00:00Z 2025-02-01T00-00-00Z.html: challenge" in result.output
    history = json.loads(
        runner.invoke(
            cli, ["--workspace", str(ws), "history", "acme/terms", "--format", "json"]
        ).output
    )
    assert [v["captured_at"] for v in history["versions"]] == [
        "2025-01-01T00:00:00Z",
        "2025-06-01T00:00:00Z",
    ]
    assert history["versions"][1]["substantive_changes"] >= 1
    assert history["failures"] == []  # an import is not a fetch: the source's state is untouched
    notify = runner.invoke(cli, ["--workspace", str(ws), "notify", "--dry-run"])
    assert notify.exit_code == 0 and not list((ws / "preview").glob("*.eml"))
