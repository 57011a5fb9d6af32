"""Snapshot bytes -> Document: one structural path for HTML, Markdown, plain text and PDF.

Markdown is rendered to HTML (markdown-it-pyrs) and plain text / PDF text is turned into the same
blocks, so there is one segmenter downstream. Pure: bytes in, Document out; no network, no
files (except extract_file, the convenience entry for the CLI), no clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import lxml.html
from cssselect import SelectorError
from lxml import etree
from lxml.cssselect import CSSSelector
from lxml.html import HtmlElement

from tostrack.errors import InputError
from tostrack.models import Block, Document

SUPPORTED_TYPES = {
    "text/html": "html",
    "application/xhtml+xml": "html",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/plain": "text",
    "application/pdf": "pdf",
}
_SUFFIX_FORMATS = {
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".pdf": "pdf",
}

# Elements that never hold the document's wording.
_DROP = (
    "script",
    "style",
    "noscript",
    "template",
    "svg",
    "canvas",
    "iframe",
    "object",
    "button",
    "select",
    "input",
    "textarea",
    "form",
    "dialog",
    "link",
    "meta",
    "head",
)
# Page chrome, dropped only when the source has no `select` rule of its own.
_CHROME = ("nav", "header", "footer", "aside")
_BLOCK_TAGS = {
    "p",
    "div",
    "section",
    "article",
    "main",
    "body",
    "html",
    "blockquote",
    "li",
    "ul",
    "ol",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "td",
    "th",
    "dl",
    "dt",
    "dd",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "pre",
    "figure",
    "figcaption",
    "address",
    "details",
    "summary",
    "hr",
    "center",
    "fieldset",
    "caption",
}
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}

# A leading number or letter the source shows: "1.", "1.1", "2(a)", "(iii)", "a)", "Article 5",
# "Section 3", "§ 3". Kept apart from the wording so renumbering alone is not a change.
# Chinese, Japanese and Korean characters (Han, kana, Hangul): CJK text has no capitals and no
# spaces between words, so headings, sentences and markers are recognised by other signs.
CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_HAN_NUMERAL = "一二三四五六七八九十百千零〇两"
MARKER = re.compile(
    rf"""^(?P<marker>
        (?:(?:Article|Section|Clause|Part|Schedule|Annex|Appendix)\s+[0-9IVXLC]+[A-Za-z]?(?:\.\d+)*\.?
          (?=[\s:.\-–—]))
      | §\s?\d+(?:\.\d+)*
      | 第\s?[0-9{_HAN_NUMERAL}]{{1,6}}\s?(?:部分|编|章|节|条|款|篇)   # 第一章 第3条
      | 제\s?\d{{1,3}}\s?(?:장|절|조)(?:의\s?\d{{1,2}})?               # 제1조
      | [{_HAN_NUMERAL}]{{1,3}}[、.．](?=\s*[^\s\d])                   # 一、
      | [（(][{_HAN_NUMERAL}]{{1,3}}[）)]                               # （一）
      | （\d{{1,3}}[）)] | \(\d{{1,3}}）                                  # （1）
      | [①-⑳]
      | \d{{1,3}}(?:[.．]\d{{1,3}})*[、．](?=\s*[^\s\d])                 # 1、 2.1、 1．
      | \d{{1,3}}(?:\.\d{{1,3}})+\.?(?=[{CJK}]) | \d{{1,3}}\.(?=[{CJK}])  # 2.1本软件 1.本协议
      | [ivx]{{1,4}}\.(?=\s*[{CJK}])                                     # i. 任何
      | \d{{1,3}}(?:\.\d{{1,3}})*(?:\([a-z0-9]{{1,4}}\))*\.?(?=\s)
      | \((?:[a-z]{{1,2}}|[ivxlc]{{1,6}}|[A-Z]{{1,2}}|[IVXLC]{{1,6}}|\d{{1,3}})\)
      | (?:[a-z]|[ivx]{{1,4}}|\d{{1,2}})\)(?=\s)
      | (?:[A-Z]|[IVX]{{1,4}})\.(?:\d{{1,3}}\.)+(?:[a-z]\.)?(?=\s)
      | (?:[A-Z]|[a-z])\.(?=\s+[A-Z])
    )[\s:.\-–—：、．]*""",
    re.VERBOSE,
)
_CJK_CHAR = re.compile(f"[{CJK}]")
# Full-width brackets and stops of a marker, written the ASCII way: "（1）" is "(1)", "1、" is "1".
_MARKER_FORMS = str.maketrans({"（": "(", "）": ")", "．": "."})
_BULLET = re.compile(r"^[•·▪◦‣○●■□\-–—*]\s+")
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)

_MONTHS = {
    m: i
    for i, m in enumerate(
        [
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ],
        1,
    )
}
_MONTHS.update({m[:3]: i for m, i in list(_MONTHS.items())})
_MONTHS["sept"] = 9
_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sept?(?:ember)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_DATE = (
    rf"(?:(?P<m1>{_MONTH})\s+(?P<d1>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y1>\d{{4}})"
    rf"|(?P<d2>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<m2>{_MONTH}),?\s+(?P<y2>\d{{4}})"
    rf"|(?P<y3>\d{{4}})-(?P<m3>\d{{2}})-(?P<d3>\d{{2}})"
    # 11-04-2023 or 11/04/2023: read month first, as the US providers that write it mean it
    rf"|(?P<m4>\d{{1,2}})[-/](?P<d4>\d{{1,2}})[-/](?P<y4>\d{{4}}))"
)
_EFFECTIVE = re.compile(
    r"(?P<label>last\s+(?:updated|update|modified|revised|changed)|^\s*dated|effective(?:\s+date)?(?:\s+(?:as\s+of|from|on))?"
    r"|updated(?:\s+on)?|date\s+of\s+last\s+revision|version\s+date|revised(?:\s+on)?"
    r"|these\s+terms\s+(?:are|were)\s+last\s+updated(?:\s+on)?|in\s+effect\s+(?:as\s+of|from))"
    r"\s*[:\-–—]?\s*(?:on\s+|as\s+of\s+)?" + _DATE,
    re.IGNORECASE,
)


# Chinese, Japanese and Korean date lines: "生效日期：2026年7月22日", "更新日期: 2026-07-15",
# "2026年4月1日施行", "시행일: 2026년 7월 22일". The label says which date it is.
def _cjk_date(n: int) -> str:
    return (
        rf"(?P<y{n}>\d{{4}})\s*(?:[年년]\s*(?P<m{n}>\d{{1,2}})\s*[月월]\s*(?P<d{n}>\d{{1,2}})\s*[日일号]?"
        rf"|[-/.](?P<n{n}>\d{{1,2}})[-/.](?P<e{n}>\d{{1,2}})(?!\d))"
    )


_CJK_KINDS = {
    "effective": "生效|施行|实施|實施|발효|시행",
    "updated": r"更新|修订|修訂|修改|修正|改定|改訂|개정|최종\s*수정|업데이트",
    "published": "发布|發布|公布|制定|공고|게시",
}
_CJK_LABEL = "|".join(
    f"(?P<{k}>(?:{v})(?:日期|时间|時間|日|일자|일)?)" for k, v in _CJK_KINDS.items()
)
_CJK_DATED = re.compile(
    rf"(?:最近|最后|最新|最終|最终|版本)?(?:{_CJK_LABEL})\s*[:：]?\s*(?:于|於)?\s*{_cjk_date(1)}"
    # "本协议自2026年7月22日起生效", "2026年4月1日 改定": read only on a line that is little more
    rf"|{_cjk_date(2)}\s*(?:起|から|부터)?\s*(?:正式)?(?P<after>{'|'.join(_CJK_KINDS.values())})"
)
_CJK_KIND_OF = [(kind, re.compile(words)) for kind, words in _CJK_KINDS.items()]
_CJK_VERSION = re.compile(r"版本(?:号|號)?\s*[:：]\s*(?P<version>[Vv]?\d+(?:\.\d+)*)")
# What a CJK date line may hold besides its dates ("本协议自……起生效"): a few characters.
_CJK_DATE_LINE_REST = 12
_YEAR = re.compile(r"\d{4}")  # every date form read below has a four-digit year
_PAGE_TITLE = re.compile(r"^[^.|]{2,60} [|–—] [^.|]{2,40}$")
# A date line on its own is metadata, not a clause; longer sentences keep their wording.
_DATE_LINE_MAX = 160


# -- public entry points -------------------------------------------------------------------


def extract_bytes(
    body: bytes,
    content_type: str,
    *,
    encoding: str | None = None,
    select: Sequence[str] = (),
    remove: Sequence[str] = (),
) -> Document:
    """Raw bytes of one fetched page -> Document."""
    fmt = SUPPORTED_TYPES.get(content_type.split(";")[0].strip().lower())
    if fmt is None:
        raise InputError(f"cannot extract a document from content type {content_type!r}")
    if fmt == "pdf":
        return extract_text(_pdf_text(body), "text")
    if fmt == "html":
        return _from_html(_decode_html(body, encoding), select, remove)
    return extract_text(_decode_text(body, encoding), fmt, select=select, remove=remove)


def extract_text(
    text: str, fmt: str = "text", *, select: Sequence[str] = (), remove: Sequence[str] = ()
) -> Document:
    """Text in a given format ("html", "markdown" or "text") -> Document."""
    if fmt == "html":
        return _from_html(text, select, remove)
    if fmt == "markdown":
        return _from_markdown(text, select, remove)
    if fmt == "text":
        return _finish(list(_text_blocks(text)), "")
    raise InputError(f"unknown input format {fmt!r} (use html, markdown or text)")


def extract_file(path: str | Path) -> Document:
    """A local .html/.md/.txt/.pdf file -> Document (the format comes from the suffix)."""
    path = Path(path)
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"{path}: unknown file type {path.suffix!r} (use .html, .md, .txt or .pdf)"
        )
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    content_type = {
        "html": "text/html",
        "markdown": "text/markdown",
        "text": "text/plain",
        "pdf": "application/pdf",
    }[fmt]
    return extract_bytes(body, content_type)


# -- decoding ---------------------------------------------------------------------------------


def _decode_html(body: bytes, encoding: str | None) -> str:
    from bs4 import UnicodeDammit  # here: importing bs4 takes 50 ms, and Markdown needs none

    candidates = [encoding] if encoding else []
    dammit = UnicodeDammit(body, known_definite_encodings=candidates, is_html=True)
    if dammit.unicode_markup is None:
        return body.decode("utf-8", errors="replace")
    return dammit.unicode_markup


def _decode_text(body: bytes, encoding: str | None) -> str:
    for candidate in (encoding, "utf-8"):
        if not candidate:
            continue
        try:
            return body.decode(candidate).lstrip("\ufeff")
        except (UnicodeDecodeError, LookupError):
            continue
    from bs4 import UnicodeDammit

    dammit = UnicodeDammit(body)
    return dammit.unicode_markup or body.decode("utf-8", errors="replace")


def _pdf_text(body: bytes) -> str:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(body))
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot read the PDF: {exc}") from None


@lru_cache(maxsize=1)
def _markdown_parser() -> Any:
    # markdown-it-pyrs: markdown-it in Rust, ten times faster than markdown-it-py and, on every
    # version of the corpus, the same Documents. Its "commonmark" keeps raw HTML inside the
    # Markdown (so it parses like a page); tables added. Where it has no wheel (Python 3.13 and
    # later, for now) setup.cfg installs markdown-it-py instead, the same parser in Python
    # (tests/test_extract_segment.py checks that both give the same Documents).
    try:
        from markdown_it_pyrs import MarkdownIt
    except ImportError:
        return _python_markdown_parser()
    return MarkdownIt("commonmark").enable("table")


def _python_markdown_parser() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable("table")


def _markdown_to_html(text: str) -> str:
    return _markdown_parser().render(text)


# -- Markdown, by chunks ----------------------------------------------------------------------
# Successive versions of a document share most of their paragraphs, and parsing Markdown is
# the costliest part of extraction. So the text is cut where CommonMark guarantees that nothing
# before the cut can shape what follows: after a blank line, at a line that starts in the first
# column with a letter, an opening quote or bracket, a number that is not a list marker ("2024
# was", "9\. Payment"), a "#" heading or "**"/"__" emphasis. Such a line continues no list,
# block quote, code block or table, and no paragraph runs across a blank line. Each chunk is
# rendered once (cached by its text) and the renderings joined are the whole text's rendering.
# Constructs that do reach across blank lines make the text go through in one piece: fenced
# code, the HTML blocks that end at their closing tag (<script>, <pre>, <style>, <textarea>,
# comments, <!...>, <?...>), link reference definitions (anywhere, as they serve the whole
# text) and carriage returns or NULs (which markdown-it rewrites first).

_CHUNK_CUT = re.compile(
    r"\n[ \t]*\n(?=#|\*\*[^\s*]|__[^\s_]|[^\W\d_]|[“‘\"'(（「『【《]|\d+(?![\d.)]))"
)
# (sign, a character of it, looked for first: one character is found faster than three)
_WHOLE_TEXT_SIGNS = (("```", "`"), ("~~~", "~"), ("]:", "]"), ("\r", "\r"), ("\0", "\0"))
_HTML_TO_CLOSING_TAG = re.compile(r"<(?:[!?]|script|pre|style|textarea)", re.IGNORECASE)
# The only raw HTML a chunk may hold and still be walked on its own: a line break (an element
# left open in one chunk would take in the next ones when the page is parsed as a whole).
_LINE_BREAK_TAG = re.compile(r"<br\s*/?>", re.IGNORECASE)
_CHUNK_CACHE = 1 << 11  # a few versions of the longest document (398 chunks); bounded memory


def _markdown_chunks(text: str) -> list[str] | None:
    """The text cut into independently parsed chunks, or None when it must be parsed whole."""
    if any(first in text and sign in text for sign, first in _WHOLE_TEXT_SIGNS) or (
        "<" in text and _HTML_TO_CLOSING_TAG.search(text)
    ):
        return None
    chunks, start = [], 0
    for cut in _CHUNK_CUT.finditer(text):
        chunks.append(text[start : cut.end()])
        start = cut.end()
    chunks.append(text[start:])
    return chunks


@lru_cache(maxsize=_CHUNK_CACHE)
def _chunk_html(chunk: str) -> str:
    return _markdown_to_html(chunk)


@lru_cache(maxsize=_CHUNK_CACHE)
def _chunk_blocks(chunk: str) -> tuple[Block, ...] | None:
    """The blocks of one chunk walked on its own; None when its HTML could reach into the next
    chunks. Without raw HTML, the page holds only block elements of markdown-it's making, one
    after another, and the walk reads each apart from the others."""
    if "<" in chunk and "<" in _LINE_BREAK_TAG.sub("", chunk):
        return None
    # not _chunk_html: its cache is for mixed pages
    root = _parse_html(_markdown_to_html(chunk), plain=True)
    if root is None:
        return ()
    body = root.find("body")
    return tuple(_blocks(body if body is not None else root, list_depth=0))


def _from_markdown(text: str, select: Sequence[str], remove: Sequence[str]) -> Document:
    chunks = _markdown_chunks(text)
    if chunks is None:
        return _from_html(_markdown_to_html(text), select, remove)
    if not select and not remove:
        walked = [_chunk_blocks(chunk) for chunk in chunks]
        if all(blocks is not None for blocks in walked):
            blocks = [block for chunk_blocks in walked for block in chunk_blocks]
            # As _from_html: without raw HTML there is no <title>, so the first heading is it.
            title = next((b.text for b in blocks if b.kind == "heading"), "")
            return _finish(blocks, title)
    return _from_html("".join(_chunk_html(chunk) for chunk in chunks), select, remove)


# -- HTML -> blocks ---------------------------------------------------------------------------
# The walk runs on lxml's tree: the same parser BeautifulSoup would use, without building a
# Python object per node, which makes extraction several times faster on long documents.

_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*>", re.IGNORECASE)


def _from_html(html: str, select: Sequence[str], remove: Sequence[str]) -> Document:
    root = _parse_html(html)
    if root is None:
        return _finish([], "", (("selector", "missed"),) if select else ())
    title_element = root.find(".//title")
    title = _clean(title_element.text_content()) if title_element is not None else ""
    _drop(list(root.iter(*_DROP)))
    for selector in remove:
        _drop(_select(root, selector))
    metadata: list[tuple[str, str]] = []
    if select:
        roots = _selected_roots(root, select)
        if not roots:
            metadata.append(("selector", "missed"))
    else:
        _drop(list(root.iter(*_CHROME)))
        body = root.find("body")
        roots = [body if body is not None else root]
    blocks: list[Block] = []
    for element in roots:
        blocks.extend(_blocks(element, list_depth=0))
    if not title:
        title = next((b.text for b in blocks if b.kind == "heading"), "")
    return _finish(blocks, title, tuple(metadata))


def _parse_html(html: str, *, plain: bool = False) -> HtmlElement | None:
    """The page's tree. `plain`: lxml's own elements, made twice as fast as lxml.html's, for a
    tree that is only walked (no drop_tree, text_content or selectors)."""
    html = _XML_DECLARATION.sub("", html, count=1)  # lxml refuses str input that declares bytes
    if not html.strip():
        return None
    try:
        # a parser per call: lxml's parsers are not to be shared between threads
        if plain:
            return etree.fromstring(html, etree.HTMLParser(remove_comments=True, remove_pis=True))
        parser = lxml.html.HTMLParser(remove_comments=True, remove_pis=True)
        return lxml.html.document_fromstring(html, parser=parser)
    except (etree.ParserError, etree.XMLSyntaxError, ValueError):
        return None


def _drop(elements: Sequence[HtmlElement]) -> None:
    for element in elements:
        if element.getparent() is not None:
            element.drop_tree()  # keeps the text that follows the element


def _select(root: HtmlElement, selector: str) -> list[HtmlElement]:
    try:
        return list(CSSSelector(selector)(root))
    except (SelectorError, ValueError, NotImplementedError) as exc:
        raise InputError(f"invalid CSS selector {selector!r}: {exc}") from None


def _selected_roots(root: HtmlElement, select: Sequence[str]) -> list[HtmlElement]:
    """Every element matched by any selector, in document order, without nested duplicates."""
    matched = {element for selector in select for element in _select(root, selector)}
    order = {element: i for i, element in enumerate(root.iter())}
    roots = [e for e in matched if not any(a in matched for a in e.iterancestors())]
    return sorted(roots, key=lambda e: order.get(e, 0))


def _tag(element: HtmlElement) -> str:
    return element.tag.lower() if isinstance(element.tag, str) else ""


def _text(element: HtmlElement) -> str:
    """The element's words, with a space at each block boundary so blocks never run together
    and inline text is not split ("a <a>link</a>." stays "a link.")."""
    parts: list[str] = []
    _text_parts(element, parts)
    return "".join(parts)


def _text_parts(node: HtmlElement, parts: list[str]) -> None:
    # A function of the module, not a closure that calls itself: such a closure is a reference
    # cycle, left for the garbage collector (it was all of a replay's cyclic garbage).
    boundary = _tag(node) in _BLOCK_TAGS or _tag(node) == "br"
    if boundary:
        parts.append(" ")
    if node.text:
        parts.append(node.text)
    for child in node:
        if _tag(child):
            _text_parts(child, parts)
        if child.tail:
            parts.append(child.tail)
    if boundary:
        parts.append(" ")


def _blocks(node: HtmlElement, list_depth: int) -> Iterator[Block]:
    """Walk an element: emit a block for each heading, paragraph, list item and table row."""
    inline: list[str] = [node.text or ""]

    def flush() -> Iterator[Block]:
        raw = "".join(inline)
        inline.clear()
        for piece in _hard_break_pieces(raw):
            text = _clean(piece)
            if text:
                yield _paragraph(text)

    for child in node:
        name = _tag(child)
        if name not in _BLOCK_TAGS:
            if name == "br":
                inline.append(_HARD_BREAK)
            elif name:
                inline.append(_text(child))
            inline.append(child.tail or "")
            continue
        yield from flush()
        if name in _HEADINGS:
            text = _clean(_text(child))
            if text:
                marker, rest = split_marker(text)
                yield Block("heading", rest or text, _HEADINGS[name], marker if rest else "")
        elif name in ("ul", "ol"):
            yield from _list_items(child, list_depth + 1)
        elif name == "li":  # a stray li outside a list
            yield from _list_item(child, max(list_depth, 1), "")
        elif name == "tr":
            yield from _table_row(child)
        elif name == "p" and (heading := _bold_heading(child)) is not None:
            yield heading
        elif name in ("dt", "summary", "caption"):
            text = _clean(_text(child))
            if text:
                yield _paragraph(text)
        elif name != "hr":
            yield from _blocks(child, list_depth)
        inline.append(child.tail or "")
    yield from flush()


# A <br> (a Markdown hard break): whitespace to _clean, and where a numbered line starts
# ("…。<br>2.2 …"), the start of a new block in any language.
_HARD_BREAK = "\x1e"
_BARE_NUMBER = re.compile(r"\d+")


def _hard_break_pieces(raw: str) -> list[str]:
    if _HARD_BREAK not in raw:
        return [raw]
    pieces: list[str] = []
    for line in raw.split(_HARD_BREAK):
        if pieces and _starts_numbered(line.strip().lstrip("*_")):
            # "**7.2 …" where Markdown left the asterisks of an unclosed bold as text
            pieces.append(line.strip().lstrip("*_"))
        elif pieces:
            pieces[-1] += " " + line
        else:
            pieces.append(line)
    return pieces


def _starts_numbered(line: str) -> bool:
    """ "2.2 …", "(b) …", "第三条 …", "（一）…" after a line break; not "123 Main Street"."""
    line = line.strip()
    if _BULLET.match(line):
        return True
    match = MARKER.match(line)
    if not match or not line[match.end() :].strip():
        return False
    return not _BARE_NUMBER.fullmatch(match.group("marker").strip())


def _list_items(list_tag: HtmlElement, depth: int) -> Iterator[Block]:
    ordered = _tag(list_tag) == "ol"
    try:
        number = int(list_tag.get("start", 1))
    except (TypeError, ValueError):
        number = 1
    kind = (list_tag.get("type") or "1") if ordered else ""
    first = True
    stray = [list_tag.text or ""]
    for child in list_tag:
        if _tag(child) == "li":
            implicit = _ordinal(number, str(kind)) if ordered else ""
            for block in _list_item(child, depth, implicit):
                if first and block.kind == "list_item":
                    block = Block(block.kind, block.text, block.level, block.marker, True)
                    first = False
                yield block
            number += 1
        elif _tag(child):
            yield from _blocks(child, depth - 1)
        stray.append(child.tail or "")
    text = _clean("".join(stray))
    if text:  # words typed straight inside <ul>, outside any <li>
        yield _paragraph(text)


def _list_item(li: HtmlElement, depth: int, implicit_marker: str) -> Iterator[Block]:
    """A list item's own words, then its nested lists and blocks as their own items."""
    own: list[str] = [li.text or ""]
    nested: list[Block] = []
    for child in li:
        name = _tag(child)
        if name in ("ul", "ol"):
            nested.extend(_list_items(child, depth + 1))
        elif name in ("table", "dl", "pre") or nested:
            # Tables, and words after a nested list, are blocks of their own.
            if name in _BLOCK_TAGS:
                nested.extend(_blocks(child, depth))
            elif name:
                nested.append(Block("paragraph", _clean(_text(child)), depth))
        elif name:
            own.append(_text(child))
        tail = child.tail or ""
        if nested and _clean(tail):
            nested.append(Block("paragraph", _clean(tail), depth))
        elif not nested:
            own.append(tail)
    nested = [b for b in nested if b.text]
    text = _clean("".join(own))
    if text:
        marker, rest = split_marker(text)
        if not rest:
            marker, rest = "", text
        yield Block("list_item", _BULLET.sub("", rest), depth, marker or implicit_marker)
    yield from nested


def _table_row(tr: HtmlElement) -> Iterator[Block]:
    cells = [_clean(_text(c)) for c in tr if _tag(c) in ("td", "th")]
    cells = [c for c in cells if c]
    if cells:
        yield Block("table_row", " | ".join(cells))


def _ordinal(number: int, kind: str) -> str:
    if kind == "a":
        return _letters(number)
    if kind == "A":
        return _letters(number).upper()
    if kind in ("i", "I"):
        roman = _roman(number)
        return roman if kind == "I" else roman.lower()
    return str(number)


def _letters(n: int) -> str:
    out = ""
    while n > 0:
        n, rem = divmod(n - 1, 26)
        out = chr(97 + rem) + out
    return out or "a"


def _roman(n: int) -> str:
    table = [
        (1000, "M"),
        (900, "CM"),
        (500, "D"),
        (400, "CD"),
        (100, "C"),
        (90, "XC"),
        (50, "L"),
        (40, "XL"),
        (10, "X"),
        (9, "IX"),
        (5, "V"),
        (4, "IV"),
        (1, "I"),
    ]
    out = ""
    for value, numeral in table:
        while n >= value:
            out += numeral
            n -= value
    return out


# -- plain text -> blocks ---------------------------------------------------------------------

_TEXT_HEADING = re.compile(r"^(?:#{1,6}\s+)?(?P<text>[^\n]{2,120})$")


def _text_blocks(text: str) -> Iterator[Block]:
    """Paragraphs separated by blank lines; numbered or bulleted lines start their own block."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n\n")
    for chunk in re.split(r"\n\s*\n", text):
        lines = [ln.strip() for ln in chunk.split("\n") if ln.strip()]
        current: list[str] = []
        for line in lines:
            starts_item = bool(MARKER.match(line) and split_marker(line)[1]) or bool(
                _BULLET.match(line)
            )
            if current and starts_item:
                yield _text_block(" ".join(current))
                current = []
            current.append(line)
        if current:
            yield _text_block(" ".join(current))


def _text_block(text: str) -> Block:
    text = _clean(text)
    bullet = _BULLET.match(text)
    if bullet:
        return Block("list_item", text[bullet.end() :], 1, "•")
    marker, rest = split_marker(text)
    if rest and _looks_like_heading(rest):
        return Block("heading", rest, 2 + marker.count("."), marker)
    if not marker and _looks_like_heading(text) and text.isupper():
        return Block("heading", text, 2)
    return _paragraph(text)


_CJK_SENTENCE_SIGNS = ("。", "；", "，", "：", "！", "？", ".", ";", ",", ":", "的")


def _looks_like_heading(text: str) -> bool:
    if _CJK_CHAR.match(text) or (text[:1] in "“《【「" and _CJK_CHAR.search(text[:3])):
        # "导言", "服务的变更、中断和终止": short, no sentence punctuation; a list item that
        # ends in 的 ("……的；") is an item, and a bold sentence is a clause, not a heading.
        return (
            len(text) <= 30
            and not text.endswith(_CJK_SENTENCE_SIGNS)
            and not any(sign in text for sign in "。；，！？")
        )
    return (
        len(text) <= 80
        and not text.endswith((".", ";", ",", ":"))
        and text[:1].isupper()
        and (len(text.split()) <= 8)
    )


# -- shared -----------------------------------------------------------------------------------


_INVISIBLE = re.compile("[\u00ad\u200b\u200c\u200d\u2060\ufeff]")


def _clean(text: str) -> str:
    # Zero-width joiners and soft hyphens come and go with page builds; they are never wording.
    # (None in ASCII text, where isascii() costs nothing; a pattern is quicker than translate.)
    if not text.isascii():
        text = _INVISIBLE.sub("", text)
    return " ".join(text.split())


def split_marker(text: str) -> tuple[str, str]:
    """("1.2", "You may not ...") from "1.2 You may not ..."; ("", text) when there is none."""
    match = MARKER.match(text)
    if not match:
        return "", text
    marker = match.group("marker").strip()
    rest = text[match.end() :].strip()
    return marker.translate(_MARKER_FORMS).rstrip(".、"), rest


def _paragraph(text: str) -> Block:
    bullet = _BULLET.match(text)
    if bullet:
        return Block("list_item", text[bullet.end() :], 1, "•")
    marker, rest = split_marker(text)
    if (
        marker
        and rest
        and (_DECIMAL.match(marker) or _CJK_SECTION.match(marker))
        and (_looks_like_heading(rest))
    ):
        # "10. Your rights and choices" typed as a paragraph is the heading of section 10.
        return Block("heading", rest, min(6, 2 + marker.count(".")), marker)
    if marker and rest:
        return Block("paragraph", rest, 0, marker)
    return Block("paragraph", text)


_DECIMAL = re.compile(r"^\d{1,3}(?:\.\d{1,3})*$")
# Markers that number sections in Chinese, Japanese and Korean terms:
# 第一章, 第3条, 一, (一), 제1조.
_CJK_SECTION = re.compile(rf"^(?:第.+|제.+|[{_HAN_NUMERAL}]{{1,3}}|\([{_HAN_NUMERAL}]{{1,3}}\))$")
_EMPHASIS = ("strong", "b")


def _bold_heading(p: HtmlElement) -> Block | None:
    """A paragraph that is nothing but a short bold phrase is a heading the page did not mark up."""
    children = [c for c in p if _tag(c)]
    if (p.text or "").strip() or len(children) != 1 or _tag(children[0]) not in _EMPHASIS:
        return None
    if (children[0].tail or "").strip():
        return None
    text = _clean(_text(children[0]))
    marker, rest = split_marker(text)
    if not _looks_like_heading(rest or text):
        return None
    return Block("heading", rest or text, 6, marker if rest else "")


def _finish(
    blocks: list[Block], title: str, metadata: tuple[tuple[str, str], ...] = ()
) -> Document:
    """Drop blocks without words; read the effective date and keep a bare date line as metadata."""
    effective_date, effective_text = None, ""
    fallback: tuple[str | None, str] | None = None  # a date line further down, e.g. at the end
    cjk_dates: dict[str, tuple[str, str]] = {}  # kind -> (ISO date, line): 生效 / 更新 / 发布
    extra: list[tuple[str, str]] = []
    kept: list[Block] = []
    seen_heading = False
    for index, block in enumerate(blocks):
        has_letter, cjk_with_year, found, found_iso = _signs(block.text)
        if not has_letter:
            continue
        seen_heading = seen_heading or block.kind == "heading"
        if not seen_heading and block.kind == "paragraph" and _PAGE_TITLE.match(block.text):
            continue  # "Business terms | Acme" above the heading: the browser tab's title
        if cjk_with_year and _cjk_date_line(block.text, index, cjk_dates):
            continue  # "生效日期：2026年7月22日" is metadata, like "Last updated: May 1, 2026"
        if index < 60 and "版本" in block.text and len(block.text) <= 40:
            version = _CJK_VERSION.search(block.text)
            if version:
                extra.append(("version", version.group("version")))
                continue
        # Every short date line is metadata (addenda repeat "Updated: ..."); the first one near
        # the top of the document is its effective date.
        if found and effective_date is None and index < 60:
            effective_date, effective_text = found_iso, block.text
        elif found and fallback is None:
            fallback = (found_iso, block.text)
        if found and len(block.text) <= _DATE_LINE_MAX:
            continue  # "Last updated: May 1, 2026" is metadata; its change is not a clause change
        kept.append(block)
    if effective_date is None and fallback is not None:
        effective_date, effective_text = fallback
    # 生效日期 is the effective date; without one, the update (or publication) date stands for it.
    for kind in ("effective", "updated", "published"):
        if kind in cjk_dates and (kind == "effective" or effective_date is None):
            effective_date, effective_text = cjk_dates[kind]
    extra.extend(
        (f"{kind}_date", cjk_dates[kind][0])
        for kind in ("updated", "published")
        if kind in cjk_dates
    )
    return Document(
        blocks=_cjk_levels(kept),
        title=title,
        effective_date=effective_date,
        effective_date_text=effective_text,
        metadata=metadata + tuple(extra),
    )


@lru_cache(maxsize=1 << 14)  # most blocks come back in the next version, the same text
def _signs(text: str) -> tuple[bool, bool, bool, str | None]:
    """What _finish reads of a block's text on its own: has it a letter; a CJK character and a
    four-digit year (it may be a CJK date line); an effective-date sentence, and its ISO date."""
    if not _LETTER.search(text):
        return False, False, False, None
    if not _YEAR.search(text):  # every date form read has a four-digit year
        return True, False, False, None
    found = _EFFECTIVE.search(text)
    return True, bool(_CJK_CHAR.search(text)), bool(found), _iso(found) if found else None


def _cjk_date_line(text: str, index: int, dates: dict[str, tuple[str, str]]) -> bool:
    """Read the labelled dates of a CJK block into `dates`; True when the block is a date line."""
    found = list(_CJK_DATED.finditer(text))
    if not found:
        return False
    rest = text
    for match in found:
        rest = rest.replace(match.group(0), "")
    is_line = len(_LETTER.findall(rest)) <= _CJK_DATE_LINE_REST
    for match in found:
        g = match.groupdict()
        if g["after"]:
            if not is_line:
                continue  # "我们将于2026年5月1日更新收费标准" is a clause about a change
            kind = next(k for k, words in _CJK_KIND_OF if words.search(g["after"]))
        else:
            kind = next(k for k in _CJK_KINDS if g[k])
        n = "1" if g["y1"] else "2"
        iso = _date(g["y" + n], g["m" + n] or g["n" + n], g["d" + n] or g["e" + n])
        if iso and index < 60:
            dates.setdefault(kind, (iso, text))
    return is_line


def _date(year: str, month: str, day: str) -> str | None:
    from datetime import date

    try:
        return date(int(year), int(month), int(day)).isoformat()
    except (ValueError, TypeError):
        return None


def _marker_style(marker: str) -> str:
    """The numbering scheme of a CJK heading's marker: 第…章, 第…条, 一, (一), decimal depth."""
    if marker[:1] in "第제":
        return marker[-1]
    if _DECIMAL.match(marker):
        return f"decimal{marker.count('.')}"
    if marker.startswith("("):
        return "(han)" if marker[1:2] in _HAN_NUMERAL else "(n)"
    return "han" if marker[:1] in _HAN_NUMERAL else marker[:1]


def _cjk_levels(blocks: list[Block]) -> tuple[Block, ...]:
    """Heading levels of CJK terms from their numbering: the scheme met first is the outermost
    (一、 above （一） above 1. in one document, 1、 above 1.1 in another), whatever the page's
    markup (bold lines, paragraphs) said. A lone unnumbered heading at the top is the title."""
    headings = [i for i, b in enumerate(blocks) if b.kind == "heading" and _CJK_CHAR.search(b.text)]
    if not headings:
        return tuple(blocks)
    styles: dict[str, int] = {}
    out = list(blocks)
    for i in headings:
        block = blocks[i]
        if block.marker:
            level = styles.setdefault(_marker_style(block.marker), min(6, 2 + len(styles)))
            out[i] = Block("heading", block.text, level, block.marker)
    first = blocks[headings[0]]
    if not first.marker and headings[0] == 0 and styles and first.level >= 2:
        out[0] = Block("heading", first.text, 1)
    return tuple(out)


def _iso(match: re.Match[str]) -> str | None:
    g = match.groupdict()
    try:
        if g["y3"]:
            year, month, day = int(g["y3"]), int(g["m3"]), int(g["d3"])
        elif g["y4"]:
            year, month, day = int(g["y4"]), int(g["m4"]), int(g["d4"])
        else:
            month_name = (g["m1"] or g["m2"]).rstrip(".").lower()
            month = _MONTHS.get(month_name, _MONTHS.get(month_name[:3], 0))
            day = int(g["d1"] or g["d2"])
            year = int(g["y1"] or g["y2"])
        from datetime import date

        return date(year, month, day).isoformat()
    except (ValueError, TypeError):
        return None
