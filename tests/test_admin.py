"""The operator's admin: every list and page renders, and failed sends can be requeued."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from digest.daily import edition_prepare, edition_send
from digest.models import Delivery, Paper
from subscriptions.models import Subscriber
from tests.conftest import EDITION_DATE
from tests.smtp_server import Mailbox

pytestmark = pytest.mark.django_db


@pytest.fixture
def one_day_sent(
    alice: Subscriber, carol: Subscriber, make_paper: Callable[..., Paper], smtp_server: Mailbox
) -> None:
    make_paper("<b>Diffusion</b> for Everything", upvotes=9)
    prepared = edition_prepare(date=EDITION_DATE, scrape=False)
    edition_send(edition=prepared.edition)


@pytest.mark.parametrize("model", ["subscriptions/subscriber", "digest/paper", "digest/edition",
                                   "digest/delivery"])  # fmt: skip
def test_each_list_and_change_page_renders(
    admin_client: Client, one_day_sent: None, model: str
) -> None:
    app, name = model.split("/")
    listing = admin_client.get(reverse(f"admin:{app}_{name}_changelist"))
    assert listing.status_code == 200
    first = listing.context["cl"].result_list[0]
    page = admin_client.get(reverse(f"admin:{app}_{name}_change", args=[first.pk]))
    assert page.status_code == 200
    # Scraped markup is shown as text, never as markup.
    assert b"<b>Diffusion</b>" not in listing.content + page.content


def test_the_edition_list_counts_sent_and_skipped(admin_client: Client, one_day_sent: None) -> None:
    listing = admin_client.get(reverse("admin:digest_edition_changelist"))
    row = listing.context["cl"].result_list[0]
    assert (row._sent, row._skipped, row._failed) == (1, 1, 0)


def test_the_subscriber_list_filters_and_searches(admin_client: Client, one_day_sent: None) -> None:
    url = reverse("admin:subscriptions_subscriber_changelist")
    found = admin_client.get(url, {"q": "alice"}).context["cl"].result_list
    assert [s.email for s in found] == ["alice@example.org"]
    assert found[0]._sent == 1
    assert admin_client.get(url, {"status__exact": "active"}).status_code == 200


def test_failed_deliveries_can_be_sent_again(
    admin_client: Client, one_day_sent: None, smtp_server: Mailbox
) -> None:
    delivery = Delivery.objects.get(status=Delivery.Status.SENT)
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.FAILED, last_error="550 mailbox full"
    )
    admin_client.post(
        reverse("admin:digest_delivery_changelist"),
        {"action": "requeue", "_selected_action": [delivery.pk]},
    )
    delivery.refresh_from_db()
    assert delivery.status in (Delivery.Status.QUEUED, Delivery.Status.SENT)
    assert delivery.attempts in (0, 1)
