"""Recorded diffs as a chat message or a webhook's JSON shows them, sized to the target.

A chat message is read in a phone's notification: a headline per changed clause with its
severity and topics, the new wording quoted and trimmed, then "and 6 more changes" with the
change report's link when the rest does not fit. A JSON webhook gets the machine-readable
summary instead (the `tostrack diff --format json` changes, with the report's URL).

Items are the email's diff views (tostrack.render.email.diff_view), one per document.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from tostrack.render.views import SEVERITY_WORDS, human_date

# A quote longer than this is trimmed even when the target would take more: the report has it.
QUOTE_LENGTH = 280


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def trimmed(text: str, limit: int) -> str:
    """text on one line, cut at a word boundary to at most limit characters (… marks a cut)."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: max(limit - 1, 1)]
    if " " in cut[limit // 2 :]:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:") + "…"


def _quote_source(change: Mapping[str, Any]) -> tuple[str, str]:
    """What to quote of a change: the new wording, or what was removed."""
    if change.get("new_text"):
        return "", change["new_text"]
    return "removed: ", change.get("old_text", "")


def change_line(change: Mapping[str, Any], quote_limit: int) -> str:
    """• High · 2.3: a clause now bans … (Competing models), then the quoted wording."""
    topics = list(dict.fromkeys([*change["labels"], *change["labels_added"]]))
    where = change.get("section") or ""
    head = SEVERITY_WORDS.get(change["severity"], change["severity"]).upper()
    line = f"• {head} · {where + ': ' if where else ''}{change['headline']}"
    if topics:
        line += f" ({', '.join(topics)})"
    if change.get("labels_removed"):
        line += f"; no longer: {', '.join(change['labels_removed'])}"
    prefix, quote = _quote_source(change)
    if quote and quote_limit > 0:
        line += f"\n  > {prefix}{trimmed(quote, quote_limit)}"
    return line


def _effective_line(item: Mapping[str, Any]) -> str:
    date = item.get("effective_date")
    if not date:
        return ""
    when = human_date(date)
    if item.get("effective_in_future"):
        return f"Takes effect on {when}: the current terms apply until then."
    return f"Effective {when}."


def _more_line(count: int, link: str) -> str:
    text = f"…and {_plural(count, 'more change')}"
    return text + (f": {link}" if link else " in the full report")


def chat_text(items: Sequence[Mapping[str, Any]], limit: int) -> str:
    """The message, at most limit characters: whole change lines while they fit, then
    "…and N more changes" with the report link."""
    quote_limit = max(0, min(QUOTE_LENGTH, limit // 6))
    blocks: list[str] = []
    used = 0
    for number, item in enumerate(items):
        link = item.get("report_uri", "")
        changes = item["changes"]
        hidden = item.get("other_changes", 0)
        count = _plural(len(changes) + hidden, "change")
        # One document: the title already names it. Several: each block says which it is.
        head = f"{count}:" if len(items) == 1 else f"{item['title']}: {count}"
        lines = [head]
        effective = _effective_line(item)
        later_items = sum(
            len(i["changes"]) + i.get("other_changes", 0) for i in items[number + 1 :]
        )
        shown = 0
        for change in changes:
            line = change_line(change, quote_limit)
            left = len(changes) - shown - 1 + hidden
            # What must still fit after this line: the effective date, the closing link.
            tail = len(effective) + len(_more_line(left + later_items, link)) + 4
            if used + sum(len(x) + 1 for x in lines) + len(line) + tail > limit:
                short = change_line(change, 0)
                if shown == 0 and used + len(head) + len(short) + tail < limit:
                    lines.append(short)  # the headline at least; its quote does not fit
                    shown += 1
                break
            lines.append(line)
            shown += 1
        if effective:
            lines.append(effective)
        left = len(changes) - shown + hidden
        if left:
            lines.append(_more_line(left, link))
        elif link:
            lines.append(f"Report: {link}")
        block = "\n".join(lines)
        if blocks and used + len(block) + 2 > limit:
            rest = sum(len(i["changes"]) + i.get("other_changes", 0) for i in items[number:])
            blocks.append(
                f"…and {_plural(rest, 'more change')} in "
                f"{_plural(len(items) - number, 'more document')}" + (f": {link}" if link else "")
            )
            break
        blocks.append(block)
        used += len(block) + 2
    text = "\n\n".join(blocks)
    return text if len(text) <= limit else trimmed(text, limit)


def webhook_json(
    items: Sequence[Mapping[str, Any]], *, message_id: str, headline: str, limit: int
) -> str:
    """The change summary for a JSON webhook, at most limit characters once escaped into
    Apprise's envelope: the changes as
    `tostrack diff --format json` writes them, the newest kept first when they do not all fit
    ("more_changes" counts the rest)."""
    documents = []
    for item in items:
        documents.append(
            {
                "source": item["source_id"],
                "title": item["title"],
                "report_url": item.get("report_uri", ""),
                "detected_at": item.get("detected_at", ""),
                "effective_date": item.get("effective_date"),
                "effective_date_is_future": bool(item.get("effective_in_future")),
                "severity": item.get("severity", "none"),
                "headline": item.get("headline", ""),
                "changes": [
                    {**record, "headline": view["headline"], "topics": view["labels"]}
                    for record, view in zip(item["records"], item["changes"], strict=True)
                ],
                "more_changes": item.get("other_changes", 0),
            }
        )
    summary = {
        "type": "tostrack.change",
        "version": 1,
        "id": message_id,
        "provider": items[0]["source_id"].partition("/")[0] if items else "",
        "severity": _top_severity(items),
        "headline": headline,
        "documents": documents,
    }
    text = _dumps(summary)
    # Too long for the receiver: drop changes from the end (least severe first), counting them.
    # Measured as it is posted: a JSON string inside Apprise's envelope, escaped.
    while len(json.dumps(text)) > limit:
        longest = max(documents, key=lambda d: len(d["changes"]))
        if not longest["changes"]:
            break
        longest["changes"].pop()
        longest["more_changes"] += 1
        text = _dumps(summary)
    return text


def _top_severity(items: Sequence[Mapping[str, Any]]) -> str:
    order = ("none", "low", "medium", "high")
    found = [i.get("severity", "none") for i in items] or ["none"]
    return max(found, key=lambda s: order.index(s) if s in order else 0)


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
