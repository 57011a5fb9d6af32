"""Which writing system a text is in, as far as classification cares: Chinese, Japanese and
Korean characters (read one by one, without spaces between words) or the rest."""

from __future__ import annotations

import re

# Hiragana and katakana, CJK ideographs (with extension A), Hangul syllables, compatibility
# ideographs.
CJK_CHARS = "\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff"
CJK_RUN = re.compile(f"[{CJK_CHARS}]+")


def cjk_count(text: str) -> int:
    if text.isascii():  # a flag of the string: no scan
        return 0
    return sum(len(run) for run in CJK_RUN.findall(text))


def is_cjk(text: str) -> bool:
    """Mostly Chinese, Japanese or Korean: more CJK characters than Latin letters."""
    cjk = cjk_count(text)
    return cjk > 0 and cjk >= ascii_letter_count(text)


_NOT_LETTERS = bytes(b for b in range(128) if not chr(b).isalpha())


def ascii_letter_count(text: str) -> int:
    """sum(1 for ch in text if ch.isascii() and ch.isalpha()), in C: the ASCII characters'
    bytes, less those that are not letters."""
    return len(text.encode("ascii", "ignore").translate(None, _NOT_LETTERS))
