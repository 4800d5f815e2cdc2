"""arXiv: new submissions of a day by category, from the export API (Atom).

arXiv asks for at most one request every 3 seconds across its API and feeds, so every
request of this module goes through one throttle (PAPERBOY_ARXIV_DELAY_S, 0 in tests).
Each request is bounded by PAPERBOY_ARXIV_DEADLINE_S and PAPERBOY_ARXIV_MAX_BYTES.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import requests
from django.conf import settings
from lxml import etree

from digest.sources.client import Answer, Limits, SourceError, describe_error, http_get
from digest.sources.records import (
    ARXIV_ID,
    BadItem,
    PaperRecord,
    Screened,
    bare_arxiv_id,
    mend_record,
    normalise_space,
    shown,
)

logger = logging.getLogger(__name__)

SOURCE = "arxiv"
# arXiv suggests pages of at most a few thousand; 200 keeps each answer small (cs.LG alone
# has ~300 submissions a day) while needing few throttled requests.
PAGE_SIZE = 200
MAX_PAGES = 50

NS = {
    "atom": "http://www.w3.org/2005/Atom",
    "opensearch": "http://a9.com/-/spec/opensearch/1.1/",
    "arxiv": "http://arxiv.org/schemas/atom",
    "dc": "http://purl.org/dc/elements/1.1/",
}
# <id> is http://arxiv.org/abs/2312.00752v2 in the API, oai:arXiv.org:2508.13167v1 in feeds.
_ENTRY_ID = re.compile(r"(?:arxiv\.org/abs/|^oai:arXiv\.org:)(?P<id>\S+)$", re.IGNORECASE)
# Listing feeds prefix the abstract with "arXiv:2508.13167v1 Announce Type: new Abstract:".
_FEED_PREFIX = re.compile(r"^arXiv:\S+\s+Announce Type:\s*\S+\s+Abstract:\s*", re.IGNORECASE)

_throttle_lock = threading.Lock()
_last_request_at: float | None = None


def fetch_papers(date: dt.date, categories: Sequence[str] | None = None) -> list[PaperRecord]:
    """Papers submitted on `date` (UTC) in any of `categories`, each once (see fetch_day)."""
    return fetch_day(date, categories).records


def fetch_day(date: dt.date, categories: Sequence[str] | None = None) -> Screened:
    """Papers submitted on `date` (UTC) in any of `categories`, each paper once, and the
    entries left out or mended.

    Defaults to PAPERBOY_ARXIV_CATEGORIES. Raises SourceError naming the URL when a request
    fails or an answer is not an Atom feed.
    """
    cats = list(categories if categories is not None else settings.PAPERBOY_ARXIV_CATEGORIES)
    screened = Screened()
    records: dict[str, PaperRecord] = {}
    for category in cats:
        found = _fetch_category(category, date)
        screened.skipped.update(found.skipped)
        screened.repaired.update(found.repaired)
        for record in found.records:
            # Cross-listed papers come back once per category; the first one is kept.
            records.setdefault(record.arxiv_id, record)
    screened.records = list(records.values())
    return screened


def _fetch_category(category: str, date: dt.date) -> Screened:
    url = f"{settings.PAPERBOY_ARXIV_URL}/api/query"
    day = date.strftime("%Y%m%d")
    screened = Screened()
    start = 0
    for _ in range(MAX_PAGES):
        params: dict[str, str | int] = {
            "search_query": f"cat:{category} AND submittedDate:[{day}0000 TO {day}2359]",
            "start": start,
            "max_results": PAGE_SIZE,
            "sortBy": "submittedDate",
            "sortOrder": "ascending",
        }
        asked = requests.Request("GET", url, params=params).prepare().url
        try:
            answer = _throttled_get(url, params)
            page = _parse_feed(answer.content, date=date)
        except requests.RequestException as exc:
            raise SourceError(f"Could not read arXiv at {asked} ({describe_error(exc)})") from exc
        except ValueError as exc:
            raise SourceError(f"arXiv answered {asked} with something else: {exc}") from exc
        screened.extend(page.screened)
        start += page.entries
        # Stop on a short or empty page, or once arXiv's own total is reached.
        if page.entries < PAGE_SIZE or (page.total is not None and start >= page.total):
            return screened
    logger.warning("arXiv %s %s: stopped after %d pages", category, date, MAX_PAGES)
    return screened


def _throttled_get(url: str, params: dict[str, str | int]) -> Answer:
    """One arXiv request at a time, at least PAPERBOY_ARXIV_DELAY_S after the last one ended.

    The clock is monotonic so a wall-clock jump can neither stall nor rush us; the lock
    makes the pace hold across threads too.
    """
    global _last_request_at
    delay = float(settings.PAPERBOY_ARXIV_DELAY_S)
    with _throttle_lock:
        if _last_request_at is not None:
            wait = _last_request_at + delay - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        try:
            limits = Limits(
                deadline_s=settings.PAPERBOY_ARXIV_DEADLINE_S,
                max_bytes=settings.PAPERBOY_ARXIV_MAX_BYTES,
                setting="PAPERBOY_ARXIV",
            )
            return http_get(url, params=params, limits=limits, min_backoff_s=delay)
        finally:
            _last_request_at = time.monotonic()


@dataclass(frozen=True)
class _Page:
    screened: Screened  # the entries' records, and those left out or mended
    entries: int  # entries in the document, parsed or not: what paging counts
    total: int | None  # opensearch:totalResults, when the API says


def parse_atom(content: bytes, *, date: dt.date) -> list[PaperRecord]:
    """Records of an arXiv Atom document: the export API, or a listing feed (rss.arxiv.org/atom).

    `date` becomes every record's batch date. Malformed entries are skipped with a warning;
    a document that is not XML raises ValueError.
    """
    return _parse_feed(content, date=date).screened.records


def _parse_feed(content: bytes, *, date: dt.date) -> _Page:
    # Scraped XML is untrusted: no entity expansion (billion laughs, XXE) and no network.
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(content, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"not XML ({exc})") from exc
    if root.tag != f"{{{NS['atom']}}}feed":
        raise ValueError(f"not an Atom feed (root element {root.tag!r})")
    entries = root.findall("atom:entry", NS)
    screened = Screened()
    records: dict[str, PaperRecord] = {}
    for index, entry in enumerate(entries):
        try:
            record, repairs = mend_record(_parse_entry(entry, date=date))
        except BadItem as exc:
            logger.warning("Skipping arXiv entry #%d of %s: %s", index, date, exc)
            screened.skipped[exc.reason] += 1
            continue
        if record.arxiv_id not in records:
            records[record.arxiv_id] = record
            screened.repaired.update(repairs)
    screened.records = list(records.values())
    total_text = (root.findtext("opensearch:totalResults", namespaces=NS) or "").strip()
    # isdecimal, not isdigit: "²" is a digit that int() refuses.
    total = int(total_text) if total_text.isdecimal() and len(total_text) < 10 else None
    return _Page(screened, len(entries), total)


def _parse_entry(entry: etree._Element, *, date: dt.date) -> PaperRecord:
    raw_id = (entry.findtext("atom:id", namespaces=NS) or "").strip()
    match = _ENTRY_ID.search(raw_id)
    arxiv_id = bare_arxiv_id(match.group("id")) if match else ""
    if not ARXIV_ID.match(arxiv_id):
        # Also how arXiv reports a bad query: one entry whose id is …/api/errors#….
        raise BadItem("id is not an arXiv id", f"id {shown(raw_id)} is not an arXiv paper")
    title = normalise_space(entry.findtext("atom:title", namespaces=NS) or "")
    if not title:
        raise BadItem("title is missing", f"{arxiv_id} has no title")
    abstract = normalise_space(entry.findtext("atom:summary", namespaces=NS) or "")
    abstract = _FEED_PREFIX.sub("", abstract)

    authors = [
        normalise_space(name.text or "")
        for name in entry.findall("atom:author/atom:name", NS)
        if (name.text or "").strip()
    ]
    if not authors:
        # Listing feeds put the whole byline in one <dc:creator>, comma-separated.
        creator = entry.findtext("dc:creator", namespaces=NS) or ""
        authors = [normalise_space(n) for n in creator.split(",") if n.strip()]

    published_text = (entry.findtext("atom:published", namespaces=NS) or "").strip()
    published_at = None
    if published_text:
        try:
            published_at = dt.datetime.fromisoformat(published_text)
        except ValueError:
            detail = f"{arxiv_id} has a bad <published> {shown(published_text)}"
            raise BadItem("published is not an ISO date-time", detail) from None
        if published_at.tzinfo is None:
            published_at = published_at.replace(tzinfo=dt.UTC)

    return PaperRecord(
        arxiv_id=arxiv_id,
        title=title,
        abstract=abstract,
        authors=authors,
        published_at=published_at,
        batch_date=date,
        source=SOURCE,
    )
