"""arXiv: new submissions of a day by category, from the export API (Atom).

arXiv asks for at most one request every 3 seconds across its API and feeds, so every
request of this module goes through one throttle (PAPERBOY_ARXIV_DELAY_S, 0 in tests).
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

from digest.sources.base import (
    ARXIV_ID,
    PaperRecord,
    SourceError,
    bare_arxiv_id,
    describe_error,
    http_get,
    normalise_space,
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
    """Papers submitted on `date` (UTC) in any of `categories`, each paper once.

    Defaults to PAPERBOY_ARXIV_CATEGORIES. Raises SourceError naming the URL when a request
    fails or an answer is not an Atom feed.
    """
    cats = list(categories if categories is not None else settings.PAPERBOY_ARXIV_CATEGORIES)
    records: dict[str, PaperRecord] = {}
    for category in cats:
        for record in _fetch_category(category, date):
            # Cross-listed papers come back once per category; the first one is kept.
            records.setdefault(record.arxiv_id, record)
    return list(records.values())


def _fetch_category(category: str, date: dt.date) -> list[PaperRecord]:
    url = f"{settings.PAPERBOY_ARXIV_URL}/api/query"
    day = date.strftime("%Y%m%d")
    records: list[PaperRecord] = []
    start = 0
    for _ in range(MAX_PAGES):
        params: dict[str, str | int] = {
            "search_query": f"cat:{category} AND submittedDate:[{day}0000 TO {day}2359]",
            "start": start,
            "max_results": PAGE_SIZE,
            "sortBy": "submittedDate",
            "sortOrder": "ascending",
        }
        shown = requests.Request("GET", url, params=params).prepare().url
        try:
            response = _throttled_get(url, params)
            page = _parse_feed(response.content, date=date)
        except requests.RequestException as exc:
            raise SourceError(f"Could not read arXiv at {shown} ({describe_error(exc)})") from exc
        except ValueError as exc:
            raise SourceError(f"arXiv answered {shown} with something else: {exc}") from exc
        records.extend(page.records)
        start += page.entries
        # Stop on a short or empty page, or once arXiv's own total is reached.
        if page.entries < PAGE_SIZE or (page.total is not None and start >= page.total):
            return records
    logger.warning("arXiv %s %s: stopped after %d pages", category, date, MAX_PAGES)
    return records


def _throttled_get(url: str, params: dict[str, str | int]) -> requests.Response:
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
            return http_get(url, params=params, min_backoff_s=delay)
        finally:
            _last_request_at = time.monotonic()


@dataclass(frozen=True)
class _Page:
    records: list[PaperRecord]
    entries: int  # entries in the document, parsed or not: what paging counts
    total: int | None  # opensearch:totalResults, when the API says


def parse_atom(content: bytes, *, date: dt.date) -> list[PaperRecord]:
    """Records of an arXiv Atom document: the export API, or a listing feed (rss.arxiv.org/atom).

    `date` becomes every record's batch date. Malformed entries are skipped with a warning;
    a document that is not XML raises ValueError.
    """
    return _parse_feed(content, date=date).records


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
    records: dict[str, PaperRecord] = {}
    for index, entry in enumerate(entries):
        try:
            record = _parse_entry(entry, date=date)
        except ValueError as exc:
            logger.warning("Skipping arXiv entry #%d of %s: %s", index, date, exc)
            continue
        records.setdefault(record.arxiv_id, record)
    total_text = root.findtext("opensearch:totalResults", namespaces=NS)
    total = int(total_text) if total_text and total_text.strip().isdigit() else None
    return _Page(list(records.values()), len(entries), total)


def _parse_entry(entry: etree._Element, *, date: dt.date) -> PaperRecord:
    raw_id = (entry.findtext("atom:id", namespaces=NS) or "").strip()
    match = _ENTRY_ID.search(raw_id)
    arxiv_id = bare_arxiv_id(match.group("id")) if match else ""
    if not ARXIV_ID.match(arxiv_id):
        # Also how arXiv reports a bad query: one entry whose id is …/api/errors#….
        raise ValueError(f"id {raw_id!r} is not an arXiv paper")
    title = normalise_space(entry.findtext("atom:title", namespaces=NS) or "")
    if not title:
        raise ValueError(f"{arxiv_id} has no title")
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
            raise ValueError(f"{arxiv_id} has a bad <published> {published_text!r}") from None
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
