"""The rule files (tostrack/classify/data/rules/): every example and near miss against the real
engine, a lint of the files, and explain_rules."""

from __future__ import annotations

import json
import marshal
import re
import zlib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from tostrack.classify import rules as engine
from tostrack.classify.rules import explain_rules, match_rules
from tostrack.classify.taxonomy import taxonomy

DATA = Path(__file__).parent / "data"
RULES = resources.files("tostrack.classify").joinpath("data", "rules")
LINE_LIMIT = 100
BUILTIN = re.compile(r"w\d+")  # {w4}: up to four words
# provider names of tests/, tostrack/demo_data and tests/data (fixtures, not real providers)
FIXTURE_NAMES = re.compile(
    r"\b(?:acme|nimbus|corvid|northwind|vantage|vega|helix|orion|quill|example ai)\b",
    re.IGNORECASE,
)


def _files() -> dict[str, str]:
    return {
        p.name: p.read_text(encoding="utf-8") for p in RULES.iterdir() if p.name.endswith(".toml")
    }


def _entries() -> list[tuple[str, str, dict[str, Any], str]]:
    """(label, kind, entry, heading example) for every pattern, weak pattern, negative, veto."""
    out = []
    for label, data in engine._rule_files().items():
        if label == "macros":
            continue
        heading = data.get("heading_example", "")
        for kind in ("pattern", "weak", "negative"):
            for entry in data.get(kind, ()):
                out.append((label, kind, entry, heading if kind == "weak" else ""))
                for veto in engine._VETOES:
                    if veto in entry:
                        out.append((label, veto, entry[veto], heading if kind == "weak" else ""))
    return out


ENTRIES = _entries()


def _explained(text: str, label: str, heading: str) -> engine.LabelExplanation | None:
    found = {e.label: e for e in explain_rules(text, (heading,) if heading else ())}
    return found.get(label)


# -- examples and near misses --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "kind", "entry", "heading"), ENTRIES, ids=[e[2]["id"] for e in ENTRIES]
)
def test_example_and_near_miss(label: str, kind: str, entry: dict[str, Any], heading: str) -> None:
    rule = entry["id"]
    example, near_miss = entry.get("example"), entry.get("near_miss")
    assert example and near_miss, f"{rule}: needs an example and a near miss"
    fired = _explained(example, label, heading)
    missed = _explained(near_miss, label, heading)
    if kind in ("pattern", "weak"):
        # the example gets the label through this very pattern; the near miss gets no label
        assert fired is not None and rule in fired.matched, (rule, fired)
        assert missed is None or not missed.given, (rule, missed)
    else:
        # a negative or veto: it blocks a match in the example, and nothing in the near miss,
        # which gets the label
        assert fired is not None and any(b.by == rule for b in fired.blocked), (rule, fired)
        assert missed is not None and missed.given, (rule, missed)
        assert not any(b.by == rule for b in missed.blocked), (rule, missed)


def test_every_rule_has_an_example() -> None:
    """Also a count, so that a file's rules cannot silently vanish from the test above."""
    compiled = engine._rules()
    n = sum(len(r.patterns) + len(r.weak) + len(r.negative) for r in compiled)
    n += sum(
        1 for r in compiled for p in (*r.patterns, *r.weak) for k in engine._VETOES if getattr(p, k)
    )
    assert len(ENTRIES) == n
    assert all(e[2].get("example") and e[2].get("near_miss") for e in ENTRIES)


def test_patterns_compiled_from_their_parse_tree_are_what_re_compile_gives() -> None:
    """The rules parse each pattern once, for the gate and the regex (see _compile_gated): the
    Pattern is equal to re.compile's (same code, flags and groups), and the gate is _gate's."""
    patterns = [p for r in engine._rules() for p in (*r.patterns, *r.weak)]
    assert len(patterns) > 100
    for p in patterns:
        re.purge()  # a fresh compile, not the cached object
        plain = re.compile(p.regex.pattern, re.IGNORECASE)
        assert plain is not p.regex
        assert p.regex == plain, p.id
        assert (p.regex.flags, p.regex.groups, p.regex.groupindex) == (
            plain.flags,
            plain.groups,
            plain.groupindex,
        ), p.id
        assert (p.gate, p.also, p.require, p.lead) == engine._gate(plain), p.id


def test_a_python_whose_private_compiler_differs_falls_back_to_re_compile(monkeypatch) -> None:
    """_compile_gated uses re._compiler's internals to skip a second parse; where they differ
    (another Python: a function gone, or other arguments), re.compile compiles the pattern: the
    same regex and gate."""
    import types

    source = r"\bscrap(?:e|ing)\s+{w2}(?:site|service)"
    macros = {"w2": r"(?:\w+\s+){0,2}"}
    regex, gate = engine._compile_gated(source, macros, "test")

    def other_arguments(*args: object) -> object:
        raise TypeError("_code() takes 1 positional argument")

    for compiler in (types.SimpleNamespace(), types.SimpleNamespace(_code=other_arguments)):
        monkeypatch.setattr(engine, "_compiler", compiler)
        assert engine._compile_gated(source, macros, "test") == (regex, gate)


def _shipped_blob() -> tuple[Any, ...]:
    import marshal
    import zlib

    return marshal.loads(zlib.decompress(engine._compiled_path().read_bytes()))


def test_the_shipped_compiled_rules_are_what_the_rules_compile_to(tmp_path: Path) -> None:
    """data/rules.compiled is current: what compiling the rules afresh writes (after a change
    to the rules or to their gate analysis: python -m tostrack.classify.train --rules-only)."""
    shipped = _shipped_blob()
    here = engine._engine()
    if tuple(shipped[0])[:-1] != here[:-1]:  # the last item is rules.py's own digest
        pytest.skip(f"rules.compiled is for {shipped[0][:-1]}, this is {here[:-1]}")
    assert tuple(shipped[0]) == here, (
        "rules.py changed since rules.compiled was written (its gates may be stale, so the "
        "file is ignored): python -m tostrack.classify.train --rules-only"
    )
    loaded = engine._compiled()
    assert loaded.gated and loaded.plain  # start-up reads them
    fresh = tmp_path / "rules.compiled"
    assert engine.write_compiled(fresh) == len(shipped[1]) + len(shipped[2])
    assert _shipped_blob() == shipped
    import marshal
    import zlib

    again = marshal.loads(zlib.decompress(fresh.read_bytes()))
    stale = "rules changed: python -m tostrack.classify.train --rules-only"
    assert again[1] == shipped[1], stale
    assert again[2] == shipped[2], stale
    assert again[3] == shipped[3], stale  # the conditions' code
    assert again[4][0] == shipped[4][0], stale  # the rule files' digest ...
    assert marshal.loads(again[4][1]) == marshal.loads(shipped[4][1]), stale  # ... and content
    assert loaded.conditions and loaded.files[0]  # start-up reads them too
    first = engine._rule_files()
    first["macros"].clear()  # a caller that changes what it was given changes nobody else's
    assert engine._rule_files()["macros"]


def _blob(
    engine_key: object,
    gated: object,
    plain: object,
    conditions: object = None,
    files: object = ("", b""),
) -> bytes:
    import marshal
    import zlib

    return zlib.compress(marshal.dumps((engine_key, gated, plain, conditions or {}, files)))


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not zlib",
        "other engine",
        "not dicts",
        "old format",
        "bad code",
        "bad gate",
        "bad conditions",
        "stale files",
        "garbled files",
    ],
)
def test_unreadable_foreign_or_garbled_compiled_rules_are_compiled_afresh(
    content: bytes | str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever data/rules.compiled holds, the rules come out as a fresh compilation makes
    them: a file for another Python (or another version of rules.py) is ignored, and an entry
    this engine refuses ("invalid SRE code") or of the wrong shape is compiled afresh."""
    expected = engine._rules()
    expected_files = engine._rule_files()
    _, gated, plain, conditions, (digest, files) = _shipped_blob()
    key = engine._engine()  # this Python's key: the entries themselves are garbled
    # An opcode no engine has: _sre.compile refuses the code ("invalid SRE code")
    refused = {s: (c[0], [999_999, 1], *c[2:]) for s, c in plain.items()}
    blobs = {
        "other engine": _blob(("otherpython", 3, 99, 0, 1, 4, "x"), gated, plain),
        "not dicts": _blob(key, [1, 2], None),
        "bad code": _blob(
            key, {s: ((g[0][0], [999_999, 1], *g[0][2:]), g[1]) for s, g in gated.items()}, refused
        ),
        "bad gate": _blob(key, {s: (g[0], "not a gate") for s, g in gated.items()}, {}),
        # what a file written before conditions and rule files were shipped holds
        "old format": zlib.compress(marshal.dumps((key, gated, plain))),
        "bad conditions": _blob(key, gated, plain, dict.fromkeys(conditions, "not code")),
        # rule files parsed from other bytes: the digest says they are not these
        "stale files": _blob(
            key, gated, plain, conditions, ("0" * len(digest), marshal.dumps({"macros": {}}))
        ),
        # the right digest, content that does not unmarshal: parsed afresh
        "garbled files": _blob(key, gated, plain, conditions, (digest, b"\xff not marshal")),
    }
    path = tmp_path / "rules.compiled"
    path.write_bytes(blobs[content] if isinstance(content, str) else content)
    monkeypatch.setattr(engine, "_compiled_path", lambda: path)
    caches = (engine._compiled, engine._rules, engine._condition_code)
    for cache in caches:
        cache.cache_clear()
    try:
        assert engine._rules() == expected
        assert engine._rule_files() == expected_files
        if content in (b"", b"not zlib", "other engine", "not dicts", "old format"):
            assert engine._compiled() == engine._Compiled()
    finally:
        for cache in caches:
            cache.cache_clear()


def test_rule_files_marshal_cannot_write_are_left_to_parse_at_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A TOML date parses to a datetime, which marshal cannot write: rules.compiled then records
    no rule files (they are parsed at start-up) instead of failing the training step."""
    import datetime

    monkeypatch.setattr(
        engine, "_parsed_rule_files", lambda raw: {"macros": {"when": datetime.date(2026, 1, 1)}}
    )
    assert engine._shipped_rule_files() == ("", b"")


# -- lint --------------------------------------------------------------------------------------


def test_lines_fit() -> None:
    long = [
        f"{name}:{i}"
        for name, text in _files().items()
        for i, line in enumerate(text.splitlines(), 1)
        if len(line) > LINE_LIMIT
    ]
    assert not long, f"lines over {LINE_LIMIT} characters (write a long regex as a list): {long}"


def test_one_file_per_label_and_nothing_else() -> None:
    names = set(_files())
    labels = {label.id for label in taxonomy()}
    assert names <= {f"{label}.toml" for label in labels} | {"macros.toml"}
    assert "macros.toml" in names


def test_ids_unique_and_named_after_their_label() -> None:
    ids = [entry["id"] for _, _, entry, _ in ENTRIES]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    for label, kind, entry, _ in ENTRIES:
        assert entry["id"].startswith(f"{label}/"), entry["id"]
        assert re.fullmatch(r"[a-z-]+/[a-z0-9-]+(?::unless(?:-after|-before)?)?", entry["id"])
        if kind in engine._VETOES:
            assert entry["id"].endswith(":" + kind.replace("_", "-")), entry["id"]


def _sources() -> dict[str, str]:
    """Every regex source in the files, by where it is, macros included."""
    out = {}
    for label, data in engine._rule_files().items():
        if label == "macros":
            out.update({f"macro {k}": engine._source(v) for k, v in data.items()})
            continue
        if "heading" in data:
            out[f"{label} heading"] = engine._source(data["heading"])
    for _, _, entry, _ in ENTRIES:
        out[entry["id"]] = engine._source(entry["regex"])
    return out


def test_macros_exist_and_are_used() -> None:
    macros = engine._rule_files()["macros"]
    used: set[str] = set()
    for where, source in _sources().items():
        for name in re.findall(r"\{([a-z][a-z0-9_]*)\}", source):
            if BUILTIN.fullmatch(name):
                continue
            assert name in macros, f"{where}: unknown macro {{{name}}}"
            used.add(name)
    assert set(macros) <= used, f"macros no rule uses: {sorted(set(macros) - used)}"


def test_unless_before_is_anchored() -> None:
    """unless_before is searched in the 100 characters before a match: unanchored, it vetoes a
    match because of words far away from it."""
    for label, kind, entry, _ in ENTRIES:
        if kind != "unless_before":
            continue
        source = engine._source(entry["regex"])
        for branch in _top_level_branches(source):
            assert branch.endswith("$"), f"{entry['id']}: branch not anchored with $: {branch!r}"


def _top_level_branches(source: str) -> list[str]:
    branches, depth, start, i = [], 0, 0, 0
    while i < len(source):
        c = source[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            i = source.index("]", i + 2) + 1 if source[i + 1] in "^]" else source.index("]", i) + 1
            continue
        depth += c == "("
        depth -= c == ")"
        if c == "|" and depth == 0:
            branches.append(source[start:i])
            start = i + 1
        i += 1
    return [*branches, source[start:]]


def test_no_fixture_provider_name_in_the_rules() -> None:
    for name, text in _files().items():
        found = FIXTURE_NAMES.search(text)
        assert not found, f"{name} names the test fixture {found and found.group(0)!r}"


# -- explain_rules -----------------------------------------------------------------------------


def test_explain_names_the_rule_and_the_veto() -> None:
    (label,) = [e for e in explain_rules("You may not scrape the service.") if e.given]
    assert label.label == "data-extraction" and label.evidence == "scrape"
    assert label.rule in label.matched and label.rule.startswith("data-extraction/")
    assert "You may not scrape the service."[label.start : label.end] == "scrape"
    # the provider describing its own crawler: matched, then blocked, with the blocker's id
    (own,) = explain_rules("Our web crawler may scrape public pages.")
    assert not own.given and own.rule is None and own.evidence == ""
    assert own.blocked and all(b.by.startswith("data-extraction/") for b in own.blocked)
    assert all(b.text and b.text in "Our web crawler may scrape public pages." for b in own.blocked)
    record = own.to_json()
    assert record["given"] is False and record["blocked"][0]["by"] == own.blocked[0].by
    assert json.loads(json.dumps(label.to_json()))["rule"] == label.rule


def test_explain_both_labels_for_output_that_develops_a_competing_model() -> None:
    found = {
        e.label: e
        for e in explain_rules("You may not use output to develop a competing model.")
        if e.given
    }
    assert set(found) == {"competing-models", "output-training"}
    only = {
        e.label
        for e in explain_rules("You must not use the Services to build a competing product.")
        if e.given
    }
    assert only == {"competing-models"}


def test_explain_agrees_with_match_rules() -> None:
    for name in ("dev_clauses.jsonl", "heldout_clauses.jsonl"):
        for line in (DATA / name).read_text(encoding="utf-8").splitlines():
            text = json.loads(line)["text"]
            explained = tuple((e.label, e.evidence) for e in explain_rules(text) if e.given)
            assert explained == match_rules(text), text


def test_explain_respects_lead_in_and_heading() -> None:
    lead = "You must not use Output to develop competing models, and you must not:"
    text = lead + " resell the Services."
    inside = {e.label: e for e in explain_rules(text, (), len(lead) + 1)}
    assert not any(e.given for e in inside.values())
    opt_out = "You may opt out of this section by emailing us within 30 days of signing up."
    (under,) = [e for e in explain_rules(opt_out, ("Terms", "Arbitration")) if e.given]
    assert under.label == "arbitration" and under.weak
    assert not any(e.given for e in explain_rules(opt_out))
    assert explain_rules("   ") == ()


def test_fingerprint_ignores_examples_and_follows_regexes(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    before = engine.rules_fingerprint()
    assert before == engine.rules_fingerprint() and len(before) == 64
    compiled = engine._rules()
    first = compiled[0]
    fewer = (dataclasses.replace(first, patterns=first.patterns[1:]), *compiled[1:])
    monkeypatch.setattr(engine, "_rules", lambda: fewer)
    assert engine.rules_fingerprint() != before
