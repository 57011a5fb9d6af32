"""The generated reports in a real headless Chromium (Debian's /usr/bin/chromium), from disk.

Skips when chromium or playwright is missing; never downloads a browser. Screenshots of the
dashboard and a change report land in test-artifacts/ at the project root.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from test_report import SCRIPT, build_store

from tostrack.render import render_site
from tostrack.store import Store
from tostrack.workspace import Workspace

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

sync_api = pytest.importorskip("playwright.sync_api")
if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed at /usr/bin/chromium", allow_module_level=True)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    root = tmp_path_factory.mktemp("ws")
    ids = build_store(root)
    with Store(root) as store:
        render_site(Workspace.open(root), store)
    return root / "reports", ids


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        try:
            chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        except Exception as exc:  # noqa: BLE001 - a broken browser install is a skip, not a failure
            pytest.skip(f"cannot start {CHROMIUM}: {exc}")
        yield chromium
        chromium.close()


class Watched:
    """A page that records console errors, uncaught exceptions, failed loads and dialogs."""

    def __init__(self, browser: Any, **options: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, **options)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        self.page.on("requestfailed", lambda req: self.problems.append(f"failed: {req.url}"))
        self.page.on("dialog", self._dialog)

    def _console(self, msg: Any) -> None:
        if msg.type in ("error", "warning"):
            self.problems.append(f"console {msg.type}: {msg.text}")

    def _dialog(self, dialog: Any) -> None:
        self.problems.append(f"dialog opened: {dialog.message}")
        dialog.dismiss()

    def open(self, path: Path) -> Any:
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_load_state("load")
        return self.page

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    w = Watched(browser)
    yield w
    w.close()


def _shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def test_dashboard_shows_clause_matrix_without_errors(
    site: tuple[Path, dict[str, int]], watched: Watched
) -> None:
    reports, _ = site
    page = watched.open(reports / "index.html")
    matrix = page.locator("#clause-matrix")
    assert matrix.is_visible()
    headers = matrix.locator("thead th").all_inner_texts()
    for name in ("Competing models", "Training on output", "Reverse engineering", "Benchmarking"):
        assert name in headers
    assert matrix.locator("tbody tr").count() == 2
    # The stylesheet loaded (no external assets: it is a local file).
    header_bg = page.eval_on_selector("header.site", "e => getComputedStyle(e).backgroundColor")
    assert header_bg == "rgb(29, 63, 114)"
    # A cell opens to show the clause itself.
    cell = matrix.locator('tr:has-text("Acme Terms") td[data-label="competing-models"]')
    clause = cell.locator(".cell-clause")
    assert not clause.first.is_visible()
    cell.locator("summary").click()
    assert clause.first.is_visible()
    assert "compete with Acme" in clause.first.inner_text()
    _shot(page, "dashboard.png")
    assert watched.problems == []


def test_change_report_shows_redline_and_collapses_cosmetic(
    site: tuple[Path, dict[str, int]], watched: Watched
) -> None:
    reports, ids = site
    page = watched.open(reports / "changes" / "acme" / "terms" / f"{ids['first']}.html")
    assert page.locator("h1").inner_text().startswith("Acme Terms")
    inserted = page.locator("#change-2 ins")
    assert inserted.first.is_visible()
    assert "develop models that compete with Acme" in inserted.first.inner_text()
    # <ins> is visibly marked (underline), <del> struck through, not only coloured.
    assert "underline" in inserted.first.evaluate("e => getComputedStyle(e).textDecorationLine")
    deleted = page.locator("#change-3 del")
    assert "line-through" in deleted.first.evaluate("e => getComputedStyle(e).textDecorationLine")
    # Changes in meaning come first; the cosmetic one is collapsed until asked for.
    assert page.locator("#change-2").is_visible() and page.locator("#change-3").is_visible()
    assert not page.locator("#change-1").is_visible()
    page.locator(".cosmetic-list summary").click()
    assert page.locator("#change-1").is_visible()
    page.locator(".cosmetic-list summary").click()
    _shot(page, "change-report.png")
    # The evidence links resolve to the raw snapshot files on disk.
    hrefs = page.eval_on_selector_all(".files a", "els => els.map(e => e.href)")
    assert len(hrefs) == 4 and all(h.startswith("file://") for h in hrefs)
    for href in hrefs:
        assert Path(href.removeprefix("file://")).exists(), href
    assert watched.problems == []


def test_whole_document_views_and_timeline_load_cleanly(
    site: tuple[Path, dict[str, int]], watched: Watched
) -> None:
    reports, ids = site
    folder = reports / "changes" / "acme" / "terms"
    side = watched.open(folder / f"{ids['first']}-side-by-side.html")
    assert side.locator("table.side-by-side tbody tr").count() == 5  # 4 clauses now + 1 removed
    assert side.locator("#change-3 del").inner_text().startswith("You may not scrape")
    _shot(side, "side-by-side.png")
    inline = watched.open(folder / f"{ids['first']}-inline.html")
    assert inline.locator(".inline-doc ins").count() >= 1
    timeline = watched.open(reports / "documents" / "acme" / "terms.html")
    assert timeline.locator(".event-change").count() == 2
    assert timeline.locator(".event-version").count() == 1
    # Provider text with markup shows as text and never runs.
    timeline.locator("details summary").click()
    assert SCRIPT in timeline.locator(".clauses").inner_text()
    assert watched.problems == []


def test_filters_work_without_javascript(site: tuple[Path, dict[str, int]], browser: Any) -> None:
    reports, ids = site
    w = Watched(browser, java_script_enabled=False)
    try:
        page = w.open(reports / "index.html")
        page.locator(".filters a", has_text="High").click()
        page.wait_for_load_state("load")
        assert page.url.endswith("filter/severity-high.html")
        rows = page.locator("table.changes tbody tr")
        assert rows.count() == 1 and "Acme Terms" in rows.first.inner_text()
        page.locator(".filters a", has_text="Benchmarking").click()
        page.wait_for_load_state("load")
        links = page.eval_on_selector_all("table.changes tbody a", "els => els.map(e => e.href)")
        assert any(h.endswith(f"/{ids['second']}.html") for h in links)
        assert not any(h.endswith(f"/{ids['first']}.html") for h in links)
        assert w.problems == []
    finally:
        w.close()


def test_print_stylesheet_hides_navigation_and_opens_details(
    site: tuple[Path, dict[str, int]], watched: Watched
) -> None:
    reports, ids = site
    page = watched.open(reports / "changes" / "acme" / "terms" / f"{ids['first']}.html")
    page.emulate_media(media="print")
    assert page.eval_on_selector("header.site", "e => getComputedStyle(e).display") == "none"
    pdf = page.pdf()  # fires beforeprint: collapsed sections print open
    assert pdf[:4] == b"%PDF"
    assert page.locator(".cosmetic-list").evaluate("e => e.open")
    assert watched.problems == []


def test_every_page_loads_cleanly_with_ordered_headings(
    site: tuple[Path, dict[str, int]], watched: Watched
) -> None:
    reports, _ = site
    pages = sorted(reports.rglob("*.html"))
    assert len(pages) >= 15
    for path in pages:
        page = watched.open(path)
        assert page.eval_on_selector("html", "e => e.lang") == "en", path
        levels = page.eval_on_selector_all(
            "h1, h2, h3, h4, h5, h6", "els => els.map(e => Number(e.tagName[1]))"
        )
        assert levels[:1] == [1] and levels.count(1) == 1, path
        # No level skipped on the way down (h2 -> h4 would confuse a screen reader).
        assert all(b <= a + 1 for a, b in pairwise(levels)), (path, levels)
        assert page.title(), path
    assert watched.problems == []


CONTRAST_JS = """
(selectors) => {
  const rgb = (s) => s.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const out = {};
  for (const sel of selectors) {
    const el = document.querySelector(sel);
    if (!el) { out[sel] = null; continue; }
    const a = lum(rgb(getComputedStyle(el).color).slice(0, 3)), b = lum(background(el));
    out[sel] = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  }
  return out;
}
"""


def test_text_contrast_meets_wcag_aa(site: tuple[Path, dict[str, int]], watched: Watched) -> None:
    reports, ids = site
    checks = {
        reports / "index.html": [
            "main p",
            ".muted",
            ".sev-high",
            ".sev-medium",
            ".sev-low",
            ".sev-none",
            ".label",
            "main a",
            ".matrix .yes",
            "thead th",
            ".stats strong",
            "header.site .tagline",
        ],
        reports / "changes" / "acme" / "terms" / f"{ids['first']}.html": [
            "ins",
            "del",
            ".facts dt",
            ".section",
            ".evidence",
            ".label-added",
            ".key",
        ],
    }
    for path, selectors in checks.items():
        ratios = watched.open(path).evaluate(CONTRAST_JS, selectors)
        low = {sel: round(r, 2) for sel, r in ratios.items() if r is None or r < 4.5}
        assert low == {}, (path.name, low)


def test_no_page_loads_anything_from_outside(site: tuple[Path, dict[str, int]]) -> None:
    reports, _ = site
    for page in reports.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        for marker in ('src="http', "src='http", 'href="//', "@import", "url(http"):
            assert marker not in html, (page, marker)
    css = (reports / "tostrack.css").read_text()
    assert "@media print" in css and "url(" not in css
    assert shutil.which(str(CHROMIUM))
