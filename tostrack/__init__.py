"""tostrack: a terms-of-service diff and clause tracker for AI providers.

Library first: every stage of the pipeline is a plain function.

    from tostrack import compare_files, extract_file, segment_document, diff_clauses
    result = compare_files("old.html", "new.html")      # extract, segment, classify, align
    for change in result.diff.substantive:
        print(change.kind, change.labels_added, change.severity)
"""

from tostrack.models import Block, Change, Clause, Diff, Document, Failure, Snapshot, Source

__version__ = "0.1.0"

_LAZY = {
    "extract_bytes": "tostrack.extract",
    "extract_file": "tostrack.extract",
    "extract_text": "tostrack.extract",
    "segment_document": "tostrack.segment",
    "diff_clauses": "tostrack.align",
    "word_redline": "tostrack.align",
    "replay_pairs": "tostrack.replay",
    "classify_clauses": "tostrack.classify",
    "classify_text": "tostrack.classify",
    "compare_files": "tostrack.pipeline",
    "compare_documents": "tostrack.pipeline",
}

__all__ = [
    "Block",
    "Change",
    "Clause",
    "Diff",
    "Document",
    "Failure",
    "Snapshot",
    "Source",
    "classify_clauses",
    "classify_text",
    "compare_documents",
    "compare_files",
    "diff_clauses",
    "extract_bytes",
    "extract_file",
    "extract_text",
    "replay_pairs",
    "segment_document",
    "word_redline",
]


def __getattr__(name: str):  # lazy, so "import tostrack" stays cheap for the CLI
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
