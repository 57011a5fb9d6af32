"""The static site, feeds and exports, rendered from a real Store in tmp_path."""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tostrack.errors import ConfigError, InputError
from tostrack.models import Change, Clause, Diff, Document, Failure, Snapshot
from tostrack.render import export_records, render_diff, render_site
from tostrack.store import Store
from tostrack.workspace import Workspace

ATOM = "{http://www.w3.org/2005/Atom}"
SCRIPT = "<script>alert(1)</script>"


def _clause(
    cid: str,
    section: str,
    text: str,
    labels: tuple[str, ...] = (),
    evidence: tuple[tuple[str, str], ...] = (),
    lead_in: str = "",
) -> Clause:
    return Clause(
        id=cid,
        section=section,
        heading=tuple(section.split(" › ")),
        text=text,
        labels=labels,
        evidence=evidence,
        lead_in=lead_in,
    )


def _snap(source_id: str, at: str, body: str) -> Snapshot:
    return Snapshot(
        source_id=source_id,
        url=f"https://{source_id.split('/')[0]}.example/terms",
        fetched_at=at,
        status=200,
        content_type="text/html",
        body=body.encode(),
    )


# Acme: three versions, two recorded diffs.
USE = _clause("c-use", "1 Use", "You may use the service for lawful purposes.")
RE_V1 = _clause(
    "c-re",
    "2 Restrictions › (a)",
    "reverse engineer the service.",
    ("reverse-engineering",),
    (("reverse-engineering", "reverse engineer"),),
    lead_in="You may not",
)
RE_V2 = _clause(
    "c-re",
    "2 Restrictions › (a)",
    "reverse engineer the service, or use output to develop models that compete with Acme.",
    ("reverse-engineering", "competing-models"),
    (
        ("reverse-engineering", "reverse engineer"),
        ("competing-models", "develop models that compete"),
    ),
    lead_in="You may not",
)
SCRAPE = _clause(
    "c-scrape",
    "2 Restrictions › (b)",
    "scrape the service by automated means.",
    ("data-extraction",),
    (("data-extraction", "scrape"),),
    lead_in="You may not",
)
LAW_V1 = _clause(
    "c-law", "3 Disputes", "These terms are governed by the laws of Ruritania.", ("governing-law",)
)
LAW_V2 = _clause(
    "c-law", "3 Disputes", "These terms are governed by the laws of Ruritania .", ("governing-law",)
)
FEEDBACK = _clause("c-fb", "4 Feedback", f"Feedback is welcome {SCRIPT} & thanks.", ("feedback",))

V1 = (USE, RE_V1, SCRAPE, LAW_V1, FEEDBACK)
V2 = (USE, RE_V2, LAW_V2, FEEDBACK)
BENCH = _clause(
    "c-bench",
    "2 Restrictions › (c)",
    "publish benchmark results without consent.",
    ("benchmarking",),
    (("benchmarking", "benchmark"),),
    lead_in="You may not",
)
V3 = (USE, RE_V2, BENCH, LAW_V2, FEEDBACK)

DIFF_1 = Diff(
    changes=(
        Change(
            kind="modified",
            substantive=False,
            old=(LAW_V1,),
            new=(LAW_V2,),
            redline=(
                ("equal", "These terms are governed by the laws of Ruritania"),
                ("delete", "."),
                ("insert", " ."),
            ),
            labels=("governing-law",),
            severity="none",
        ),
        Change(
            kind="modified",
            substantive=True,
            old=(RE_V1,),
            new=(RE_V2,),
            redline=(
                ("equal", "You may not reverse engineer the service"),
                ("delete", "."),
                ("insert", ", or use output to develop models that compete with Acme."),
            ),
            labels=("reverse-engineering", "competing-models"),
            labels_added=("competing-models",),
            severity="high",
        ),
        Change(
            kind="removed",
            substantive=True,
            old=(SCRAPE,),
            labels=("data-extraction",),
            labels_removed=("data-extraction",),
            severity="medium",
        ),
    ),
    old_clauses=V1,
    new_clauses=V2,
)
DIFF_2 = Diff(
    changes=(
        Change(
            kind="added",
            substantive=True,
            new=(BENCH,),
            labels=("benchmarking",),
            labels_added=("benchmarking",),
            severity="medium",
        ),
    ),
    old_clauses=V2,
    new_clauses=V3,
)

NIMBUS = (
    _clause("n-1", "Usage", "Do not circumvent rate limits.", ("safeguard-circumvention",)),
    _clause("n-2", "Usage", "Tell people when they talk to an AI.", ("ai-disclosure",)),
)


def build_store(root: Path) -> dict[str, int]:
    """A workspace with two documents, two recorded diffs and a failure; returns the diff ids."""
    ids: dict[str, int] = {}
    with Store(root) as store:
        doc = Document(blocks=(), title="Acme Terms", effective_date="2026-05-01")
        v1, _ = store.save_version(
            [_snap("acme/terms", "2026-05-02T08:00:00Z", "<p>v1</p>")],
            doc,
            V1,
            title="Acme Terms",
            url="https://acme.example/terms",
        )
        doc2 = Document(
            blocks=(),
            title="Acme Terms",
            effective_date="2026-06-09",
            effective_date_text="Last updated: June 9, 2026",
        )
        v2, d1 = store.save_version(
            [_snap("acme/terms", "2026-06-10T09:30:00Z", "<p>v2</p>")],
            doc2,
            V2,
            title="Acme Terms",
            diff=DIFF_1,
            previous=v1,
        )
        doc3 = Document(blocks=(), title="Acme Terms", effective_date="2026-07-01")
        _, d2 = store.save_version(
            [_snap("acme/terms", "2026-07-02T10:00:00Z", "<p>v3</p>")],
            doc3,
            V3,
            title="Acme Terms",
            diff=DIFF_2,
            previous=v2,
        )
        store.save_version(
            [_snap("nimbus/usage-policy", "2026-05-03T08:00:00Z", "<p>n</p>")],
            Document(blocks=(), title="Nimbus Usage Policy"),
            NIMBUS,
            title="Nimbus Usage Policy",
        )
        store.record_failure(
            Failure(
                "nimbus/usage-policy", "2026-07-05T08:00:00Z", "http-503", "Service Unavailable"
            )
        )
        assert d1 is not None and d2 is not None
        ids["first"], ids["second"] = d1, d2
    return ids


@pytest.fixture
def site(tmp_path: Path) -> tuple[Workspace, dict[str, int], Path]:
    ids = build_store(tmp_path)
    ws = Workspace.open(tmp_path)
    with Store(tmp_path) as store:
        index = render_site(ws, store)
    return ws, ids, index


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_change_report_is_written_with_redline_and_evidence(tmp_path: Path) -> None:
    ids = build_store(tmp_path)
    ws = Workspace.open(tmp_path)
    with Store(tmp_path) as store:
        path = render_diff(ws, store, store.diff(ids["first"]))
    assert path == tmp_path / "reports" / "changes" / "acme" / "terms" / f"{ids['first']}.html"
    html = path.read_text(encoding="utf-8")
    assert '<html lang="en">' in html
    assert "<ins>, or use output to develop models that compete with Acme.</ins>" in html
    assert "<del>.</del>" in html
    text = _text(html)
    assert "Reworded" in text and "Removed" in text
    assert "Now covers Competing models" in text and "No longer covers Scraping" in text
    assert "develop models that compete" in text  # evidence span
    assert "2 Restrictions › (a)" in text
    # Document level: the topic the document gained and the one it lost, in plain words.
    assert re.search(r"The document now covers\s*</dt><dd><span[^>]*>Competing models", html)
    assert re.search(r"It no longer covers\s*</dt><dd><span[^>]*>Scraping and data", html)
    key = re.search(r'<table class="key-changes".*?</table>', html, re.DOTALL)
    assert key and key.group(0).index("#change-2") < key.group(0).index("#change-3")
    # Substantive first: the high-severity rewording precedes the medium removal, and the
    # cosmetic change sits collapsed in <details> after both.
    assert html.index('id="change-2"') < html.index('id="change-3"') < html.index("<details")
    assert html.index("<details") < html.index('id="change-1"')
    # The raw snapshot is linked relatively, with its sha256.
    with Store(tmp_path) as store:
        stored = store.diff(ids["first"])
    raws = {v.raw_files()[0].resolve() for v in (stored.from_version, stored.to_version)}
    hrefs = re.findall(r'href="([^"]*sha256/[0-9a-f]{2}/[0-9a-f]{64}\.html)"', html)
    assert {(path.parent / h).resolve() for h in hrefs} == raws
    assert stored.to_version.snapshot_meta()[0]["sha256"] in html
    assert (tmp_path / "reports" / "tostrack.css").exists()
    assert 'href="../../../tostrack.css"' in html


def test_whole_document_views_place_every_clause(
    site: tuple[Workspace, dict[str, int], Path],
) -> None:
    ws, ids, _ = site
    folder = ws.reports_dir / "changes" / "acme" / "terms"
    side = (folder / f"{ids['first']}-side-by-side.html").read_text(encoding="utf-8")
    inline = (folder / f"{ids['first']}-inline.html").read_text(encoding="utf-8")
    for html in (side, inline):
        text = _text(html)
        assert "You may use the service for lawful purposes." in text  # unchanged clause
        assert "<del>You may not scrape the service by automated means.</del>" in html
    # The removed clause stays where it was: after (a), before the disputes clause.
    assert inline.index("scrape the service") < inline.index("governed by the laws")
    assert inline.index("compete with Acme") < inline.index("scrape the service")
    # Side by side: the old text on the left has only deletions, the new on the right insertions.
    row = re.search(
        r'<tr class="row-modified substantive" id="change-2">(.*?)</tr>', side, re.DOTALL
    )
    assert row is not None
    left, right = row.group(1).split("</td>", 1)
    assert "<del>.</del>" in left and "<ins>" not in left
    assert "<ins>" in right and "<del>" not in right


def test_page_text_is_escaped_everywhere(site: tuple[Workspace, dict[str, int], Path]) -> None:
    ws, _, _ = site
    pages = list(ws.reports_dir.rglob("*.html"))
    assert len(pages) >= 8
    shown = 0
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert "<script>alert" not in html, page
        shown += "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert shown >= 2  # the feedback clause appears, as text, on the timeline and the doc views


def test_dashboard_has_matrix_filters_and_recent_changes(
    site: tuple[Workspace, dict[str, int], Path],
) -> None:
    ws, ids, index = site
    assert index == ws.reports_dir / "index.html"
    html = index.read_text(encoding="utf-8")
    matrix = re.search(r'<table id="clause-matrix".*?</table>', html, re.DOTALL)
    assert matrix is not None
    m = matrix.group(0)
    for name in (
        "Competing models",
        "Reverse engineering",
        "Benchmarking",
        "Circumventing safeguards",
        "AI disclosure and attribution",
    ):
        assert name in m
    assert "Governing law" not in m  # not a customer restriction
    rows = re.findall(r"<tr>\s*<th scope=\"row\">(.*?)</tr>", m, re.DOTALL)
    assert len(rows) == 2
    acme = next(r for r in rows if "Acme Terms" in r)
    cells = dict(re.findall(r'data-label="([^"]+)">(.*?)</td>', acme, re.DOTALL))
    assert "Yes" in cells["competing-models"] and "</mark> with Acme." in cells["competing-models"]
    # The words that earned the label are marked in the clause.
    assert "<mark>develop models that compete</mark>" in cells["competing-models"]
    assert "changed" in cells["competing-models"] and "10 Jun 2026" in cells["competing-models"]
    assert "No" in cells["data-extraction"] and "10 Jun 2026" in cells["data-extraction"]
    assert "Yes" in cells["benchmarking"] and "2 Jul 2026" in cells["benchmarking"]
    assert cells["ai-disclosure"].split() == ["<span", 'class="no">No</span>']
    nimbus = next(r for r in rows if "Nimbus" in r)
    assert "Do not circumvent rate limits." in nimbus
    assert "unchanged since" in nimbus and "3 May 2026" in nimbus
    # Filters are plain links to pre-rendered pages: they work without JavaScript.
    high = ws.reports_dir / "filter" / "severity-high.html"
    medium = ws.reports_dir / "filter" / "severity-medium.html"
    bench = ws.reports_dir / "filter" / "label-benchmarking.html"
    for page in (high, medium, bench):
        assert page.exists() and f'href="filter/{page.name}"' in html
    assert (
        f"{ids['first']}.html" in high.read_text()
        and f"{ids['second']}.html" not in high.read_text()
    )
    assert (
        f"{ids['second']}.html" in bench.read_text()
        and f"{ids['first']}.html" not in bench.read_text()
    )
    assert f"{ids['second']}.html" in medium.read_text()
    assert "documents failing to fetch" in html


def test_timeline_lists_versions_changes_and_failures(
    site: tuple[Workspace, dict[str, int], Path],
) -> None:
    ws, ids, _ = site
    acme = (ws.reports_dir / "documents" / "acme" / "terms.html").read_text(encoding="utf-8")
    assert acme.count("First version recorded") == 1 and acme.count("Changed") == 2
    assert f"{ids['first']}.html" in acme and f"{ids['second']}.html" in acme
    # Newest first.
    assert acme.index("2 Jul 2026") < acme.index("10 Jun 2026") < acme.index("2 May 2026")
    nimbus = (ws.reports_dir / "documents" / "nimbus" / "usage-policy.html").read_text()
    assert "Check failed" in nimbus and "http-503" in nimbus


def test_feeds_are_valid_atom_with_substantive_changes(
    site: tuple[Workspace, dict[str, int], Path],
) -> None:
    ws, ids, _ = site
    root = ET.parse(ws.reports_dir / "feed.xml").getroot()
    assert root.tag == f"{ATOM}feed"
    for tag in ("title", "id", "updated", "author"):
        assert root.find(f"{ATOM}{tag}") is not None
    entries = root.findall(f"{ATOM}entry")
    assert len(entries) == 2
    assert entries[0].findtext(f"{ATOM}updated") == "2026-07-02T10:00:00Z"
    assert root.findtext(f"{ATOM}updated") == "2026-07-02T10:00:00Z"
    ids_seen = {e.findtext(f"{ATOM}id") for e in entries}
    assert len(ids_seen) == 2 and all(i.startswith("urn:uuid:") for i in ids_seen)
    first = entries[1]
    link = first.find(f"{ATOM}link").get("href")
    assert link == f"changes/acme/terms/{ids['first']}.html"
    content = first.find(f"{ATOM}content")
    assert content.get("type") == "html"
    assert "<ins>" in content.text and "compete with Acme" in content.text
    terms = {c.get("term") for c in first.findall(f"{ATOM}category")}
    assert "competing-models" in terms and "severity-high" in terms
    per_doc = ET.parse(ws.reports_dir / "feeds" / "acme" / "terms.xml").getroot()
    assert len(per_doc.findall(f"{ATOM}entry")) == 2
    nimbus = ET.parse(ws.reports_dir / "feeds" / "nimbus" / "usage-policy.xml").getroot()
    assert nimbus.findall(f"{ATOM}entry") == [] and nimbus.findtext(f"{ATOM}updated")
    # Entry ids survive a re-render, so feed readers do not show a change twice.
    with Store(ws.root) as store:
        render_site(ws, store)
    again = ET.parse(ws.reports_dir / "feed.xml").getroot()
    assert {e.findtext(f"{ATOM}id") for e in again.findall(f"{ATOM}entry")} == ids_seen


def test_feed_links_are_absolute_with_base_url(tmp_path: Path) -> None:
    ids = build_store(tmp_path)
    (tmp_path / "tostrack.toml").write_text(
        '[report]\nbase_url = "https://legal.example/tos"\ntitle = "Firm <AI> watch"\n'
        "recent_changes = 1\n"
    )
    ws = Workspace.open(tmp_path)
    with Store(tmp_path) as store:
        render_site(ws, store)
    root = ET.parse(ws.reports_dir / "feed.xml").getroot()
    hrefs = [e.find(f"{ATOM}link").get("href") for e in root.findall(f"{ATOM}entry")]
    assert f"https://legal.example/tos/changes/acme/terms/{ids['first']}.html" in hrefs
    selfs = [lnk.get("href") for lnk in root.findall(f"{ATOM}link") if lnk.get("rel") == "self"]
    assert selfs == ["https://legal.example/tos/feed.xml"]
    index = (ws.reports_dir / "index.html").read_text(encoding="utf-8")
    assert "<h1>Firm &lt;AI&gt; watch</h1>" in index
    assert "Showing the 1 most recent of 2 changes" in index


@pytest.mark.parametrize(
    "table, fragment",
    [
        ('base_url = "ftp://x"', "base_url"),
        ("recent_changes = 0", "recent_changes"),
        ("title = 3", "title"),
    ],
)
def test_report_settings_are_checked(tmp_path: Path, table: str, fragment: str) -> None:
    (tmp_path / "tostrack.toml").write_text(f"[report]\n{table}\n")
    with pytest.raises(ConfigError, match=fragment):  # checked when the workspace is opened
        Workspace.open(tmp_path)


def test_export_clauses_json_and_csv(tmp_path: Path) -> None:
    build_store(tmp_path)
    with Store(tmp_path) as store:
        records = json.loads(export_records(store, "clauses", "json"))
        text = export_records(store, "clauses", "csv")
    assert len(records) == len(V3) + len(NIMBUS)
    bench = next(r for r in records if r["clause_id"] == "c-bench")
    assert bench == {
        "source": "acme/terms",
        "clause_id": "c-bench",
        "section": "2 Restrictions › (c)",
        "text": "You may not publish benchmark results without consent.",
        "labels": ["benchmarking"],
        "captured_at": "2026-07-02T10:00:00Z",
    }
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(records)
    re_row = next(r for r in rows if r["clause_id"] == "c-re")
    assert re_row["labels"] == "reverse-engineering; competing-models"
    fb = next(r for r in rows if r["clause_id"] == "c-fb")
    assert fb["text"] == FEEDBACK.text  # CSV quoting keeps markup-like text intact


def test_export_changes_json_and_csv(tmp_path: Path) -> None:
    ids = build_store(tmp_path)
    with Store(tmp_path) as store:
        records = json.loads(export_records(store, "changes", "json"))
        rows = list(csv.DictReader(io.StringIO(export_records(store, "changes", "csv"))))
    assert [r["kind"] for r in records] == ["modified", "modified", "removed", "added"]
    removed = records[2]
    assert removed["diff_id"] == ids["first"] and removed["detected_at"] == "2026-06-10T09:30:00Z"
    assert removed["labels_removed"] == ["data-extraction"] and removed["new_text"] == ""
    assert removed["old_text"] == "You may not scrape the service by automated means."
    assert removed["section"] == "2 Restrictions › (b)" and removed["severity"] == "medium"
    assert rows[0]["substantive"] == "false" and rows[1]["substantive"] == "true"
    assert rows[1]["labels_added"] == "competing-models"
    assert set(rows[0]) >= {"source", "diff_id", "old_text", "new_text", "labels"}


def test_export_rejects_unknown_choices(tmp_path: Path) -> None:
    build_store(tmp_path)
    with Store(tmp_path) as store:
        with pytest.raises(InputError, match="clauses or changes"):
            export_records(store, "versions", "json")
        with pytest.raises(InputError, match="json or csv"):
            export_records(store, "clauses", "xlsx")


def test_workspace_template_overrides_packaged_one(tmp_path: Path) -> None:
    ids = build_store(tmp_path)
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "change.html").write_text(
        '{% extends "base.html" %}{% block content %}<p class="firm">Firm review of change '
        "{{ diff.id }}: {{ summary }}</p>{% endblock %}",
        encoding="utf-8",
    )
    ws = Workspace.open(tmp_path)
    with Store(tmp_path) as store:
        path = render_diff(ws, store, store.diff(ids["first"]))
        render_site(ws, store)
    html = path.read_text(encoding="utf-8")
    assert f'<p class="firm">Firm review of change {ids["first"]}: 2 changes in meaning' in html
    assert "tostrack.css" in html  # the packaged base.html still applies
    assert "clause-matrix" in (ws.reports_dir / "index.html").read_text()  # others untouched


def test_empty_workspace_renders_a_dashboard(tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path)
    with Store(tmp_path) as store:
        index = render_site(ws, store)
    html = index.read_text(encoding="utf-8")
    assert 'id="clause-matrix"' in html and "No changes recorded yet." in html
    assert ET.parse(ws.reports_dir / "feed.xml").getroot().findall(f"{ATOM}entry") == []


def test_source_that_never_fetched_gets_a_timeline_of_failures(tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path)
    with Store(tmp_path) as store:
        store.record_failure(
            Failure("zeta/terms", "2026-03-01T00:00:00Z", "challenge", "bot check page"),
            title="Zeta Terms",
        )
        index = render_site(ws, store)
    html = index.read_text(encoding="utf-8")
    assert "Zeta Terms" in html and "Failing (1 in a row: challenge)" in html
    timeline = (ws.reports_dir / "documents" / "zeta" / "terms.html").read_text(encoding="utf-8")
    assert "Check failed" in timeline and "bot check page" in timeline


def test_broken_template_override_says_which_file_to_fix(tmp_path: Path) -> None:
    build_store(tmp_path)
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "index.html").write_text("{% if %}broken", encoding="utf-8")
    ws = Workspace.open(tmp_path)
    with Store(tmp_path) as store, pytest.raises(ConfigError) as caught:
        render_site(ws, store)
    message = str(caught.value)
    assert "index.html" in message and str(tmp_path / "templates" / "index.html") in message


def test_feed_stays_valid_xml_with_control_characters(tmp_path: Path) -> None:
    old = _clause("p-1", "Terms", "You may not resell the service.", ("acceptable-use",))
    new = _clause(
        "p-1",
        "Terms",
        "You may not resell\x0cthe service\x00 or train on it.",
        ("acceptable-use", "output-training"),
    )
    with Store(tmp_path) as store:
        v1, _ = store.save_version(
            [_snap("pdfco/terms", "2026-01-01T00:00:00Z", "a")],
            Document(blocks=()),
            (old,),
            url="javascript:alert(1)",
        )
        store.save_version(
            [_snap("pdfco/terms", "2026-02-01T00:00:00Z", "b")],
            Document(blocks=()),
            (new,),
            url="javascript:alert(1)",
            previous=v1,
            diff=Diff(
                (
                    Change(
                        "modified",
                        True,
                        (old,),
                        (new,),
                        labels_added=("output-training",),
                        severity="high",
                    ),
                )
            ),
        )
        render_site(Workspace.open(tmp_path), store)
    root = ET.parse(tmp_path / "reports" / "feed.xml").getroot()
    (entry,) = root.findall(f"{ATOM}entry")
    assert "or train on it." in entry.find(f"{ATOM}content").text
    report = next((tmp_path / "reports" / "changes" / "pdfco" / "terms").glob("[0-9].html"))
    assert 'href="javascript:' not in report.read_text(encoding="utf-8")


def test_highlight_marks_evidence_and_escapes_the_rest() -> None:
    from tostrack.render.views import highlight_html

    html = str(highlight_html("Do not <b>scrape</b>; or Scrape it.", ["SCRAPE", "or scrape", ""]))
    assert html == "Do not &lt;b&gt;<mark>scrape</mark>&lt;/b&gt;; <mark>or Scrape</mark> it."


def test_feeds_keep_the_newest_entries_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tostrack.render import feeds as report

    ids = build_store(tmp_path)
    monkeypatch.setattr(report, "FEED_LIMIT", 1)
    with Store(tmp_path) as store:
        render_site(Workspace.open(tmp_path), store)
    root = ET.parse(tmp_path / "reports" / "feed.xml").getroot()
    (entry,) = root.findall(f"{ATOM}entry")
    assert entry.find(f"{ATOM}link").get("href").endswith(f"/{ids['second']}.html")
