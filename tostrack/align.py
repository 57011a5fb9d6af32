"""Align two versions' clauses: stable clause ids, change kinds, word-level redline.

How (most clauses never change between versions, so the cheap path comes first):

1. Each clause gets a key: the words of `normalise(full_text)`, casefolded, so identical wording
   gives an identical key whatever the formatting.
2. difflib.SequenceMatcher over the two key sequences gives the in-order backbone of clauses
   whose wording did not change.
3. Identical keys left over on both sides are the same clause in another place.
4. What is still unaligned is compared by word-level similarity (rapidfuzz's Indel ratio over
   the words, each encoded as one character): one old to one new (modified), one old to several
   consecutive new whose concatenation is closer to it than any single one (split), several
   consecutive old to one new (merged). Best score first, greedily. A pair in the same gap
   between clauses that kept their place needs less similarity (50) than a pair from anywhere
   in the document (65); two clauses opening with the same run-in title ("Your Content."),
   found once in each version, need only 30.
5. Redrafts: what is left over in the same gap under the same nearest heading is one provision
   rewritten more often than not (a lead-in and its items redrafted), so a pair there needs only
   40, or 25 when the two share a topic label; two enumerated items are compared on their own
   words, without their lead-ins. Then a lead-in paragraph left over goes with the items it
   introduces: with the lead-in paragraph of their new items, or, when the other version runs
   the enumeration inline ("... when: (1) ..., or (2) ..."), merged into (split from) the first
   item. A redrafted provision reads as rewritten, not as removals plus unrelated additions.
6. Place: the largest set of aligned pairs that keeps its relative order stays where it was
   (longest increasing subsequence; on ties, clauses that kept their wording, then their
   heading, stay); every other aligned clause moved.

Ids: a new clause inherits the id of the old clause it is aligned with (the first old clause of
a merge; the first new clause of a split inherits the old id). Any other new clause keeps the id
segmentation gave it unless that id is already taken in this version or belonged to an old
clause, in which case it gets a fresh one. No id is used twice within a version.

Substantive or cosmetic (cosmetic changes are recorded, never alerted on):
- `normalise` folds what is never a change of wording: Unicode compatibility forms, whitespace,
  invisible characters, quote and dash styles, HTML entities and tags, Markdown markup remnants
  (*, _, `, #, ~~, backslash escapes, blockquote marks), link targets (the link text stays), URL
  query strings and fragments (tracking parameters), and a leading list marker or number.
  Letter case is kept in clause text: rewriting a clause in capitals changes how conspicuous
  it is, which a disclaimer's validity can depend on. Headings are compared casefolded and
  without their numbers, so heading style and renumbering alone are cosmetic.
- modified: cosmetic when old and new normalise to the same text (e.g. renumbering, markup),
  also once the old text's cross-references ("Section 4.1") are rewritten to the new numbering
  that the aligned clauses themselves show (4.1 became 7.1).
- moved: a clause whose wording did not change but whose place among the other clauses did is
  reported as "moved" and is NOT substantive, unless its heading trail (numbers and case
  ignored) changed too: then it is substantive, because a provision read under another heading
  can mean something else. Headings are not clauses: a clause that kept its wording and its
  place while the heading above it changed is a cosmetic "modified" (re-extractions re-nest and
  restyle headings far more often than providers rename them; a renamed heading usually comes
  with reworded clauses, which are reported).
  A reworded clause that also moved is kind "modified" with moved=True (always substantive).
- split / merged: cosmetic when the words, joined, are the same (a paragraph reflowed).
- added / removed: cosmetic only when the clause has no word at all (e.g. a stray "…" line),
  when it is a heading of the other version written as a paragraph (heading style), or when it
  is page furniture ("Select language", "close") or a bare date stamp ("Dated: May 25, 2018":
  dates are document metadata, see extract).

Changes come in new-document order; a removed clause sits where it was, right after the change
or clause that preceded it in the old version. Labels stay empty: classify fills them.
"""

from __future__ import annotations

import hashlib
import html
import re
import sys
import unicodedata
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from difflib import SequenceMatcher
from functools import lru_cache
from itertools import chain, pairwise

import numpy
from rapidfuzz import fuzz, process
from rapidfuzz.distance import Indel

from tostrack.models import Change, Clause, Diff

__all__ = ["diff_clauses", "normalise", "word_redline"]

# Similarity (0-100, word-level) needed to call two clauses the same provision.
LOCAL_THRESHOLD = 50.0  # both in the same gap between clauses that kept their place
GLOBAL_THRESHOLD = 65.0  # anywhere else in the document
TITLED_THRESHOLD = 30.0  # both open with the same run-in title ("Your Content."), unique in each
REDRAFT_THRESHOLD = 40.0  # left over in the same gap under the same heading: a redraft
REDRAFT_LABELLED = 25.0  # ... that also shares a topic label with the old clause
GROUP_THRESHOLD = 70.0  # split / merged: the joined clauses against the single one
GROUP_MARGIN = 5.0  # ... and this much better than the best single clause
MAX_GROUP = 8  # at most this many clauses in a split or merge
_SEED_CUTOFF = 25.0  # below this a clause is not even considered as one part of a split
_EXHAUSTIVE = 40_000  # compare every free pair up to this many; beyond, only likely ones
_SIGNATURE = 6  # ... those sharing one of a clause's rarest words
_REDRAFT_PAIRS = 2_500  # a section with more leftover pairs than this was rewritten wholesale

# -- normalise --------------------------------------------------------------------------------

_CHARS = str.maketrans(
    {
        # Single or double, straight or curly: a quote style, never wording.
        **dict.fromkeys('‘’‚‛′ʼ"“”„‟″«»', "'"),
        **dict.fromkeys("‐‑‒–—―−⁃", "-"),
        **dict.fromkeys("\u00ad\u200b\u200c\u200d\u2060\ufeff", ""),
        # Full-width punctuation NFKC leaves alone ("，：；（）" it folds already): a typesetting
        # choice in CJK text, never wording. Ideographic spaces are folded with the others.
        **dict.fromkeys("「」『』〝〞〟", "'"),
        "。": ".",
        "｡": ".",
        "【": "[",
        "】": "]",
        "〔": "(",
        "〕": ")",
        "〖": "[",
        "〗": "]",
    }
)
# The characters _CHARS folds, found by one pattern: str.translate would look up every one.
_FOLDED = re.compile("[" + re.escape("".join(map(chr, _CHARS))) + "]")


def _fold(match: re.Match[str]) -> str:
    return _CHARS[ord(match.group())]


_IMAGE = re.compile(r"!\[([^\]]*)\]\((?:[^()]|\([^()]*\))*\)")
_LINK = re.compile(r"\[([^\]]*)\]\((?:[^()]|\([^()]*\))*\)")
_REF_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^<>\s]+)>")
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
_URL = re.compile(r"(https?://)([^\s?#)\]>\"']+)[^\s)\]>\"']*", re.IGNORECASE)
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_MARKUP = re.compile(r"[*_`#]+|~~")
_QUOTE_MARK = re.compile(r"^(?:>\s*)+")
_DASHES = re.compile(r"\s*-+\s*")
# No space before a closing mark, nor after an opening one: "( see below ) ." is "(see below)."
_CLOSING, _OPENING = ",.;:!?)]}", "([{"
_MARKER = re.compile(
    r"^(?:"
    r"[-*+•·▪◦‣○●■□►]\s+"  # bullets
    r"|\((?:\d{1,3}|[A-Za-z]{1,2}|[ivxlcdmIVXLCDM]{1,6})\)\s*"  # (1) (a) (iv)
    r"|(?:\d{1,3}|[A-Za-z]|[ivxlcdmIVXLCDM]{1,6})\)\s+"  # 1) a) iv)
    r"|\d{1,3}(?:\.\d{1,3})+\.?\s+(?=[A-Z('])"  # 1.2 Title, 1.2. Title
    r"|[A-Z]\.\d{1,3}(?:\.(?:\d{1,3}|[a-z]))*\.?\s+"  # K.3. Title, I.2.a. Text
    r"|(?:\d{1,3}|[A-Za-z]|[ivxlcdmIVXLCDM]{1,6})\.\s+"  # 1. a. iv.
    r"|(?:section|article|clause|part|chapter|schedule|annex|appendix|§)\s*"
    r"\d{1,3}(?:\.\d{1,3})*[A-Za-z]?\s*(?:[.:)]|-\s)\s*"  # Section 3. / Article 5 - / § 3:
    r")",
    re.IGNORECASE,
)
# Headings: any leading token that is a number, however written ("3", "1.2", "IV", "A.").
_HEADING_NUMBER = re.compile(
    r"^(?:(?:section|article|clause|part|chapter|schedule|annex|appendix|§)\s*)?"
    r"(?:\(?(?:\d+(?:\.\d+)*|[a-z]\.\d+(?:\.\d+)*)[.):]?|\(?(?:[ivxlcdm]{1,6}|[a-z])[.):])"
    r"(?:\s+|$)",
    re.IGNORECASE,
)
_HAN_KANA = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Alignment compares words; Chinese and Japanese have no spaces between words, so there each Han
# or kana character counts as one (as in the redline): "随时停止" and "随时暂停" share three.
_WORD = re.compile(rf"[{_HAN_KANA}]|[^\W{_HAN_KANA}]+")
# _WORD where there can be no Han or kana (ASCII text), \w spelled out: a quicker pattern
_ASCII_WORD = re.compile(r"[A-Za-z0-9_]+")


def _word_list(text: str) -> list[str]:
    """_WORD.findall(text)."""
    return (_ASCII_WORD if text.isascii() else _WORD).findall(text)


_QUOTES = re.compile(r"'{2,}")
# What a site says about a link, not what the terms say.
_ANNOTATION = re.compile(
    r"\s*[(\[]?\b(?:opens?|opening)\s+in\s+(?:a\s+)?new\s+(?:window|tab)\b[)\]]?"
    r"|\s*[(\[](?:link\s+is\s+external|external\s+link)[)\]]",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Cloudflare's e-mail obfuscation, seen by a crawler without JavaScript instead of the address.
_HIDDEN_EMAIL = "[email protected]"


def _strip_url(match: re.Match[str]) -> str:
    # Keep host and path (a link to another page is wording); drop the scheme (http/https),
    # "www.", the query and the fragment, which is where tracking ids live.
    host, _, path = match.group(2).partition("/")
    host = host.lower().removeprefix("www.")
    return f"{host}/{path}".rstrip("/.,;:")


# Caches sized for a document's history (a few thousand distinct clauses), not for ever: a
# long-running process must not grow without bound.
@lru_cache(maxsize=1 << 14)  # replays see the same clause texts again and again
def normalise(text: str) -> str:
    """The wording of `text`, with every formatting-only difference folded (see module doc)."""
    if "&" in text:
        text = html.unescape(text)
    if not text.isascii():  # NFKC changes no ASCII character
        text = unicodedata.normalize("NFKC", text)
    # The only ASCII character _CHARS folds is '"'.
    text = text.replace('"', "'") if text.isascii() else _FOLDED.sub(_fold, text)
    if "''" in text:
        text = _QUOTES.sub("'", text)
    if "new" in text or "external" in text:
        text = _ANNOTATION.sub("", text)
    if "](" in text or "][" in text:
        text = _IMAGE.sub(r"\1", text)
        text = _LINK.sub(r"\1", text)
        text = _REF_LINK.sub(r"\1", text)
    if "<" in text:
        text = _AUTOLINK.sub(r"\1", text)
        text = _TAG.sub(" ", text)
    if "://" in text:
        text = _URL.sub(_strip_url, text)
    if "\\" in text:
        text = _ESCAPE.sub(r"\1", text)
    if "*" in text or "_" in text or "`" in text or "#" in text or "~~" in text:
        text = _MARKUP.sub("", text)
    text = " ".join(text.split())  # from here on, the only spaces are single " "
    if text.startswith(">"):
        text = _QUOTE_MARK.sub("", text)
    for _ in range(3):  # "1. (a) text" carries two markers
        stripped = _MARKER.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    # Spaces are single here, so a lone "-" between letters is the one thing _DASHES would
    # leave as it is: look for a run of dashes or a space beside one first.
    if "--" in text or " -" in text or "- " in text:
        text = _DASHES.sub("-", text)
    # Spaces are single by now, so a replace per mark drops each one there is.
    for mark in _CLOSING:
        if " " + mark in text:
            text = text.replace(" " + mark, mark)
    for mark in _OPENING:
        if mark + " " in text:
            text = text.replace(mark + " ", mark)
    return text.strip()


@lru_cache(maxsize=1 << 12)
def _heading_part(heading: str) -> str:
    text = normalise(heading)
    for _ in range(3):
        stripped = _HEADING_NUMBER.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    return " ".join(_word_list(text.casefold()))


def _heading_key(clause: Clause) -> str:
    """The nearest heading above the clause as a reader hears it: no number, case or markup.

    Only the nearest: a re-extraction that wraps the document in one more heading level, or
    renames a chapter, does not put every clause below it somewhere else.
    """
    for heading in reversed(clause.heading):
        part = _heading_part(heading)
        if part:
            return part
    return ""


def _has_words(text: str) -> bool:
    return _WORD.search(normalise(text)) is not None


@lru_cache(maxsize=1 << 14)
def _wording(text: str, mask_emails: bool = False) -> str:
    """normalise(text) without whitespace: a space more or less ("LICENSORSBE", ".**You") is
    how a page was rendered, never a change of wording."""
    text = normalise(text)
    if mask_emails:
        text = _EMAIL.sub(_HIDDEN_EMAIL, text)
    return "".join(text.split())


def _parts(clauses: Sequence[Clause]) -> tuple[str, ...]:
    # Lead-in and text apart, so a list marker at the start of the text is folded too.
    return tuple(part for c in clauses for part in (c.lead_in, c.text) if part)


def _same_wording(old: tuple[str, ...], new: tuple[str, ...]) -> bool:
    if "".join(map(_wording, old)) == "".join(map(_wording, new)):
        return True
    hidden = "".join(_HIDDEN_EMAIL.split())
    if any(hidden in _wording(p) for p in old + new):
        # An address on one side, Cloudflare's mask on the other: the same wording.
        return "".join(_wording(p, True) for p in old) == "".join(_wording(p, True) for p in new)
    return False


# -- word redline -----------------------------------------------------------------------------

# Words, except in Chinese and Japanese, which have no spaces between words: there every Han or
# kana character is a token, so "未满18周岁" -> "未满16周岁" marks "18" -> "16", not the phrase.
# (Korean puts spaces between words, so its words stay whole.)
_TOKEN = re.compile(rf"[{_HAN_KANA}]|[^\W{_HAN_KANA}]+|\s+|[^\w\s]")
# _TOKEN for ASCII text, \w and \s spelled out (\s also matches \x1c-\x1f): quicker
_ASCII_TOKEN = re.compile(
    r"[A-Za-z0-9_]+|[ \t\n\r\x0b\x0c\x1c-\x1f]+|[^A-Za-z0-9_ \t\n\r\x0b\x0c\x1c-\x1f]"
)


@lru_cache(maxsize=256)  # a clause changed in one pair is often changed in the next: 2 in 5 hits
def _tokens(text: str) -> tuple[str, ...]:
    return tuple((_ASCII_TOKEN if text.isascii() else _TOKEN).findall(text))


def word_redline(old: str, new: str) -> tuple[tuple[str, str], ...]:
    """Word-level ops ("equal" | "delete" | "insert", text) turning `old` into `new`.

    Joining the equal and insert texts in order gives exactly `new`; joining the equal and
    delete texts gives exactly `old`. Deletes come before inserts within a changed run.
    """
    a, b = _tokens(old), _tokens(new)
    raw: list[tuple[str, str, str]] = []  # (kind, old text, new text)
    # rapidfuzz's LCS opcodes: the same answer difflib would mostly give, far faster on long text.
    for op in Indel.opcodes(a, b):
        if op.tag == "equal":
            raw.append(("equal", "".join(a[op.src_start : op.src_end]), ""))
        else:
            raw.append(
                (
                    "change",
                    "".join(a[op.src_start : op.src_end]),
                    "".join(b[op.dest_start : op.dest_end]),
                )
            )
    # A lone space kept between two changed words reads worse than one changed phrase.
    for k in range(1, len(raw) - 1):
        kind, text, _ = raw[k]
        if kind == "equal" and text.isspace() and raw[k - 1][0] == raw[k + 1][0] == "change":
            raw[k] = ("change", text, text)
    ops: list[tuple[str, str]] = []
    deleted = inserted = ""
    for kind, old_text, new_text in raw:
        if kind == "change":
            deleted += old_text
            inserted += new_text
            continue
        if deleted:
            ops.append(("delete", deleted))
        if inserted:
            ops.append(("insert", inserted))
        deleted = inserted = ""
        if old_text:
            ops.append(("equal", old_text))
    if deleted:
        ops.append(("delete", deleted))
    if inserted:
        ops.append(("insert", inserted))
    return tuple(ops)


# -- alignment --------------------------------------------------------------------------------


@lru_cache(maxsize=1 << 13)
def _words(text: str) -> tuple[str, ...]:
    # Interned: the cache holds each common word once, not once per clause it is in.
    return tuple(map(sys.intern, _word_list(normalise(text).casefold())))


def _clause_words(clause: Clause) -> tuple[str, ...]:
    return _words(clause.lead_in) + _words(clause.text) if clause.lead_in else _words(clause.text)


def _key(clause: Clause) -> str:
    """Identical for two clauses with the same words in the same order, whatever the format."""
    return _wording_key(clause.lead_in, clause.text)


@lru_cache(maxsize=1 << 12)  # every clause of both versions is keyed, most seen before
def _wording_key(lead_in: str, text: str) -> str:
    words = _words(lead_in) + _words(text) if lead_in else _words(text)
    return " ".join(words) if words else "\x00" + normalise(f"{lead_in} {text}".strip())


class _Vocabulary:
    """Words as single characters, so rapidfuzz compares word sequences at string speed."""

    def __init__(self) -> None:
        self.codes: dict[str, str] = {}

    def encode_all(self, clauses: Sequence[Clause]) -> list[str]:
        """The code of each clause, its lead-in's words and then its text's."""
        words = [_clause_words(c) for c in clauses]
        self._add(words)
        return [self._join(w, c.full_text) for w, c in zip(words, clauses, strict=True)]

    def encode_text(self, text: str) -> str:
        words = _words(text)
        self._add((words,))
        return self._join(words, text)

    def _add(self, sequences: Sequence[tuple[str, ...]]) -> None:
        # Codes in order of first use, the new words of all the sequences at once (in C).
        codes = self.codes
        new = [w for w in dict.fromkeys(chain.from_iterable(sequences)) if w not in codes]
        codes.update(zip(new, _code_points(len(codes), len(new)), strict=True))

    def _join(self, words: tuple[str, ...], text: str) -> str:
        if not words:  # no wording: only identical punctuation matches it
            return "\x00" + normalise(text)
        return "".join(map(self.codes.__getitem__, words))


def _code(n: int) -> str:
    """The code of a vocabulary's word number n: 0x100 on, the surrogate range skipped."""
    point = 0x100 + n
    return chr(point + 0x800 if point >= 0xD800 else point)


def _code_points(start: int, count: int) -> str:
    """The codes of words number start .. start + count - 1."""
    table = _code_table()
    if start + count <= len(table):
        return table[start : start + count]
    return "".join(map(_code, range(start, start + count)))


@lru_cache(maxsize=1)
def _code_table() -> str:
    return "".join(map(_code, range(1 << 16)))  # enough for the words of any two versions


def _keep_order(pairs: Sequence[tuple[int, int, float]]) -> set[int]:
    """Positions in `pairs` (old index, new index, weight) of the heaviest set of pairs whose
    old and new indices increase together: the clauses that kept their place.

    Heaviest longest-increasing-subsequence with a Fenwick tree of prefix maxima: O(n log n).
    """
    if not pairs:
        return set()
    size = max(i for i, _, _ in pairs) + 2
    tree_total = [0.0] * (size + 1)
    tree_at = [-1] * (size + 1)
    total = [0.0] * len(pairs)
    parent = [-1] * len(pairs)
    for k in sorted(range(len(pairs)), key=lambda k: pairs[k][1]):
        i, _, weight = pairs[k]
        best, at, x = 0.0, -1, i  # best chain ending at an old index below i
        while x > 0:
            if tree_total[x] > best:
                best, at = tree_total[x], tree_at[x]
            x -= x & -x
        total[k], parent[k] = best + weight, at
        x = i + 1
        while x <= size:
            if total[k] > tree_total[x]:
                tree_total[x], tree_at[x] = total[k], k
            x += x & -x
    keep: set[int] = set()
    k = max(range(len(pairs)), key=total.__getitem__)
    while k >= 0:
        keep.add(k)
        k = parent[k]
    return keep


def _runs(seed: int, free: set[int], limit: int) -> list[int]:
    """Consecutive free indices around `seed`, in order (candidates for one side of a group)."""
    start = end = seed
    while start - 1 in free and seed - (start - 1) < limit:
        start -= 1
    while end + 1 in free and (end + 1) - start < limit:
        end += 1
    return list(range(start, end + 1))


def _grow(
    query: str, seed: int, window: list[int], keys: dict[int, str]
) -> tuple[float, list[int]]:
    """Grow a run of consecutive clauses from `seed` while their joined text gets closer."""
    lo = hi = window.index(seed)
    best = fuzz.ratio(query, keys[seed])
    while True:
        options = []
        if lo > 0:
            options.append((lo - 1, hi))
        if hi < len(window) - 1:
            options.append((lo, hi + 1))
        scored = [
            (fuzz.ratio(query, "".join(keys[i] for i in window[a : b + 1])), a, b)
            for a, b in options
        ]
        if not scored:
            break
        score, a, b = max(scored)
        if score <= best:
            break
        best, lo, hi = score, a, b
    return best, window[lo : hi + 1]


class _Aligner:
    def __init__(self, old: tuple[Clause, ...], new: tuple[Clause, ...]) -> None:
        self.old, self.new = old, new
        self.old_keys = [_wording_key(c.lead_in, c.text) for c in old]  # _key, inlined
        self.new_keys = [_wording_key(c.lead_in, c.text) for c in new]
        # Word-per-character codes for similarity, made only for clauses still unaligned.
        self.old_codes: dict[int, str] = {}
        self.new_codes: dict[int, str] = {}
        self.pairs: dict[int, int] = {}  # old index -> new index, one to one
        self.splits: list[tuple[int, tuple[int, ...]]] = []
        self.merges: list[tuple[tuple[int, ...], int]] = []
        # Gap between two clauses that kept their place, per index: a pair in the same gap on
        # both sides is "local" and needs less similarity to be believed.
        self.old_gap: dict[int, int] = {}
        self.new_gap: dict[int, int] = {}

    def align(self) -> None:
        self._backbone()
        self._same_text_elsewhere()
        self._prefer_same_place()
        self._find_gaps()
        self._similar()
        self._redrafted()
        self._lead_ins()

    def _find_gaps(self) -> None:
        stay = sorted(self.in_place())
        old_anchors = stay
        new_anchors = sorted(self.pairs[i] for i in stay)
        old_free, new_free = self._free()
        self.old_gap = {i: bisect_left(old_anchors, i) for i in old_free}
        self.new_gap = {j: bisect_left(new_anchors, j) for j in new_free}

    def _backbone(self) -> None:
        if self.old_keys == self.new_keys:
            self.pairs = {i: i for i in range(len(self.old))}
            return
        matcher = SequenceMatcher(None, self.old_keys, self.new_keys, autojunk=False)
        for i, j, size in matcher.get_matching_blocks():
            for k in range(size):
                self.pairs[i + k] = j + k

    def _free(self) -> tuple[list[int], list[int]]:
        taken_new = set(self.pairs.values())
        taken_new.update(j for _, js in self.splits for j in js)
        taken_new.update(j for _, j in self.merges)
        taken_old = set(self.pairs)
        taken_old.update(i for i, _ in self.splits)
        taken_old.update(i for is_, _ in self.merges for i in is_)
        old_free = [i for i in range(len(self.old)) if i not in taken_old]
        new_free = [j for j in range(len(self.new)) if j not in taken_new]
        return old_free, new_free

    def _same_text_elsewhere(self) -> None:
        old_free, new_free = self._free()
        if not old_free or not new_free:
            return
        waiting: dict[str, list[int]] = {}
        for j in reversed(new_free):
            waiting.setdefault(self.new_keys[j], []).append(j)
        for i in old_free:
            candidates = waiting.get(self.old_keys[i])
            if candidates:
                self.pairs[i] = candidates.pop()

    def _scores(self, old_free: list[int], new_free: list[int]) -> dict[tuple[int, int], float]:
        """Word-level similarity of free old/new pairs worth a look (at least _SEED_CUTOFF)."""
        scores: dict[tuple[int, int], float] = {}
        if len(old_free) * len(new_free) <= _EXHAUSTIVE:
            # One call for the whole matrix; float64, so each score is fuzz.ratio's own.
            matrix = process.cdist(
                [self.old_codes[i] for i in old_free],
                [self.new_codes[j] for j in new_free],
                scorer=fuzz.ratio,
                score_cutoff=_SEED_CUTOFF,
                dtype=numpy.float64,
            )
            rows, cols = matrix.nonzero()  # below the cutoff scores 0
            for row, col, score in zip(
                rows.tolist(), cols.tolist(), matrix[rows, cols].tolist(), strict=True
            ):
                scores[(old_free[row], new_free[col])] = score
            return scores
        # Many clauses changed at once: only compare clauses that share one of their rarest
        # words. A clause still half the same keeps some of them; unrelated ones rarely do.
        old_words = {i: set(self.old_codes[i]) for i in old_free}
        new_words = {j: set(self.new_codes[j]) for j in new_free}
        frequency: dict[str, int] = {}
        for words in (*old_words.values(), *new_words.values()):
            for w in words:
                frequency[w] = frequency.get(w, 0) + 1
        old_index: dict[str, list[int]] = {}
        new_index: dict[str, list[int]] = {}
        for i, words in old_words.items():
            for w in words:
                old_index.setdefault(w, []).append(i)
        for j, words in new_words.items():
            for w in words:
                new_index.setdefault(w, []).append(j)

        def rarest(words: set[str]) -> list[str]:
            return sorted(words, key=lambda w: (frequency[w], w))[:_SIGNATURE]

        pairs: set[tuple[int, int]] = set()
        for i, words in old_words.items():
            pairs.update((i, j) for w in rarest(words) for j in new_index.get(w, ()))
        for j, words in new_words.items():
            pairs.update((i, j) for w in rarest(words) for i in old_index.get(w, ()))
        for i, j in pairs:
            score = fuzz.ratio(self.old_codes[i], self.new_codes[j], score_cutoff=_SEED_CUTOFF)
            if score:
                scores[(i, j)] = score
        return scores

    def _prefer_same_place(self) -> None:
        """Among clauses with the same wording, pair the ones that also share number and heading.

        ("Definitions." under two headings: each stays with its own heading, whatever the order
        and whichever of them was removed.) The rest pair up in document order.
        """
        # Only wording found on both sides and twice on one of them: counted first (in C).
        old_count, new_count = Counter(self.old_keys), Counter(self.new_keys)
        repeated = [k for k, n in old_count.items() if k in new_count and n + new_count[k] > 2]
        if not repeated:
            return
        old_groups: dict[str, list[int]] = {key: [] for key in repeated}
        new_groups: dict[str, list[int]] = {key: [] for key in repeated}
        for i, key in enumerate(self.old_keys):
            if key in old_groups:
                old_groups[key].append(i)
        for j, key in enumerate(self.new_keys):
            if key in new_groups:
                new_groups[key].append(j)
        for key, olds in old_groups.items():
            news = new_groups[key]
            for i in olds:
                self.pairs.pop(i, None)
            waiting: dict[tuple[object, ...], list[int]] = {}
            for j in reversed(news):
                waiting.setdefault(_place(self.new[j]), []).append(j)
            rest_old, taken = [], set()
            for i in olds:
                same = waiting.get(_place(self.old[i]))
                if same:
                    self.pairs[i] = same.pop()
                    taken.add(self.pairs[i])
                else:
                    rest_old.append(i)
            for i, j in zip(rest_old, [j for j in news if j not in taken]):
                self.pairs[i] = j

    def _similar(self) -> None:
        old_free, new_free = self._free()
        if not old_free or not new_free:
            return
        free = [self.old[i] for i in old_free] + [self.new[j] for j in new_free]
        codes = _Vocabulary().encode_all(free)
        self.old_codes = dict(zip(old_free, codes[: len(old_free)], strict=True))
        self.new_codes = dict(zip(new_free, codes[len(old_free) :], strict=True))
        scores = self._scores(old_free, new_free)
        # (score, local, olds, news)
        candidates: list[tuple[float, bool, tuple[int, ...], tuple[int, ...]]] = []
        best_new: dict[int, tuple[float, int]] = {}  # old -> (score, new), best first
        best_old: dict[int, tuple[float, int]] = {}
        old_titles, new_titles = _unique_titles(self.old), _unique_titles(self.new)
        for (i, j), score in scores.items():
            local = self.old_gap.get(i, -1) == self.new_gap.get(j, -2)
            titled = i in old_titles and old_titles[i] == new_titles.get(j)
            if score >= (
                TITLED_THRESHOLD if titled else LOCAL_THRESHOLD if local else GLOBAL_THRESHOLD
            ):
                candidates.append((score, local, (i,), (j,)))
            # The best partner on each side seeds a split or merge (earliest on equal scores).
            if i not in best_new or (score, -j) > (best_new[i][0], -best_new[i][1]):
                best_new[i] = (score, j)
            if j not in best_old or (score, -i) > (best_old[j][0], -best_old[j][1]):
                best_old[j] = (score, i)
        old_set, new_set = set(old_free), set(new_free)
        for i, (best_single, seed) in best_new.items():
            window = _runs(seed, new_set, MAX_GROUP)
            if len(window) > 1:
                score, run = _grow(self.old_codes[i], seed, window, self.new_codes)
                if len(run) > 1 and score >= max(GROUP_THRESHOLD, best_single + GROUP_MARGIN):
                    candidates.append((score, True, (i,), tuple(run)))
        for j, (best_single, seed) in best_old.items():
            window = _runs(seed, old_set, MAX_GROUP)
            if len(window) > 1:
                score, run = _grow(self.new_codes[j], seed, window, self.old_codes)
                if len(run) > 1 and score >= max(GROUP_THRESHOLD, best_single + GROUP_MARGIN):
                    candidates.append((score, True, tuple(run), (j,)))
        # Best first; on equal scores prefer the nearby pair, then document order.
        candidates.sort(key=lambda c: (-c[0], not c[1], c[3][0], c[2][0]))
        for _score, _local, olds, news in candidates:
            if not all(i in old_set for i in olds) or not all(j in new_set for j in news):
                continue
            old_set.difference_update(olds)
            new_set.difference_update(news)
            if len(olds) == 1 and len(news) == 1:
                self.pairs[olds[0]] = news[0]
            elif len(olds) == 1:
                self.splits.append((olds[0], news))
            else:
                self.merges.append((olds, news[0]))

    def _redrafted(self) -> None:
        """Pair what is still left over within one section: a provision redrafted in place.

        A removed and an added clause in the same gap between clauses that kept their place,
        under the same nearest heading, are most likely one provision rewritten (a lead-in and
        its items redrafted), so they need less similarity (REDRAFT_THRESHOLD, or
        REDRAFT_LABELLED when they share a topic label). Two items of enumerations are compared
        on their own words: a rewritten lead-in says nothing about which item is which. Two
        clauses opening with run-in titles that share no word ("By Us." / "Mitigation.") are
        never paired here.
        """
        old_free, new_free = self._free()
        if not old_free or not new_free:
            return
        groups: dict[tuple[int, str], tuple[list[int], list[int]]] = {}
        for i in old_free:
            key = (self.old_gap.get(i, -1), _heading_key(self.old[i]))
            groups.setdefault(key, ([], []))[0].append(i)
        for j in new_free:
            group = groups.get((self.new_gap.get(j, -2), _heading_key(self.new[j])))
            if group is not None:
                group[1].append(j)
        # Whole clauses reuse _similar's codes; items' own words get a vocabulary of their own.
        items = _Vocabulary()
        item_codes: dict[tuple[int, int], str] = {}
        titles: dict[tuple[int, int], frozenset[str]] = {}

        def item_code(side: int, k: int) -> str:
            found = item_codes.get((side, k))
            if found is None:
                found = item_codes[(side, k)] = items.encode_text(
                    (self.old, self.new)[side][k].text
                )
            return found

        def title(side: int, k: int) -> frozenset[str]:
            found = titles.get((side, k))
            if found is None:
                found = titles[(side, k)] = _title_words((self.old, self.new)[side][k])
            return found

        candidates: list[tuple[float, int, int]] = []
        for olds, news in groups.values():
            if not news or len(olds) * len(news) > _REDRAFT_PAIRS:
                continue
            for i in olds:
                a = self.old[i]
                for j in news:
                    b = self.new[j]
                    first, second = title(0, i), title(1, j)
                    if first and second and first.isdisjoint(second):
                        continue  # "By Us." / "Mitigation.": two provisions
                    if a.lead_in and b.lead_in:
                        score = fuzz.ratio(item_code(0, i), item_code(1, j))
                    elif i in self.old_codes and j in self.new_codes:
                        score = fuzz.ratio(self.old_codes[i], self.new_codes[j])
                    else:
                        continue
                    shared = a.labels and not set(a.labels).isdisjoint(b.labels)
                    if score >= (REDRAFT_LABELLED if shared else REDRAFT_THRESHOLD):
                        candidates.append((score, i, j))
        candidates.sort(key=lambda c: (-c[0], c[2], c[1]))
        taken_old: set[int] = set()
        taken_new: set[int] = set()
        for _score, i, j in candidates:
            if i not in taken_old and j not in taken_new:
                taken_old.add(i)
                taken_new.add(j)
                self.pairs[i] = j

    def _lead_ins(self) -> None:
        """A lead-in paragraph left over goes with the items it introduces.

        Items paired across versions whose lead-ins are paragraphs on both sides: the two
        lead-ins are one provision (same place), however much they were rewritten. A lead-in
        paragraph on one side only (the other version runs the enumeration inline, "... when:
        (1) ..., or (2) ..."): it merges into, or splits from, the first item.
        """
        old_free, new_free = self._free()
        if not old_free and not new_free:
            return
        old_free_set, new_free_set = set(old_free), set(new_free)
        by_new = {j: i for i, j in self.pairs.items()}
        for p in old_free:
            q = p + 1
            j = self.pairs.get(q)
            if j is None or not _introduces(self.old[p], self.old[q]):
                continue
            if _heading_key(self.old[p]) != _heading_key(self.new[j]):
                continue
            if j - 1 in new_free_set and _introduces(self.new[j - 1], self.new[j]):
                self.pairs[p] = j - 1
                new_free_set.discard(j - 1)
            elif self.new[j].lead_in and not (j > 0 and _introduces(self.new[j - 1], self.new[j])):
                del self.pairs[q]
                self.merges.append(((p, q), j))
            else:
                continue
            old_free_set.discard(p)
        for r in new_free:
            if r not in new_free_set:
                continue
            s = r + 1
            i = by_new.get(s)
            if i is None or self.pairs.get(i) != s or not _introduces(self.new[r], self.new[s]):
                continue
            if _heading_key(self.new[r]) != _heading_key(self.old[i]):
                continue
            if self.old[i].lead_in and not (i > 0 and _introduces(self.old[i - 1], self.old[i])):
                del self.pairs[i]
                self.splits.append((i, (r, s)))
                new_free_set.discard(r)

    def in_place(self) -> set[int]:
        """Old indices of the pairs that kept their relative order. On ties, clauses that kept
        their wording, then those that kept their heading, stay; the others moved."""
        ordered = sorted(self.pairs.items())
        if all(a[1] < b[1] for a, b in pairwise(ordered)):
            return set(self.pairs)  # nothing moved: the common case
        unit = 0.3 / (len(ordered) + 1)  # all bonuses together never outweigh one more clause

        def weight(i: int, j: int) -> float:
            same_words = self.old_keys[i] == self.new_keys[j]
            same_heading = _heading_key(self.old[i]) == _heading_key(self.new[j])
            return 1.0 + unit * (2 * same_words + same_heading)

        weighted = [(i, j, weight(i, j)) for i, j in ordered]
        return {ordered[k][0] for k in _keep_order(weighted)}


def _title_words(clause: Clause) -> frozenset[str]:
    """The words of the run-in title a clause opens with ("Your Content."), if any."""
    return frozenset(_run_in_title(clause.text))


@lru_cache(maxsize=1 << 12)  # every clause of both versions, at each alignment: most seen before
def _run_in_title(text: str) -> tuple[str, ...]:
    """The words of the run-in title `text` opens with, if it has one of one to six words."""
    match = _TITLE.match(normalise(text))
    words = _word_list(match.group(1).casefold()) if match else []
    return tuple(words) if 1 <= len(words) <= 6 else ()


def _introduces(paragraph: Clause, item: Clause) -> bool:
    """Is `paragraph` the lead-in of `item` (the next clause)? Segmentation gives an item the
    last sentence of the paragraph before its list as its lead-in."""
    if not item.lead_in or paragraph.lead_in == item.lead_in:
        return False
    text, lead = _words(paragraph.text), _words(item.lead_in)
    for size in range(min(len(text), len(lead)), 1, -1):
        if text[-size:] == lead[:size]:
            return True
    return False


def _place(clause: Clause) -> tuple[object, ...]:
    return (clause.full_text, clause.section, clause.heading, clause.number)


_TITLE = re.compile(r"^([^.:;!?]{2,60}?)[.:]\s")


def _unique_titles(clauses: Sequence[Clause]) -> dict[int, str]:
    """Index -> run-in title ("Your Content." opening a paragraph), for titles that open exactly
    one clause of the version. Rewritten provisions usually keep their title."""
    found: dict[str, list[int]] = {}
    for k, clause in enumerate(clauses):
        words = _run_in_title(clause.text)
        if words:
            found.setdefault(" ".join(words), []).append(k)
    return {ks[0]: title for title, ks in found.items() if len(ks) == 1}


def _fresh_id(clause: Clause, taken: set[str]) -> str:
    digest = hashlib.blake2b(
        f"{clause.section}\n{clause.full_text}".encode(), digest_size=5
    ).hexdigest()
    candidate, n = f"c{digest}", 1
    while candidate in taken:
        n += 1
        candidate = f"c{digest}-{n}"
    return candidate


def _inherit_ids(aligner: _Aligner) -> tuple[Clause, ...]:
    old, new = aligner.old, aligner.new
    inherited: dict[int, str] = {j: old[i].id for i, j in aligner.pairs.items()}
    inherited.update({js[0]: old[i].id for i, js in aligner.splits})
    inherited.update({j: old[is_[0]].id for is_, j in aligner.merges})
    ids: list[str | None] = [None] * len(new)
    taken: set[str] = set()
    for j in sorted(inherited):
        if inherited[j] not in taken:
            ids[j] = inherited[j]
            taken.add(inherited[j])
    # An old id must not come back on a different clause: history would join two provisions.
    retired = taken | {c.id for c in old}
    for j, clause in enumerate(new):
        if ids[j] is None:
            own = clause.id if clause.id and clause.id not in retired else None
            ids[j] = own or _fresh_id(clause, retired)
            retired.add(ids[j])
    return tuple(c if c.id == ids[j] else _replace_id(c, ids[j] or c.id) for j, c in enumerate(new))


def _replace_id(c: Clause, new_id: str) -> Clause:
    # dataclasses.replace, without its look at every field
    return Clause(new_id, c.section, c.heading, c.text, c.number, c.lead_in, c.labels, c.evidence)


def _clause_redline(old: Clause, new: Clause) -> tuple[tuple[str, str], ...]:
    """The redline of one clause: two items whose lead-ins differ are marked lead-in against
    lead-in and item against item, so words of a rewritten lead-in never pair with the item's.
    Rebuilds full_text on each side, as word_redline does."""
    if (
        not (old.lead_in and new.lead_in)
        or old.lead_in == new.lead_in
        or any(c.full_text != f"{c.lead_in} {c.text}" for c in (old, new))
    ):
        return word_redline(old.full_text, new.full_text)
    ops = [
        *word_redline(old.lead_in, new.lead_in),
        ("equal", " "),
        *word_redline(old.text, new.text),
    ]
    merged: list[tuple[str, str]] = []
    for op, text in ops:
        if merged and merged[-1][0] == op:
            merged[-1] = (op, merged[-1][1] + text)
        else:
            merged.append((op, text))
    return tuple(merged)


def _joined(clauses: Sequence[Clause]) -> str:
    """The clauses' text as one, each with its lead-in unless the clause before states it."""
    return " ".join(
        c.text if k and _introduces(clauses[k - 1], c) else c.full_text
        for k, c in enumerate(clauses)
    )


def _pair_change(
    old: Clause, new: Clause, in_place: bool, renumbered: dict[str, str]
) -> Change | None:
    if in_place and old is new:
        return None  # most pairs of a replay: the clause the analysis of the version reused
    if (
        in_place
        and old.section == new.section
        and old.heading == new.heading
        and old.number == new.number
        # the same parts make the same full_text, without building it
        and (
            (old.text == new.text and old.lead_in == new.lead_in) or old.full_text == new.full_text
        )
    ):
        return None  # the common case: nothing at all changed
    same_wording = (
        _same_wording(_parts((old,)), _parts((new,)))
        or (
            bool(renumbered)
            and _same_wording(
                tuple(_renumber(p, renumbered) for p in _parts((old,))), _parts((new,))
            )
        )
        or (_is_furniture(old) and _is_furniture(new))
    )
    same_heading = _heading_key(old) == _heading_key(new)
    same_raw = old.full_text == new.full_text
    if in_place and same_wording:
        if (
            same_raw
            and old.section == new.section
            and old.heading == new.heading
            and old.number == new.number
        ):
            return None
        redline = word_redline(old.full_text, new.full_text) if not same_raw else ()
        return Change("modified", False, (old,), (new,), redline)
    redline = () if same_raw else _clause_redline(old, new)
    if same_wording:
        return Change("moved", not same_heading, (old,), (new,), redline, moved=True)
    return Change("modified", True, (old,), (new,), redline, moved=not in_place)


_SECTION_NUMBER = re.compile(r"^\(?(\d{1,3}(?:\.\d{1,3})*)[.)]?(?:\s|$)")
_REFERENCE = re.compile(
    r"\b(?:sections?|§§?|articles?|clauses?|paragraphs?|subsections?)\s*"
    r"\d{1,3}(?:\.\d{1,3})*(?:\s*(?:,|and|or|to|through|-)\s*\d{1,3}(?:\.\d{1,3})*)*",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"\d{1,3}(?:\.\d{1,3})*")


def _numbers(clause: Clause) -> list[str]:
    """The numbers along a clause's section path: "4 Confidentiality › 4.2 › (d)" -> 4, 4.2."""
    found = []
    for part in clause.section.split("›"):
        match = _SECTION_NUMBER.match(part.strip())
        if match:
            found.append(match.group(1))
    return found


def _renumbering(
    old: Sequence[Clause], new: Sequence[Clause], pairs: dict[int, int]
) -> dict[str, str]:
    """Old section number -> new one, read off aligned clauses (only unambiguous ones)."""
    seen: dict[str, set[str]] = {}
    for i, j in pairs.items():
        if old[i].section == new[j].section:
            continue  # the same path, the same numbers
        before, after = _numbers(old[i]), _numbers(new[j])
        if before != after and len(before) == len(after):
            for a, b in zip(before, after):
                seen.setdefault(a, set()).add(b)
    return {a: next(iter(b)) for a, b in seen.items() if len(b) == 1 and a not in b}


def _renumber(text: str, renumbered: dict[str, str]) -> str:
    """Cross-references rewritten to the new numbering: "Section 4.1" -> "Section 7.1" when
    section 4.1 became 7.1. A reference that only follows the renumbering is not a change."""

    def one(match: re.Match[str]) -> str:
        return _NUMBER.sub(lambda m: renumbered.get(m.group(0), m.group(0)), match.group(0))

    return _REFERENCE.sub(one, text) if renumbered else text


def _identical(old: tuple[Clause, ...], new: tuple[Clause, ...]) -> bool:
    """The same clauses in the same order, ids included, no id twice: nothing to align."""
    if old is not new and old != new:
        return False
    return len({c.id for c in old}) == len(old)


def _headings(clauses: Sequence[Clause]) -> set[str]:
    return {
        part for trail in {c.heading for c in clauses} for h in trail if (part := _heading_part(h))
    }


# Page furniture a capture sometimes includes: a whole clause that says only this is not terms.
_UI_LABELS = frozenset(
    {
        "close",
        "menu",
        "print",
        "share",
        "copy link",
        "select language",
        "language",
        "other language versions",
        "table of contents",
        "contents",
        "back to top",
        "skip to content",
        "skip to main content",
        "previous versions",
        "see previous versions",
        "download pdf",
    }
)
_MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
# A line that is only a date stamp ("Dated: May 25, 2018", "Effective date: 11-04-2023"): the
# document's metadata, reported as such by extract, never a clause of the terms.
_DATE_LINE = re.compile(
    r"^(?:dated|date|effective(?: date| as of| from)?|last (?:updated?|modified|revised)"
    r"|(?:updated|revised|published)(?: on)?|version date)\s*:?\s*"
    rf"(?:{_MONTHS}\.? \d{{1,2}}(?:st|nd|rd|th)?,? \d{{4}}"
    rf"|\d{{1,2}}(?:st|nd|rd|th)? {_MONTHS}\.?,? \d{{4}}"
    r"|\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4})\.?$"
)


def _is_furniture(clause: Clause) -> bool:
    if clause.lead_in:
        return False
    if " ".join(_words(clause.text)) in _UI_LABELS:  # the words align keys the clause by
        return True
    return bool(_DATE_LINE.match(normalise(clause.text).casefold()))


def _wording_appeared(clause: Clause, other_headings: set[str]) -> bool:
    """Is an added (removed) clause a change of wording? Not when it has no words, nor when it
    is a heading of the other version written as a paragraph ("**Your Privacy**" became, or
    stopped being, "## Your Privacy"): that is heading style. Nor when it is page furniture
    ("Select language") or a bare date stamp."""
    if not _has_words(clause.full_text) or _is_furniture(clause):
        return False
    return not (not clause.lead_in and _heading_part(clause.text) in other_headings)


def diff_clauses(old: Sequence[Clause], new: Sequence[Clause]) -> Diff:
    """Align two versions' clauses and say what changed, clause by clause (see module doc)."""
    old_t, new_t = tuple(old), tuple(new)
    if _identical(old_t, new_t):
        # Every clause kept its wording, place and id: the alignment would pair each with
        # itself and find nothing (half of a crawled history is versions like this).
        return Diff((), old_t, new_t)
    aligner = _Aligner(old_t, new_t)
    aligner.align()
    new_clauses = _inherit_ids(aligner)
    stay = aligner.in_place()

    renumbered = _renumbering(old_t, new_t, aligner.pairs)
    keyed: list[tuple[tuple[float, int, int], Change]] = []
    new_of_old: dict[int, int] = dict(aligner.pairs)
    for i, j in aligner.pairs.items():
        change = _pair_change(old_t[i], new_clauses[j], i in stay, renumbered)
        if change is not None:
            keyed.append(((j, 0, 0), change))
    for i, js in aligner.splits:
        olds, news = (old_t[i],), tuple(new_clauses[j] for j in js)
        substantive = not _same_wording(_parts(olds), _parts(news))
        keyed.append(
            (
                (js[0], 0, 0),
                Change(
                    "split", substantive, olds, news, word_redline(_joined(olds), _joined(news))
                ),
            )
        )
        new_of_old[i] = js[0]
    for is_, j in aligner.merges:
        olds, news = tuple(old_t[i] for i in is_), (new_clauses[j],)
        substantive = not _same_wording(_parts(olds), _parts(news))
        keyed.append(
            (
                (j, 0, 0),
                Change(
                    "merged", substantive, olds, news, word_redline(_joined(olds), _joined(news))
                ),
            )
        )
        for i in is_:
            new_of_old[i] = j
    taken_new = {j for j in new_of_old.values()} | {j for _, js in aligner.splits for j in js}
    old_headings, new_headings = _headings(old_t), _headings(new_t)
    for j, clause in enumerate(new_clauses):
        if j not in taken_new:
            keyed.append(
                ((j, 0, 0), Change("added", _wording_appeared(clause, old_headings), (), (clause,)))
            )
    # A removed clause goes right after where its predecessor (one that stayed in place) went.
    anchor = -1.0
    for i, clause in enumerate(old_t):
        if i in new_of_old:
            if i in stay or i not in aligner.pairs:
                anchor = new_of_old[i]
            continue
        keyed.append(
            (
                (anchor + 0.5, 1, i),
                Change("removed", _wording_appeared(clause, new_headings), (clause,), ()),
            )
        )
    keyed.sort(key=lambda kc: kc[0])
    return Diff(tuple(c for _, c in keyed), old_t, new_clauses)
