"""Hugging Face Daily Papers: the JSON API, with the day's HTML page as a fallback.

Both endpoints carry the same item shape (`{"paper": {...}, "numComments": …, "thumbnail": …}`).
Everything in an item is untrusted: it is type-checked here, made storable by
`mend_record`, stored as text, and escaped wherever it is shown. An item that fails is left
out on its own and counted by reason; the day's other papers are kept.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import Counter
from typing import Any

import lxml.html
import requests
from django.conf import settings

from digest.sources.client import Limits, SourceError, describe_error, http_get
from digest.sources.records import (
    ARXIV_ID,
    COUNT_MAX,
    BadItem,
    PaperRecord,
    Screened,
    bare_arxiv_id,
    loads_json,
    mend_record,
    normalise_space,
    shown,
)

logger = logging.getLogger(__name__)

SOURCE = "hf"
API_PAGE_SIZE = 100
# HF lists 20–60 papers a day; 20 pages of 100 is far beyond any real day, so hitting it
# means the server is not paging the way we expect, and we stop rather than loop forever.
API_MAX_PAGES = 20

_CHARSET = re.compile(r"charset=[\"']?([\w.:-]+)", re.IGNORECASE)


def fetch_papers(date: dt.date) -> list[PaperRecord]:
    """Every usable paper of HF's daily list for `date`, normalised (see fetch_day)."""
    return fetch_day(date).records


def fetch_day(date: dt.date) -> Screened:
    """HF's daily list for `date`: its usable papers, and the items left out or mended.

    Tries the JSON API first and the day's HTML page if the API fails in any way. Raises
    SourceError, naming both URLs, when neither answers with a usable list within
    PAPERBOY_HF_DEADLINE_S and PAPERBOY_HF_MAX_BYTES.
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
            answer = http_get(page_url, limits=_limits())
            items = extract_page_items(answer.content, encoding=_charset(answer.content_type))
        except (requests.RequestException, ValueError) as page_error:
            raise SourceError(
                f"Could not read Hugging Face daily papers at {api_shown} "
                f"({describe_error(api_error)}) nor at {page_url} ({describe_error(page_error)}); "
                "check your network or PAPERBOY_HF_URL"
            ) from page_error
    return screen_daily_papers(items, date=date)


def _limits() -> Limits:
    # Read at call time, so that tests (and a settings override) can change them.
    return Limits(
        deadline_s=settings.PAPERBOY_HF_DEADLINE_S,
        max_bytes=settings.PAPERBOY_HF_MAX_BYTES,
        setting="PAPERBOY_HF",
    )


def _fetch_api_items(api_url: str, date: dt.date) -> list[Any]:
    """All items of the API for `date`, page by page until an empty page.

    Raises requests.RequestException or ValueError (body not a JSON list) for any page:
    a day half-read from the API is worse than the whole day from the HTML page.
    """
    items: list[Any] = []
    seen: set[str] = set()
    for page in range(API_MAX_PAGES):
        answer = http_get(
            api_url,
            params={"date": date.isoformat(), "limit": API_PAGE_SIZE, "p": page},
            limits=_limits(),
        )
        batch = loads_json(answer.content)
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
    props = loads_json(str(found[0]))
    items = props.get("dailyPapers") if isinstance(props, dict) else None
    if not isinstance(items, list):
        raise ValueError("the DailyPapers props have no dailyPapers list")
    return items


def parse_daily_papers(items: list[Any], *, date: dt.date) -> list[PaperRecord]:
    """The records of HF daily-paper items we can trust (see screen_daily_papers)."""
    return screen_daily_papers(items, date=date).records


def screen_daily_papers(items: list[Any], *, date: dt.date) -> Screened:
    """Map HF daily-paper items to records, each item on its own: one we cannot trust is
    skipped with a warning naming its id and why, and counted by reason.

    Required: an arXiv `paper.id` and a `paper.title`. Optional fields may be missing or
    null; a field of the wrong type or a count out of range skips the whole item, because
    it means the shape changed under us and the rest of that item is suspect too. Text
    that PostgreSQL cannot store and unsafe URLs are mended (see mend_record). Duplicate
    ids keep the entry with the most upvotes (pages can overlap while upvotes reorder them).
    """
    screened = Screened()
    kept: dict[str, tuple[PaperRecord, list[str]]] = {}
    for index, item in enumerate(items):
        try:
            record, repairs = mend_record(_parse_item(item, date=date))
        except BadItem as exc:
            logger.warning(
                "Skipping Hugging Face item #%d (%s) of %s: %s",
                index,
                _shown_id(item),
                date,
                exc,
            )
            screened.skipped[exc.reason] += 1
            continue
        if repairs:
            logger.info("Mended Hugging Face item %s of %s: %s", record.arxiv_id, date, repairs)
        earlier = kept.get(record.arxiv_id)
        if earlier is None or record.upvotes > earlier[0].upvotes:
            kept[record.arxiv_id] = (record, repairs)
    screened.records = [record for record, _ in kept.values()]
    screened.repaired = Counter(reason for _, repairs in kept.values() for reason in repairs)
    return screened


def _parse_item(item: Any, *, date: dt.date) -> PaperRecord:
    if not isinstance(item, dict):
        raise BadItem("item is not an object", f"item is {type(item).__name__}, expected an object")
    paper = item.get("paper")
    if not isinstance(paper, dict):
        raise BadItem("no paper object")

    raw_id = _required_str(paper, "id")
    arxiv_id = bare_arxiv_id(raw_id)
    if not ARXIV_ID.match(arxiv_id):
        raise BadItem("id is not an arXiv id", f"id {shown(raw_id)} is not an arXiv id")
    title = normalise_space(_required_str(paper, "title"))
    if not title:
        raise BadItem("title is empty")

    published_raw = _optional(paper, "publishedAt", str)
    published_at = _parse_datetime(published_raw, "publishedAt") if published_raw else None

    keywords = _optional(paper, "ai_keywords", list) or []
    if not all(isinstance(keyword, str) for keyword in keywords):
        raise BadItem("ai_keywords holds something other than strings")

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
        # URLs are checked by mend_record, which counts the ones it drops.
        github_repo=_optional(paper, "githubRepo", str) or "",
        github_stars=_count(paper, "githubStars"),
        project_page=_optional(paper, "projectPage", str) or "",
        thumbnail=_optional(item, "thumbnail", str) or "",
    )


def _required_str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        raise BadItem(f"{key} is missing")
    if not isinstance(value, str):
        raise BadItem(
            f"{key} is not a string", f"{key} is {type(value).__name__}, expected a string"
        )
    return value


_KINDS: dict[type, str] = {str: "string", list: "list"}  # for a reason's wording


def _optional(obj: dict[str, Any], key: str, kind: type) -> Any:
    value = obj.get(key)
    if value is not None and not isinstance(value, kind):
        raise BadItem(
            f"{key} is not a {_KINDS.get(kind, kind.__name__)}",
            f"{key} is {type(value).__name__}, expected {kind.__name__}",
        )
    return value


def _count(obj: dict[str, Any], key: str) -> int | None:
    """A whole number in 0..COUNT_MAX (what a PostgreSQL integer column holds), or None.

    bool is an int subclass in Python, so it is excluded.
    """
    value = obj.get(key)
    if value is None:
        return None
    expected = f"expected a whole number in 0..{COUNT_MAX}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadItem(f"{key} is not a whole number", f"{key} is {shown(value)}, {expected}")
    if value < 0:
        raise BadItem(f"{key} is negative", f"{key} is {value}, {expected}")
    if value > COUNT_MAX:
        raise BadItem(f"{key} is out of range", f"{key} is {shown(value)}, {expected}")
    return value


def _author_names(authors: Any) -> list[str]:
    if authors is None:
        return []
    if not isinstance(authors, list):
        raise BadItem(
            "authors is not a list", f"authors is {type(authors).__name__}, expected a list"
        )
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
        detail = f"{field} {shown(value)} is not an ISO date-time"
        raise BadItem(f"{field} is not an ISO date-time", detail) from None
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
        return _parse_datetime(value, "submittedOnDailyAt").astimezone(dt.UTC)
    except (BadItem, OverflowError):
        return None


def _item_id(item: Any) -> str:
    paper = item.get("paper") if isinstance(item, dict) else None
    raw = paper.get("id") if isinstance(paper, dict) else None
    return raw if isinstance(raw, str) else ""


def _shown_id(item: Any) -> str:
    """The item's id for a log line: as is when plain, else quoted with NUL and the like
    escaped (a log stream may not be able to write a lone surrogate)."""
    raw = _item_id(item)
    if not raw:
        return "no id"
    return raw if raw.isprintable() and len(raw) <= 40 else shown(raw, limit=40)


def _charset(content_type: str) -> str | None:
    match = _CHARSET.search(content_type)
    return match.group(1) if match else None
