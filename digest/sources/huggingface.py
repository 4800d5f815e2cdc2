"""Hugging Face Daily Papers: the JSON API, with the day's HTML page as a fallback.

Both endpoints carry the same item shape (`{"paper": {...}, "numComments": …, "thumbnail": …}`).
Everything in an item is untrusted: it is type-checked here, stored as text, and escaped
wherever it is shown.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from typing import Any

import lxml.html
import requests
from django.conf import settings

from digest.sources.base import (
    ARXIV_ID,
    PaperRecord,
    SourceError,
    bare_arxiv_id,
    describe_error,
    http_get,
    normalise_space,
    safe_url,
)

logger = logging.getLogger(__name__)

SOURCE = "hf"
API_PAGE_SIZE = 100
# HF lists 20–60 papers a day; 20 pages of 100 is far beyond any real day, so hitting it
# means the server is not paging the way we expect, and we stop rather than loop forever.
API_MAX_PAGES = 20

# New-style ids (2603.05890) and old-style ones (hep-th/9901001), after vN is stripped.
_CHARSET = re.compile(r"charset=[\"']?([\w.:-]+)", re.IGNORECASE)


class _BadItem(ValueError):
    """One item cannot be used; the message says which field and why."""


def fetch_papers(date: dt.date) -> list[PaperRecord]:
    """Every paper of HF's daily list for `date`, normalised.

    Tries the JSON API first and the day's HTML page if the API fails in any way. Raises
    SourceError, naming both URLs, when neither answers with a usable list.
    """
    base = settings.PAPERBOY_HF_URL
    api_url = f"{base}/api/daily_papers"
    page_url = f"{base}/papers/date/{date.isoformat()}"
    try:
        items = _fetch_api_items(api_url, date)
    except (requests.RequestException, ValueError) as api_error:
        api_shown = f"{api_url}?date={date.isoformat()}"
        logger.warning(
            "Hugging Face API %s failed (%s); falling back to %s",
            api_shown,
            describe_error(api_error),
            page_url,
        )
        try:
            response = http_get(page_url)
            items = extract_page_items(response.content, encoding=_charset(response))
        except (requests.RequestException, ValueError) as page_error:
            raise SourceError(
                f"Could not read Hugging Face daily papers at {api_shown} "
                f"({describe_error(api_error)}) nor at {page_url} ({describe_error(page_error)}); "
                "check your network or PAPERBOY_HF_URL"
            ) from page_error
    return parse_daily_papers(items, date=date)


def _fetch_api_items(api_url: str, date: dt.date) -> list[Any]:
    """All items of the API for `date`, page by page until an empty page.

    Raises requests.RequestException or ValueError (body not a JSON list) for any page:
    a day half-read from the API is worse than the whole day from the HTML page.
    """
    items: list[Any] = []
    seen: set[str] = set()
    for page in range(API_MAX_PAGES):
        response = http_get(
            api_url, params={"date": date.isoformat(), "limit": API_PAGE_SIZE, "p": page}
        )
        batch = json.loads(response.content)
        if not isinstance(batch, list):
            raise ValueError(f"expected a JSON list, got {type(batch).__name__}")
        if not batch:
            return items
        ids = {_item_id(item) for item in batch} - {""}
        if ids and ids <= seen:
            # A server that ignores `p` answers page 0 again and again: we have it all.
            logger.warning("Hugging Face API repeated page %d of %s; stopping", page, date)
            return items
        seen |= ids
        items.extend(batch)
    logger.warning("Hugging Face API gave %d pages for %s; stopping there", API_MAX_PAGES, date)
    return items


def extract_page_items(content: bytes, *, encoding: str | None = None) -> list[Any]:
    """The `dailyPapers` items in the JSON of a /papers/date/… page's DailyPapers div.

    Raises ValueError when the page has no such div or its props are not what we expect.
    """
    try:
        parser = lxml.html.HTMLParser(encoding=encoding or "utf-8", no_network=True)
        root = lxml.html.document_fromstring(content, parser=parser)
    except Exception as exc:  # lxml: ParserError on junk; LookupError: unknown charset
        raise ValueError(f"not an HTML page ({exc})") from exc
    found = root.xpath('//div[@data-target="DailyPapers"]/@data-props')
    if not isinstance(found, list) or not found:
        raise ValueError('no <div data-target="DailyPapers" data-props=…> in the page')
    props = json.loads(str(found[0]))
    items = props.get("dailyPapers") if isinstance(props, dict) else None
    if not isinstance(items, list):
        raise ValueError("the DailyPapers props have no dailyPapers list")
    return items


def parse_daily_papers(items: list[Any], *, date: dt.date) -> list[PaperRecord]:
    """Map HF daily-paper items to records; skip (with a warning) any item we cannot trust.

    Required: an arXiv `paper.id` and a `paper.title`. Optional fields may be missing or
    null; a field of the wrong type skips the whole item, because it means the shape
    changed under us and the rest of that item is suspect too. Duplicate ids keep the
    entry with the most upvotes (pages can overlap while upvotes reorder them).
    """
    records: dict[str, PaperRecord] = {}
    for index, item in enumerate(items):
        try:
            record = _parse_item(item, date=date)
        except _BadItem as exc:
            logger.warning(
                "Skipping Hugging Face item #%d (%s) of %s: %s",
                index,
                _item_id(item) or "no id",
                date,
                exc,
            )
            continue
        kept = records.get(record.arxiv_id)
        if kept is None or record.upvotes > kept.upvotes:
            records[record.arxiv_id] = record
    return list(records.values())


def _parse_item(item: Any, *, date: dt.date) -> PaperRecord:
    if not isinstance(item, dict):
        raise _BadItem(f"item is {type(item).__name__}, expected an object")
    paper = item.get("paper")
    if not isinstance(paper, dict):
        raise _BadItem("no paper object")

    raw_id = _required_str(paper, "id")
    arxiv_id = bare_arxiv_id(raw_id)
    if not ARXIV_ID.match(arxiv_id):
        raise _BadItem(f"id {raw_id!r} is not an arXiv id")
    title = normalise_space(_required_str(paper, "title"))
    if not title:
        raise _BadItem("title is empty")

    published_raw = _optional(paper, "publishedAt", str)
    published_at = _parse_datetime(published_raw, "publishedAt") if published_raw else None

    keywords = _optional(paper, "ai_keywords", list) or []
    if not all(isinstance(keyword, str) for keyword in keywords):
        raise _BadItem("ai_keywords holds something other than strings")

    return PaperRecord(
        arxiv_id=arxiv_id,
        title=title,
        abstract=normalise_space(_optional(paper, "summary", str) or ""),
        authors=_author_names(paper.get("authors")),
        published_at=published_at,
        batch_date=_batch_date(paper.get("submittedOnDailyAt"), fallback=date),
        listed_at=_listed_at(paper.get("submittedOnDailyAt")),
        source=SOURCE,
        upvotes=_count(paper, "upvotes") or 0,
        num_comments=_count(item, "numComments") or 0,
        ai_keywords=[kw for kw in (normalise_space(k) for k in keywords) if kw],
        ai_summary=normalise_space(_optional(paper, "ai_summary", str) or ""),
        github_repo=safe_url(_optional(paper, "githubRepo", str)),
        github_stars=_count(paper, "githubStars"),
        project_page=safe_url(_optional(paper, "projectPage", str)),
        thumbnail=safe_url(_optional(item, "thumbnail", str)),
    )


def _required_str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        raise _BadItem(f"{key} is missing")
    if not isinstance(value, str):
        raise _BadItem(f"{key} is {type(value).__name__}, expected a string")
    return value


def _optional(obj: dict[str, Any], key: str, kind: type) -> Any:
    value = obj.get(key)
    if value is not None and not isinstance(value, kind):
        raise _BadItem(f"{key} is {type(value).__name__}, expected {kind.__name__}")
    return value


def _count(obj: dict[str, Any], key: str) -> int | None:
    """A non-negative int or None; bool is an int subclass in Python, so exclude it."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _BadItem(f"{key} is {value!r}, expected a whole number >= 0")
    return value


def _author_names(authors: Any) -> list[str]:
    if authors is None:
        return []
    if not isinstance(authors, list):
        raise _BadItem(f"authors is {type(authors).__name__}, expected a list")
    # Every name is kept, `hidden` ones included: the byline is the paper's own public
    # arXiv metadata. An entry without a usable name is dropped on its own.
    names = []
    for author in authors:
        name = author.get("name") if isinstance(author, dict) else None
        if isinstance(name, str) and name.strip():
            names.append(normalise_space(name))
    return names


def _parse_datetime(value: str, field: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise _BadItem(f"{field} {value!r} is not an ISO date-time") from None
    # HF times end in Z; a naive one would be UTC too, and Django wants aware datetimes.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _batch_date(value: Any, *, fallback: dt.date) -> dt.date:
    """The day of HF's list the paper was put on; the requested day if HF didn't say."""
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            pass
    return fallback


def _listed_at(value: Any) -> dt.datetime | None:
    """When HF listed the paper; None if it did not say in a form we can read (the paper
    is still listed: it is dated by when Paperboy first saw it)."""
    if not isinstance(value, str):
        return None
    try:
        return _parse_datetime(value, "submittedOnDailyAt")
    except _BadItem:
        return None


def _item_id(item: Any) -> str:
    paper = item.get("paper") if isinstance(item, dict) else None
    raw = paper.get("id") if isinstance(paper, dict) else None
    return raw if isinstance(raw, str) else ""


def _charset(response: requests.Response) -> str | None:
    match = _CHARSET.search(response.headers.get("Content-Type", ""))
    return match.group(1) if match else None
