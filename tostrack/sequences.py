"""How far two strings (or byte strings) begin and end alike, compared a block at a time in C:
65,536 items, then 4,096, 256, 16 and 1 inside the block that differs (each size divides the
one before, so no item is skipped)."""

from __future__ import annotations

_BLOCKS = (1 << 16, 1 << 12, 1 << 8, 1 << 4, 1)


def common_prefix(a: str | bytes, b: str | bytes) -> int:
    """The first index where a and b differ (the shorter one's length if one begins the other)."""
    at, end = 0, min(len(a), len(b))
    for block in _BLOCKS:
        while at < end and a[at : at + block] == b[at : at + block]:
            at += block
    return min(at, end)


def common_suffix(a: str | bytes, b: str | bytes, limit: int) -> int:
    """How many items a and b end alike, at most `limit` (at most the shorter one's length)."""
    limit = min(limit, len(a), len(b))
    n, m, done = len(a), len(b), 0
    for block in _BLOCKS:
        # never past `limit`: a slice starting below 0 would wrap around
        while (
            done + block <= limit
            and a[n - done - block : n - done] == b[m - done - block : m - done]
        ):
            done += block
    return done
