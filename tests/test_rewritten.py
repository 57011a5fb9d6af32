"""A provision redrafted in place reads as rewritten, and its alert says which way it moved.

The case (issue #10): a provider redrafts how it uses its users' chats, from "we do not train
our models on your chats, except (a) feedback (b) chats flagged for safety" to "we may use your
chats to train our models unless you opt out; even then (a) ... (b) ...". Reported as removals
plus unrelated additions, the alert said a clause about training on customer data "was
removed" and the report that the document "no longer covers" it: the opposite of the truth.

Everything is real: documents served from 127.0.0.1 (pytest-httpserver), `tostrack run` through
click, the SQLite store, an SMTP server (aiosmtpd). The second case replays the real Anthropic
consumer terms of 2025-08-01 and 2025-08-29 from ../shared/corpus (skipped when it is absent)
and, when Debian's chromium is there, saves screenshots of its report and its email to
test-artifacts/.
"""

from __future__ import annotations

import email
import email.policy
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from test_notify import Recorder, free_port

from tostrack.cli import cli
from tostrack.store import Store

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CORPUS = ROOT.parent / "shared" / "corpus" / "anthropic" / "consumer-terms"
CHROMIUM = Path("/usr/bin/chromium")

# A made-up provider's consumer terms, in our own words.
_PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>Wrenlet Consumer Terms</title></head><body><main>
<h1>Wrenlet Consumer Terms</h1>
<p>Last updated: {updated}</p>
<h2>3. Using Wrenlet</h2>
<p>3.1 You must be at least 18 years old to use Wrenlet.</p>
<p>3.2 You may not use Wrenlet to break the law or to harm other people.</p>
<h2>4. Your chats</h2>
<p>4.1 Your chats are yours. You give us the rights we need to store them, to process them and
to show them back to you.</p>
{chats}
<p>4.3 You can delete a chat at any time; it leaves our systems within 30 days.</p>
<h2>5. Disputes</h2>
<p>5.1 These terms are governed by the laws of Ireland.</p>
</main></body></html>
"""
CHATS_BEFORE = """<p>4.2 How we use your chats. We use your chats to run Wrenlet, to answer you, to
keep your history in sync across your devices and to look into problems you report to us, and
we keep them only as long as we need them for those purposes. We do not train our models on
your chats, except in two situations:</p>
<ol><li>if you send us feedback on a reply, we may use that feedback to make Wrenlet better;</li>
<li>if a chat is flagged for a safety review, our team may read it and use it to improve how we
detect abuse, including by training our safety filters.</li></ol>"""
CHATS_AFTER = """<p>4.2 How we use your chats. We may use your chats to run, support and improve
Wrenlet, including to train our models, unless you opt out in your account settings. If you opt
out, we will still train on a chat when: (a) you send us feedback on a reply, or (b) the chat is
flagged for a safety review, to improve how we detect abuse.</p>"""
WRENLET_BEFORE = _PAGE.format(updated="March 2, 2026", chats=CHATS_BEFORE)
WRENLET_AFTER = _PAGE.format(updated="September 14, 2026", chats=CHATS_AFTER)


@dataclass
class Outcome:
    subject: str
    text: str  # the plain-text part, whitespace folded
    html: str  # the HTML part as sent
    severity: str  # of the recorded diff
    report: str  # the change report's HTML
    report_path: Path
    messages: int


@pytest.fixture
def smtp_server() -> tuple[Recorder, int]:
    handler = Recorder()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def _config(url: str, port: int, source_id: str, title: str) -> str:
    return textwrap.dedent(
        f"""
        [fetch]
        retries = 0
        confirm_delay = 0

        [[sources]]
        id = "{source_id}"
        title = "{title}"
        url = "{url}"

        [smtp]
        host = "127.0.0.1"
        port = {port}
        tls = "none"
        from = "tostrack <alerts@tostrack.test>"
        timeout = 5

        [[recipients]]
        email = "legal@example.com"
        """
    )


def _track_twice(
    tmp_path: Path,
    httpserver: HTTPServer,
    smtp: tuple[Recorder, int],
    versions: tuple[bytes, bytes],
    content_type: str,
    source_id: str,
    title: str,
) -> Outcome:
    """Serve one version, `tostrack run`, serve the next, `tostrack run` again (with SMTP)."""
    handler, port = smtp
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "tostrack.toml").write_text(
        _config(httpserver.url_for("/terms"), port, source_id, title), encoding="utf-8"
    )
    runner = CliRunner()
    for body in versions:
        httpserver.clear()
        httpserver.expect_request("/terms").respond_with_data(body, content_type=content_type)
        result = runner.invoke(cli, ["--workspace", str(ws), "run", "--force"])
        assert result.exit_code == 0, result.output
    handler.wait_for(1)
    with Store(ws) as store:
        (stored,) = store.diffs(source_id)
    report_path = ws / "reports" / "changes" / Path(*source_id.split("/")) / f"{stored.id}.html"
    assert handler.messages, "no notification was sent"
    message = email.message_from_bytes(handler.messages[0][2], policy=email.policy.default)
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return Outcome(
        subject=" ".join(str(message["Subject"]).split()),
        text=" ".join(text.split()),
        html=html,
        severity=stored.severity,
        report=report_path.read_text(encoding="utf-8"),
        report_path=report_path,
        messages=handler.count(),
    )


def _new_words(redlined: str) -> str:
    """The plain-text redline as the new version reads: deleted words out, markers off."""
    return " ".join(
        re.sub(r"\[-.*?-\]", " ", redlined, flags=re.DOTALL)
        .replace("{+", "")
        .replace("+}", "")
        .split()
    )


def _assert_reads_right(outcome: Outcome, opt_out: str) -> None:
    assert outcome.messages == 1
    assert outcome.severity == "high"
    subject = outcome.subject.lower()
    assert "training on your content" in subject and "opt out" in subject, outcome.subject
    assert "removed" not in subject and "no longer" not in subject, outcome.subject
    assert opt_out in _new_words(outcome.text), outcome.text
    page = " ".join(re.sub(r"<[^>]+>", " ", outcome.report).split()).lower()
    assert "no longer covers" not in page
    assert "now allows training on your content unless you opt out" in page


def test_a_redrafted_no_training_clause_is_reported_as_training_unless_you_opt_out(
    tmp_path: Path, httpserver: HTTPServer, smtp_server: tuple[Recorder, int]
) -> None:
    outcome = _track_twice(
        tmp_path,
        httpserver,
        smtp_server,
        (WRENLET_BEFORE.encode(), WRENLET_AFTER.encode()),
        "text/html; charset=utf-8",
        "wrenlet/consumer-terms",
        "Wrenlet Consumer Terms",
    )
    _assert_reads_right(outcome, "unless you opt out in your account settings")


# -- the real case ---------------------------------------------------------------------------

ANTHROPIC = ("2025-08-01T00-32-05Z.md", "2025-08-29T00-32-01Z.md")


@pytest.mark.skipif(
    not all((CORPUS / name).exists() for name in ANTHROPIC),
    reason="../shared/corpus (Anthropic consumer terms) is not here",
)
def test_the_real_anthropic_consumer_terms_change_of_august_2025_reads_right(
    tmp_path: Path, httpserver: HTTPServer, smtp_server: tuple[Recorder, int]
) -> None:
    versions = tuple((CORPUS / name).read_bytes() for name in ANTHROPIC)
    outcome = _track_twice(
        tmp_path,
        httpserver,
        smtp_server,
        versions,  # type: ignore[arg-type]
        "text/markdown; charset=utf-8",
        "anthropic/consumer-terms",
        "Anthropic Consumer Terms",
    )
    _screenshots(outcome, tmp_path)
    _assert_reads_right(outcome, "unless you opt out of training through your account settings")


def _screenshots(outcome: Outcome, tmp_path: Path) -> None:
    """The change report and the email's HTML part as a reader sees them, in test-artifacts/."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return
    if not CHROMIUM.exists():
        return
    mail = tmp_path / "email.html"
    mail.write_text(outcome.html, encoding="utf-8")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        except Exception:  # noqa: BLE001 - a broken browser install means no screenshot, no failure
            return
        try:
            for path, name, width in (
                (outcome.report_path, "anthropic-change-report.png", 1280),
                (mail, "anthropic-email.png", 820),
            ):
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.goto(path.resolve().as_uri())
                page.wait_for_load_state("load")
                page.screenshot(path=str(ARTIFACTS / name), full_page=True)
                page.close()
        finally:
            browser.close()
