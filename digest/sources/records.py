"""What every source returns, and the checks that make a record storable.

Everything a source sends is untrusted: one item may be malformed (a NUL in a title, an
upvote count no integer column holds). A bad item is left out on its own, counted by
reason; a field that can be mended (cut, cleaned) is, and counted too.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

_VERSION_SUFFIX = re.compile(r"v\d+$")
# New-style ids (2603.05890) and old-style ones (hep-th/9901001), after vN is stripped.
# ASCII digits only, \Z rather than $ (which also matches before a final newline), and a
# bounded archive name, so that whatever matches fits Paper.arxiv_id (32 characters).
ARXIV_ID = re.compile(r"^(?:\d{4}\.\d{4,5}|[a-z][a-z-]{0,15}(?:\.[A-Z]{2})?/\d{7})\Z", re.ASCII)
URL_MAX_LENGTH = 500  # Paper's URLFields are max_length=500; a longer URL is dropped.
# Paper's counts are PositiveIntegerFields: a PostgreSQL integer, at most 2**31 - 1.
COUNT_MAX = 2**31 - 1
# PostgreSQL cannot store NUL in text (nor in jsonb), and a lone surrogate (JSON may
# spell one, "\ud800") has no UTF-8 encoding, so the driver cannot send it at all.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
# A JSON number longer than this is out of every range we keep (Python refuses to convert
# one of 4,300 digits or more at all, which would fail the whole document).
_JSON_INT_DIGITS = 100


def bare_arxiv_id(raw: str) -> str:
    """`2312.00752v2` -> `2312.00752`; also takes an abs/pdf URL."""
    ident = raw.strip().rsplit("/abs/", 1)[-1].rsplit("/pdf/", 1)[-1]
    return _VERSION_SUFFIX.sub("", ident)


@dataclass(frozen=True)
class PaperRecord:
    """One paper as a source saw it, normalised. Text is untrusted and stored as text;
    sources pass each record through `mend_record`, so every one can be stored."""

    arxiv_id: str
    title: str
    abstract: str
    authors: list[str]
    published_at: dt.datetime | None
    batch_date: dt.date
    source: str
    upvotes: int = 0
    num_comments: int = 0
    ai_keywords: list[str] = field(default_factory=list)
    ai_summary: str = ""
    github_repo: str = ""
    github_stars: int | None = None
    project_page: str = ""
    thumbnail: str = ""
    listed_at: dt.datetime | None = None  # when HF put it on Daily Papers


class BadItem(ValueError):
    """One item cannot be used. `reason` names the field and the fault but not the value,
    so that reasons can be counted; the message may quote the value, for the log."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


@dataclass
class Screened:
    """A source's papers, and what it had to leave out or mend to get them, by reason."""

    records: list[PaperRecord] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # bad items left out
    repaired: Counter[str] = field(default_factory=Counter)  # items kept once a field was mended

    def extend(self, other: Screened) -> None:
        self.records.extend(other.records)
        self.skipped.update(other.skipped)
        self.repaired.update(other.repaired)


# --- Making a record storable ------------------------------------------------------------

_TEXT_FIELDS = ("title", "abstract", "ai_summary")
_LIST_FIELDS = ("authors", "ai_keywords")
_URL_FIELDS = ("github_repo", "project_page", "thumbnail")
_COUNT_FIELDS = ("upvotes", "num_comments", "github_stars")
_TIME_FIELDS = ("published_at", "listed_at")


def mend_record(record: PaperRecord) -> tuple[PaperRecord, list[str]]:
    """`record` as the database can store it, and what had to change (one reason each).

    Text loses NUL and lone surrogates, list entries left empty are dropped, a URL that
    is not plain absolute http(s) is dropped; these mend the item. An id that is not
    arXiv's, an empty title, a count outside 0..COUNT_MAX, a time outside what datetime
    can hold in UTC, or a field of the wrong type cannot be mended: raises BadItem.
    """
    if not isinstance(record.arxiv_id, str) or not ARXIV_ID.match(record.arxiv_id):
        raise BadItem("id is not an arXiv id", f"id {shown(record.arxiv_id)} is not an arXiv id")
    changes: dict[str, Any] = {}
    repairs: list[str] = []
    for name in _TEXT_FIELDS:
        text = _text_field(record, name)
        clean = storable_text(text)
        if clean != text:
            changes[name] = normalise_space(clean)
            repairs.extend(_stripped(text, name))
    if not changes.get("title", record.title):
        raise BadItem("title is empty")
    for name in _LIST_FIELDS:
        values = getattr(record, name)
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise BadItem(f"{name} is not a list of strings")
        cleaned = [normalise_space(storable_text(v)) for v in values]
        if cleaned != values:
            changes[name] = [v for v in cleaned if v]
            for value in values:
                repairs.extend(_stripped(value, name))
    for name in _URL_FIELDS:
        url = _text_field(record, name)
        safe = safe_url(url)
        if safe != url:
            changes[name] = safe
            repairs.append(f"unsafe URL dropped from {name}")
    for name in _COUNT_FIELDS:
        _check_count(getattr(record, name), name, optional=name == "github_stars")
    for name in _TIME_FIELDS:
        value = getattr(record, name)
        if value is not None:
            changes[name] = _utc(value, name)
    return dataclasses.replace(record, **changes), repairs


def storable_text(text: str) -> str:
    """`text` without the characters PostgreSQL cannot store (see _UNSTORABLE)."""
    return _UNSTORABLE.sub("", text)


def _text_field(record: PaperRecord, name: str) -> str:
    value = getattr(record, name)
    if not isinstance(value, str):
        raise BadItem(f"{name} is not a string", f"{name} is {type(value).__name__}")
    return value


def _stripped(text: str, name: str) -> list[str]:
    """What storable_text took out of `text`, as repair reasons."""
    found = set(_UNSTORABLE.findall(text))
    reasons = []
    if "\x00" in found:
        reasons.append(f"NUL stripped from {name}")
    if found - {"\x00"}:
        reasons.append(f"lone surrogate stripped from {name}")
    return reasons


def _check_count(value: Any, name: str, *, optional: bool) -> None:
    if value is None and optional:
        return
    # bool is an int subclass in Python; True upvotes is a shape we do not understand.
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadItem(f"{name} is not a whole number", f"{name} is {shown(value)}")
    if not 0 <= value <= COUNT_MAX:
        raise BadItem(f"{name} is out of range", f"{name} is {shown(value)}, not 0..{COUNT_MAX}")


def _utc(value: Any, name: str) -> dt.datetime:
    """`value` in UTC, as Django stores it; 9999-12-31T23:00-05:00 has no UTC datetime."""
    if not isinstance(value, dt.datetime):
        raise BadItem(f"{name} is not a date-time", f"{name} is {type(value).__name__}")
    try:
        return value.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        detail = f"{name} {value.isoformat()} is out of range"
        raise BadItem(f"{name} is out of range", detail) from None


def shown(value: object, limit: int = 60) -> str:
    """`value` for a log line: repr escapes NUL and surrogates, and long values are cut."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def loads_json(content: bytes | str) -> Any:
    """json.loads for untrusted documents: any bad document raises ValueError.

    JSON nested thousands deep would raise RecursionError, and a number of 4,300 digits
    a ValueError for the whole document; such a number is cut to its first digits
    instead, which keeps it out of every range we accept while its item alone is left out.
    """
    try:
        return json.loads(content, parse_int=_json_int)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


def _json_int(text: str) -> int:
    return int(text[:_JSON_INT_DIGITS])


def normalise_space(text: str) -> str:
    """Collapse runs of whitespace (newlines, double spaces in HF titles) to one space."""
    return " ".join(text.split())


def safe_url(value: str | None) -> str:
    """An absolute http(s) URL, or "" — never `javascript:` or a relative path into our site."""
    if not value:
        return ""
    url = value.strip()
    if not re.match(r"^https?://[^\s/]+", url, re.IGNORECASE) or len(url) > URL_MAX_LENGTH:
        return ""
    if any(ch.isspace() or ord(ch) < 32 for ch in url) or _UNSTORABLE.search(url):
        return ""
    return url
