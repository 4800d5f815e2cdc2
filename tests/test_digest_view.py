"""The "view in browser" link at the top of every digest."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import pytest
from django.test import Client
from django.utils import timezone

from digest.mail import render_digest
from digest.models import Delivery, DeliveryPaper, Edition, Paper
from subscriptions.links import digest_url, manage_url
from subscriptions.models import Subscriber
from subscriptions.tokens import Purpose, make_token
from tests.conftest import EDITION_DATE
from tests.test_emails import SAMPLE_PAPERS, sample_paper

SITE = "https://paperboy.example"


def path_of(url: str) -> str:
    assert url.startswith(SITE)
    return url.removeprefix(SITE)


@pytest.fixture
def delivery_of(
    make_paper: Callable[..., Paper],
) -> Callable[..., Delivery]:
    def make(subscriber: Subscriber, status: str = Delivery.Status.SENT) -> Delivery:
        edition, _ = Edition.objects.get_or_create(date=EDITION_DATE)
        delivery = Delivery.objects.create(
            edition=edition,
            subscriber=subscriber,
            status=status,
            matched_at=timezone.now(),
            sent_at=timezone.now() if status == Delivery.Status.SENT else None,
        )
        for rank, entry in enumerate(SAMPLE_PAPERS[:3], start=1):
            fields, reasons = sample_paper(entry)
            paper = Paper.objects.filter(title=fields["title"]).first() or make_paper(**fields)
            DeliveryPaper.objects.create(delivery=delivery, paper=paper, rank=rank, reasons=reasons)
        return delivery

    return make


def test_a_sent_digest_opens_in_the_browser(
    alice: Subscriber, delivery_of: Callable[..., Delivery], client: Client
) -> None:
    delivery = delivery_of(alice)

    response = client.get(path_of(digest_url(alice, EDITION_DATE)))

    assert response.status_code == 200
    page = response.content.decode()
    assert page == render_digest(delivery=delivery, for_browser=True).html
    assert "Tuesday, 10 March 2026" in page
    # The email links to this page; the page itself does not link to itself.
    assert "View in browser" in render_digest(delivery=delivery).html
    assert "View in browser" not in page
    assert "3 papers picked for your topics: diffusion, video generation" in page
    for entry in SAMPLE_PAPERS[:3]:
        assert entry["authors"][0] in page
    assert manage_url(alice) in page
    # Only the email's own markup: no script may run, and search engines stay out.
    assert "default-src 'none'" in response["Content-Security-Policy"]
    assert "script-src" not in response["Content-Security-Policy"]
    assert response["X-Robots-Tag"] == "noindex"
    assert "<script" not in page


@pytest.mark.parametrize(
    "status",
    [Delivery.Status.QUEUED, Delivery.Status.SENDING, Delivery.Status.FAILED, "skipped"],
)
def test_a_digest_that_was_not_sent_is_a_friendly_404(
    alice: Subscriber, delivery_of: Callable[..., Delivery], client: Client, status: str
) -> None:
    delivery_of(alice, status=status)

    response = client.get(path_of(digest_url(alice, EDITION_DATE)))

    assert response.status_code == 404
    page = response.content.decode()
    assert "This digest isn’t here" in page
    assert "Tuesday, 10 March 2026" in page
    assert path_of(manage_url(alice)) in page
    assert "Helios" not in page


def test_a_link_shows_only_its_own_subscribers_digest(
    alice: Subscriber,
    bob: Subscriber,
    delivery_of: Callable[..., Delivery],
    client: Client,
) -> None:
    delivery_of(alice)

    # Bob got nothing that day: his link for the date has nothing to show.
    assert client.get(path_of(digest_url(bob, EDITION_DATE))).status_code == 404
    # Nor has alice's link for another day.
    other_day = EDITION_DATE - dt.timedelta(days=1)
    assert client.get(path_of(digest_url(alice, other_day))).status_code == 404


def test_a_tampered_or_borrowed_token_is_a_bad_link(
    alice: Subscriber, delivery_of: Callable[..., Delivery], client: Client
) -> None:
    delivery_of(alice)
    good = path_of(digest_url(alice, EDITION_DATE))
    tampered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    manage_token = make_token(alice, Purpose.MANAGE)
    # A digest token whose date part is not a date.
    no_date = make_token(alice, Purpose.DIGEST)
    bad_date = make_token(alice, Purpose.DIGEST, extra="yesterday")

    for path in (
        tampered,
        f"/digest/{manage_token}",
        f"/digest/{no_date}",
        f"/digest/{bad_date}",
        "/digest/nonsense",
    ):
        response = client.get(path)
        assert response.status_code == 400, path
        assert "This link doesn’t work" in response.content.decode()
    # The page is for reading: nothing is posted to it.
    assert client.post(good).status_code == 405


def test_the_link_names_no_address_and_no_id(alice: Subscriber) -> None:
    url = digest_url(alice, EDITION_DATE)
    assert re.fullmatch(r"https://paperboy\.example/digest/[^/@\s]+", url)
    assert "alice" not in url and f":{alice.pk}:" not in url
    assert "2026-03-10" in url  # the date is signed, not secret


def test_the_plain_text_part_links_to_the_browser_copy(
    alice: Subscriber, delivery_of: Callable[..., Delivery]
) -> None:
    # Plain-text subscribers are the ones who gain most from the formatted copy.
    rendered = render_digest(delivery=delivery_of(alice))
    url = digest_url(alice, EDITION_DATE)

    assert f"View in browser:    {url}\n" in rendered.text
    assert rendered.text.index("View in browser") < rendered.text.index("Manage preferences")


def test_a_deleted_subscribers_digest_link_stops_working(
    alice: Subscriber, delivery_of: Callable[..., Delivery], client: Client
) -> None:
    delivery_of(alice)
    path = path_of(digest_url(alice, EDITION_DATE))
    client.post("/your-data/" + make_token(alice, Purpose.ACTION, extra="delete"))

    assert client.get(path).status_code == 400
