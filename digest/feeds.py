"""Each reader's private feed: the papers of their digests, as Atom and as JSON Feed 1.1.

The URL's secret is the subscriber's `feed_key` (not their token key): a feed address ends
up in feed readers and their sync services, so it can be renewed alone, killing the old
address, without touching the links in past emails. The feed holds the latest
FEED_ENTRIES papers of the reader's digests that were sent or published to the feed
(feed-only readers), newest digest first, each with why it is there.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils.feedgenerator import Atom1Feed
from django.utils.html import escape

from subscriptions.models import Subscriber

from .emails import Why, paper_entry
from .models import Delivery, DeliveryPaper

FEED_ENTRIES = 50  # what a feed reader polling every few minutes needs, and no more
# Characters XML 1.0 cannot carry (C0 controls but tab/newline/return, and surrogates).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
PUBLISHED = (Delivery.Status.SENT, Delivery.Status.FEED)


def xml_text(text: str) -> str:
    """Scraped text as XML can carry it (the serializer escapes the rest)."""
    return _NOT_XML.sub("", text)


@dataclass(frozen=True)
class FeedEntry:
    id: str
    title: str
    url: str
    summary: str  # plain text: why it is there, then the paper's summary
    links: list[tuple[str, str]]
    authors: str
    published: dt.datetime


def feed_subscriber(key: str) -> Subscriber | None:
    """The reader whose feed this is, or None (an unknown or renewed key)."""
    if not key or len(key) > 64:
        return None
    return Subscriber.objects.filter(feed_key=key).first()


def _items(subscriber: Subscriber) -> list[DeliveryPaper]:
    return list(
        DeliveryPaper.objects.filter(
            delivery__subscriber=subscriber, delivery__status__in=PUBLISHED
        )
        .select_related("paper", "delivery")
        .order_by("-delivery__sent_at", "-delivery__id", "rank")[:FEED_ENTRIES]
    )


def _why(why: Why | None) -> str:
    """Why a paper is there, in words (the email's wording)."""
    if why is None:
        return ""
    if why.kind == "trending":
        return f"Trending: {why.interest}."
    if why.kind == "described":
        return "Close to what you described."
    if why.kind == "liked":
        return f"Like “{why.interest}”, which you liked."
    if why.kind == "related":
        return f"Close in meaning to “{why.interest}”."
    return f"Matched “{why.interest}” in {why.where}."


def feed_entries(subscriber: Subscriber) -> list[FeedEntry]:
    entries = []
    for item in _items(subscriber):
        entry = paper_entry(item)
        summary = " ".join(part for part in (_why(entry.why), entry.summary) if part)
        published = item.delivery.sent_at or item.delivery.created_at
        entries.append(
            FeedEntry(
                id=f"{settings.SITE_URL}/papers/{item.paper.arxiv_id}#{subscriber.feed_key[:8]}",
                title=xml_text(entry.title),
                url=entry.url,
                summary=xml_text(summary),
                links=[(xml_text(link.label), link.url) for link in entry.links],
                authors=xml_text(entry.authors),
                published=published,
            )
        )
    return entries


def feed_version(subscriber: Subscriber) -> tuple[str, dt.datetime | None]:
    """(ETag, Last-Modified) of the feed: one cheap query, so a feed reader that polls
    every few minutes gets a 304 without the feed being built."""
    latest = (
        Delivery.objects.filter(subscriber=subscriber, status__in=PUBLISHED)
        .order_by("-sent_at")
        .values_list("id", "sent_at")
        .first()
    )
    seed = f"{subscriber.feed_key}:{latest}".encode()
    return hashlib.sha256(seed).hexdigest()[:32], latest[1] if latest else None


def _urls(subscriber: Subscriber) -> tuple[str, str]:
    atom = settings.SITE_URL + reverse("feed_atom", args=[subscriber.feed_key])
    json_url = settings.SITE_URL + reverse("feed_json", args=[subscriber.feed_key])
    return atom, json_url


def feed_urls(subscriber: Subscriber) -> dict[str, str]:
    atom, json_url = _urls(subscriber)
    return {"atom": atom, "json": json_url}


TITLE = "Paperboy: your papers"
DESCRIPTION = "The papers of your Paperboy digests, newest first, with why each is there."


def atom_feed(subscriber: Subscriber, entries: Sequence[FeedEntry]) -> bytes:
    atom, _ = _urls(subscriber)
    feed = Atom1Feed(
        title=TITLE,
        link=settings.SITE_URL,
        description=DESCRIPTION,
        feed_url=atom,
        feed_guid=atom,
        language="en",
    )
    for entry in entries:
        links = " · ".join(f"{label}: {url}" for label, url in entry.links)
        feed.add_item(
            title=entry.title,
            link=entry.url,
            # Atom1Feed declares the summary as HTML: escaped, scraped text stays text.
            description=escape(f"{entry.summary}\n\n{entry.authors}\n{links}".strip()),
            unique_id=entry.id,
            pubdate=entry.published,
            updateddate=entry.published,
            author_name=entry.authors or None,
        )
    return feed.writeString("utf-8").encode()


def json_feed(subscriber: Subscriber, entries: Sequence[FeedEntry]) -> dict[str, Any]:
    """A JSON Feed 1.1 document (https://jsonfeed.org/version/1.1)."""
    _, json_url = _urls(subscriber)
    return {
        "version": "https://jsonfeed.org/version/1.1",
        "title": TITLE,
        "home_page_url": settings.SITE_URL,
        "feed_url": json_url,
        "description": DESCRIPTION,
        "language": "en",
        "items": [
            {
                "id": entry.id,
                "url": entry.url,
                "title": entry.title,
                "content_text": entry.summary,
                "date_published": entry.published.isoformat(),
                "authors": [{"name": entry.authors}] if entry.authors else [],
                "_paperboy": {"links": [{"label": a, "url": b} for a, b in entry.links]},
            }
            for entry in entries
        ],
    }
