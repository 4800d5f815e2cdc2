"""Sending through an ESP (django-anymail): its message id is kept, its errors are sorted."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
import requests
from anymail.backends.test import EmailBackend as AnymailTestBackend
from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from django.core import mail

from digest.daily import edition_prepare, edition_send
from digest.mail.sending import is_transient
from digest.models import Delivery, Paper
from subscriptions.models import Subscriber
from tests.conftest import EDITION_DATE

pytestmark = pytest.mark.django_db


class FlakyESP(AnymailTestBackend):
    """Anymail's test backend, answering the next sends with the errors queued here."""

    errors: ClassVar[list[Exception]] = []

    def post_to_esp(self, payload: Any, message: Any) -> Any:
        if self.errors:
            raise self.errors.pop(0)
        return super().post_to_esp(payload, message)


def api_error(status: int, reason: str) -> AnymailAPIError:
    response = requests.Response()
    response.status_code, response.reason, response._content = status, reason, b"{}"
    return AnymailAPIError(f"ESP API response {status}", status_code=status, response=response)


@pytest.fixture
def esp(settings: Any) -> type[FlakyESP]:
    settings.EMAIL_BACKEND = f"{__name__}.FlakyESP"
    FlakyESP.errors = []
    mail.outbox = []
    return FlakyESP


@pytest.fixture
def diffusion_paper(make_paper: Callable[..., Paper]) -> Paper:
    return make_paper("Video Diffusion at Scale", upvotes=10)


def test_the_esp_message_id_is_recorded(
    esp: type[FlakyESP], alice: Subscriber, diffusion_paper: Paper
) -> None:
    edition_send(edition=edition_prepare(date=EDITION_DATE, scrape=False).edition)
    [sent] = mail.outbox
    sent_any: Any = sent  # anymail adds its attributes to the message at send time
    assert sent_any.anymail_test_params["to"][0].addr_spec == "alice@example.org"
    headers = sent_any.anymail_test_params["extra_headers"]
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.Status.SENT
    assert delivery.message_id == str(sent_any.anymail_status.message_id)


def test_an_esp_outage_is_retried_and_a_rejection_fails(
    esp: type[FlakyESP], alice: Subscriber, bob: Subscriber, make_paper: Callable[..., Paper]
) -> None:
    make_paper("Video Diffusion at Scale")
    make_paper("RLHF without Tears")
    esp.errors = [
        api_error(503, "Service Unavailable"),
        AnymailRecipientsRefused("All message recipients were rejected"),
    ]
    edition_send(edition=edition_prepare(date=EDITION_DATE, scrape=False).edition)
    by_email = {d.subscriber.email: d for d in Delivery.objects.select_related("subscriber")}
    assert by_email["alice@example.org"].status == Delivery.Status.QUEUED
    assert "503" in by_email["alice@example.org"].last_error
    assert by_email["bob@example.org"].status == Delivery.Status.FAILED
    assert "rejected" in by_email["bob@example.org"].last_error


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (smtplib.SMTPServerDisconnected("gone"), True),
        (smtplib.SMTPDataError(451, b"try later"), True),
        (smtplib.SMTPDataError(554, b"spam"), False),
        (smtplib.SMTPRecipientsRefused({"a@b.c": (450, b"greylisted")}), True),
        (smtplib.SMTPRecipientsRefused({"a@b.c": (550, b"no such user")}), False),
        (TimeoutError("timed out"), True),
        (ConnectionRefusedError(111, "refused"), True),
        (api_error(500, "Internal Server Error"), True),
        (api_error(429, "Too Many Requests"), True),
        (api_error(400, "Bad Request"), False),
        (AnymailAPIError("network down"), True),
        (AnymailRecipientsRefused("rejected"), False),
        (ValueError("template bug"), False),
    ],
)
def test_errors_are_sorted_into_transient_and_permanent(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient
