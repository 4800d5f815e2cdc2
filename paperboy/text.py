"""Text and date helpers both apps use: one line of scraped text, a cut at a word, dates
and counts as the pages and emails write them. Nothing here knows a model."""

from __future__ import annotations

import datetime as dt
import functools
import re
import unicodedata
from collections.abc import Sequence

_SPACES = re.compile(r"\s+")


def one_line(text: str) -> str:
    """Collapse all white space (CR, LF, tabs, U+2028…) and drop control characters.

    Scraped text goes into the Subject header: with no line breaks left, it cannot start
    a header of its own.
    """
    return squash(text).strip()


def squash(text: str) -> str:
    """Like one_line, but keeps one space at either end: snippet parts join up again."""
    if text.isprintable():
        # The common case, checked in C: no control or format characters, no line breaks.
        return _SPACES.sub(" ", text)
    text = "".join(
        ch for ch in text if ch.isspace() or not unicodedata.category(ch).startswith("C")
    )
    return _SPACES.sub(" ", text)


def shorten(text: str, limit: int) -> str:
    """Cut at a word boundary at or before `limit` characters, marking the cut with "…"."""
    if len(text) <= limit:
        return text
    cut = text[: limit + 1].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut.rstrip(" ,;:–—-") + "…"


@functools.lru_cache(maxsize=64)  # every digest of a day writes the same dates
def long_date(day: dt.date) -> str:
    return f"{day:%A}, {day.day} {day:%B %Y}"  # Tuesday, 10 March 2026


@functools.lru_cache(maxsize=64)
def short_date(day: dt.date) -> str:
    return f"{day.day} {day:%b}"  # 10 Mar


def plural(n: int, word: str) -> str:
    """ "1 paper", "3 papers" (regular plurals only)."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def list_phrase(items: Sequence[str], limit: int) -> str:
    """ "a, b, c" or, past `limit`, "a, b and 3 more"."""
    if len(items) > limit:
        return f"{', '.join(items[:limit])} and {len(items) - limit} more"
    return ", ".join(items)
