"""Clause classification: deterministic, explainable rules kept as data.

The taxonomy (tostrack/classify/data/labels.toml) says what each label means; the rules
(tostrack/classify/data/rules/<label>.toml, one file per label, and rules/macros.toml, which
also documents the format) say which wording triggers it. Every label comes with the exact
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

Every pattern, negative and veto has an id; `explain_rules` says which pattern decided each
label and which matches were blocked, by which veto or negative.

Pure: no network, no files except the packaged data, no clock.
"""

from __future__ import annotations

import hashlib
import marshal
import re
import sys
import tomllib
import types
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from itertools import chain, repeat
from operator import itemgetter
from pathlib import Path
from re import _compiler, _parser
from re import _constants as _op  # the parser's opcodes; stable across 3.11+
from typing import Any

from tostrack.classify.script import CJK_RUN
from tostrack.classify.taxonomy import taxonomy

# -- rules ------------------------------------------------------------------------------------

_MACRO = re.compile(r"\{([a-z][a-z0-9_]*)\}")
_FLAGS = re.IGNORECASE


_VETOES = ("unless", "unless_after", "unless_before")
# How far back an `unless_before` veto looks: a sentence's worth of words ("any judgment that
# a court of competent jurisdiction grants a third party on such a claim or that an" arbitrator).
_BEFORE_WINDOW = 160


@dataclass(frozen=True)
class _Regex:
    """A negative or a veto: its id and compiled regex."""

    id: str
    regex: re.Pattern[str]


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    gate: tuple[str, ...] | None = None  # every match contains one of these (casefolded)
    # further necessary literal sets: a match contains one of each ("may" ... "update" ...
    # "terms"), so a clause lacking any of them is skipped too
    also: tuple[tuple[str, ...], ...] = ()
    # what a match needs, alternative by alternative (see _requirement); None: nothing more
    # than gate and also
    require: Requirement | None = None
    # literals (casefolded) one of which every match starts with (see _lead): the regex is
    # tried only where one of them occurs, instead of at every character
    lead: frozenset[str] | None = None
    unless: _Regex | None = None  # searched inside the match
    unless_after: _Regex | None = None  # matched right after the match
    unless_before: _Regex | None = None  # searched in the text just before it
    id: str = ""
    # Derived from the fields above, so dataclasses.replace keeps them in step: `also` and
    # `require` as one compiled test of `present.isdisjoint` (see _conditions), and the lead
    # literals too short for the gate automaton, looked for in every clause instead.
    conditions: Callable[[Callable[[frozenset[str]], bool]], bool] | None = field(
        init=False, repr=False, compare=False
    )
    unindexed_lead: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "conditions", _conditions(self.gate, self.also, self.require))
        short = sorted(w for w in self.lead or () if not _selective(w))
        # One regex for them, which scans a clause in one call rather than a find per literal
        finder = re.compile("|".join(map(re.escape, short))) if short else None
        object.__setattr__(self, "unindexed_lead", finder)


@dataclass(frozen=True)
class _Rules:
    label: str
    patterns: tuple[_Pattern, ...]
    weak: tuple[_Pattern, ...]
    negative: tuple[_Regex, ...]
    heading: re.Pattern[str] | None
    gate: tuple[str, ...] | None = None  # union of the patterns' gates: no word, no match


def _expand(pattern: str, macros: Mapping[str, str], where: str) -> str:
    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        words = re.fullmatch(r"w(\d+)", name)
        if words:  # {w4}: up to four words in between, lazily
            return r"(?:[\w'’\-]+,?\s+){0," + words.group(1) + "}?"
        if name not in macros:
            raise ValueError(f"rules {where}: unknown macro {{{name}}}")
        return "(?:" + macros[name] + ")"

    for _ in range(5):  # macros may use macros
        expanded = _MACRO.sub(sub, pattern)
        if expanded == pattern:
            break
        pattern = expanded
    return pattern


def _compile(pattern: str, macros: Mapping[str, str], where: str) -> re.Pattern[str]:
    """A veto's, negative's or heading rule's regex (no gate: it runs only after a match)."""
    return _compiled_regex(pattern, macros, where, gated=False)[0]


@dataclass
class _TreeMemo:
    """What the gate analysis found for the sub-trees of one parse tree, by id() (with the
    sub-tree, which keeps the id from being reused): _requirement and _lead ask again for each
    branch what _literal_sets found for it already, at every level of nesting, and all three
    walk the same sequences."""

    sets: dict[int, tuple[Any, tuple[set[str] | None, set[str] | None]]] = field(
        default_factory=dict
    )
    chunks: dict[int, tuple[Any, list[tuple[Any, Any]]]] = field(default_factory=dict)


_TEXT = object()  # the opcode of a run of literal characters in _chunks; its argument: the run


def _chunks(items: Any, memo: _TreeMemo) -> list[tuple[Any, Any]]:
    """The (opcode, argument) list of a parsed sequence with each run of LITERALs as one
    (_TEXT, string): the analysis extends its literal sets once per run, not per character."""
    known = memo.chunks.get(id(items))
    if known is not None and known[0] is items:
        return known[1]
    out: list[tuple[Any, Any]] = []
    text: list[str] = []
    # a SubPattern iterates by __getitem__, a Python call per item; its list does not
    for op, av in getattr(items, "data", items):
        if op is _op.LITERAL:
            text.append(chr(av))
            continue
        if text:
            out.append((_TEXT, "".join(text)))
            text = []
        out.append((op, av))
    if text:
        out.append((_TEXT, "".join(text)))
    memo.chunks[id(items)] = (items, out)
    return out


def _literal_sets(
    items: Any, collect: list[set[str]] | None = None, memo: _TreeMemo | None = None
) -> tuple[set[str] | None, set[str] | None]:
    """(full, best) for a parsed regex sequence.

    full: the strings the sequence can match, if it is pure literal text (else None).
    best: strings one of which every match must contain (else None), the most selective found.
    collect: if given, receives every such necessary set of the top-level sequence.
    memo: what was found for sub-trees of the same parse tree (see _TreeMemo); callers must not
    change the sets returned.
    """
    if memo is not None and collect is None:
        known = memo.sets.get(id(items))
        if known is not None and known[0] is items:
            return known[1]
    else:
        memo = _TreeMemo() if memo is None else memo
    result = _literal_sets_of(items, collect, memo)
    memo.sets[id(items)] = (items, result)
    return result


def _literal_sets_of(
    items: Any, collect: list[set[str]] | None, memo: _TreeMemo
) -> tuple[set[str] | None, set[str] | None]:
    candidates: list[set[str]] = []
    run: set[str] = {""}
    pure = True

    def flush() -> None:
        nonlocal run
        if run != {""}:
            candidates.append(run)
        run = {""}

    for op, av in _chunks(items, memo):
        if op is _TEXT:
            run = {s + av for s in run}
        elif op in (_op.AT, _op.ASSERT, _op.ASSERT_NOT):
            continue  # zero width: literal text on both sides stays adjacent
        elif op in (_op.BRANCH, _op.SUBPATTERN):
            branches = av[1] if op is _op.BRANCH else [av[-1]]
            subs = [_literal_sets(b, memo=memo) for b in branches]
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
        elif op is _op.IN and _small_class(av) and len(run) * len(av) <= 64:
            run = {r + chr(c) for r in run for _, c in av}  # "[- ]": a few literal choices
        elif op in (_op.MAX_REPEAT, _op.MIN_REPEAT):
            pure = False
            flush()
            if av[0] >= 1:
                best = _literal_sets(av[2], memo=memo)[1]
                if best is not None:
                    candidates.append(best)
        else:  # character classes, any, backreferences: no literal to rely on
            pure = False
            flush()
    full = set(run) if pure else None
    flush()
    best = max(candidates, key=lambda c: min(map(len, c)), default=None)
    if collect is not None:
        collect.extend(candidates)
    return full, best


def _small_class(members: Any) -> bool:
    """A character class of a few plain characters ("[- ]", "[\x27’]"), which the gate can
    read as alternatives; ranges, categories and negations it cannot."""
    return len(members) <= 4 and all(op is _op.LITERAL for op, _ in members)


def _selective(literal: str) -> bool:
    """Long enough to skip most clauses: three characters, or two Chinese, Japanese or Korean
    ones (a two-character CJK word such as 爬虫 is as rare as a Latin word)."""
    return len(literal) >= 3 or (len(literal) == 2 and CJK_RUN.fullmatch(literal) is not None)


# What a match must contain: every item holds, an item being a set of literals (casefolded) one
# of which the match contains, or a tuple of alternatives of which one holds (each a
# Requirement itself, e.g. the branches of "located in (?:cuba|iran)|(?:cuba|iran) ... sanction").
Requirement = tuple["frozenset[str] | tuple[Requirement, ...]", ...]


def _requirement(items: Any, memo: _TreeMemo | None = None) -> Requirement:
    """What any match of a parsed regex sequence must contain, branch by branch.

    _literal_sets gives one set per branch point (the union of the branches' best sets); this
    keeps each branch's own conditions, so "users of ... iran" is skipped on a clause that names
    users but no sanctioned country. Only selective literals count (a set with a short one is
    no condition), so every word to look up is in the gate automaton.
    """
    memo = _TreeMemo() if memo is None else memo
    out: list[frozenset[str] | tuple[Requirement, ...]] = []
    run: set[str] = {""}

    def flush() -> None:
        nonlocal run
        if run != {""} and all(map(_selective, run)):
            out.append(frozenset(s.casefold() for s in run))
        run = {""}

    for op, av in _chunks(items, memo):
        if op is _TEXT:
            run = {s + av for s in run}
        elif op in (_op.AT, _op.ASSERT, _op.ASSERT_NOT):
            continue  # zero width: literal text on both sides stays adjacent
        elif op in (_op.BRANCH, _op.SUBPATTERN):
            branches = av[1] if op is _op.BRANCH else [av[-1]]
            fulls = [_literal_sets(b, memo=memo)[0] for b in branches]
            if all(f is not None for f in fulls) and len(run) * sum(map(len, fulls)) <= 64:
                alts = set().union(*fulls)  # type: ignore[arg-type]
                run = {a + b for a in run for b in alts}
                continue
            flush()
            needs = [_requirement(b, memo) for b in branches]
            if len(needs) == 1:
                out.extend(needs[0])
            elif all(needs):  # a branch that needs nothing makes the whole choice no condition
                out.append(tuple(needs))
        elif op is _op.IN and _small_class(av) and len(run) * len(av) <= 64:
            run = {r + chr(c) for r in run for _, c in av}
        elif op in (_op.MAX_REPEAT, _op.MIN_REPEAT):
            flush()
            if av[0] >= 1:
                out.extend(_requirement(av[2], memo))
        else:  # character classes, any, backreferences: no literal to rely on
            flush()
    flush()
    return tuple(out)


def _lead(items: Any, memo: _TreeMemo | None = None) -> set[str] | None:
    """Literal strings one of which every match of a parsed regex sequence starts with ("use",
    "using" for "\\b(?:use|using)\\s+..."), or None. Zero-width assertions before them consume
    nothing, so they do not move where a match starts; an optional start ("(?:the\\s+)?user")
    gives the leads of what it repeats and of what follows it, a repeated one ("\\s+...") those
    of what it repeats; a small range ("1[0-9]") reads as its characters."""
    memo = _TreeMemo() if memo is None else memo
    items = _chunks(items, memo)
    run: set[str] = {""}
    for at, (op, av) in enumerate(items):
        if op in (_op.AT, _op.ASSERT, _op.ASSERT_NOT):
            continue
        if op is _TEXT:
            run = {s + av for s in run}
        elif op is _op.IN and (chars := _class_characters(av)) and len(run) * len(chars) <= 64:
            run = {r + c for r in run for c in chars}
        elif op in (_op.BRANCH, _op.SUBPATTERN):
            branches = av[1] if op is _op.BRANCH else [av[-1]]
            fulls = [_literal_sets(b, memo=memo)[0] for b in branches]
            if all(f is not None for f in fulls) and len(run) * sum(map(len, fulls)) <= 64:
                alts = set().union(*fulls)  # type: ignore[arg-type]
                run = {a + b for a in run for b in alts}
            elif run == {""}:  # each branch starts with its own literals, or we know nothing
                leads = [_lead(b, memo) for b in branches]
                return None if any(x is None for x in leads) else set().union(*leads)  # type: ignore[arg-type]
            else:
                break
        elif op in (_op.MAX_REPEAT, _op.MIN_REPEAT) and run == {""}:
            first = _lead(av[2], memo)
            if av[0] >= 1 or first is None:
                return first
            rest = _lead(items[at + 1 :], memo)  # the optional part may be absent
            return None if rest is None else first | rest
        else:
            break
    return run if run != {""} else None


def _class_characters(members: Any) -> list[str] | None:
    """The characters of a class of a few plain characters or small ranges ("[- ]", "[0-9]"),
    or None (categories, negations, wide ranges)."""
    chars: list[str] = []
    for op, av in members:
        if op is _op.LITERAL:
            chars.append(chr(av))
        elif op is _op.RANGE and av[1] - av[0] < 10:
            chars += map(chr, range(av[0], av[1] + 1))
        else:
            return None
    return chars if len(chars) <= 10 else None


def _satisfied(require: Requirement, present: frozenset[str]) -> bool:
    # Loops rather than any(): this runs for every candidate pattern of every clause.
    for need in require:
        if isinstance(need, frozenset):
            if present.isdisjoint(need):
                return False
        else:
            for alternative in need:
                if _satisfied(alternative, present):
                    break
            else:
                return False
    return True


def _conditions(
    gate: tuple[str, ...] | None,
    also: tuple[tuple[str, ...], ...],
    require: Requirement | None,
) -> Callable[[Callable[[frozenset[str]], bool]], bool] | None:
    """`also` and `require` (which _Index checks the gate before) as one function of a clause's
    `present.isdisjoint`, or None when there is nothing to check: the nested requirement
    written out as one expression ("not d(_0) and (not d(_1) or not d(_2) and not d(_3))"),
    which Python evaluates without a call per item and level, as _satisfied would make. The
    literal sets are passed in as named constants: no text of a rule becomes code."""
    constants: dict[str, frozenset[str]] = {}
    known = {frozenset(gate or ()), *map(frozenset, also)}  # checked already

    def test(words: frozenset[str]) -> str:
        name = f"_{len(constants)}"
        constants[name] = words
        return f"not d({name})"

    def conjunction(need: Requirement, top: bool) -> str:
        parts = [
            test(item)
            if isinstance(item, frozenset)
            else "(" + " or ".join(f"({conjunction(alt, False)})" for alt in item) + ")"
            for item in need
            if not (top and isinstance(item, frozenset) and item in known)
        ]
        return " and ".join(parts) or "True"

    parts = [test(frozenset(words)) for words in also]
    if require:
        parts.append(conjunction(require, True))
    source = " and ".join(p for p in parts if p != "True")
    if not source:
        return None
    return eval(_condition_code(source), {"__builtins__": {}, **constants})  # noqa: S307


@lru_cache(maxsize=None)
def _condition_code(source: str) -> types.CodeType:
    """The compiled `lambda d: source` of _conditions: patterns of the same shape share it
    (173 distinct ones for 261 patterns), each evaluated with its own constants. Shipped in
    data/rules.compiled too (compiling them took a tenth of start-up)."""
    code = _compiled().conditions.get(source)
    if not isinstance(code, types.CodeType):
        code = compile(f"lambda d: {source}", "<rule conditions>", "eval")
    if _recording is not None:
        _recording.conditions[source] = code
    return code


def _requirement_words(require: Requirement) -> set[str]:
    words: set[str] = set()
    for need in require:
        if isinstance(need, frozenset):
            words |= need
        else:
            for alternative in need:
                words |= _requirement_words(alternative)
    return words


_Gate = tuple[
    tuple[str, ...] | None,
    tuple[tuple[str, ...], ...],
    "Requirement | None",
    frozenset[str] | None,
]


def _gate(regex: re.Pattern[str]) -> _Gate:
    """Literal strings one of which any match must contain, to skip the regex cheaply, the
    further sets of which a match contains one each, the branch-by-branch requirement when
    it says more than those (it has alternatives), and the literals a match starts with."""
    try:
        parsed = _parser.parse(regex.pattern, regex.flags)
    except Exception:  # noqa: BLE001 - an optimisation only; without it the regex just runs
        return None, (), None, None
    return _gate_of_tree(parsed)


def _gate_of_tree(parsed: Any) -> _Gate:
    """_gate of a regex's parse tree (re._parser.parse), which it leaves as it is."""
    necessary: list[set[str]] = []
    memo = _TreeMemo()
    try:
        best = _literal_sets(parsed, necessary, memo)[1]
        require: Requirement | None = _requirement(parsed, memo)
        starts = _lead(parsed, memo)
    except Exception:  # noqa: BLE001 - an optimisation only; without it the regex just runs
        return None, (), None, None
    if not any(isinstance(need, tuple) for need in require or ()):
        require = None  # only literal sets: gate and also say as much
    # Two characters at least: where a match can start is looked up in a clause with str.find
    # (the selective leads only when the gate automaton found them), and a lead of one letter
    # would be found at nearly every word.
    lead = (
        frozenset(s.casefold() for s in starts) if starts and min(map(len, starts)) >= 2 else None
    )
    if not best or not all(map(_selective, best)):
        return None, (), require, lead
    also = {
        tuple(sorted({s.casefold() for s in found}))
        for found in necessary
        if found is not best and found and all(map(_selective, found))
    }
    return tuple(sorted({s.casefold() for s in best})), tuple(sorted(also)), require, lead


def _compile_gated(
    pattern: str, macros: Mapping[str, str], where: str
) -> tuple[re.Pattern[str], _Gate]:
    """_compile and _gate of a pattern's regex, parsed once: re.compile would parse it again,
    so the regex is compiled from the tree _gate read (as re._compiler.compile does; the same
    Pattern, a test checks). Where the compiler's internals differ, re.compile parses again."""
    regex, gate = _compiled_regex(pattern, macros, where, gated=True)
    return regex, gate  # type: ignore[return-value] # gated: never None


def _compiled_regex(
    pattern: str, macros: Mapping[str, str], where: str, *, gated: bool
) -> tuple[re.Pattern[str], _Gate | None]:
    """The regex (and with `gated`, its gate): from the shipped code when it holds this source
    (see COMPILED_FILE), else parsed and compiled here, and recorded while write_compiled runs."""
    source = _expand(pattern, macros, where)
    shipped = _compiled()
    entry = shipped.gated.get(source) if gated else (shipped.plain.get(source), None)
    if isinstance(entry, tuple) and len(entry) == 2 and (not gated or _is_gate(entry[1])):
        regex = _shipped_regex(source, entry[0])
        if regex is not None:
            return regex, entry[1]
    try:
        parsed = _parser.parse(source, int(_FLAGS))
        gate = _gate_of_tree(parsed) if gated else None
        regex, code = _compiled_tree(source, parsed)
    except re.error as exc:
        raise ValueError(f"rules {where}: bad regex {pattern!r}: {exc}") from None
    if _recording is not None and code is not None:
        if gated:
            _recording.gated[source] = (code, gate)  # type: ignore[assignment]
        else:
            _recording.plain[source] = code
    return regex, gate


# What re._compiler.compile hands to _sre.compile: flags, code, groups, group index, names
_Code = tuple[int, list[int], int, dict[str, int], tuple["str | None", ...]]


def _compiled_tree(source: str, parsed: Any) -> tuple[re.Pattern[str], _Code | None]:
    """The Pattern of a parsed regex, and what it was compiled from (None where this Python's
    private compiler differs: then re.compile parses the source again)."""
    flags = int(_FLAGS)  # as re.compile passes them on
    try:
        state = parsed.state
        names: list[str | None] = [None] * state.groups
        for name, number in state.groupdict.items():
            names[number] = name
        # plain ints: the opcodes are an int subclass, which marshal does not write
        code: _Code = (
            flags | state.flags,
            list(map(int, _compiler._code(parsed, flags))),
            state.groups - 1,
            dict(state.groupdict),
            tuple(names),
        )
        return _from_code(source, code), code
    except (AttributeError, TypeError):  # another Python's private compiler: parse again
        return re.compile(source, _FLAGS), None


def _from_code(source: str, code: _Code) -> re.Pattern[str]:
    # _sre.compile checks the code it is given (an invalid one raises, never runs)
    return _compiler._sre.compile(source, *code)


def _shipped_regex(source: str, code: Any) -> re.Pattern[str] | None:
    """The Pattern made from shipped code, or None (nothing shipped, or code this engine
    refuses: then the source is compiled afresh)."""
    if code is None:
        return None
    try:
        return _from_code(source, code)
    except Exception:  # noqa: BLE001 - an optimisation only: "invalid SRE code", a wrong shape
        return None


def _is_gate(gate: Any) -> bool:
    return isinstance(gate, tuple) and len(gate) == 4


# -- compiled rules, shipped ------------------------------------------------------------------
# Parsing and compiling some 350 regexes with re's pure-Python parser, and reading their
# literals, took half of tostrack's start-up (0.17 s of 0.4 s, paid by every cron run and by
# every worker process). data/rules.compiled holds what they compile to, by regex source, for
# the Python that wrote it (`python -m tostrack.classify.train`, or with --rules-only): the
# same Pattern objects, made by _sre.compile from the stored code, and the same gates. Another
# Python (another release, even a bug-fix one) ignores the file, and a regex not in it (a
# rule edited since) is compiled as before; tests/test_rules.py checks the file against fresh
# compilation.
COMPILED_FILE = "rules.compiled"


@dataclass(frozen=True)
class _Compiled:
    gated: dict[str, tuple[_Code, _Gate]] = field(default_factory=dict)  # patterns
    plain: dict[str, _Code] = field(default_factory=dict)  # vetoes, negatives, headings
    conditions: dict[str, types.CodeType] = field(default_factory=dict)  # by _conditions source
    # (digest of the files' bytes, the parsed files marshalled, so that each use reads fresh
    # objects): parsing the TOML of data/rules, examples and all, took an eighth of start-up
    files: tuple[str, bytes] = ("", b"")


def _engine() -> tuple[Any, ...]:
    """What stored regex code and gates are valid for: this very Python (a bug-fix release may
    compile a pattern otherwise), its regex engine, and this module's source (the gate
    analysis and the flags live here: any edit makes the shipped file stale, and ignored)."""
    return (
        sys.implementation.name,
        *sys.version_info[:3],
        _compiler._sre.MAGIC,
        _compiler._sre.CODESIZE,
        _source_digest(),
    )


@lru_cache(maxsize=1)
def _source_digest() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


@lru_cache(maxsize=1)
def _compiled() -> _Compiled:
    """The shipped compiled rules, or none when they are for another Python (or unreadable)."""
    if _recording is not None:
        return _Compiled()  # writing the file: compile everything afresh
    try:
        engine, gated, plain, conditions, files = marshal.loads(
            zlib.decompress(_compiled_path().read_bytes())
        )
        if tuple(engine) != _engine() or not all(
            isinstance(table, dict) for table in (gated, plain, conditions)
        ):
            return _Compiled()
        digest, parsed = files
        if not isinstance(digest, str) or not isinstance(parsed, bytes):
            digest, parsed = "", b""
    except Exception:  # noqa: BLE001 - unreadable, foreign or garbled: compile as before
        return _Compiled()
    return _Compiled(gated, plain, conditions, (digest, parsed))


def _compiled_path() -> Any:
    return resources.files("tostrack.classify").joinpath("data", COMPILED_FILE)


_recording: _Compiled | None = None  # while write_compiled compiles the rules


def write_compiled(path: Path) -> int:
    """Compile every rule regex afresh and write what they compile to (see COMPILED_FILE);
    returns the number of regexes."""
    global _recording
    caches = (_rules, _compiled, _condition_code)
    _recording = _Compiled()
    for cache in caches:
        cache.cache_clear()
    try:
        _rules()
        recorded = _recording
    finally:
        _recording = None
        for cache in caches:
            cache.cache_clear()
    files = _shipped_rule_files()
    blob = zlib.compress(
        marshal.dumps((_engine(), recorded.gated, recorded.plain, recorded.conditions, files)), 9
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(blob)
    tmp.replace(path)
    return len(recorded.gated) + len(recorded.plain)


def _source(value: str | list[str]) -> str:
    """A regex written as one literal string or as a list of them (long ones, to fit lines)."""
    return value if isinstance(value, str) else "".join(value)


def _veto(entry: Mapping[str, Any], macros: Mapping[str, str], where: str) -> _Regex:
    return _Regex(entry["id"], _compile(_source(entry["regex"]), macros, f"{where} {entry['id']}"))


def _pattern(entry: Mapping[str, Any], macros: Mapping[str, str], where: str) -> _Pattern:
    regex, gate = _compile_gated(_source(entry["regex"]), macros, f"{where} {entry['id']}")
    vetoes = {key: _veto(entry[key], macros, where) for key in _VETOES if key in entry}
    return _Pattern(regex, *gate, id=entry["id"], **vetoes)


def _rule_files() -> dict[str, dict[str, Any]]:
    """The parsed files of data/rules, by name without ".toml": as data/rules.compiled holds
    them when they are the very same bytes, else parsed here."""
    digest, raw = _rule_file_bytes()
    shipped_digest, shipped = _compiled().files
    if shipped_digest == digest:
        try:
            parsed = marshal.loads(shipped)
        except (EOFError, ValueError, TypeError):
            parsed = None
        if isinstance(parsed, dict):
            return parsed
    return _parsed_rule_files(raw)


def _rule_file_bytes() -> tuple[str, dict[str, bytes]]:
    """(sha256 of them all, the bytes of each file of data/rules by name without ".toml")."""
    folder = resources.files("tostrack.classify").joinpath("data", "rules")
    raw = {
        item.name.removesuffix(".toml"): item.read_bytes()
        for item in sorted(folder.iterdir(), key=lambda item: item.name)
        if item.name.endswith(".toml")
    }
    hasher = hashlib.sha256()
    for name, data in raw.items():
        hasher.update(b"%s\0%d\0%s" % (name.encode(), len(data), data))
    return hasher.hexdigest(), raw


def _parsed_rule_files(raw: Mapping[str, bytes]) -> dict[str, dict[str, Any]]:
    return {name: tomllib.loads(data.decode("utf-8")) for name, data in raw.items()}


def _shipped_rule_files() -> tuple[str, bytes]:
    """What data/rules.compiled records of the rule files: their digest and parsed content,
    marshalled; nothing when marshal cannot write them (a TOML date, say), so that they are
    parsed at start-up as before."""
    digest, raw = _rule_file_bytes()
    try:
        return digest, marshal.dumps(_parsed_rule_files(raw))
    except ValueError:  # "unmarshallable object"
        return "", b""


@lru_cache(maxsize=1)
def _rules() -> tuple[_Rules, ...]:
    files = _rule_files()
    macros = {name: _source(value) for name, value in files.pop("macros", {}).items()}
    labels = [label.id for label in taxonomy()]
    unknown = set(files) - set(labels)
    if unknown:
        raise ValueError(f"data/rules has files for unknown labels: {sorted(unknown)}")
    out = []
    for label in labels:
        entry = files.get(label, {})
        where = f"{label}.toml"
        patterns = tuple(_pattern(p, macros, where) for p in entry.get("pattern", ()))
        gates = [p.gate for p in patterns]
        heading = entry.get("heading")
        out.append(
            _Rules(
                label=label,
                patterns=patterns,
                weak=tuple(_pattern(p, macros, where) for p in entry.get("weak", ())),
                negative=tuple(_veto(n, macros, where) for n in entry.get("negative", ())),
                heading=_compile(_source(heading), macros, where) if heading else None,
                gate=None
                if any(g is None for g in gates)
                else tuple(sorted({w for g in gates for w in g or ()})),
            )
        )
    return tuple(out)


def rules_fingerprint() -> str:
    """sha256 over what decides labels: every label's patterns, vetoes, negatives and heading
    rule, as compiled (macros expanded), with their ids. Examples, near misses and comments
    leave it unchanged, so a model that reads the rules' labels need not be retrained for them."""
    import hashlib

    digest = hashlib.sha256()
    for rules in _rules():
        parts = [rules.label, rules.heading.pattern if rules.heading else ""]
        for kind, patterns in (("pattern", rules.patterns), ("weak", rules.weak)):
            for p in patterns:
                parts += [kind, p.id, p.regex.pattern]
                for key in _VETOES:
                    veto = getattr(p, key)
                    parts += [key, veto.id, veto.regex.pattern] if veto else [key]
        for n in rules.negative:
            parts += ["negative", n.id, n.regex.pattern]
        digest.update("\x00".join(parts).encode() + b"\x01")
    return digest.hexdigest()


# -- matching ---------------------------------------------------------------------------------

# Periods that do not end a sentence, replaced by a same-width non-word character so that the
# rules' "[^.;]" gaps run through them and match offsets still index the original text.
# The masks below open with what their matches must start with (a lookahead of first letters,
# a literal dot), which lets the regex engine skip to those characters instead of trying the
# pattern at every one: the same matches, in a fraction of the time.
_ABBREV = re.compile(
    r"(?=[acdeilmnsuv])"
    r"\b(?:e\.g|i\.e|etc|U\.S|U\.K|E\.U|vs|Inc|Ltd|Co|Corp|No|Nos|Sec|Secs|incl|approx|cf|St|Mr|Ms|Dr)\.",
    re.IGNORECASE,
)
_INNER_DOT = re.compile(r"\.(?<=\w\.)(?=\w)")  # 1.2, example.com, U.S
_SENTENCE_END = re.compile(r"[.!?;](?=\s|$)|\n")
_SAME_WIDTH = str.maketrans(
    {
        "’": "'",
        "‘": "'",
        "“": '"',
        "”": '"',
        "\u00a0": " ",
        "\u2010": "-",
        "\u2011": "-",
        "\u2013": "-",
        "\u2014": "-",
    }
)


# "Section K (Indemnification)" points at another clause; its title is not this clause's topic.
_CROSS_REFERENCE_TITLE = re.compile(
    r"(?=[acps])\b(?:sections?|clauses?|paragraphs?|articles?)\s+[\w.\-–]{1,10}\s*(\([^()]{1,60}\))",
    re.IGNORECASE,
)


def _blank_title(m: re.Match[str]) -> str:
    start, end = m.span(1)
    whole = m.group(0)
    return whole[: start - m.start()] + " " * (end - start) + whole[end - m.start() :]


# str.translate looks every character up in the table (25 µs for a clause that is not ASCII);
# a str.replace per mapped character scans in C. Each maps to an ASCII character that is not
# mapped itself, so the order of the replacements does not matter.
_SAME_WIDTH_PAIRS = tuple((chr(code), to) for code, to in _SAME_WIDTH.items())


def _same_width(text: str) -> str:
    if text.isascii():  # none of the mapped characters is
        return text
    for old, new in _SAME_WIDTH_PAIRS:
        text = text.replace(old, new)
    return text


# The characters besides ASCII letters that IGNORECASE matches with an ASCII letter (İ, ı, ſ
# and the Kelvin sign K). In a text without them, a match of a regex's ASCII literals is
# found in the text's lower case as they are written in lower case.
_ASCII_CASE_TWINS = "\u0130\u0131\u017f\u212a"


@lru_cache(maxsize=1)
def _mask_words() -> Any:
    """The literals one of which each mask's every match contains, in lower case (from the
    regexes themselves, as the gates are), in one automaton whose values name the mask: a
    clause without any is spared the mask's regex, which would try every character."""
    import ahocorasick

    automaton = ahocorasick.Automaton()
    for name, regex in (("abbreviation", _ABBREV), ("cross-reference", _CROSS_REFERENCE_TITLE)):
        words = _literal_sets(_parser.parse(regex.pattern, regex.flags))[1]
        for word in sorted(words or ()):
            if not word.isascii():  # the lower case of a text says nothing of it
                raise ValueError(f"mask literal {word!r} is not ASCII")
            automaton.add_word(word.lower(), name)
    automaton.make_automaton()
    return automaton


def _mask(text: str) -> str:
    masked = _same_width(text)
    dots, brackets = "." in masked, "(" in masked  # every abbreviation ends with a dot
    if (dots or brackets) and (
        masked.isascii() or not any(map(masked.__contains__, _ASCII_CASE_TWINS))
    ):
        found = set(map(itemgetter(1), _mask_words().iter(masked.lower())))
        dots = dots and "abbreviation" in found
        brackets = brackets and "cross-reference" in found
    if dots:
        masked = _ABBREV.sub(lambda m: m.group(0)[:-1].replace(".", "\u2024") + "\u2024", masked)
    if brackets:  # the title is in brackets
        masked = _CROSS_REFERENCE_TITLE.sub(_blank_title, masked)
    return _INNER_DOT.sub("\u2024", masked) if "." in masked else masked


def _sentence(masked: str, start: int, end: int) -> str:
    begin = 0
    for m in _SENTENCE_END.finditer(masked, 0, start):
        begin = m.end()
    stop = _SENTENCE_END.search(masked, end)
    return masked[begin : stop.start() if stop else len(masked)]


def _veto_of(p: _Pattern, masked: str, m: re.Match[str]) -> _Regex | None:
    """The veto of pattern `p` that blocks match `m`, if any."""
    if p.unless and p.unless.regex.search(m.group(0)):
        return p.unless
    if p.unless_after and p.unless_after.regex.match(masked, m.end()):
        return p.unless_after
    before = masked[max(0, m.start() - _BEFORE_WINDOW) : m.start()]
    if p.unless_before and p.unless_before.regex.search(before):
        return p.unless_before
    return None


def _negative_of(rules: _Rules, masked: str, m: re.Match[str]) -> _Regex | None:
    """The label's negative found in the sentence that holds match `m`, if any."""
    if not rules.negative:
        return None
    sentence = _sentence(masked, m.start(), m.end())
    for n in rules.negative:
        if n.regex.search(sentence):
            return n
    return None


@lru_cache(maxsize=1)
def _gate_automaton() -> Any:
    """Every gate literal of every rule in one Aho-Corasick automaton: one pass over a clause
    finds which literals it contains, instead of a substring search per literal and rule."""
    import ahocorasick

    automaton = ahocorasick.Automaton()
    for rules in _rules():
        every = (*rules.patterns, *rules.weak)
        for gate in (rules.gate, *(p.gate for p in every), *(g for p in every for g in p.also)):
            for word in gate or ():
                automaton.add_word(word, word)
        for p in every:
            for word in _requirement_words(p.require or ()) | {
                w for w in p.lead or () if _selective(w)
            }:
                automaton.add_word(word, word)
    automaton.make_automaton()
    return automaton


def _literals_in(folded: str) -> frozenset[str]:
    automaton = _gate_automaton()
    if not len(automaton):
        return frozenset()
    # map() rather than a generator: hundreds of hits per clause, a frame resumed for each
    return frozenset(map(itemgetter(1), automaton.iter(folded)))


@dataclass(frozen=True)
class _Index:
    """Which patterns a literal lets through: a clause's literals name the few patterns worth
    checking, instead of a test of every pattern's gate (273 patterns, most gated out)."""

    rules: tuple[_Rules, ...]
    ungated: tuple[int, ...]  # patterns without a gate: always candidates
    by_word: Mapping[str, tuple[int, ...]]  # gate literal -> the patterns it gates
    # pattern number -> (rule number, weak?, the pattern), numbered in rule and pattern order
    patterns: tuple[tuple[int, bool, _Pattern], ...]
    words: frozenset[str] = frozenset()  # the keys of by_word


_indexes: dict[int, _Index] = {}  # by id() of the rules tuple, which the index keeps alive


def _index(rules: tuple[_Rules, ...]) -> _Index:
    index = _indexes.get(id(rules))
    if index is not None and index.rules is rules:
        return index
    patterns = tuple(
        (r, weak, p)
        for r, rule in enumerate(rules)
        for weak, group in ((False, rule.patterns), (True, rule.weak))
        for p in group
    )
    ungated: list[int] = []
    by_word: dict[str, list[int]] = {}
    for n, (_, _, p) in enumerate(patterns):
        if p.gate is None:
            ungated.append(n)
        for word in p.gate or ():
            by_word.setdefault(word, []).append(n)
    index = _Index(
        rules,
        tuple(ungated),
        {w: tuple(ns) for w, ns in by_word.items()},
        patterns,
        frozenset(by_word),
    )
    _indexes.clear()  # one rule set at a time (tests swap in their own)
    _indexes[id(rules)] = index
    return index


def _candidates(
    index: _Index, present: frozenset[str]
) -> dict[int, tuple[list[_Pattern], list[_Pattern]]]:
    """Rule number -> (patterns, weak patterns) whose literal conditions the clause meets, in
    their order: the only ones whose regexes can match."""
    numbers = set(index.ungated)
    numbers.update(chain.from_iterable(map(index.by_word.__getitem__, present & index.words)))
    isdisjoint = present.isdisjoint
    out: dict[int, tuple[list[_Pattern], list[_Pattern]]] = {}
    for n in sorted(numbers):
        r, weak, p = index.patterns[n]
        if p.conditions is None or p.conditions(isdisjoint):
            out.setdefault(r, ([], []))[weak].append(p)
    return out


def _admits(p: _Pattern, present: frozenset[str], *, gate: bool = True) -> bool:
    """Does a clause with these literals meet the pattern's literal conditions (gate: its gate
    too; _candidates has checked that already)?"""
    if gate and p.gate is not None and present.isdisjoint(p.gate):
        return False
    return p.conditions is None or p.conditions(present.isdisjoint)


def _first_match(
    rules: _Rules, patterns: Sequence[_Pattern], masked: str, present: frozenset[str], min_end: int
) -> tuple[int, int] | None:
    """The span of the evidence among those patterns whose literal conditions `present` meets."""
    admitted = [p for p in patterns if _admits(p, present)]
    return _first_accepted(rules, admitted, masked, None, present, min_end)


def _occurrences(folded: str, word: str, seen: dict[str, list[int]]) -> list[int]:
    """Where `word` occurs in `folded`, overlaps included, in order; `seen` keeps them for the
    other patterns of the clause that start with the same word."""
    found = seen.get(word)
    if found is None:
        found = seen[word] = []
        at = folded.find(word)
        while at >= 0:
            found.append(at)
            at = folded.find(word, at + 1)
    return found


def _matches(
    p: _Pattern,
    masked: str,
    folded: str | None,
    present: frozenset[str],
    seen: dict[str, list[int]] | None = None,
) -> Iterator[re.Match[str]]:
    """p.regex.finditer(masked), trying the regex only where a match can start: at the
    occurrences of its lead literals in `folded` (masked casefolded, when that kept every
    character at its place; None otherwise). `seen`: the occurrences found so far."""
    if p.lead is None or folded is None:
        return p.regex.finditer(masked)
    words = p.lead & present
    seen = {} if seen is None else seen
    if len(words) == 1 and p.unindexed_lead is None:
        return _matches_at(p.regex, masked, _occurrences(folded, next(iter(words)), seen))
    starts = set(chain.from_iterable(_occurrences(folded, w, seen) for w in words))
    if p.unindexed_lead is not None:
        found = p.unindexed_lead.search(folded)
        while found is not None:  # each start, overlaps included
            at = found.start()
            starts.add(at)
            found = p.unindexed_lead.search(folded, at + 1)
    return _matches_at(p.regex, masked, sorted(starts))


def _matches_at(
    regex: re.Pattern[str], masked: str, starts: Sequence[int]
) -> Iterator[re.Match[str]]:
    resume = 0  # as finditer: the next match begins where the last one ended
    # map and filter run the regex at each start without a Python step per start
    for m in filter(None, map(regex.match, repeat(masked), starts)):
        at = m.start()
        if at >= resume:
            yield m
            resume = max(m.end(), at + 1)


def _first_accepted(
    rules: _Rules,
    patterns: Sequence[_Pattern],
    masked: str,
    folded: str | None,
    present: frozenset[str],
    min_end: int,
    seen: dict[str, list[int]] | None = None,
) -> tuple[int, int] | None:
    # The evidence is the accepted match that ends first (ties: the shortest), which keeps it
    # tight: "products that compete" rather than a whole run-up sentence.
    best: tuple[int, int] | None = None
    seen = {} if seen is None else seen
    for p in patterns:
        for m in _matches(p, masked, folded, present, seen):
            if m.end() <= min_end or m.end() == m.start():
                continue  # only inside the lead-in: context, not evidence
            if best is not None and m.end() > best[1]:
                break
            if _veto_of(p, masked, m) or _negative_of(rules, masked, m):
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
    folded = masked.casefold()
    present = _literals_in(folded)
    # ß -> ss moves what follows; a dotless ı, which IGNORECASE reads as i, casefolding keeps
    at_place = folded if len(folded) == len(masked) and "\u0131" not in folded else None
    trail = " › ".join(heading)
    every = _rules()
    out = []
    seen: dict[str, list[int]] = {}  # lead literal -> where it occurs in folded
    for r, (patterns, weak) in sorted(_candidates(_index(every), present).items()):
        rules = every[r]
        span = (
            _first_accepted(rules, patterns, masked, at_place, present, lead_in_length, seen)
            if patterns
            else None
        )
        if span is None and weak and rules.heading and trail and rules.heading.search(trail):
            span = _first_accepted(rules, weak, masked, at_place, present, lead_in_length, seen)
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


# -- explanations -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BlockedMatch:
    """A match of pattern `rule` that did not count: veto or negative `by` blocked it."""

    rule: str
    by: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class LabelExplanation:
    """Why a label was given, or what matched but was blocked.

    `rule` is the id of the pattern whose match is the evidence (None when the label is not
    given); `matched` every pattern with an accepted match, the deciding one first; `blocked`
    the matches that vetoes and negatives dropped; `weak` whether a heading-dependent pattern
    decided it.
    """

    label: str
    rule: str | None
    evidence: str
    start: int
    end: int
    matched: tuple[str, ...]
    blocked: tuple[BlockedMatch, ...]
    weak: bool = False

    @property
    def given(self) -> bool:
        return self.rule is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "given": self.given,
            "rule": self.rule,
            "evidence": self.evidence,
            "start": self.start,
            "end": self.end,
            "matched": list(self.matched),
            "weak": self.weak,
            "blocked": [
                {"rule": b.rule, "by": b.by, "start": b.start, "end": b.end, "text": b.text}
                for b in self.blocked
            ],
        }


def _explain_patterns(
    rules: _Rules, patterns: Sequence[_Pattern], text: str, masked: str, min_end: int
) -> tuple[list[tuple[int, int, str]], list[BlockedMatch]]:
    """(accepted, blocked): each pattern's first accepted match, and the blocked ones before it."""
    accepted: list[tuple[int, int, str]] = []
    blocked: list[BlockedMatch] = []
    for p in patterns:
        for m in p.regex.finditer(masked):
            if m.end() <= min_end or m.end() == m.start():
                continue
            by = _veto_of(p, masked, m) or _negative_of(rules, masked, m)
            if by is None:
                accepted.append((m.start(), m.end(), p.id))
                break
            blocked.append(BlockedMatch(p.id, by.id, m.start(), m.end(), text[m.start() : m.end()]))
    return accepted, blocked


def explain_rules(
    text: str, heading: Sequence[str] = (), lead_in_length: int = 0
) -> tuple[LabelExplanation, ...]:
    """Per label that any pattern matched (given or blocked), in taxonomy order: the pattern id
    that decided it with its evidence, the other patterns that agreed, and the matches that
    vetoes or negatives blocked (with their ids). Gives the same labels and evidence as
    `match_rules`, which is the fast path (no explanation, literal gates)."""
    if not text.strip():
        return ()
    masked = _mask(text)
    trail = " › ".join(heading)
    out = []
    for rules in _rules():
        accepted, blocked = _explain_patterns(rules, rules.patterns, text, masked, lead_in_length)
        weak = False
        if not accepted and rules.weak and rules.heading and trail and rules.heading.search(trail):
            accepted, more = _explain_patterns(rules, rules.weak, text, masked, lead_in_length)
            blocked += more
            weak = bool(accepted)
        if not accepted and not blocked:
            continue
        # The evidence is the accepted match that ends first (ties: the longest, then the
        # earliest pattern), as in _first_match.
        order = sorted(range(len(accepted)), key=lambda i: (accepted[i][1], -accepted[i][0], i))
        matched = tuple(accepted[i][2] for i in order)
        start, end, rule = accepted[order[0]] if accepted else (0, 0, None)
        out.append(
            LabelExplanation(
                label=rules.label,
                rule=rule,
                evidence=text[start:end].strip(),
                start=start,
                end=end,
                matched=matched,
                blocked=tuple(blocked),
                weak=weak,
            )
        )
    return tuple(out)
