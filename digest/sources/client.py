"""The HTTP client the sources share, and how a source's failure is told.

One server may be hostile (a body trickled a byte at a time, or without end): a request
gives up at its deadline or its size cap, whichever comes first.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass

import requests
import urllib3
from django.conf import settings

logger = logging.getLogger(__name__)

USER_AGENT = "Paperboy/0.1 (self-hosted paper digest; +https://github.com/paperboy)"
# Read a body in pieces of at most this size, checking the deadline and the cap between.
CHUNK_BYTES = 64 * 1024


class SourceError(Exception):
    """A source could not be read at all (every endpoint failed). The message names the URL."""


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
