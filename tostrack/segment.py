"""Document -> clauses: the smallest provisions a lawyer would cite.

Numbered sections and subsections, list items, paragraphs under headings, table rows, and the
items of an inline enumeration ("You may not (i) ...; (ii) ...; or (iii) ...") each become a
clause. A clause keeps the words that introduce it ("You may not") as its lead-in, and its place
as a section path ("2 Usage Requirements › (c) › (iii)").

Ids made here are fresh (a digest of the wording); align.py replaces them with the ids of the
previous version's clauses, which is what keeps a clause's identity through renumbering and moves.
Pure: no network, no files, no clock.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from itertools import chain, starmap

from tostrack.models import Block, Clause, Document, with_fields

SEP = " › "
# An introduction to a list, like "You may not:"; longer ones are also clauses of their own.
_LEAD_IN_MAX = 240
_WORD = re.compile(r"\w+", re.UNICODE)

# "(a)", "(ii)", "(3)", "(B)" standing at a word boundary inside a sentence: at the start, or
# after a space, a colon, semicolon, comma or dash (checked by _inline_markers: a pattern that
# opens with its "(" is searched ten times faster than one opening with those lookbehinds).
_INLINE_MARKER = re.compile(r"\((?P<m>[a-z]{1,2}|[ivx]{1,5}|\d{1,2}|[A-Z])\)\s")
_BEFORE_INLINE_MARKER = ":;,—–-"
# CJK numbering inside a sentence: "包括：（1）……；（2）……", "（一）……（二）……", "①……②……".
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CJK_CHAR = re.compile(f"[{_CJK}]")
_HAN_NUMERALS = [
    "一",
    "二",
    "三",
    "四",
    "五",
    "六",
    "七",
    "八",
    "九",
    "十",
    "十一",
    "十二",
    "十三",
    "十四",
    "十五",
    "十六",
    "十七",
    "十八",
    "十九",
    "二十",
]
_CIRCLED = [chr(c) for c in range(ord("①"), ord("⑳") + 1)]
_CJK_INLINE_MARKER = re.compile(
    r"(?:(?<=\s)|(?<=^)|(?<=[:;,：；，。、]))"
    rf"(?:[（(](?P<m>\d{{1,2}}|[{''.join(set(''.join(_HAN_NUMERALS)))}]{{1,3}})[）)]|(?P<c>[①-⑳]))\s*"
)
_ROMAN = [
    "i",
    "ii",
    "iii",
    "iv",
    "v",
    "vi",
    "vii",
    "viii",
    "ix",
    "x",
    "xi",
    "xii",
    "xiii",
    "xiv",
    "xv",
    "xvi",
    "xvii",
    "xviii",
    "xix",
    "xx",
]


def segment_document(document: Document) -> tuple[Clause, ...]:
    """Split a document's blocks into clauses with section paths, heading trails and lead-ins."""
    clauses: list[Clause] = []
    seen_ids: dict[str, int] = {}
    if _is_cjk(document.blocks):
        made = chain.from_iterable(
            _provision_clauses(*provision, True) for provision in _cjk_provisions(document.blocks)
        )
    else:
        made = chain.from_iterable(starmap(_section_clauses, _sections(document.blocks)))
    for clause in made:
        unique = _unique_id(clause.id, seen_ids)
        clauses.append(clause if unique == clause.id else with_fields(clause, id=unique))
    return tuple(clauses)


# A version repeats most provisions of the one before, in the same place: their clauses are
# made once (immutable, so shared by the versions). Sized for a few versions of a long
# document (654 clauses), as memory is counted: 8,192 would cost 6 MB more in a replay.
@lru_cache(maxsize=1 << 12)
def _provision_clauses(
    section: tuple[str, ...],
    heading: tuple[str, ...],
    number: str,
    lead_in: str,
    text: str,
    cjk: bool,
) -> tuple[Clause, ...]:
    """The clauses of one provision, each with the id its wording gives (before _unique_id)."""
    clauses = []
    for item_number, item_lead_in, item_text in _enumeration(text, cjk):
        full_lead = " ".join(p for p in (lead_in, item_lead_in) if p)
        path = [*section, number] if number else list(section)
        if item_number:
            path.append(f"({item_number})")
        number_shown = f"({item_number})" if item_number else number
        full_text = f"{full_lead} {item_text}".strip() if full_lead else item_text
        clauses.append(
            Clause(
                id=clause_id(full_text),
                section=SEP.join(p for p in path if p),
                heading=heading,
                text=item_text,
                number=number_shown,
                lead_in=full_lead,
            )
        )
    return tuple(clauses)


@lru_cache(maxsize=1 << 12)  # a history repeats most clauses from version to version
def clause_id(text: str) -> str:
    """A fresh id from the wording: the same words give the same id in any version."""
    if text.isascii():  # the same words, split in C: \w is [A-Za-z0-9_] there
        words = b" ".join(text.lower().encode("ascii").translate(_ASCII_NON_WORD).split())
    else:
        words = " ".join(_WORD.findall(text.lower())).encode("utf-8")
    return "c" + hashlib.blake2b(words, digest_size=5).hexdigest()


_ASCII_NON_WORD = bytes(b if chr(b).isalnum() or b == ord("_") else ord(" ") for b in range(256))


def _unique_id(base: str, seen: dict[str, int]) -> str:
    count = seen.get(base, 0) + 1
    seen[base] = count
    return base if count == 1 else f"{base}-{count}"


# -- blocks -> provisions ---------------------------------------------------------------------


def _sections(blocks: Sequence[Block]) -> Iterator[tuple[tuple[str, ...], tuple[Block, ...]]]:
    """(heading trail, blocks) of each run of blocks between two section headings.

    A section heading resets all that the walk carries (open list items, a paragraph's lead-in),
    so each run reads alike wherever it stands: its clauses depend on the trail and its own blocks
    alone (see _section_clauses). The document's title is no section: it stays in its run."""
    title_level = _title_level(blocks)
    headings: list[tuple[int, int, str]] = []  # (level, numbering depth, label) of open headings
    trail: tuple[str, ...] = ()  # the labels of the open headings
    start = 0
    for index, block in enumerate(blocks):
        if block.kind != "heading" or (block.level == title_level and not headings):
            continue
        if index > start:
            yield trail, tuple(blocks[start:index])
        start = index + 1
        depth = _numbering_depth(block.marker)
        # "9 Children" closes "2 Collection" even when the page set it one level deeper:
        # numbering says where a section sits more reliably than the markup does.
        while headings and (
            headings[-1][0] >= block.level or (depth and 0 < depth <= headings[-1][1])
        ):
            headings.pop()
        headings.append((block.level, depth, _label(block)))
        trail = tuple(label for _, _, label in headings)
    if start < len(blocks):
        yield trail, tuple(blocks[start:])


# A version repeats most sections of the one before: their clauses are made once. Sized for
# two versions of the longest document (a section per entry): at 2,048 a replay's peak memory
# was 5 MB higher for no more speed.
@lru_cache(maxsize=512)
def _section_clauses(trail: tuple[str, ...], blocks: tuple[Block, ...]) -> tuple[Clause, ...]:
    """The clauses of one section's run of blocks (before _unique_id)."""
    return tuple(
        chain.from_iterable(
            _provision_clauses(*provision, False) for provision in _provisions(trail, blocks)
        )
    )


def _provisions(
    trail: tuple[str, ...], blocks: Sequence[Block]
) -> Iterator[tuple[tuple[str, ...], tuple[str, ...], str, str, str]]:
    """(section path parts, heading trail, number, lead-in, text) for each clause-sized block of
    a section's run (see _sections)."""
    # Open list items by depth: (marker, text if it introduces its children else "").
    items: dict[int, tuple[str, str]] = {}
    paragraph_lead_in = ""
    lead_in_at = -1  # index of the paragraph that introduced the current list
    for index, block in enumerate(blocks):
        next_block = blocks[index + 1] if index + 1 < len(blocks) else None
        if block.kind == "heading":
            continue  # the document's title is not a section
        if block.kind == "list_item":
            depth = max(block.level, 1)
            if depth == 1 and block.starts_list and index != lead_in_at + 1:
                paragraph_lead_in = ""  # a new list: the last one's introduction is over
            for d in [d for d in items if d >= depth]:
                del items[d]
            parents = [items[d] for d in sorted(items) if d < depth]
            section = trail + tuple(m for m, _ in parents if m)
            lead_in = " ".join([paragraph_lead_in, *(t for _, t in parents if t)]).strip()
            introduces = _introduces(block, next_block, depth)
            items[depth] = (block.marker, block.text if introduces else "")
            if introduces and len(block.text) <= _LEAD_IN_MAX:
                continue  # "Restrictions. You may not:" only introduces the items below it
            yield section, trail, block.marker, lead_in, block.text
            continue
        items.clear()
        if block.kind == "paragraph" and _introduces(block, next_block, 0):
            paragraph_lead_in = _last_sentence(block.text)
            lead_in_at = index
            if len(block.text) <= _LEAD_IN_MAX:
                continue
        else:
            paragraph_lead_in = ""
        yield trail, trail, block.marker, "", block.text


_NUMBERED = re.compile(r"^\d{1,3}(?:\.\d{1,3})*$")


def _numbering_depth(marker: str) -> int:
    """2 for "4.1", 1 for "9"; 0 when the marker is not plain decimal numbering."""
    return marker.count(".") + 1 if _NUMBERED.match(marker) else 0


def _title_level(blocks: Sequence[Block]) -> int | None:
    """The level of the document's title: a lone top-level heading that comes before the others."""
    headings = [b for b in blocks if b.kind == "heading"]
    if not headings:
        return None
    top = min(b.level for b in headings)
    lone = sum(1 for b in headings if b.level == top) == 1
    if headings[0].level == top and lone and not headings[0].marker:  # "4. Use" is a section
        return top
    return None


def _label(block: Block) -> str:
    return f"{block.marker} {block.text}" if block.marker else block.text


def _introduces(block: Block, next_block: Block | None, depth: int) -> bool:
    """True when the block ends with a colon and the next block is a list item below it."""
    if (
        next_block is None
        or next_block.kind != "list_item"
        or not block.text.rstrip().endswith((":", "："))
    ):
        return False
    return max(next_block.level, 1) > depth


def _last_sentence(text: str) -> str:
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z])|(?<=[。！？])\s*(?=\S)", text)
    return parts[-1] if parts else text


# -- CJK terms ---------------------------------------------------------------------------------
# Chinese (and Japanese, Korean) terms number their provisions in the text, one per paragraph,
# far more often than in list markup: "5.1.2 ……包括但不限于：" then "（1）……；" "（2）……；".
# The numbering gives the nesting; a paragraph that ends with a colon introduces the items below
# it (its last sentence is their lead-in, as for English lists).


def _is_cjk(blocks: Sequence[Block]) -> bool:
    """True when the document is written in Chinese, Japanese or Korean (a sample of its text)."""
    return _is_cjk_sample("".join(b.text for b in blocks[:80])[:6000])


@lru_cache(maxsize=64)  # the versions of a document mostly open with the same words
def _is_cjk_sample(sample: str) -> bool:
    cjk = len(_CJK_CHAR.findall(sample))
    return cjk > 0 and cjk > 0.3 * sum(map(str.isalpha, sample))  # letters counted if need be


def _style(marker: str) -> tuple[str, int]:
    """The numbering scheme of a marker, and for decimal numbering its depth ("5.1.2" -> 3)."""
    if _NUMBERED.match(marker):
        return "decimal", marker.count(".") + 1
    if marker.startswith("("):
        return (
            "(han)"
            if marker[1:2] in "一二三四五六七八九十"
            else "(n)"
            if marker[1:2].isdigit()
            else "(a)"
        ), 0
    if re.fullmatch(r"[ivxlc]+", marker):
        return "roman", 0
    if marker[:1] in "第제":
        return marker[-1], 0
    return marker[:1] if marker[:1] in _CIRCLED else "other", 0


def _cjk_provisions(
    blocks: Sequence[Block],
) -> Iterator[tuple[tuple[str, ...], tuple[str, ...], str, str, str]]:
    """_provisions for CJK terms: numbered paragraphs nest by their numbering."""
    title_level = _title_level(blocks)
    headings: list[tuple[int, int, str]] = []
    open_items: list[tuple[tuple[str, int], str, str]] = []  # (style, marker, lead-in) open above
    for index, block in enumerate(blocks):
        if block.kind == "heading":
            if block.level == title_level and not headings:
                continue
            depth = _numbering_depth(block.marker)
            while headings and (
                headings[-1][0] >= block.level or (depth and 0 < depth <= headings[-1][1])
            ):
                headings.pop()
            headings.append((block.level, depth, _label(block)))
            open_items.clear()
            continue
        style = _style(block.marker) if block.marker else ("", 0)
        if style[0] == "decimal":
            # "5.3" after the heading "5.2 信息内容规范" is a sibling of that section, not in it
            while headings and 0 < style[1] <= headings[-1][1]:
                headings.pop()
        trail = tuple(label for _, _, label in headings)
        if block.kind == "list_item" or not block.marker:
            if block.kind != "list_item":
                open_items.clear()
            section = trail + tuple(m for _, m, _ in open_items if m)
            lead_in = " ".join(t for _, _, t in open_items if t)
            if block.kind == "paragraph" and block.text.rstrip().endswith((":", "：")):
                open_items.append((("", 0), "", _last_sentence(block.text)))
            yield section, trail, block.marker, lead_in, block.text
            continue
        # A marker of a scheme already open closes it and everything below it; a new scheme
        # (or a deeper decimal) opens one level further in.
        for k, (open_style, _, _) in enumerate(open_items):
            if open_style == style or (
                style[0] == "decimal" and open_style[0] == "decimal" and open_style[1] >= style[1]
            ):
                del open_items[k:]
                break
        section = trail + tuple(m for _, m, _ in open_items if m)
        lead_in = " ".join(t for _, _, t in open_items if t)
        introduces = block.text.rstrip().endswith((":", "："))
        open_items.append((style, block.marker, _last_sentence(block.text) if introduces else ""))
        yield section, trail, block.marker, lead_in, block.text


def _split_cjk_enumeration(text: str) -> list[tuple[str, str, str]]:
    """_split_enumeration for CJK text: "您不得：（1）……；（2）……。" (also English markers)."""
    if "（" not in text and "(" not in text and not any(c in text for c in "①②"):
        return [("", "", text)]
    markers = list(_CJK_INLINE_MARKER.finditer(text))
    if len(markers) < 2:
        return _split_enumeration(text)
    run = _ordered_cjk_run(markers)
    if len(run) < 2:
        return _split_enumeration(text)
    lead_in = text[: run[0].start()].strip()
    if len(_CJK_CHAR.findall(lead_in)) < 2:
        return [("", "", text)]
    return _items(text, run, lead_in)


def _ordered_cjk_run(markers: list[re.Match[str]]) -> list[re.Match[str]]:
    for start, first in enumerate(markers):
        value = first.group("m") or first.group("c")
        sequence = {"1": [str(n) for n in range(1, 40)], "一": _HAN_NUMERALS, "①": _CIRCLED}.get(
            value
        )
        if sequence is None:
            continue
        run = [first]
        for match in markers[start + 1 :]:
            if (
                len(run) < len(sequence)
                and (match.group("m") or match.group("c")) == sequence[len(run)]
            ):
                run.append(match)
        if len(run) >= 2:
            return run
    return []


# -- inline enumerations ----------------------------------------------------------------------


@lru_cache(maxsize=1 << 12)  # the same paragraphs come back in every version of a history
def _enumeration(text: str, cjk: bool) -> tuple[tuple[str, str, str], ...]:
    return tuple(_split_cjk_enumeration(text) if cjk else _split_enumeration(text))


def _split_enumeration(text: str) -> list[tuple[str, str, str]]:
    """[(item number, lead-in, item text)]; [("", "", text)] when the text is not an enumeration."""
    if "(" not in text:
        return [("", "", text)]
    markers = _inline_markers(text)
    if len(markers) < 2:
        return [("", "", text)]
    run = _ordered_run(markers)
    if len(run) < 2:
        return [("", "", text)]
    lead_in = text[: run[0].start()].strip()
    if len(_WORD.findall(lead_in)) < 2:
        return [("", "", text)]
    return _items(text, run, lead_in)


def _inline_markers(text: str) -> list[re.Match[str]]:
    # A match holds one "(", its first character, so dropping one hides no other.
    return [
        match
        for match in _INLINE_MARKER.finditer(text)
        if (at := match.start()) == 0
        or text[at - 1].isspace()
        or text[at - 1] in _BEFORE_INLINE_MARKER
    ]


def _items(text: str, run: list[re.Match[str]], lead_in: str) -> list[tuple[str, str, str]]:
    """The items between consecutive markers of `run`; the whole text if one is empty."""
    out = []
    for i, match in enumerate(run):
        end = run[i + 1].start() if i + 1 < len(run) else len(text)
        item = text[match.end() : end].strip()
        if not item:
            return [("", "", text)]
        out.append((match.group("m") or _group(match, "c"), lead_in, item))
    return out


def _group(match: re.Match[str], name: str) -> str:
    return (match.group(name) or "") if name in match.re.groupindex else ""


def _ordered_run(markers: list[re.Match[str]]) -> list[re.Match[str]]:
    """The longest run of markers that counts up from the first item: (a)(b)(c), (i)(ii), (1)(2)."""
    for start, first in enumerate(markers):
        sequence = _sequence_for(first.group("m"))
        if sequence is None:
            continue
        run = [first]
        for match in markers[start + 1 :]:
            if len(run) < len(sequence) and match.group("m") == sequence[len(run)]:
                run.append(match)
        if len(run) >= 2:
            return run
    return []


def _sequence_for(first: str) -> list[str] | None:
    if first == "a":
        return [chr(c) for c in range(ord("a"), ord("z") + 1)]
    if first == "A":
        return [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    if first == "i":
        return _ROMAN
    if first == "1":
        return [str(n) for n in range(1, 40)]
    return None
