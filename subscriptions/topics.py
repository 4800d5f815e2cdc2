"""Interests are keyword phrases; this keeps them tidy and bounded."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

MAX_INTERESTS = 20
MAX_INTEREST_LENGTH = 80

_SPACE = re.compile(r"\s+")


class InvalidInterest(ValueError):
    pass


def clean_interest(raw: str) -> str:
    """Collapse white space; reject control characters and over-long phrases."""
    if any(unicodedata.category(ch) == "Cc" and ch not in "\t\n\r" for ch in raw):
        raise InvalidInterest("Topics cannot contain control characters.")
    phrase = _SPACE.sub(" ", raw).strip()
    if phrase.startswith("-"):
        phrase = "-" + phrase[1:].strip()
    if len(phrase) > MAX_INTEREST_LENGTH:
        raise InvalidInterest(f"“{phrase[:30]}…” is longer than {MAX_INTEREST_LENGTH} characters.")
    if phrase in ("", "-"):
        return ""
    return phrase


def clean_interests(raw: Iterable[str]) -> list[str]:
    """Clean each phrase, drop blanks and case-insensitive repeats, keep the order typed."""
    seen: set[str] = set()
    topics: list[str] = []
    for item in raw:
        phrase = clean_interest(item)
        if phrase and phrase.lower() not in seen:
            seen.add(phrase.lower())
            topics.append(phrase)
    if len(topics) > MAX_INTERESTS:
        raise InvalidInterest(f"At most {MAX_INTERESTS} topics, please.")
    return topics
