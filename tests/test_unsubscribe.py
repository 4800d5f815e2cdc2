"""Leaving, and looking at your settings, from the links in a digest."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import time_machine
from django.template.loader import render_to_string
from django.test import Client

from subscriptions.links import manage_url, unsubscribe_url
from subscriptions.models import Subscriber
from subscriptions.tokens import Purpose, make_token

SITE = "https://paperboy.example"


def path_of(url: str) -> str:
    assert url.startswith(SITE)
    return url.removeprefix(SITE)


def status_of(subscriber: Subscriber) -> str:
    subscriber.refresh_from_db()
    return subscriber.status


def test_get_shows_the_button_and_changes_nothing(alice: Subscriber, client: Client) -> None:
    # Mail scanners follow every link: a GET must not unsubscribe.
    response = client.get(path_of(unsubscribe_url(alice)))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Unsubscribe from Paperboy?" in page
    assert '<form method="post" action="">' in page
    assert '<button class="button danger" type="submit">Unsubscribe</button>' in page
    assert "a•••@example.org" in page
    assert "alice@example.org" not in page
    assert "csrfmiddlewaretoken" not in page
    assert status_of(alice) == Subscriber.Status.ACTIVE


def test_one_click_post_without_cookies_unsubscribes_at_once(alice: Subscriber) -> None:
    # What Gmail does (RFC 8058): a POST with no cookies and no CSRF token, no redirects.
    mail_provider = Client(enforce_csrf_checks=True)
    response = mail_provider.post(
        path_of(unsubscribe_url(alice)),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 200
    assert "You’re unsubscribed" in response.content.decode()
    assert status_of(alice) == Subscriber.Status.UNSUBSCRIBED
    alice.refresh_from_db()
    assert alice.unsubscribed_at is not None


def test_pressing_the_button_twice_is_harmless(alice: Subscriber) -> None:
    browser = Client(enforce_csrf_checks=True)
    url = path_of(unsubscribe_url(alice))
    first = browser.post(url)
    alice.refresh_from_db()
    when = alice.unsubscribed_at

    second = browser.post(url)

    assert first.status_code == second.status_code == 200
    assert "You’re unsubscribed" in second.content.decode()
    alice.refresh_from_db()
    assert alice.status == Subscriber.Status.UNSUBSCRIBED
    assert alice.unsubscribed_at == when
    # Coming back to the link later says so, rather than offering the button again.
    again = browser.get(url).content.decode()
    assert "You’re already unsubscribed" in again
    assert "<form" not in again


def test_a_tampered_token_gets_the_friendly_page(alice: Subscriber, client: Client) -> None:
    url = path_of(unsubscribe_url(alice))
    tampered = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")

    for response in (client.get(tampered), client.post(tampered)):
        assert response.status_code == 400
        assert "This link doesn’t work" in response.content.decode()
    assert status_of(alice) == Subscriber.Status.ACTIVE


def test_a_manage_token_does_not_unsubscribe(alice: Subscriber, client: Client) -> None:
    manage_token = make_token(alice, Purpose.MANAGE)

    response = client.post(f"/unsubscribe/{manage_token}")

    assert response.status_code == 400
    assert status_of(alice) == Subscriber.Status.ACTIVE
    # Nor does an unsubscribe token open the settings page.
    unsubscribe_token = make_token(alice, Purpose.UNSUBSCRIBE)
    assert client.get(f"/manage/{unsubscribe_token}").status_code == 400


def test_one_subscribers_token_leaves_the_others_alone(
    alice: Subscriber, bob: Subscriber, client: Client
) -> None:
    client.post(path_of(unsubscribe_url(alice)))
    assert status_of(alice) == Subscriber.Status.UNSUBSCRIBED
    assert status_of(bob) == Subscriber.Status.ACTIVE


def test_manage_page_shows_the_settings(alice: Subscriber, client: Client) -> None:
    response = client.get(path_of(manage_url(alice)))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Your Paperboy settings" in page
    assert "a•••@example.org" in page and "alice@example.org" not in page
    assert '<li class="chip">diffusion</li>' in page
    assert '<li class="chip">video generation</li>' in page
    assert '<li class="chip not">not “survey”</li>' in page
    assert "Daily" in page
    assert "Up to 10" in page
    assert "Active" in page


def test_manage_page_escapes_topics(
    make_subscriber: Callable[..., Subscriber], client: Client
) -> None:
    mallory = make_subscriber("mallory@example.org", ["<script>alert(1)</script>"])
    page = client.get(path_of(manage_url(mallory))).content.decode()
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_manage_page_offers_to_unsubscribe_when_given_the_link(alice: Subscriber) -> None:
    # The form posts to the unsubscribe view, which takes its own signed token.
    url = unsubscribe_url(alice)
    page = render_to_string("pages/manage.html", {"subscriber": alice, "unsubscribe_url": url})
    assert f'<form method="post" action="{url}">' in page
    assert ">Unsubscribe</button>" in page


def test_a_link_scanners_head_request_changes_nothing(alice: Subscriber, client: Client) -> None:
    response = client.head(path_of(unsubscribe_url(alice)))
    assert response.status_code == 200
    assert status_of(alice) == Subscriber.Status.ACTIVE


def test_one_click_still_works_from_an_email_whose_manage_link_has_expired(
    alice: Subscriber,
) -> None:
    # Both links from a digest sent a year ago: the settings link has expired (links that
    # edit settings carry an age), the unsubscribe link never does.
    sent = dt.datetime(2025, 3, 10, 7, 0, tzinfo=dt.UTC)
    with time_machine.travel(sent, tick=False):
        manage, unsubscribe = path_of(manage_url(alice)), path_of(unsubscribe_url(alice))
    with time_machine.travel(sent + dt.timedelta(days=365), tick=False):
        assert Client().get(manage).status_code == 410
        response = Client(enforce_csrf_checks=True).post(
            unsubscribe,
            data="List-Unsubscribe=One-Click",
            content_type="application/x-www-form-urlencoded",
        )
    assert response.status_code == 200
    assert "You’re unsubscribed" in response.content.decode()
    assert status_of(alice) == Subscriber.Status.UNSUBSCRIBED
