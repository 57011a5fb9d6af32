"""Clause classification: deterministic, explainable rules kept as data.

The taxonomy (tostrack/classify/data/labels.toml) says what each label means; the rules
(tostrack/classify/data/rules.toml) say which wording triggers it. Every label comes with the exact
span of text that triggered it, so a lawyer can see why. Labels are topics, not verdicts:
"We will not train on your API data" is about customer-data-training just as much as
"We may train on your API data".

How a label is decided, per label:
  1. a positive pattern matches somewhere in the text (after abbreviation masking, see _mask);
  2. the match is not vetoed by the pattern's own `unless` / `unless_after` / `unless_before`
     regexes (near misses next to the match), nor by the label's `negative` regexes searched in
     the sentence that holds the match;
  3. for an enumeration item, the match must touch the item itself, not only its lead-in;
  4. `weak` patterns count only when the clause's heading trail matches the label's `heading`.
The evidence is the accepted match that ends first. Before running a regex, a cheap check looks
for the literal words any match must contain (derived from the regex itself, see _gate); it
skips most regexes on most clauses and never changes a result (a test checks that).

Pure: no network, no files except the packaged data, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tostrack.classify.taxonomy import _data, _label_order, taxonomy

# -- rules ------------------------------------------------------------------------------------

_MACRO = re.compile(r"\{([a-z][a-z0-9_]*)\}")
_FLAGS = re.IGNORECASE


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    gate: tuple[str, ...] | None = None  # every match contains one of these (casefolded)
    unless: re.Pattern[str] | None = None  # searched inside the match
    unless_after: re.Pattern[str] | None = None  # matched right after the match
    unless_before: re.Pattern[str] | None = None  # searched in the text just before it


@dataclass(frozen=True)
class _Rules:
    label: str
    patterns: tuple[_Pattern, ...]
    weak: tuple[_Pattern, ...]
    negative: tuple[re.Pattern[str], ...]
    heading: re.Pattern[str] | None
    gate: tuple[str, ...] | None = None  # union of the patterns' gates: no word, no match


def _expand(pattern: str, macros: Mapping[str, str], where: str) -> str:
    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        words = re.fullmatch(r"w(\d+)", name)
        if words:  # {w4}: up to four words in between, lazily
            return r"(?:[\w'’\-]+,?\s+){0," + words.group(1) + "}?"
        if name not in macros:
            raise ValueError(f"rules.toml {where}: unknown macro {{{name}}}")
        return "(?:" + macros[name] + ")"

    for _ in range(5):  # macros may use macros
        expanded = _MACRO.sub(sub, pattern)
        if expanded == pattern:
            break
        pattern = expanded
    return pattern


def _compile(pattern: str, macros: Mapping[str, str], where: str) -> re.Pattern[str]:
    source = _expand(pattern, macros, where)
    try:
        return re.compile(source, _FLAGS)
    except re.error as exc:
        raise ValueError(f"rules.toml {where}: bad regex {pattern!r}: {exc}") from None


def _literal_sets(items: Any) -> tuple[set[str] | None, set[str] | None]:
    """(full, best) for a parsed regex sequence.

    full: the strings the sequence can match, if it is pure literal text (else None).
    best: strings one of which every match must contain (else None), the most selective found.
    """
    from re import _constants as k  # the parser's opcodes; stable across 3.11+

    candidates: list[set[str]] = []
    run: set[str] = {""}
    pure = True

    def flush() -> None:
        nonlocal run
        if run != {""}:
            candidates.append(run)
        run = {""}

    for op, av in items:
        if op is k.LITERAL:
            run = {s + chr(av) for s in run}
        elif op in (k.AT, k.ASSERT, k.ASSERT_NOT):
            continue  # zero width: literal text on both sides stays adjacent
        elif op in (k.BRANCH, k.SUBPATTERN):
            subs = [_literal_sets(b) for b in av[1]] if op is k.BRANCH else [_literal_sets(av[-1])]
            fulls = [f for f, _ in subs]
            if all(f is not None for f in fulls) and len(run) * sum(map(len, fulls)) <= 64:
                alts = set().union(*fulls)  # type: ignore[arg-type]
                run = {a + b for a in run for b in alts}
                continue
            pure = False
            flush()
            bests = [b for _, b in subs]
            if all(b is not None for b in bests):
                candidates.append(set().union(*bests))  # type: ignore[arg-type]
        elif op in (k.MAX_REPEAT, k.MIN_REPEAT):
            pure = False
            flush()
            if av[0] >= 1:
                best = _literal_sets(av[2])[1]
                if best is not None:
                    candidates.append(best)
        else:  # character classes, any, backreferences: no literal to rely on
            pure = False
            flush()
    full = set(run) if pure else None
    flush()
    best = max(candidates, key=lambda c: min(map(len, c)), default=None)
    return full, best


def _gate(regex: re.Pattern[str]) -> tuple[str, ...] | None:
    """Literal strings one of which any match must contain, to skip the regex cheaply."""
    try:
        from re import _parser

        best = _literal_sets(_parser.parse(regex.pattern, regex.flags))[1]
    except Exception:  # noqa: BLE001 - an optimisation only; without it the regex just runs
        return None
    if not best or min(map(len, best)) < 3:
        return None
    return tuple(sorted({s.casefold() for s in best}))


def _pattern(entry: str | dict[str, str], macros: Mapping[str, str], where: str) -> _Pattern:
    if isinstance(entry, str):
        regex = _compile(entry, macros, where)
        return _Pattern(regex, _gate(regex))

    def opt(key: str) -> re.Pattern[str] | None:
        return _compile(entry[key], macros, f"{where}.{key}") if key in entry else None

    regex = _compile(entry["pattern"], macros, where)
    return _Pattern(
        regex,
        _gate(regex),
        unless=opt("unless"),
        unless_after=opt("unless_after"),
        unless_before=opt("unless_before"),
    )


@lru_cache(maxsize=1)
def _rules() -> tuple[_Rules, ...]:
    data = _data("rules.toml")
    macros: dict[str, str] = data.get("macros", {})
    known = _label_order()
    out = []
    for label in taxonomy():
        entry = data.get(label.id, {})
        where = f"[{label.id}]"
        patterns = tuple(_pattern(p, macros, where) for p in entry.get("patterns", ()))
        gates = [p.gate for p in patterns]
        out.append(
            _Rules(
                label=label.id,
                patterns=patterns,
                weak=tuple(_pattern(p, macros, where + ".weak") for p in entry.get("weak", ())),
                negative=tuple(_compile(p, macros, where) for p in entry.get("negative", ())),
                heading=_compile(entry["heading"], macros, where) if "heading" in entry else None,
                gate=None if any(g is None for g in gates) else tuple(sorted(
                    {w for g in gates for w in g or ()}
                )),
            )
        )
    unknown = set(data) - set(known) - {"macros"}
    if unknown:
        raise ValueError(f"rules.toml names unknown labels: {sorted(unknown)}")
    return tuple(out)


# -- matching ---------------------------------------------------------------------------------

# Periods that do not end a sentence, replaced by a same-width non-word character so that the
# rules' "[^.;]" gaps run through them and match offsets still index the original text.
_ABBREV = re.compile(
    r"\b(?:e\.g|i\.e|etc|U\.S|U\.K|E\.U|vs|Inc|Ltd|Co|Corp|No|Nos|Sec|Secs|incl|approx|cf|St|Mr|Ms|Dr)\.",
    re.IGNORECASE,
)
_INNER_DOT = re.compile(r"(?<=\w)\.(?=\w)")  # 1.2, example.com, U.S
_SENTENCE_END = re.compile(r"[.!?;](?=\s|$)|\n")
_SAME_WIDTH = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "\u00a0": " ",
                             "\u2010": "-", "\u2011": "-", "\u2013": "-", "\u2014": "-"})


def _mask(text: str) -> str:
    masked = text.translate(_SAME_WIDTH)
    masked = _ABBREV.sub(lambda m: m.group(0)[:-1].replace(".", "\u2024") + "\u2024", masked)
    return _INNER_DOT.sub("\u2024", masked)


def _sentence(masked: str, start: int, end: int) -> str:
    begin = 0
    for m in _SENTENCE_END.finditer(masked, 0, start):
        begin = m.end()
    stop = _SENTENCE_END.search(masked, end)
    return masked[begin : stop.start() if stop else len(masked)]


def _vetoed(p: _Pattern, masked: str, m: re.Match[str]) -> bool:
    if p.unless and p.unless.search(m.group(0)):
        return True
    if p.unless_after and p.unless_after.match(masked, m.end()):
        return True
    before = masked[max(0, m.start() - 100) : m.start()]
    return bool(p.unless_before and p.unless_before.search(before))


@lru_cache(maxsize=1)
def _gate_automaton() -> Any:
    """Every gate literal of every rule in one Aho-Corasick automaton: one pass over a clause
    finds which literals it contains, instead of a substring search per literal and rule."""
    import ahocorasick

    automaton = ahocorasick.Automaton()
    for rules in _rules():
        for gate in (rules.gate, *(p.gate for p in (*rules.patterns, *rules.weak))):
            for word in gate or ():
                automaton.add_word(word, word)
    automaton.make_automaton()
    return automaton


def _literals_in(folded: str) -> frozenset[str]:
    automaton = _gate_automaton()
    if not len(automaton):
        return frozenset()
    return frozenset(word for _, word in automaton.iter(folded))


def _first_match(
    rules: _Rules, patterns: Sequence[_Pattern], masked: str, present: frozenset[str], min_end: int
) -> tuple[int, int] | None:
    # The evidence is the accepted match that ends first (ties: the shortest), which keeps it
    # tight: "products that compete" rather than a whole run-up sentence.
    best: tuple[int, int] | None = None
    for p in patterns:
        if p.gate is not None and present.isdisjoint(p.gate):
            continue
        for m in p.regex.finditer(masked):
            if m.end() <= min_end or m.end() == m.start():
                continue  # only inside the lead-in: context, not evidence
            if best is not None and m.end() > best[1]:
                break
            if _vetoed(p, masked, m):
                continue
            sentence = _sentence(masked, m.start(), m.end())
            if any(n.search(sentence) for n in rules.negative):
                continue
            if best is None or (m.end(), -m.start()) < (best[1], -best[0]):
                best = (m.start(), m.end())
            break
    return best


def match_rules(
    text: str, heading: Sequence[str] = (), lead_in_length: int = 0
) -> tuple[tuple[str, str], ...]:
    if not text.strip():
        return ()
    masked = _mask(text)
    present = _literals_in(masked.casefold())
    trail = " › ".join(heading)
    out = []
    for rules in _rules():
        span = None
        if rules.gate is None or not present.isdisjoint(rules.gate):
            span = _first_match(rules, rules.patterns, masked, present, lead_in_length)
        if span is None and rules.weak and rules.heading and trail and rules.heading.search(trail):
            span = _first_match(rules, rules.weak, masked, present, lead_in_length)
        if span is not None:
            out.append((rules.label, text[span[0] : span[1]].strip()))
    return tuple(out)


def heading_context(heading: Sequence[str]) -> tuple[str, ...]:
    """The labels whose `heading` rule matches this heading trail: the only way a clause's
    headings change its labels. Two trails with the same context classify a text alike, which
    lets a history be classified once per distinct reading (see replay.HistoryAnalyser)."""
    trail = " › ".join(heading)
    if not trail:
        return ()
    return tuple(r.label for r in _rules() if r.weak and r.heading and r.heading.search(trail))
