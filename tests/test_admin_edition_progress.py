"""An edition's admin page shows where its sending stands, and keeps it up to date.

The made-up edition has deliveries in every state: two owed, two waiting to be retried
(one after a failed try, one put back by an operator after failing), one being sent,
three sent (two in the last minute), one failed, one skipped, one in a subscriber's feed.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from digest.edition_progress import edition_progress
from digest.models import Delivery, Edition
from subscriptions.models import Subscriber
from tests.conftest import EDITION_DATE
from tests.test_email_screenshots import chromium, requires_chromium

pytestmark = pytest.mark.django_db

S = Delivery.Status
EXPECTED_COUNTS = {
    "owed": 2,
    "retrying": 2,
    "sending": 1,
    "sent": 3,
    "failed": 1,
    "skipped": 1,
    "feed": 1,
}


@pytest.fixture
def now() -> dt.datetime:
    return timezone.now()


@pytest.fixture
def edition(make_subscriber: Callable[..., Subscriber], now: dt.datetime) -> Edition:
    edition = Edition.objects.create(date=EDITION_DATE, planned_at=now)
    other = Edition.objects.create(date=EDITION_DATE - dt.timedelta(days=1))
    ago = lambda seconds: now - dt.timedelta(seconds=seconds)  # noqa: E731
    states: list[dict[str, Any]] = [
        {"status": S.QUEUED},
        {"status": S.QUEUED},
        {"status": S.QUEUED, "attempts": 1, "last_error": "421 try again later",
         "next_attempt_at": now + dt.timedelta(seconds=60)},
        {"status": S.QUEUED, "attempts": 0, "last_error": "gave up after 5 attempts: 421"},
        {"status": S.SENDING, "attempts": 1, "claimed_at": ago(2)},
        {"status": S.SENT, "attempts": 1, "sent_at": ago(10)},
        {"status": S.SENT, "attempts": 1, "sent_at": ago(30)},
        {"status": S.SENT, "attempts": 2, "sent_at": ago(300)},
        {"status": S.FAILED, "attempts": 5, "last_error": "gave up after 5 attempts: 421"},
        {"status": S.SKIPPED, "skip_reason": "no new papers matched"},
        # Published to the subscriber's feed a moment ago: no email, so not in the send rate.
        {"status": S.FEED, "sent_at": ago(5)},
    ]  # fmt: skip
    for i, fields in enumerate(states):
        reader = make_subscriber(f"reader{i}@example.org", ["diffusion"])
        Delivery.objects.create(edition=edition, subscriber=reader, **fields)
        # The day before's deliveries, sent just now, are another edition's.
        Delivery.objects.create(edition=other, subscriber=reader, status=S.SENT, sent_at=ago(1))
    return edition


def progress_url(edition: Edition) -> str:
    return reverse("admin:digest_edition_progress", args=[edition.pk])


def test_the_counting_is_one_query_with_the_right_numbers(
    edition: Edition, now: dt.datetime, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(1):
        progress = edition_progress(edition_id=edition.pk, now=now)
    assert progress.as_json()["counts"] == EXPECTED_COUNTS
    assert progress.sent_last_minute == 2
    assert progress.recent_rate == pytest.approx(2 / 60)
    # Three emails from 300 s ago to 10 s ago: two intervals in 290 seconds.
    assert progress.overall_rate == pytest.approx(2 / 290)
    assert progress.first_sent_at == now - dt.timedelta(seconds=300)
    assert progress.last_sent_at == now - dt.timedelta(seconds=10)


def test_no_overall_rate_before_two_emails(make_subscriber: Callable[..., Subscriber]) -> None:
    edition = Edition.objects.create(date=EDITION_DATE)
    reader = make_subscriber("solo@example.org", ["diffusion"])
    Delivery.objects.create(edition=edition, subscriber=reader, status=S.SENT,
                            sent_at=timezone.now())  # fmt: skip
    progress = edition_progress(edition_id=edition.pk)
    assert progress.overall_rate is None
    assert progress.as_json()["rate"] == {"last_minute": pytest.approx(1 / 60), "overall": None}


def test_the_json_endpoint_gives_the_edition_s_numbers(
    admin_client: Client, edition: Edition
) -> None:
    response = admin_client.get(progress_url(edition))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    data = response.json()
    assert data["counts"] == EXPECTED_COUNTS
    assert data["rate"]["last_minute"] == pytest.approx(2 / 60)
    assert data["rate"]["overall"] == pytest.approx(2 / 290)
    first = dt.datetime.fromisoformat(data["first_sent_at"])
    last = dt.datetime.fromisoformat(data["last_sent_at"])
    assert (last - first).total_seconds() == pytest.approx(290)


def test_the_numbers_follow_the_sending(admin_client: Client, edition: Edition) -> None:
    owed = Delivery.objects.filter(edition=edition, status=S.QUEUED, attempts=0, last_error="")
    Delivery.objects.filter(pk=owed.first().pk).update(  # type: ignore[union-attr]
        status=S.SENT, attempts=1, sent_at=timezone.now()
    )
    counts = admin_client.get(progress_url(edition)).json()["counts"]
    assert counts == {**EXPECTED_COUNTS, "owed": 1, "sent": 4}


def test_a_superuser_sees_the_counts_on_the_edition_page(
    admin_client: Client, edition: Edition
) -> None:
    response = admin_client.get(reverse("admin:digest_edition_change", args=[edition.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    for name, n in EXPECTED_COUNTS.items():
        assert f'<td data-count="{name}">{n}</td>' in html
    assert f'<td data-rate="last_minute">{2 / 60:.2f}</td>' in html
    assert f'<td data-rate="overall">{2 / 290:.2f}</td>' in html
    assert f'data-url="{progress_url(edition)}"' in html
    # The polling script runs under the site's CSP: it carries the nonce the header allows.
    nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"])
    assert nonce is not None
    assert f'<script nonce="{nonce.group(1)}">' in html
    assert "fetch(box.dataset.url" in html


def test_non_staff_are_sent_to_the_login_page(client: Client, edition: Edition) -> None:
    login = reverse("admin:login")
    for who in (None, User.objects.create_user("subscriber", password="pw-reader-1")):
        client.logout()
        if who is not None:
            client.force_login(who)
        response = client.get(progress_url(edition))
        assert response.status_code == 302
        assert response["Location"].startswith(login + "?next=")
        assert "counts" not in response.content.decode()


def test_staff_without_view_permission_are_refused(client: Client, edition: Edition) -> None:
    clerk = User.objects.create_user("clerk", password="pw-clerk-1", is_staff=True)
    client.force_login(clerk)
    assert client.get(progress_url(edition)).status_code == 403


def test_an_unknown_edition_is_not_found(admin_client: Client, edition: Edition) -> None:
    response = admin_client.get(reverse("admin:digest_edition_progress", args=[edition.pk + 99]))
    assert response.status_code == 404


@pytest.mark.browser
@requires_chromium
def test_the_page_refreshes_the_counts_by_itself(
    live_server: Any, edition: Edition, transactional_db: None
) -> None:
    """In a real browser, under the site's CSP: a delivery sent while the page is open
    shows up without a reload."""
    admin = User.objects.create_superuser("boss", password="pw-boss-1")
    session = Client()
    session.force_login(admin)
    cookie = session.cookies[settings.SESSION_COOKIE_NAME].value
    url = live_server.url + reverse("admin:digest_edition_change", args=[edition.pk])
    owed = Delivery.objects.filter(edition=edition, status=S.QUEUED, attempts=0, last_error="")
    first_owed = owed.values_list("pk", flat=True).order_by("pk")[0]
    blocked: list[str] = []
    expect = pytest.importorskip("playwright.sync_api").expect

    def send_one() -> None:
        # In a thread of its own: Playwright's event loop runs in the test's thread, and
        # Django refuses the ORM there.
        try:
            Delivery.objects.filter(pk=first_owed).update(
                status=S.SENT, attempts=1, sent_at=timezone.now()
            )
        finally:
            connection.close()

    with chromium() as browser:
        context = browser.new_context()
        context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie,
                              "url": live_server.url}])  # fmt: skip
        page = context.new_page()
        page.on("console", lambda message: blocked.append(message.text))
        page.goto(url)
        assert page.inner_text('[data-count="sent"]') == "3"
        worker = threading.Thread(target=send_one)
        worker.start()
        worker.join()
        # The next poll, within 5 seconds (the page's CSP forbids Playwright's own eval).
        expect(page.locator('[data-count="sent"]')).to_have_text("4", timeout=15_000)
        assert page.inner_text('[data-count="owed"]') == "1"
        assert page.inner_text("#edition-progress-status").startswith("As of ")
    assert not [text for text in blocked if "Content Security Policy" in text]
