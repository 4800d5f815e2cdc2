"""A reader's private feed, read back as a feed reader would (feedparser)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import feedparser
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from digest.models import Delivery, DeliveryPaper, Edition, Paper
from subscriptions.links import manage_url
from subscriptions.models import Subscriber

pytestmark = pytest.mark.django_db


def digest_of(
    subscriber: Subscriber, papers: list[Paper], *, status: str = "sent", day: int = 0
) -> Delivery:
    edition, _ = Edition.objects.get_or_create(date=dt.date(2026, 3, 10 + day), slot=None)
    delivery = Delivery.objects.create(
        edition=edition,
        subscriber=subscriber,
        status=status,
        matched_at=timezone.now(),
        sent_at=timezone.now() + dt.timedelta(days=day),
    )
    for rank, paper in enumerate(papers, start=1):
        reasons = [
            {
                "interest": f"#{rank} today · {paper.upvotes} upvotes",
                "field": "trending",
                "before": "",
                "match": "",
                "after": "",
            }
        ]
        DeliveryPaper.objects.create(delivery=delivery, paper=paper, rank=rank, reasons=reasons)
    return delivery


def atom_url(subscriber: Subscriber) -> str:
    return reverse("feed_atom", args=[subscriber.feed_key])


def test_the_feed_holds_the_readers_papers_newest_digest_first_and_validates(
    client: Client, alice: Subscriber, bob: Subscriber, make_paper: Callable[..., Paper]
) -> None:
    hostile = make_paper(
        "<script>alert(1)</script> & Diffusion\x0b Forcing",
        "We <b>bold</b> the <img src=x onerror=alert(1)> claim.",
        upvotes=212,
    )
    older = make_paper("Older paper", upvotes=5)
    other = make_paper("Bob's paper only", upvotes=9)
    digest_of(alice, [older])
    digest_of(alice, [hostile], day=1)
    digest_of(bob, [other])

    response = client.get(atom_url(alice))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/atom+xml")
    assert response["Cache-Control"] == "private, max-age=300"
    parsed = feedparser.parse(response.content)
    assert parsed.bozo == 0, parsed.bozo_exception
    titles = [e.title for e in parsed.entries]
    assert titles == ["<script>alert(1)</script> & Diffusion Forcing", "Older paper"]
    assert b"<script>" not in response.content  # escaped on the wire
    # The summary is declared HTML: scraped markup in it must arrive as text.
    assert "<b>" not in parsed.entries[0].summary
    assert "Trending: #1 today · 212 upvotes." in parsed.entries[0].summary
    assert parsed.entries[0].link.endswith(f"/papers/{hostile.arxiv_id}")
    assert "Bob's paper only" not in response.content.decode()

    as_json = client.get(reverse("feed_json", args=[alice.feed_key]))
    feed = json.loads(as_json.content)
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert [i["title"] for i in feed["items"]] == titles
    assert all(i["id"] and i["content_text"] for i in feed["items"])


def test_a_poll_with_the_etag_or_the_date_costs_a_304(
    client: Client, alice: Subscriber, make_paper: Callable[..., Paper]
) -> None:
    digest_of(alice, [make_paper("A paper")])
    first = client.get(atom_url(alice))
    etag, modified = first["ETag"], first["Last-Modified"]
    assert client.get(atom_url(alice), HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert client.get(atom_url(alice), HTTP_IF_MODIFIED_SINCE=modified).status_code == 304
    digest_of(alice, [make_paper("A newer paper")], day=1)
    assert client.get(atom_url(alice), HTTP_IF_NONE_MATCH=etag).status_code == 200


def test_a_feed_only_readers_digests_are_in_their_feed(
    client: Client, alice: Subscriber, make_paper: Callable[..., Paper]
) -> None:
    Subscriber.objects.filter(pk=alice.pk).update(channel="feed")
    digest_of(alice, [make_paper("Fed, not mailed")], status=Delivery.Status.FEED)
    digest_of(alice, [make_paper("Never sent")], status=Delivery.Status.FAILED, day=1)
    parsed = feedparser.parse(client.get(atom_url(alice)).content)
    assert [e.title for e in parsed.entries] == ["Fed, not mailed"]


def test_a_new_feed_address_kills_the_old_one(client: Client, alice: Subscriber) -> None:
    old = atom_url(alice)
    page = client.get(manage_url(alice).removeprefix("https://paperboy.example"))
    html = page.content.decode()
    assert (
        f'<link rel="alternate" type="application/atom+xml" title="Paperboy: your papers" href="https://paperboy.example{old}">'
        in html
    )
    assert "Make a new feed address" in html
    token = manage_url(alice).rsplit("/", 1)[-1]
    renewed = client.post(reverse("subscriptions:manage_feed_new", args=[token]), follow=True)
    assert "Your feed has a new address" in renewed.content.decode()
    alice.refresh_from_db()
    assert client.get(old).status_code == 404
    assert client.get(atom_url(alice)).status_code == 200
    assert client.get("/feed/not-a-key.atom").status_code == 404
