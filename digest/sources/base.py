"""What every source returns, and the HTTP client they share."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from dataclasses import dataclass, field

import requests
from django.conf import settings

logger = logging.getLogger(__name__)

USER_AGENT = "Paperboy/0.1 (self-hosted paper digest; +https://github.com/paperboy)"

_VERSION_SUFFIX = re.compile(r"v\d+$")
ARXIV_ID = re.compile(r"^(?:\d{4}\.\d{4,5}|[a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7})$")
URL_MAX_LENGTH = 500  # Paper's URLFields are max_length=500; a longer URL is dropped.


def bare_arxiv_id(raw: str) -> str:
    """`2312.00752v2` -> `2312.00752`; also takes an abs/pdf URL."""
    ident = raw.strip().rsplit("/abs/", 1)[-1].rsplit("/pdf/", 1)[-1]
    return _VERSION_SUFFIX.sub("", ident)


@dataclass(frozen=True)
class PaperRecord:
    """One paper as a source saw it, normalised. Text is untrusted and stored as text."""

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


def http_get(
    url: str,
    *,
    params: dict[str, str | int] | None = None,
    min_backoff_s: float = 0.0,
) -> requests.Response:
    """GET with a timeout, a User-Agent naming Paperboy, and a few retries with backoff.

    Retries connection errors, timeouts and 5xx/429 answers; a 4xx is final. Raises
    requests.RequestException (HTTPError for a bad status) after the last try.
    `min_backoff_s` lets a rate-limited source (arXiv: one request every 3 s) keep its
    pace on retries too.
    """
    retries = settings.PAPERBOY_HTTP_RETRIES
    backoff = max(settings.PAPERBOY_HTTP_BACKOFF_S, min_backoff_s)
    last_error: requests.RequestException | None = None
    for attempt in range(retries + 1):
        try:
            response = requests.get(
                url,
                params=params,
                timeout=settings.PAPERBOY_HTTP_TIMEOUT_S,
                headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip"},
            )
            response.raise_for_status()
            return response
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status < 500 and status != 429:
                raise
            last_error = exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            last_error = exc
        if attempt < retries:
            delay = backoff * (2**attempt)
            logger.warning(
                "GET %s failed (%s); retrying in %.1fs", url, describe_error(last_error), delay
            )
            time.sleep(delay)
    assert last_error is not None
    raise last_error


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
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        return ""
    return url


def describe_error(error: BaseException) -> str:
    """A short reason for a log line or an error message, without a traceback's noise."""
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return f"HTTP {error.response.status_code}"
    if isinstance(error, requests.Timeout):
        return f"Timeout after {settings.PAPERBOY_HTTP_TIMEOUT_S:g}s"
    if isinstance(error, requests.ConnectionError):
        # requests nests the OS reason deep in a long message; "[Errno 111] Connection
        # refused" is the part a reader can act on.
        errno = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(error))
        return f"ConnectionError: {errno.group(1)}" if errno else "ConnectionError"
    if isinstance(error, json.JSONDecodeError):
        return "the response is not JSON"
    return f"{type(error).__name__}: {error}"
