"""Each subscriber's private feed: the papers of their digests, as Atom and as JSON Feed 1.1.

The URL's secret is the subscriber's `feed_key` (not their token key): a feed address ends
up in feed readers and their sync services, so it can be renewed alone, killing the old
address, without touching the links in past emails. The feed holds the latest
FEED_ENTRIES papers of the subscriber's digests that were sent or published to the feed
(feed-only subscribers), newest digest first, each with why it is there and its links.

Scraped text is untrusted. The Atom document is written by Django's XML serializer
(which escapes), its HTML content is built with `format_html` (which escapes again, for
the subscriber that renders it), and characters XML 1.0 cannot carry are dropped first.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import Count, Max
from django.urls import reverse
from django.utils.feedgenerator import Atom1Feed
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from subscriptions.models import Subscriber

from .mail import Link, PaperEntry, Why, paper_entry
from .models import Delivery, DeliveryPaper

FEED_ENTRIES = 50  # what a feed reader polling every few minutes needs, and no more
FEED_KEY_MAX = 32  # Subscriber.feed_key's length: a longer key is no key, without a query
PUBLISHED = (Delivery.Status.SENT, Delivery.Status.FEED)
TITLE = "Paperboy: your papers"
DESCRIPTION = "The papers of your Paperboy digests, newest first, with why each is there."

# What XML 1.0 cannot carry: C0 controls but tab, newline and return; lone surrogates
# (which no encoder writes); U+FFFE and U+FFFF. The serializer escapes everything else.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def feed_text(text: str) -> str:
    """Text as XML (and a UTF-8 JSON document) can carry it."""
    return _NOT_XML.sub("", text)


@dataclass(frozen=True)
class FeedEntry:
    id: str  # a tag: URI, stable for the paper in this subscriber's digest of that day
    title: str
    url: str  # the paper's Hugging Face page
    why: str  # plain text: why it is in the digest
    summary: str
    authors: str
    links: list[Link]  # arXiv, PDF, code, project page
    html: str  # everything above as HTML, escaped
    published: dt.datetime


@dataclass(frozen=True)
class FeedVersion:
    """What changes whenever the feed does: its ETag, and its Last-Modified."""

    etag: str
    modified: dt.datetime | None


def feed_subscriber(key: str) -> Subscriber | None:
    """The subscriber whose feed this is, or None (an unknown or renewed key)."""
    if not key or len(key) > FEED_KEY_MAX:
        return None
    return Subscriber.objects.filter(feed_key=key).first()


def feed_urls(subscriber: Subscriber) -> dict[str, str]:
    """The absolute addresses of the subscriber's feed: {"atom": …, "json": …}."""
    return {
        kind: settings.SITE_URL + reverse(f"feed_{kind}", args=[subscriber.feed_key])
        for kind in ("atom", "json")
    }


def feed_version(subscriber: Subscriber) -> FeedVersion:
    """One small query, so a feed reader that polls every few minutes gets a 304 without
    the feed being built. A new digest changes the newest time and the count; a new feed
    key changes the ETag too."""
    published = Delivery.objects.filter(subscriber=subscriber, status__in=PUBLISHED)
    row = published.aggregate(count=Count("id"), newest=Max("sent_at"), last=Max("id"))
    newest: dt.datetime | None = row["newest"]
    seed = f"{subscriber.feed_key}:{row['count']}:{row['last']}:{newest and newest.isoformat()}"
    return FeedVersion(hashlib.sha256(seed.encode()).hexdigest()[:32], newest)


# --- Why a paper is there, as the email says it ------------------------------------------


def why_text(why: Why | None) -> str:
    """The email's reason, in plain text (the plain-text email's wording)."""
    if why is None:
        return ""
    if why.kind == "trending":
        return f"Trending: {why.topic}."
    if why.kind == "described":
        return "Close to what you described."
    if why.kind == "liked":
        return f"Like “{why.topic}”, which you liked."
    if why.kind == "related":
        return f"Close in meaning to “{why.topic}”."
    text = f"Matched “{why.topic}” in {why.where}"
    if why.snippet:
        text += f": {why.snippet.before}“{why.snippet.match}”{why.snippet.after}"
    else:
        text += "."
    if why.also:
        text += f" Also matches: {', '.join(why.also)}."
    return text


def why_html(why: Why | None) -> SafeString:
    """The same reason as HTML, the matched words in bold (feed readers keep <strong>;
    many drop <mark>)."""
    if why is None:
        return SafeString("")
    if why.kind != "keyword" or not why.snippet:
        return format_html("{}", why_text(why))
    html = format_html(
        "Matched “{}” in {}: {}<strong>{}</strong>{}",
        why.topic,
        why.where,
        why.snippet.before,
        why.snippet.match,
        why.snippet.after,
    )
    if why.also:
        html = format_html("{} Also matches: {}.", html, ", ".join(why.also))
    return html


def _entry_html(entry: PaperEntry) -> str:
    parts = []
    if entry.why:
        parts.append(format_html("<p>{}</p>", why_html(entry.why)))
    if entry.authors:
        parts.append(format_html("<p><i>{}</i></p>", entry.authors))
    if entry.summary:
        parts.append(format_html("<p>{}</p>", entry.summary))
    meta = f"▲ {entry.upvotes} upvote{'s' if entry.upvotes != 1 else ''}"
    links = [Link("Hugging Face", entry.url), *entry.links]
    anchors = format_html_join(
        " · ", '<a href="{}">{}</a>', ((link.url, link.label) for link in links)
    )
    parts.append(format_html("<p>{} · {}</p>", meta, anchors))
    return "".join(parts)


# --- The entries --------------------------------------------------------------------------


def _tag_id(day: dt.date, arxiv_id: str) -> str:
    """A tag: URI (RFC 4151): a paper comes once to a subscriber, so day + paper is unique in
    their feed, and it does not change when the feed's address does."""
    host = urlsplit(settings.SITE_URL).hostname or "localhost"
    return f"tag:{host},{day.isoformat()}:paper/{arxiv_id}"


def feed_items(subscriber: Subscriber) -> list[DeliveryPaper]:
    """The latest FEED_ENTRIES papers of the subscriber's published digests, newest digest
    first, then in the digest's order."""
    return list(
        DeliveryPaper.objects.filter(
            delivery__subscriber=subscriber, delivery__status__in=PUBLISHED
        )
        .select_related("paper", "delivery")
        .defer("paper__embedding")
        .order_by("-delivery__sent_at", "-delivery__id", "rank")[:FEED_ENTRIES]
    )


def feed_entries(subscriber: Subscriber) -> list[FeedEntry]:
    entries = []
    for item in feed_items(subscriber):
        entry = paper_entry(item)  # no feedback links: a feed is read far from the email
        published = item.delivery.sent_at or item.delivery.created_at
        entries.append(
            FeedEntry(
                id=_tag_id(published.astimezone(dt.UTC).date(), item.paper.arxiv_id),
                title=feed_text(entry.title),
                url=feed_text(entry.url),
                why=feed_text(why_text(entry.why)),
                summary=feed_text(entry.summary),
                authors=feed_text(entry.authors),
                links=[Link(feed_text(link.label), feed_text(link.url)) for link in entry.links],
                html=feed_text(_entry_html(entry)),
                published=published,
            )
        )
    return entries


def _entry_text(entry: FeedEntry) -> str:
    links = "\n".join(f"{link.label}: {link.url}" for link in entry.links)
    parts = (entry.why, entry.authors, entry.summary, f"Hugging Face: {entry.url}\n{links}")
    return "\n\n".join(part.strip() for part in parts if part)


# --- The documents ------------------------------------------------------------------------


class _PaperFeed(Atom1Feed):
    """Atom, with each paper's other links (arXiv, PDF, code) as rel="related" links."""

    def add_item_elements(self, handler: Any, item: dict[str, Any]) -> None:
        super().add_item_elements(handler, item)
        for link in item.get("related", ()):
            attrs = {"rel": "related", "href": link.url, "title": link.label}
            handler.addQuickElement("link", None, attrs)


def atom_feed(subscriber: Subscriber, entries: list[FeedEntry]) -> bytes:
    atom = feed_urls(subscriber)["atom"]
    feed = _PaperFeed(
        title=TITLE,
        link=settings.SITE_URL,
        description=DESCRIPTION,  # Atom's <subtitle>
        feed_url=atom,
        feed_guid=atom,
        language="en",
        author_name="Paperboy",  # Atom wants an author; a paper may list none
    )
    for entry in entries:
        feed.add_item(
            title=entry.title,
            link=entry.url,
            description=entry.html,  # <summary type="html">
            unique_id=entry.id,
            pubdate=entry.published,
            updateddate=entry.published,
            author_name=entry.authors or None,
            related=entry.links,
        )
    return feed.writeString("utf-8").encode()


def json_feed(subscriber: Subscriber, entries: list[FeedEntry]) -> dict[str, Any]:
    """A JSON Feed 1.1 document (https://jsonfeed.org/version/1.1)."""
    return {
        "version": "https://jsonfeed.org/version/1.1",
        "title": TITLE,
        "home_page_url": settings.SITE_URL,
        "feed_url": feed_urls(subscriber)["json"],
        "description": DESCRIPTION,
        "language": "en",
        "authors": [{"name": "Paperboy", "url": settings.SITE_URL}],
        "items": [
            {
                "id": entry.id,
                "url": entry.url,
                "external_url": entry.links[0].url if entry.links else entry.url,
                "title": entry.title,
                "summary": entry.why,
                "content_html": entry.html,
                "content_text": _entry_text(entry),
                "date_published": entry.published.isoformat(),
                **({"authors": [{"name": entry.authors}]} if entry.authors else {}),
                # Extensions start with "_" (JSON Feed 1.1): every link, labelled.
                "_paperboy": {
                    "links": [{"label": link.label, "url": link.url} for link in entry.links]
                },
            }
            for entry in entries
        ],
    }
