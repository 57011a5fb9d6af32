"""Chinese (and Japanese, Korean) terms end to end: structure, dates, character redlines,
cosmetic punctuation, the Chinese development set and the registry (issue #13).

Every document here is made up for these tests; the optional test at the end reads the real
Doubao terms from ../shared/corpus and skips when the corpus is absent.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from tostrack.align import diff_clauses, normalise, word_redline
from tostrack.cli import cli
from tostrack.extract import extract_file, extract_text
from tostrack.segment import segment_document
from tostrack.sources import registry

ROOT = Path(__file__).resolve().parents[1]
DOUBAO = ROOT.parent / "shared" / "corpus" / "bytedance" / "doubao-terms-of-service"

# A made-up agreement in the shape Chinese AI providers use: bold title, dates, 1、 sections with
# 1.1 items separated by Markdown hard breaks (two trailing spaces), bold liability sentences.
TERMS = """**晨星智能助手用户协议**

**更新日期：2026年2月3日**  
**生效日期：2026年2月10日**

**1、导言**

欢迎您使用晨星智能助手。本协议是您与晨星科技有限公司之间的协议。

**2、服务说明**

2.1 本服务由人工智能模型提供对话和写作功能。  
**2.2 本服务输出的内容仅供参考，不构成专业意见。**  
**2.2.1 涉及医疗、投资等重大事项时，请您咨询专业人士。**  
2.2.2 您可以随时停止使用本服务。

2.3 您不得从事下列行为：

（1）使用脚本批量抓取本服务的回答；

（2）对本服务进行反向工程；

（3）绕过本服务的频率限制。

2.4 我们会根据需要调整本服务的功能。

**3、责任限制**

**在法律允许的范围内，我们不对间接损失承担责任。**
"""  # noqa: W291 - two trailing spaces are a Markdown line break


def _clauses(text: str, fmt: str = "markdown"):
    return segment_document(extract_text(text, fmt))


# -- structure --------------------------------------------------------------------------------


def test_every_numbered_item_is_its_own_clause_with_its_section() -> None:
    clauses = _clauses(TERMS)
    by_number = {c.number: c for c in clauses}
    for number in ("2.1", "2.2", "2.2.1", "2.2.2", "2.3", "2.4"):
        assert number in by_number, number
        assert by_number[number].section.startswith("2 服务说明"), by_number[number].section
    assert by_number["2.2.1"].section == "2 服务说明 › 2.2 › 2.2.1"
    assert by_number["2.2"].text.startswith("本服务输出的内容仅供参考")
    assert all(c.section for c in clauses)


def test_bold_sentences_are_clauses_and_short_bold_lines_are_headings() -> None:
    clauses = _clauses(TERMS)
    liability = [c for c in clauses if "间接损失" in c.text]
    assert len(liability) == 1 and liability[0].section == "3 责任限制"
    assert not any(c.text in ("导言", "服务说明", "责任限制") for c in clauses)
    assert not any("晨星智能助手用户协议" == c.text for c in clauses)  # the title


def test_items_under_a_full_width_colon_take_it_as_lead_in() -> None:
    items = [c for c in _clauses(TERMS) if c.number in ("(1)", "(2)", "(3)")]
    assert [c.section for c in items] == [f"2 服务说明 › 2.3 › ({n})" for n in (1, 2, 3)]
    assert all(c.lead_in.endswith("您不得从事下列行为：") for c in items)
    assert items[0].full_text.startswith("2.3") or items[0].full_text.startswith("您不得")


def test_chinese_numbering_schemes_nest_by_first_appearance() -> None:
    text = """第一章 总则

第一条 本规则适用于本平台的全部用户。

第二条 用户应当遵守法律法规。

第二章 使用规范

一、内容要求

（一）禁止发布的信息

用户不得发布违法信息。

（二）账号管理

用户应当妥善保管账号。
"""
    clauses = _clauses(text, "text")
    sections = {c.text: c.section for c in clauses}
    assert sections["本规则适用于本平台的全部用户。"] == "第一章 总则 › 第一条"
    assert sections["用户应当遵守法律法规。"] == "第一章 总则 › 第二条"
    assert (
        sections["用户不得发布违法信息。"] == "第二章 使用规范 › 一 内容要求 › (一) 禁止发布的信息"
    )
    assert sections["用户应当妥善保管账号。"] == "第二章 使用规范 › 一 内容要求 › (二) 账号管理"


def test_inline_full_width_enumeration_is_split() -> None:
    clauses = _clauses("第五条 您不得：（1）出售账号；（2）冒充他人；（3）发送垃圾信息。\n", "text")
    assert [c.text for c in clauses] == ["出售账号；", "冒充他人；", "发送垃圾信息。"]
    assert all(c.lead_in == "您不得：" for c in clauses)
    assert clauses[1].section == "第五条 › (2)"


def test_a_number_is_not_a_marker_inside_a_chinese_sentence() -> None:
    (clause,) = _clauses("18周岁以下的用户应当取得监护人同意。\n", "text")
    assert clause.number == "" and clause.text.startswith("18周岁")


def test_hard_break_before_a_number_starts_a_clause_in_english_too() -> None:
    clauses = _clauses(
        "1.1 You may use the service.  \n1.2 You may not resell it.  \n(a) Nor rent it.\n"
    )
    assert [c.number for c in clauses] == ["1.1", "1.2", "(a)"]


def test_hard_break_before_a_street_number_is_not_a_clause() -> None:
    clauses = _clauses("Write to us at Acme Inc.  \n123 Main Street  \nSpringfield.\n")
    assert len(clauses) == 1 and "123 Main Street" in clauses[0].text


# -- dates --------------------------------------------------------------------------------------


def test_effective_and_update_dates_are_metadata_not_clauses() -> None:
    document = extract_text(TERMS, "markdown")
    assert document.effective_date == "2026-02-10"
    assert ("updated_date", "2026-02-03") in document.metadata
    assert not any("日期" in c.text for c in segment_document(document))


@pytest.mark.parametrize(
    ("line", "effective", "updated"),
    [
        ("生效日期：2026-07-22", "2026-07-22", None),
        ("最近更新：2025年12月1日", "2025-12-01", "2025-12-01"),
        ("发布日期：2024年3月5日 生效日期：2024年3月12日", "2024-03-12", None),
        ("本协议自2026年1月1日起生效。", "2026-01-01", None),
        ("2026年4月1日 施行", "2026-04-01", None),
        ("改定日：2026年3月1日", "2026-03-01", "2026-03-01"),
        ("시행일: 2026년 7월 22일", "2026-07-22", None),
        ("개정일자: 2026.05.01", "2026-05-01", "2026-05-01"),
    ],
)
def test_cjk_date_lines(line: str, effective: str, updated: str | None) -> None:
    document = extract_text(f"{line}\n\n第一条 本协议适用于全部用户。\n", "text")
    assert document.effective_date == effective
    if updated:
        assert ("updated_date", updated) in document.metadata
    assert [b.text for b in document.blocks] == ["本协议适用于全部用户。"]


def test_version_line_is_metadata() -> None:
    document = extract_text("版本：V3.2\n\n第一条 本协议适用于全部用户。\n", "text")
    assert ("version", "V3.2") in document.metadata
    assert len(document.blocks) == 1


def test_a_clause_that_mentions_a_date_stays_a_clause() -> None:
    text = (
        "我们将于2026年5月1日更新收费标准，届时新的价格将适用于全部付费用户，"
        "已购买的套餐不受影响。\n"
    )
    document = extract_text(text, "text")
    assert document.effective_date is None
    assert len(segment_document(document)) == 1


# -- redlines and cosmetic changes ----------------------------------------------------------------


def _changed_chars(ops: tuple[tuple[str, str], ...]) -> int:
    return max(
        sum(len(t) for op, t in ops if op == "delete"),
        sum(len(t) for op, t in ops if op == "insert"),
    )


def test_one_character_change_in_chinese_is_a_small_redline() -> None:
    old = "如您未满十八周岁，应当在监护人的陪同下阅读本协议。"
    new = "如您未满十六周岁，应当在监护人的陪同下阅读本协议。"
    ops = word_redline(old, new)
    assert ops == (
        ("equal", "如您未满十"),
        ("delete", "八"),
        ("insert", "六"),
        ("equal", "周岁，应当在监护人的陪同下阅读本协议。"),
    )
    assert "".join(t for op, t in ops if op != "insert") == old
    assert "".join(t for op, t in ops if op != "delete") == new


def test_one_character_change_through_diff_is_at_most_four_characters() -> None:
    old = _clauses(TERMS)
    new = _clauses(TERMS.replace("批量抓取", "大量抓取"))
    (change,) = diff_clauses(old, new).substantive
    assert change.kind == "modified"
    assert 1 <= _changed_chars(change.redline) <= 4


def test_english_redline_keeps_word_granularity() -> None:
    ops = word_redline("You may not resell it.", "You must not resell it.")
    assert ("delete", "may") in ops and ("insert", "must") in ops


def test_mixed_text_tokenises_latin_words_whole_and_han_one_by_one() -> None:
    ops = word_redline("使用API接口", "使用SDK接口")
    assert ("delete", "API") in ops and ("insert", "SDK") in ops


def test_full_width_and_half_width_punctuation_is_cosmetic() -> None:
    assert normalise("本协议（以下简称“协议”）：适用。") == normalise(
        '本协议(以下简称"协议"):适用.'
    )
    assert normalise("「本服务」") == normalise("“本服务”")
    text = TERMS.replace("仅供参考，不构成专业意见。", "仅供参考, 不构成专业意见.").replace(
        "（1）", "(1)"
    )
    diff = diff_clauses(_clauses(TERMS), _clauses(text))
    assert not diff.substantive
    assert (
        diff.summary()["cosmetic"] >= 1
    )  # "（1）" and "(1)" are the same marker: no change at all


def test_diff_json_carries_a_character_redline(tmp_path: Path) -> None:
    old, new = tmp_path / "old.md", tmp_path / "new.md"
    old.write_text(TERMS, encoding="utf-8")
    new.write_text(TERMS.replace("您可以随时停止", "您可以随时暂停"), encoding="utf-8")
    result = CliRunner().invoke(cli, ["diff", str(old), str(new), "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    data = json.loads(result.output)
    (change,) = [c for c in data["changes"] if c["substantive"]]
    assert change["kind"] == "modified"  # a one-character edit pairs the clause, not remove + add
    assert 1 <= _changed_chars(tuple(map(tuple, change["redline"]))) <= 4


# -- the Chinese development set ---------------------------------------------------------------


def test_chinese_development_set_covers_every_label() -> None:
    rows = [
        json.loads(line)
        for line in (ROOT / "tests/data/zh_clauses.jsonl").read_text("utf-8").splitlines()
    ]
    labels = tomllib.loads((ROOT / "tostrack/classify/data/labels.toml").read_text("utf-8"))
    assert len(rows) >= 300
    assert len({r["id"] for r in rows}) == len(rows)
    assert all(
        set(r) == {"id", "text", "labels"} and re.search(r"[\u4e00-\u9fff]", r["text"])
        for r in rows
    )
    counts = {label: 0 for label in labels}
    for r in rows:
        for label in r["labels"]:
            counts[label] += 1  # a KeyError here is a label that does not exist
    assert min(counts.values()) >= 5, counts
    assert sum(1 for r in rows if not r["labels"]) >= 40  # near misses with no label


# -- registry ------------------------------------------------------------------------------------


def test_registry_has_the_chinese_providers_in_chinese() -> None:
    zh = [s for s in registry() if s.language == "zh"]
    providers = {s.provider for s in zh}
    assert {
        "bytedance",
        "alibaba",
        "deepseek",
        "moonshot",
        "zhipu",
        "tencent",
        "minimax",
    } <= providers
    assert {s.document_type for s in zh} >= {"terms-of-service", "privacy-policy"}
    for path in (ROOT / "tostrack" / "sources" / "registry").glob("*.toml"):
        for entry in tomllib.loads(path.read_text("utf-8"))["documents"]:
            if entry.get("language") == "zh":
                # unverified until `tostrack sources validate` has fetched the page
                assert entry["notes"].startswith(("Unverified", "URL and selector as used by")), (
                    entry["id"]
                )


# -- the real Doubao terms (optional) -------------------------------------------------------------


def _newest_doubao() -> Path:
    if not DOUBAO.is_dir():
        pytest.skip("the shared corpus is not present")
    return max(DOUBAO.glob("*.md"))


def test_doubao_numbered_items_are_clauses_with_sections() -> None:
    path = _newest_doubao()
    document = extract_file(path)
    clauses = segment_document(document)
    numbers = re.findall(r"^(?:\*\*)?\s*(\d+(?:\.\d+)+)\s", path.read_text("utf-8"), re.MULTILINE)
    assert len(numbers) > 50
    headings = {b.marker for b in document.blocks if b.kind == "heading"}  # "5.2 信息内容规范"
    assert set(numbers) <= {c.number for c in clauses} | headings
    assert all(c.section for c in clauses)
    if path.name.startswith("2026-07-15"):
        assert document.effective_date == "2026-07-22"


def test_chinese_development_set_copies_no_run_of_the_corpus() -> None:
    """Our own words in Chinese too: no run of twelve Han characters of the set appears in a
    Chinese document of ../shared/corpus (test_own_words.py compares Latin words only)."""
    corpus = ROOT.parent / "shared" / "corpus"
    if not corpus.is_dir():
        pytest.skip("the shared corpus is not present")
    han = re.compile(r"[\u4e00-\u9fff]+")
    ours: dict[str, str] = {}
    for line in (ROOT / "tests/data/zh_clauses.jsonl").read_text("utf-8").splitlines():
        record = json.loads(line)
        for run in han.findall(record["text"]):
            for i in range(len(run) - 11):
                ours[run[i : i + 12]] = record["id"]
    found = set()
    for doc in corpus.rglob("*.md"):
        for run in han.findall(doc.read_text(encoding="utf-8", errors="replace")):
            found.update(
                ours[run[i : i + 12]] for i in range(len(run) - 11) if run[i : i + 12] in ours
            )
    assert not found, sorted(found)


# -- the report in a real browser, with CJK fonts ------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")


def test_chinese_change_report_renders_in_chromium_with_cjk_fonts(tmp_path: Path) -> None:
    """tostrack import + report on two versions of the made-up terms, then the change report in
    headless Chromium: the redline marks one character, and the page's fonts include a CJK face
    (fonts-noto-cjk, installed by .ci/run). The screenshot lands in test-artifacts/."""
    css = (ROOT / "templates" / "tostrack.css").read_text("utf-8")
    assert "Noto Sans CJK SC" in css and "Noto Serif CJK SC" in css
    assert "fonts-noto-cjk" in (ROOT / ".ci" / "run").read_text("utf-8")
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium")
    history = tmp_path / "history"
    history.mkdir()
    (history / "2026-02-03T08-00-00Z.md").write_text(TERMS, encoding="utf-8")
    (history / "2026-04-01T08-00-00Z.md").write_text(
        TERMS.replace("批量抓取", "大量抓取").replace("2026年2月10日", "2026年4月8日"),
        encoding="utf-8",
    )
    (tmp_path / "tostrack.toml").write_text(
        '[[sources]]\nid = "chenxing/assistant-terms"\ntitle = "晨星智能助手用户协议"\n'
        'language = "zh"\nurl = "https://example.cn/legal/terms"\n',
        encoding="utf-8",
    )
    runner = CliRunner()
    for args in (["import", "chenxing/assistant-terms", str(history)], ["report"]):
        result = runner.invoke(cli, ["-w", str(tmp_path), *args])
        assert result.exit_code == 0, result.output
    (report,) = [
        p
        for p in (tmp_path / "reports" / "changes").rglob("*.html")
        if not p.stem.endswith(("inline", "side-by-side"))
    ]
    with sync_api.sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        except Exception as exc:  # noqa: BLE001 - a broken browser install is a skip
            pytest.skip(f"cannot start {CHROMIUM}: {exc}")
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(report.as_uri())
        marked = page.eval_on_selector_all(
            ".redline del, .redline ins", "els => els.map(e => e.textContent)"
        )
        assert marked and all(len(text) <= 4 for text in marked), marked
        assert "大" in marked and "批" in marked
        has_cjk_font = page.evaluate(
            "() => ['Noto Sans CJK SC', 'Noto Serif CJK SC']"
            ".some(f => document.fonts.check(`16px '${f}'`, '中'))"
        )
        if not has_cjk_font or not any("CJK" in line for line in _fc_list()):
            pytest.skip("fonts-noto-cjk is not installed: Chinese would render as boxes")
        (ROOT / "test-artifacts").mkdir(exist_ok=True)
        page.screenshot(
            path=str(ROOT / "test-artifacts" / "zh-change-report-test.png"), full_page=True
        )
        browser.close()


def _fc_list() -> list[str]:
    import shutil
    import subprocess

    if not shutil.which("fc-list"):
        return []
    return subprocess.run(
        ["fc-list"], capture_output=True, text=True, check=False
    ).stdout.splitlines()
