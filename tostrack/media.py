"""The media types tostrack reads, with the file extension a raw snapshot of each is kept under.

One table for the fetcher (what it accepts), the store (raw-0.<ext>) and `tostrack import`
(which file names in a history folder are documents). extract.py maps types to its formats.
"""

from __future__ import annotations

# media type -> extension of the raw snapshot file
EXTENSIONS = {
    "text/html": "html",
    "application/xhtml+xml": "html",
    "text/markdown": "md",
    "text/plain": "txt",
    "application/pdf": "pdf",
}
SUPPORTED_TYPES = frozenset(EXTENSIONS)
# Other names servers use for the same types.
ALIASES = {"text/x-markdown": "text/markdown", "application/x-pdf": "application/pdf"}
# File name suffix -> media type, for the dated files of an imported history.
SUFFIX_TYPES = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".txt": "text/plain",
    ".pdf": "application/pdf",
}


def extension_for(media_type: str) -> str:
    """html, md, txt, pdf; bin for a type tostrack does not read."""
    return EXTENSIONS.get(media_type, "bin")


HTML_TYPES = ("text/html", "application/xhtml+xml")
