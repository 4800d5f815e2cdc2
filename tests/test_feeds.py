"""A subscriber's private feed, read back as a feed reader would (feedparser)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import feedparser
import pytest
from django.test import Client
from django.urls import reverse

from digest.feeds import FEED_ENTRIES, feed_text
from digest.models import Delivery, DeliveryPaper, Edition, Paper
from subscriptions.links import manage_url
from subscriptions.models import Subscriber

pytestmark = pytest.mark.django_db

SENT = dt.datetime(2026, 3, 10, 7, 0, tzinfo=dt.UTC)


def trending(rank: int, paper: Paper) -> list[dict[str, str]]:
    topic = f"#{rank} today · {paper.upvotes} upvotes"
    return [{"topic": topic, "field": "trending", "before": "", "match": "", "after": ""}]


def digest_of(
    subscriber: Subscriber,
    papers: list[Paper],
    *,
    status: str = Delivery.Status.SENT,
    day: int = 0,
    reasons: Callable[[int, Paper], list[dict[str, str]]] = trending,
) -> Delivery:
    """A digest sent `day` days after 10 March, with these papers in this order."""
    edition, _ = Edition.objects.get_or_create(date=SENT.date() + dt.timedelta(day), slot=None)
    delivery = Delivery.objects.create(
        edition=edition,
        subscriber=subscriber,
        status=status,
        matched_at=SENT + dt.timedelta(days=day),
        sent_at=SENT + dt.timedelta(days=day, seconds=5),
    )
    DeliveryPaper.objects.bulk_create(
        DeliveryPaper(delivery=delivery, paper=paper, rank=rank, reasons=reasons(rank, paper))
        for rank, paper in enumerate(papers, start=1)
    )
    return delivery


def atom_url(subscriber: Subscriber) -> str:
    return reverse("feed_atom", args=[subscriber.feed_key])


def json_url(subscriber: Subscriber) -> str:
    return reverse("feed_json", args=[subscriber.feed_key])


def valid_json_feed(feed: dict[str, Any]) -> None:
    """What JSON Feed 1.1 requires (https://jsonfeed.org/version/1.1)."""
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert isinstance(feed["title"], str) and feed["title"]
    assert isinstance(feed["items"], list)
    for item in feed["items"]:
        assert isinstance(item["id"], str) and item["id"]
        assert item.get("content_html") or item.get("content_text")
        dt.datetime.fromisoformat(item["date_published"])  # RFC 3339
        assert all(isinstance(a.get("name"), str) for a in item.get("authors", []))
        assert all(key.startswith("_") for key in item if key not in JSON_FEED_ITEM_KEYS)


JSON_FEED_ITEM_KEYS = {
    "id", "url", "external_url", "title", "content_html", "content_text", "summary", "image",
    "banner_image", "date_published", "date_modified", "authors", "tags", "language",
    "attachments",
}  # fmt: skip


def test_the_feed_holds_the_readers_papers_with_why_and_links(
    client: Client, alice: Subscriber, bob: Subscriber, make_paper: Callable[..., Paper]
) -> None:
    helios = make_paper(
        "Helios: Real-Time Long Video Generation",
        "We distil an autoregressive diffusion transformer for minute-long video.",
        upvotes=212,
        github_repo="https://github.com/helios/helios",
    )
    hostile = make_paper(
        "<script>alert(1)</script> Tom & Jerry\x1b[31m Forcing\x0b",
        ai_summary='<img src=x onerror="alert(2)"> & more',
        authors=["Ada <b>Lovelace</b>"],
        upvotes=40,
    )
    older = make_paper("Older paper", upvotes=5)
    digest_of(alice, [older])
    diffusion = [
        {
            "topic": "diffusion",
            "field": "abstract",
            "before": "We distil an autoregressive ",
            "match": "diffusion",
            "after": " transformer for minute-long video.",
        }
    ]
    digest_of(
        alice,
        [helios, hostile],
        day=1,
        reasons=lambda rank, p: diffusion if rank == 1 else trending(rank, p),
    )
    digest_of(bob, [make_paper("Bob's paper only")], day=2)

    response = client.get(atom_url(alice))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/atom+xml; charset=utf-8"
    assert response["Cache-Control"] == "private, max-age=300"
    body = response.content.decode()
    assert "<script>" not in body and "<img" not in body  # escaped on the wire
    assert "Bob's paper only" not in body

    parsed = feedparser.parse(response.content)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.feed.title == "Paperboy: your papers"
    # Newest digest first, then the digest's order.
    assert [e.title for e in parsed.entries] == [
        "Helios: Real-Time Long Video Generation",
        "<script>alert(1)</script> Tom & Jerry[31m Forcing",
        "Older paper",
    ]
    first, second = parsed.entries[0], parsed.entries[1]
    assert first.link == helios.hf_url
    assert first.id == f"tag:paperboy.example,2026-03-11:paper/{helios.arxiv_id}"
    related = {link.title: link.href for link in first.links if link.rel == "related"}
    assert related == {
        "arXiv": helios.arxiv_url,
        "PDF": helios.pdf_url,
        "Code": "https://github.com/helios/helios",
    }
    assert "Matched “diffusion” in the abstract" in first.summary
    assert "autoregressive <strong>diffusion</strong> transformer" in first.summary
    assert f'<a href="{helios.pdf_url}">PDF</a>' in first.summary
    assert "Trending: #2 today · 40 upvotes." in second.summary
    # The scraped markup is text in the subscriber too, never an element.
    assert "&lt;img src=x" in second.summary and "<img" not in second.summary
    assert "Ada &lt;b&gt;Lovelace&lt;/b&gt;" in second.summary
    assert first.published_parsed[:3] == (2026, 3, 11)

    as_json = client.get(json_url(alice))
    assert as_json["Content-Type"] == "application/feed+json; charset=utf-8"
    assert as_json["Cache-Control"] == "private, max-age=300"
    feed = json.loads(as_json.content)
    valid_json_feed(feed)
    assert [i["title"] for i in feed["items"]] == [e.title for e in parsed.entries]
    assert [i["id"] for i in feed["items"]] == [e.id for e in parsed.entries]
    item = feed["items"][0]
    assert item["url"] == helios.hf_url and item["external_url"] == helios.arxiv_url
    assert item["content_text"].startswith("Matched “diffusion” in the abstract: We distil")
    assert {"label": "Code", "url": "https://github.com/helios/helios"} in item["_paperboy"][
        "links"
    ]
    assert "Bob's paper only" not in as_json.content.decode()


def test_characters_xml_cannot_carry_are_dropped() -> None:
    # PostgreSQL stores no NUL, but a title can reach the feed from elsewhere.
    assert feed_text("Diffusion\x00 Forcing\x08 \ud800ok\ufffe\t\n") == "Diffusion Forcing ok\t\n"


def test_the_feed_keeps_the_latest_fifty_papers(
    client: Client, carol: Subscriber, make_paper: Callable[..., Paper]
) -> None:
    digest_of(carol, [make_paper(f"Old {n}") for n in range(30)])
    digest_of(carol, [make_paper(f"New {n}") for n in range(30)], day=1)
    titles = [i["title"] for i in json.loads(client.get(json_url(carol)).content)["items"]]
    assert len(titles) == FEED_ENTRIES
    assert titles[:31] == [f"New {n}" for n in range(30)] + ["Old 0"]


def test_a_poll_with_the_etag_or_the_date_costs_a_304(
    client: Client,
    alice: Subscriber,
    make_paper: Callable[..., Paper],
    django_assert_num_queries: Any,
) -> None:
    digest_of(alice, [make_paper("A paper")])
    for url in (atom_url(alice), json_url(alice)):
        first = client.get(url)
        etag, modified = first["ETag"], first["Last-Modified"]
        assert modified == "Tue, 10 Mar 2026 07:00:05 GMT"
        with django_assert_num_queries(2):  # the subscriber, then the feed's version
            again = client.get(url, HTTP_IF_NONE_MATCH=etag)
        assert again.status_code == 304 and again.content == b""
        assert again["ETag"] == etag and again["Cache-Control"] == "private, max-age=300"
        assert client.get(url, HTTP_IF_MODIFIED_SINCE=modified).status_code == 304
        assert client.head(url, HTTP_IF_NONE_MATCH=etag).status_code == 304

    etag = client.get(atom_url(alice))["ETag"]
    digest_of(alice, [make_paper("A newer paper")], day=1)
    fresh = client.get(atom_url(alice), HTTP_IF_NONE_MATCH=etag)
    assert fresh.status_code == 200 and fresh["ETag"] != etag
    assert "A newer paper" in fresh.content.decode()


def test_a_feed_only_readers_digests_are_in_their_feed(
    client: Client, alice: Subscriber, make_paper: Callable[..., Paper]
) -> None:
    Subscriber.objects.filter(pk=alice.pk).update(channel=Subscriber.Channel.FEED)
    digest_of(alice, [make_paper("Fed, not mailed")], status=Delivery.Status.FEED)
    unpublished = (Delivery.Status.FAILED, Delivery.Status.QUEUED, Delivery.Status.SKIPPED)
    for day, status in enumerate(unpublished, start=1):
        digest_of(alice, [make_paper(f"Never published ({status})")], status=status, day=day)
    parsed = feedparser.parse(client.get(atom_url(alice)).content)
    assert parsed.bozo == 0
    assert [e.title for e in parsed.entries] == ["Fed, not mailed"]


def test_a_reader_with_no_digest_yet_has_an_empty_valid_feed(
    client: Client, bob: Subscriber
) -> None:
    parsed = feedparser.parse(client.get(atom_url(bob)).content)
    assert parsed.bozo == 0 and parsed.entries == []
    feed = json.loads(client.get(json_url(bob)).content)
    valid_json_feed(feed)
    assert feed["items"] == []


def test_a_new_feed_address_kills_the_old_one(
    client: Client, alice: Subscriber, make_paper: Callable[..., Paper]
) -> None:
    digest_of(alice, [make_paper("Still here")])
    old_atom, old_json = atom_url(alice), json_url(alice)
    page = client.get(manage_url(alice).removeprefix("https://paperboy.example"))
    html = page.content.decode()
    head = html[: html.index("</head>")]
    assert (
        '<link rel="alternate" type="application/atom+xml" title="Paperboy: your papers" '
        f'href="https://paperboy.example{old_atom}">'
    ) in head
    assert "Your private feed" in html
    assert f'value="https://paperboy.example{old_json}"' in html
    assert "Make a new feed address" in html

    token = manage_url(alice).rsplit("/", 1)[-1]
    renew = reverse("subscriptions:manage_feed_new", args=[token])
    assert client.get(renew).status_code == 405  # a link cannot do it; only the button
    renewed = client.post(renew, follow=True)
    assert renewed.redirect_chain[-1][0].endswith("#feed")
    assert "Your feed has a new address" in renewed.content.decode()
    alice.refresh_from_db()
    assert atom_url(alice) != old_atom
    assert client.get(old_atom).status_code == 404
    assert client.get(old_json).status_code == 404
    parsed = feedparser.parse(client.get(atom_url(alice)).content)
    assert [e.title for e in parsed.entries] == ["Still here"]
    assert f"https://paperboy.example{atom_url(alice)}" in renewed.content.decode()


def test_the_button_needs_the_pages_csrf_token(alice: Subscriber) -> None:
    token = manage_url(alice).rsplit("/", 1)[-1]
    strict = Client(enforce_csrf_checks=True)
    key = alice.feed_key
    assert strict.post(reverse("subscriptions:manage_feed_new", args=[token])).status_code == 403
    alice.refresh_from_db()
    assert alice.feed_key == key


def test_an_unknown_key_is_a_404(client: Client, alice: Subscriber) -> None:
    assert client.get("/feed/not-a-key.atom").status_code == 404
    assert client.get("/feed/not-a-key.json").status_code == 404
    assert client.get(f"/feed/{'x' * 200}.atom").status_code == 404
    assert client.get(f"/feed/{alice.key}.atom").status_code == 404  # the token key is not it
