"""Extraction (HTML, Markdown, text, PDF -> blocks) and segmentation (blocks -> clauses)."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from tostrack.errors import InputError
from tostrack.extract import extract_bytes, extract_file, extract_text
from tostrack.models import Snapshot, Source
from tostrack.pipeline import extract_snapshots
from tostrack.segment import segment_document

PAGE = """<!doctype html><html><head><title>Orbit Terms</title>
<script>var tracking = "ignore me";</script><style>p {color: red}</style></head>
<body><nav>Home | Pricing</nav>
<main>
  <h1>Orbit Terms of Service</h1>
  <p><em>Effective date:</em> 4th March 2026</p>
  <h2>1. Accounts</h2>
  <p>1.1 You must be 18 or older to hold an <a href="/signup?ref=abc123">account</a>.</p>
  <h2>2. Restrictions</h2>
  <p>You may not:</p>
  <ol type="a">
    <li>copy the models;</li>
    <li>resell access, including:
      <ul><li>sharing keys;</li><li>proxying requests.</li></ul>
    </li>
  </ol>
  <div class="cookie-banner">We use cookies</div>
  <table><tr><th>Plan</th><th>Limit</th></tr><tr><td>Free</td><td>10 requests</td></tr></table>
</main>
<footer>Copyright Orbit</footer></body></html>"""


def texts(document_or_clauses) -> list[str]:
    items = getattr(document_or_clauses, "blocks", document_or_clauses)
    return [b.text for b in items]


def test_html_blocks_keep_structure_and_drop_chrome() -> None:
    doc = extract_bytes(PAGE.encode(), "text/html", select=["main"], remove=[".cookie-banner"])
    assert doc.title == "Orbit Terms"
    assert doc.effective_date == "2026-03-04"
    kinds = [(b.kind, b.marker, b.text) for b in doc.blocks]
    assert ("heading", "1", "Accounts") in kinds
    assert ("paragraph", "1.1", "You must be 18 or older to hold an account.") in kinds
    assert ("list_item", "a", "copy the models;") in kinds
    joined = " ".join(texts(doc))
    assert "cookies" not in joined and "ignore me" not in joined and "Home" not in joined
    assert "Plan | Limit" in joined and "Free | 10 requests" in joined


def test_page_chrome_is_dropped_without_a_select_rule() -> None:
    joined = " ".join(texts(extract_bytes(PAGE.encode(), "text/html")))
    assert "Home | Pricing" not in joined and "Copyright" not in joined
    assert "copy the models" in joined


def test_selector_that_matches_nothing_is_reported() -> None:
    doc = extract_bytes(PAGE.encode(), "text/html", select=["#not-there"])
    assert doc.blocks == () and ("selector", "missed") in doc.metadata


def test_invalid_selector_is_a_clear_error() -> None:
    with pytest.raises(InputError, match="invalid CSS selector"):
        extract_bytes(PAGE.encode(), "text/html", select=["main >>> p["])


def test_segments_have_section_paths_lead_ins_and_nested_items() -> None:
    doc = extract_bytes(PAGE.encode(), "text/html", select=["main"])
    clauses = segment_document(doc)
    by_text = {c.text: c for c in clauses}
    copy = by_text["copy the models;"]
    assert copy.section == "2 Restrictions › a" and copy.lead_in == "You may not:"
    assert copy.full_text == "You may not: copy the models;"
    assert copy.heading == ("2 Restrictions",)
    keys = by_text["sharing keys;"]
    assert keys.section == "2 Restrictions › b" and "resell access, including:" in keys.lead_in
    assert "You may not:" not in by_text  # an introduction is not a clause of its own
    assert "Orbit Terms of Service" not in " ".join(c.section for c in clauses)  # title
    assert len({c.id for c in clauses}) == len(clauses)


def test_inline_enumeration_becomes_one_clause_per_item() -> None:
    text = (
        "## 4. Use\n\nYou may not (i) use output to build a rival model; (ii) scrape the site; "
        "or (iii) sell access, in each case without our consent.\n\n"
        "Section 3(a) and (b) describe fees.\n"
    )
    clauses = segment_document(extract_text(text, "markdown"))
    items = [c for c in clauses if c.number.startswith("(")]
    assert [c.number for c in items] == ["(i)", "(ii)", "(iii)"]
    assert all(c.lead_in == "You may not" for c in items)
    assert items[1].text == "scrape the site; or"
    assert items[0].section == "4 Use › (i)"
    # A cross-reference is not an enumeration.
    assert any(c.text == "Section 3(a) and (b) describe fees." for c in clauses)


def test_markdown_and_html_of_the_same_text_give_the_same_clauses() -> None:
    md = "# T\n\n## 1. Data\n\n* We do **not** train on [API data](https://x.test/?utm_source=a).\n"
    html = "<h1>T</h1><h2>1. Data</h2><ul><li>We do not train on API data.</li></ul>"
    a = segment_document(extract_text(md, "markdown"))
    b = segment_document(extract_text(html, "html"))
    assert [(c.section, c.full_text) for c in a] == [(c.section, c.full_text) for c in b]


def test_plain_text_numbering_and_headings() -> None:
    text = (
        "ACME TERMS\n\n1. Licence\n\n1.1 We grant you a licence\nthat wraps onto a second line.\n"
        "1.2 You may not sublicense it.\n"
    )
    clauses = segment_document(extract_text(text, "text"))
    assert [c.number for c in clauses] == ["1.1", "1.2"]
    assert clauses[0].text == "We grant you a licence that wraps onto a second line."
    assert clauses[0].section.startswith("1 Licence")


@pytest.mark.parametrize(
    ("line", "iso"),
    [
        ("Last updated: May 1, 2026", "2026-05-01"),
        ("Effective as of 12 January 2025", "2025-01-12"),
        ("Updated on Sept. 3, 2024", "2024-09-03"),
        ("Last modified 2023-11-30", "2023-11-30"),
        ("These terms were last updated on 9th June 2026.", "2026-06-09"),
        ("Last Update: August 14, 2025", "2025-08-14"),
        ("Dated: March 17, 2021", "2021-03-17"),
        ("Effective date: 11-04-2023", "2023-11-04"),
    ],
)
def test_effective_date_is_metadata_not_a_clause(line: str, iso: str) -> None:
    doc = extract_text(f"# Terms\n\n{line}\n\nYou may use the service.\n", "markdown")
    assert doc.effective_date == iso
    assert texts(doc) == ["Terms", "You may use the service."]


def test_future_effective_date_is_flagged_against_the_capture_date() -> None:
    body = b"<main><p>Effective: July 1, 2026</p><p>You may use the service.</p></main>"
    source = Source(id="a/b", urls=("http://127.0.0.1/x",))
    snap = Snapshot("a/b", "http://127.0.0.1/x", "2026-06-01T00:00:00Z", 200, "text/html", body)
    assert extract_snapshots([snap], source).effective_date_is_future
    later = Snapshot("a/b", "http://127.0.0.1/x", "2026-08-01T00:00:00Z", 200, "text/html", body)
    assert not extract_snapshots([later], source).effective_date_is_future


def test_charset_from_meta_and_from_the_server() -> None:
    latin = '<meta charset="iso-8859-1"><p>Les données sont traitées à Paris.</p>'.encode("latin-1")
    assert "données" in extract_bytes(latin, "text/html").text
    cp = "<p>We’ll notify you — in advance.</p>".encode("cp1252")
    assert (
        "We’ll notify you — in advance." in extract_bytes(cp, "text/html", encoding="cp1252").text
    )


def test_invisible_characters_and_malformed_html() -> None:
    doc = extract_text(
        "<div><p>You\u2060 may not\u200b <b>resell<p>access</div></span></table>", "html"
    )
    assert "You may not resell" in doc.text and "\u2060" not in doc.text


def test_unsupported_content_type_and_unknown_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="content type"):
        extract_bytes(b"GIF89a", "image/gif")
    odd = tmp_path / "terms.docx"
    odd.write_bytes(b"PK")
    with pytest.raises(InputError, match="unknown file type"):
        extract_file(odd)


def _tiny_pdf(lines: list[str]) -> bytes:
    """A one-page PDF with one text line per entry, built by hand (no PDF writer needed)."""
    ops = ["BT /F1 12 Tf 72 720 Td 14 TL"]
    for line in lines:
        ops.append(f"({line}) Tj T*")
    ops.append("ET")
    stream = zlib.compress("\n".join(ops).encode("latin-1"))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>"
        ),
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def test_pdf_goes_through_the_same_path(tmp_path: Path) -> None:
    pdf = tmp_path / "terms.pdf"
    pdf.write_bytes(
        _tiny_pdf(
            ["1. Licence", "1.1 You may not resell the service.", "1.2 Fees are due monthly."]
        )
    )
    clauses = segment_document(extract_file(pdf))
    assert [c.number for c in clauses] == ["1.1", "1.2"]
    assert clauses[0].text == "You may not resell the service."
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 this is not really a pdf")
    with pytest.raises(InputError):
        extract_file(broken)


def test_a_date_inside_a_provision_stays_a_provision() -> None:
    doc = extract_text("# Terms\n\nThe order form dated 1 March 2024 applies.\n", "markdown")
    assert doc.effective_date is None and texts(doc) == [
        "Terms",
        "The order form dated 1 March 2024 applies.",
    ]


def test_the_browser_tab_title_above_the_heading_is_not_a_clause() -> None:
    doc = extract_text("Business terms | Acme\n\n# Business terms\n\nPlan | Price\n", "markdown")
    assert texts(doc) == ["Business terms", "Plan | Price"]


@pytest.mark.parametrize(
    ("line", "marker"),
    [
        ("K.3. Customer shall pay.", "K.3"),
        ("I.2.a. Fees apply.", "I.2.a"),
        ("k. Rules apply.", "k"),
        ("Article 5 Liability", "Article 5"),
        ("§ 3 Scope", "§ 3"),
        ("2(a) Fees", "2(a)"),
    ],
)
def test_numbering_styles_are_markers(line: str, marker: str) -> None:
    (block,) = extract_text(line, "text").blocks
    assert block.marker == marker


def test_headings_the_page_did_not_mark_up_and_numbering_that_outranks_markup() -> None:
    md = (
        "# Privacy\n\n## 2. Collection\n\nWe collect data.\n\n"
        "### 9. Children\n\nNo accounts for children.\n\n"
        "**Your Choices**\n\nYou may object.\n\n**Note:** this sentence is not a heading.\n\n"
        "10\\. Your rights\n\nYou may ask for a copy.\n"
    )
    by_text = {c.text: c for c in segment_document(extract_text(md, "markdown"))}
    assert by_text["No accounts for children."].section == "9 Children"  # not under 2
    assert by_text["You may object."].section == "9 Children › Your Choices"
    assert by_text["Note: this sentence is not a heading."].section == "9 Children › Your Choices"
    assert by_text["You may ask for a copy."].section == "10 Your rights"


def test_an_inline_marker_counts_only_at_a_word_boundary() -> None:
    from tostrack.segment import _split_enumeration

    # "f(b)" is part of a formula, not the second item; "—(b)" after a dash is an item.
    text = "Customers may not (a) resell the plan, f(b) is a formula; or (b) share keys."
    assert [(n, t) for n, _, t in _split_enumeration(text)] == [
        ("a", "resell the plan, f(b) is a formula; or"),
        ("b", "share keys."),
    ]
    dashed = "Pay the fee—(a) monthly or —(b) yearly, as chosen"
    assert [n for n, _, _ in _split_enumeration(dashed)] == ["a", "b"]


# Written for this test: the Markdown constructs terms pages use, where two parsers could part.
_MARKDOWN_SAMPLE = """\
Harbourline Terms | Harbourline

# Harbourline Terms of Use

**Last updated:** 2 March 2026

## 1. Your account

1. You must be 16 or older.
2. Keep your password safe:
   - do not share it;
   - change it if you think someone knows it.\u00a0

> Note: business accounts have their own terms.

Plan | Requests a day | Price
---|---|---
Free | 100 | 0
Team | 10,000 | 20 EUR

## 2. What you may not do

You may not use [the API](https://example.test/api "API") to *scrape* other users' profiles,
or __resell__ access<br>without our written consent. Use `curl` only for testing.

3\\. This line starts with an escaped number.

* * *

## 三、服务的变更

（一）我们可能随时调整服务内容。

- nested list
    - deeper item with a [link](<https://example.test/a b>)
"""


def test_both_markdown_parsers_give_the_same_document(monkeypatch) -> None:
    """markdown-it-pyrs (Rust) where it has wheels, markdown-it-py (Python) elsewhere
    (setup.cfg): the same Documents either way, blocks, headings and dates alike."""
    pytest.importorskip("markdown_it_pyrs")
    pytest.importorskip("markdown_it")
    from tostrack import extract

    def extracted() -> object:
        extract._chunk_blocks.cache_clear()
        extract._chunk_html.cache_clear()
        return extract_text(_MARKDOWN_SAMPLE, "markdown")

    fast = extracted()
    monkeypatch.setattr(extract, "_markdown_parser", extract._python_markdown_parser)
    python = extracted()
    extract._chunk_blocks.cache_clear()
    extract._chunk_html.cache_clear()
    assert python == fast
    assert len(fast.blocks) > 10 and fast.effective_date == "2026-03-02"


def test_extraction_leaves_no_reference_cycles_for_the_collector() -> None:
    """A replay makes millions of objects; the ones in reference cycles wait for the garbage
    collector (a closure that called itself was all of a replay's cyclic garbage, issue #14)."""
    import gc

    from tostrack.extract import extract_bytes

    page = (
        "# Terms\n\n## 1. Use\n\nYou may **not** use [the service](https://x.example/a) to:\n\n"
        "- copy *our* models;\n- resell `access` to <b>others</b>.\n\n"
        "| Plan | Price |\n|---|---|\n| **Pro** | 10 |\n"
    )
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(20):
            document = extract_bytes(page.encode(), "text/markdown")
            html = extract_bytes(
                "<main><p>A <em>b <a href='#'>c</a></em> d</p></main>".encode(), "text/html"
            )
        unreachable = gc.collect()
    finally:
        if was_enabled:
            gc.enable()
    assert document.blocks and html.blocks
    assert unreachable == 0
