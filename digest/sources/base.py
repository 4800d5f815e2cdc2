"""What every source returns, the checks that make a record storable, and the HTTP client
the sources share.

Everything a source sends is untrusted: one item may be malformed (a NUL in a title, an
upvote count no integer column holds) and one server may be hostile (a body trickled a
byte at a time, or without end). A bad item is left out on its own, counted by reason; a
request gives up at its deadline or its size cap, whichever comes first.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3
from django.conf import settings

logger = logging.getLogger(__name__)

USER_AGENT = "Paperboy/0.1 (self-hosted paper digest; +https://github.com/paperboy)"

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
# Read a body in pieces of at most this size, checking the deadline and the cap between.
CHUNK_BYTES = 64 * 1024
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


class SourceError(Exception):
    """A source could not be read at all (every endpoint failed). The message names the URL."""


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


# --- HTTP --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """How long one request may take in all, retries included, and how large its body may
    be. `setting` is the prefix of the settings that set them, named in errors so that the
    operator knows what to raise."""

    deadline_s: float
    max_bytes: int
    setting: str  # e.g. "PAPERBOY_HF": PAPERBOY_HF_DEADLINE_S, PAPERBOY_HF_MAX_BYTES


@dataclass(frozen=True)
class Answer:
    """A response body read in full, within the limits."""

    content: bytes
    content_type: str


class LimitExceeded(requests.RequestException):
    """A request passed its deadline or its size cap; never retried, since a server that
    trickles or floods would only do it again."""


def http_get(
    url: str,
    *,
    limits: Limits,
    params: dict[str, str | int] | None = None,
    min_backoff_s: float = 0.0,
) -> Answer:
    """GET with a per-read timeout, an overall deadline, a size cap, a User-Agent naming
    Paperboy, and a few retries with backoff.

    Retries connection errors, timeouts and 5xx/429 answers while the deadline allows; a
    4xx is final. Raises requests.RequestException (HTTPError for a bad status,
    LimitExceeded past the deadline or the cap) after the last try. `min_backoff_s` lets
    a rate-limited source (arXiv: one request every 3 s) keep its pace on retries too.
    """
    retries = settings.PAPERBOY_HTTP_RETRIES
    backoff = max(settings.PAPERBOY_HTTP_BACKOFF_S, min_backoff_s)
    deadline = time.monotonic() + limits.deadline_s
    last_error: requests.RequestException | None = None
    for attempt in range(retries + 1):
        try:
            return _get_once(url, params=params, limits=limits, deadline=deadline)
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status < 500 and status != 429:
                raise
            last_error = exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            last_error = exc
        if attempt < retries:
            delay = backoff * (2**attempt)
            if time.monotonic() + delay >= deadline:
                break  # no time left for another try: the last error says why
            logger.warning(
                "GET %s failed (%s); retrying in %.1fs", url, describe_error(last_error), delay
            )
            time.sleep(delay)
    assert last_error is not None
    raise last_error


def _get_once(
    url: str, *, params: dict[str, str | int] | None, limits: Limits, deadline: float
) -> Answer:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _past_deadline(limits)
    # No single read may outlast the deadline either: the overshoot is at most one read.
    timeout = min(settings.PAPERBOY_HTTP_TIMEOUT_S, remaining)
    with requests.get(
        url,
        params=params,
        timeout=timeout,
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip"},
        stream=True,
    ) as response:
        response.raise_for_status()
        content = _read_body(response, limits=limits, deadline=deadline)
        return Answer(content=content, content_type=response.headers.get("Content-Type", ""))


def _read_body(response: requests.Response, *, limits: Limits, deadline: float) -> bytes:
    """The body, decoded, read piece by piece; LimitExceeded past the deadline or the cap.

    read1 returns whatever one read of the socket brings (iter_content would wait for a
    whole chunk, which a server sending a byte a second takes hours to fill), so the
    deadline is checked at least once per read timeout. urllib3 bounds each piece's
    decompression, so a gzip bomb meets the cap too.
    """
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise _too_large(limits)
    body = bytearray()
    try:
        while chunk := response.raw.read1(CHUNK_BYTES, decode_content=True):
            body += chunk
            if len(body) > limits.max_bytes:
                raise _too_large(limits)
            if time.monotonic() > deadline:
                raise _past_deadline(limits)
    # Reading urllib3's stream directly, its errors are ours to translate, as
    # iter_content would, so that callers and retries see requests' exceptions only.
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.ReadTimeout(exc) from exc
    except urllib3.exceptions.DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise requests.ConnectionError(exc) from exc
    return bytes(body)


def _past_deadline(limits: Limits) -> LimitExceeded:
    return LimitExceeded(
        f"gave up after the {limits.deadline_s:g}s deadline ({limits.setting}_DEADLINE_S)"
    )


def _too_large(limits: Limits) -> LimitExceeded:
    return LimitExceeded(
        f"the response is larger than {limits.max_bytes} bytes ({limits.setting}_MAX_BYTES)"
    )


def describe_error(error: BaseException) -> str:
    """A short reason for a log line or an error message, without a traceback's noise."""
    if isinstance(error, LimitExceeded):
        return str(error)
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return f"HTTP {error.response.status_code}"
    if isinstance(error, requests.Timeout):
        return f"Timeout after {settings.PAPERBOY_HTTP_TIMEOUT_S:g}s"
    if isinstance(error, requests.ConnectionError):
        # requests nests the OS reason deep in a long message; "[Errno 111] Connection
        # refused" is the part a subscriber can act on.
        errno = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(error))
        return f"ConnectionError: {errno.group(1)}" if errno else "ConnectionError"
    if isinstance(error, json.JSONDecodeError):
        return "the response is not JSON"
    return f"{type(error).__name__}: {error}"
