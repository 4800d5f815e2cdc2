"""A subscriber's digest: its context, its render, and it as a message.

`render_digest_for` needs no saved delivery, so a preview can render a digest for any
subscriber and any list of papers; `render_digest` renders a saved delivery's, as the
browser copy does; `digest_message` makes one delivery's digest a message (the sender
makes the same, faster, in batches: fast_render.py, sending.py).

`frame_context` is everything around the papers (headline, the subscriber's links, the
footer), shared with the fast renderer, which fills the same templates.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse

from paperboy.text import list_phrase, long_date, one_line, plural, short_date, shorten
from subscriptions.links import absolute, digest_url, manage_url, unsubscribe_url
from subscriptions.models import Subscriber

from ..models import Delivery
from .cards import DigestItemLike, Link, paper_entry
from .message import RenderedEmail, build_message, list_headers, stable_message_id
from .templates import mjml_template, text_env

HTML_LAYOUT = "digest.mjml"
TEXT_TEMPLATE = "digest.txt"
SUBJECT_TEMPLATE = "digest_subject.txt"

SUBJECT_TITLE_LIMIT = 60
HEADER_TOPICS_SHOWN = 6


def _feed_url(subscriber: Subscriber) -> str:
    return settings.SITE_URL + reverse("feed_atom", args=[subscriber.feed_key])


def _top_papers_link(items: Sequence[DigestItemLike], edition_date: dt.date) -> Link | None:
    """The public page of the day the digest's trending picks were listed; None for a
    digest without any (a topics-only subscriber's)."""
    days = [
        item.paper.batch_date
        for item in items
        if any(isinstance(r, dict) and r.get("field") == "trending" for r in item.reasons or [])
    ]
    if not days:
        return None
    day = max(days)
    label = "Today’s top papers" if day == edition_date else f"Top papers of {short_date(day)}"
    return Link(label, papers_day_url(day))


@functools.lru_cache(maxsize=64)
def papers_day_url(day: dt.date) -> str:
    return absolute(reverse("papers_day", args=[day.isoformat()]))


def digest_context(
    *,
    subscriber: Subscriber,
    edition_date: dt.date,
    items: Sequence[DigestItemLike],
    topics: Sequence[str] | None = None,
    for_browser: bool = False,
) -> dict[str, Any]:
    """`topics`: the topics the papers were picked for, if not the subscriber's today.
    `for_browser`: the web copy, which needs no link to itself."""
    papers = [
        paper_entry(item, subscriber=subscriber) for item in sorted(items, key=lambda i: i.rank)
    ]
    context = frame_context(
        subscriber=subscriber,
        edition_date=edition_date,
        items=items,
        first_title=papers[0].title if papers else "",
        topics=topics,
        links=ReaderLinks.of(subscriber, edition_date, for_browser=for_browser),
    )
    context["papers"] = papers
    return context


@dataclass(frozen=True)
class ReaderLinks:
    """A digest's links that belong to its subscriber, not to a paper."""

    unsubscribe: str
    manage: str
    feed: str
    view_in_browser: str  # "" in the web copy itself

    @classmethod
    def of(cls, subscriber: Subscriber, edition_date: dt.date, *, for_browser: bool) -> ReaderLinks:
        return cls(
            unsubscribe=unsubscribe_url(subscriber),
            manage=manage_url(subscriber),
            feed=_feed_url(subscriber),
            view_in_browser="" if for_browser else digest_url(subscriber, edition_date),
        )


def frame_context(
    *,
    subscriber: Subscriber,
    edition_date: dt.date,
    items: Sequence[DigestItemLike],
    first_title: str,
    topics: Sequence[str] | None,
    links: ReaderLinks,
) -> dict[str, Any]:
    """Everything the digest's templates show around its papers; `first_title` is the
    top paper's title as shown (one line), "" for a digest without papers."""
    chosen_for = subscriber.topics if topics is None else topics
    topics = [t for t in chosen_for if not t.startswith("-")]
    excluded = [t[1:] for t in chosen_for if t.startswith("-")]
    count = len(items)
    period = "this week" if subscriber.frequency == Subscriber.Frequency.WEEKLY else "today"
    if topics:
        headline = f"{plural(count, 'paper')} picked for your topics: " + list_phrase(
            topics, HEADER_TOPICS_SHOWN
        )
        picked_for = f"picked for {list_phrase(topics, 3)}"
    else:  # a trending-only subscriber
        headline = f"The {plural(count, 'paper')} most upvoted {period}"
        picked_for = f"the most upvoted {period}"
    if count:
        rest = f" + {count - 1} more" if count > 1 else ""
        preview = f"{first_title}{rest}, {picked_for}"
    else:
        preview = "No new papers matched your topics today."
    never = f" (never: {', '.join(excluded)})" if excluded else ""
    subscribed_for = (
        f"You get this {subscriber.get_frequency_display().lower()} digest because you "
        f"subscribed to Paperboy for: {', '.join(topics) if topics else 'the trending papers'}"
        f"{never}. Up to {subscriber.max_papers} papers an email."
    )
    return {
        "edition_long_date": long_date(edition_date),
        "edition_short_date": short_date(edition_date),
        "count": count,
        "headline": headline,
        "preview": preview,
        "subject_title": shorten(first_title, SUBJECT_TITLE_LIMIT) if count else "",
        "subscribed_for": subscribed_for,
        "unsubscribe_url": links.unsubscribe,
        "manage_url": links.manage,
        "feed_url": links.feed,
        "top_papers": _top_papers_link(items, edition_date),
        "view_in_browser_url": links.view_in_browser,
        "site_url": settings.SITE_URL,
        "site_name": settings.SITE_URL.split("://", 1)[-1],
    }


def render_digest_for(
    *,
    subscriber: Subscriber,
    edition_date: dt.date,
    items: Sequence[DigestItemLike],
    topics: Sequence[str] | None = None,
    for_browser: bool = False,
) -> RenderedEmail:
    """Render a digest from any papers; no Delivery row needed (previews use this)."""
    context = digest_context(
        subscriber=subscriber,
        edition_date=edition_date,
        items=items,
        topics=topics,
        for_browser=for_browser,
    )
    env = text_env()
    return RenderedEmail(
        subject=one_line(env.get_template(SUBJECT_TEMPLATE).render(context)),
        text=env.get_template(TEXT_TEMPLATE).render(context),
        html=mjml_template(HTML_LAYOUT).render(context),
    )


def render_digest(*, delivery: Delivery, for_browser: bool = False) -> RenderedEmail:
    """A saved delivery's digest, with its papers and reasons as they were planned."""
    items = list(delivery.items.select_related("paper").order_by("rank"))
    # The topics as they were when it was planned, so a copy viewed later in the browser
    # still says what this digest was picked for.
    return render_digest_for(
        subscriber=delivery.subscriber,
        edition_date=delivery.edition.date,
        items=items,
        topics=delivery.topics or None,
        for_browser=for_browser,
    )


# --- As a message -----------------------------------------------------------------------


def digest_headers(*, subscriber: Subscriber) -> dict[str, str]:
    """The list headers of the subscriber's digests."""
    return list_headers(unsubscribe=unsubscribe_url(subscriber))


def digest_message(*, delivery: Delivery) -> EmailMultiAlternatives:
    """One delivery's digest as a message (the sender makes the same, faster, in batches:
    sending.py); every attempt at it carries the same Message-ID."""
    subscriber = delivery.subscriber
    return build_message(
        to=subscriber.email,
        rendered=render_digest(delivery=delivery),
        headers={
            "Message-ID": stable_message_id(delivery.id),
            **digest_headers(subscriber=subscriber),
        },
    )
