"""What a body is: its media type from the header or the bytes, its charset, its meta refresh.

Pure functions of bytes and headers, used by the HTTP fetcher (and testable without a server).
"""

from __future__ import annotations

import codecs
import re

from tostrack.media import ALIASES as MEDIA_ALIASES

_META_TAG = re.compile(rb"<meta\b[^>]*>", re.IGNORECASE)
_REFRESH = re.compile(rb"""http-equiv\s*=\s*["']?refresh\b""", re.IGNORECASE)
_CONTENT = re.compile(rb"""content\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.IGNORECASE)
_REFRESH_VALUE = re.compile(
    r"""^\s*(\d+(?:\.\d+)?)\s*[;,]\s*(?:url\s*=\s*)?["']?([^"'\s]+)""", re.IGNORECASE
)


def meta_refresh(body: bytes, content_type: str) -> str | None:
    """The target of an immediate <meta http-equiv="refresh"> on a small page, else None.

    Only small pages with a short delay: a long page that refreshes itself every few minutes,
    or a challenge that reloads itself (no URL), is not a redirect.
    """
    if content_type not in ("text/html", "application/xhtml+xml") or len(body) > 16_384:
        return None
    for tag in _META_TAG.findall(body):
        content = _CONTENT.search(tag)
        if not _REFRESH.search(tag) or not content:
            continue
        value = next(g for g in content.groups() if g is not None).decode("latin-1")
        found = _REFRESH_VALUE.match(value)
        if found and float(found.group(1)) <= 10:
            return found.group(2)
    return None


# -- content type and charset -------------------------------------------------------------------


def parse_content_type(value: str) -> tuple[str, str | None]:
    """'Text/HTML; charset="UTF-8"' -> ("text/html", "utf-8")."""
    media, _, params = value.partition(";")
    media = media.strip().lower()
    media = MEDIA_ALIASES.get(media, media)
    charset = None
    for param in params.split(";"):
        name, _, val = param.partition("=")
        if name.strip().lower() == "charset":
            charset = val.strip().strip("\"'").lower() or None
    return media, charset


def sniff_type(body: bytes) -> str:
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"%pdf-"):
        return "application/pdf"
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml")) or (
        b"<p" in head or b"<div" in head
    ):
        return "text/html"
    try:
        body[:4096].decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < 4090:  # not just a character cut at the sample's end
            return "application/octet-stream"
    return "text/plain" if b"\x00" not in body[:4096] else "application/octet-stream"


_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.IGNORECASE
)
_XML_ENCODING = re.compile(rb"""^<\?xml[^>]+encoding\s*=\s*["']([a-zA-Z0-9_.:-]+)""")
# Charsets that decode any byte string, so "it decodes" proves nothing about them.
_ANY_BYTES = frozenset(
    codecs.lookup(name).name for name in ("latin-1", "cp1252", "iso-8859-15", "ascii")
)


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def detect_encoding(body: bytes, content_type: str, declared: str | None) -> str | None:
    """The charset to decode a text body with: BOM, then the header's charset unless the body
    proves it wrong, then <meta charset> (HTML) or the XML declaration, then UTF-8 if it fits."""
    if content_type == "application/pdf":
        return None
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name
    meta = None
    if content_type in ("text/html", "application/xhtml+xml"):
        head = body[:8192]
        found = _XML_ENCODING.search(head) or _META_CHARSET.search(head)
        meta = found.group(1).decode("ascii").lower() if found else None
    candidates = [c for c in (declared, meta) if _codec(c)]
    utf8 = _decodes(body, "utf-8")
    non_ascii = not body.isascii()
    for name in candidates:
        codec = _codec(name)
        if codec in _ANY_BYTES and non_ascii and utf8:
            # A Latin-1 label on a body that is valid UTF-8 with accents: the label is wrong
            # (decoding by it would turn "é" into "Ã©").
            continue
        if _decodes(body, name):
            return name
    if utf8:
        return "utf-8" if non_ascii else (candidates[0] if candidates else None)
    if candidates and _decodes(body, "windows-1252"):
        return "windows-1252"  # labelled UTF-8 but is not: the web's usual legacy charset
    return candidates[0] if candidates else None


def _decodes(body: bytes, name: str | None) -> bool:
    if not name:
        return False
    try:
        body.decode(name)
    except (UnicodeDecodeError, LookupError):
        return False
    return True
