"""ESP tracking webhooks: a bounce or complaint reaches Paperboy once, and acts.

The webhooks are posted in the ESPs' own wire formats to Anymail's real URLs, with the
basic auth an ESP is configured with; only the configured ESP's URL is mounted, so each
post first makes its ESP the configured one. Celery runs eagerly here (no REDIS_URL), so
the task queued on commit runs inline once the callbacks are executed. What forged and
malformed posts get is in test_webhook_security.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from anymail.signals import AnymailTrackingEvent, tracking
from django.test import Client

from digest.daily import edition_prepare, edition_send
from digest.models import Delivery, Paper
from subscriptions.models import EmailEvent, Subscriber
from subscriptions.tracking import email_event_key
from tests.conftest import EDITION_DATE

WEBHOOK_SECRET = "paperboy-esp:n0t-a-real-secret"
MAILGUN_SIGNING_KEY = "key-0123456789abcdef0123456789abcdef"

CaptureCallbacks = Callable[..., AbstractContextManager[list[Callable[[], Any]]]]


@pytest.fixture(autouse=True)
def _webhook_secret(settings: Any) -> None:
    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_SIGNING_KEY,
    }


def basic_auth(credentials: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


# The ESP (PAPERBOY_ESP) each webhook URL belongs to.
ESP_OF_PATH = {
    "/anymail/postmark/tracking/": "postmark",
    "/anymail/mailgun/tracking/": "mailgun",
    "/anymail/amazon_ses/tracking/": "ses",
}


@pytest.fixture
def esp(
    client: Client, settings: Any, django_capture_on_commit_callbacks: CaptureCallbacks
) -> Callable[..., int]:
    """POST a webhook as the ESP does; run what it queued on commit; return the status."""

    def post(
        path: str,
        payload: dict[str, Any],
        credentials: str = WEBHOOK_SECRET,
        headers: dict[str, str] | None = None,
    ) -> int:
        esp_name = ESP_OF_PATH[path]
        if esp_name != settings.PAPERBOY_ESP:
            settings.PAPERBOY_ESP = esp_name  # mounts that ESP's webhook alone
        auth = basic_auth(credentials) if credentials else {}
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                path,
                data=json.dumps(payload),
                content_type="application/json",
                headers={**auth, **(headers or {})},
            )
        return response.status_code

    return post


POSTMARK = "/anymail/postmark/tracking/"


def postmark_bounce(email: str, **fields: Any) -> dict[str, Any]:
    """A Postmark bounce webhook (RecordType Bounce), as Postmark posts it."""
    return {
        "RecordType": "Bounce",
        "ID": 4323372036854775807,
        "Type": "HardBounce",
        "TypeCode": 1,
        "Name": "Hard bounce",
        "Tag": "digest",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "ServerID": 23,
        "MessageStream": "outbound",
        "Description": "The server was unable to deliver your message "
        "(ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist. "
        "Please try double-checking the recipient's email address for typos or "
        "unnecessary spaces.",
        "Email": email,
        "From": "paperboy@paperboy.example",
        "BouncedAt": "2026-03-10T07:01:12.3963933Z",
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Your papers for Tuesday 10 March: Video Diffusion at Scale and 2 more",
        "Metadata": {},
        **fields,
    }


def status_of(subscriber: Subscriber) -> str:
    subscriber.refresh_from_db()
    return subscriber.status


# --- Postmark, end to end --------------------------------------------------------------


def test_a_hard_bounce_suppresses_and_its_replay_is_processed_once(
    esp: Callable[..., int], alice: Subscriber, bob: Subscriber
) -> None:
    assert esp(POSTMARK, postmark_bounce("alice@example.org")) == 200

    [event] = EmailEvent.objects.all()
    assert event.event_id == "Postmark:4323372036854775807:alice@example.org"
    assert (event.event_type, event.reject_reason) == ("bounced", "bounced")
    assert event.description.startswith("HardBounce: The server was unable to deliver")
    assert event.occurred_at == dt.datetime(2026, 3, 10, 7, 1, 12, 396393, tzinfo=dt.UTC)
    assert event.subscriber == alice
    assert event.outcome.startswith(
        "suppressed: hard bounce (550 5.1.1 The email account that you tried to reach"
    )
    processed_at = event.processed_at
    assert processed_at is not None
    alice.refresh_from_db()
    assert alice.status == Subscriber.Status.SUPPRESSED
    assert alice.suppressed_reason.startswith("hard bounce (550 5.1.1")
    assert status_of(bob) == Subscriber.Status.ACTIVE

    # Postmark retries a webhook it thinks failed; an attacker may replay one.
    assert esp(POSTMARK, postmark_bounce("alice@example.org")) == 200

    [again] = EmailEvent.objects.all()
    assert (again.pk, again.processed_at, again.outcome) == (
        event.pk,
        processed_at,
        event.outcome,
    )


@pytest.mark.parametrize(
    "credentials", ["paperboy-esp:guessed", ""], ids=["wrong password", "no credentials"]
)
def test_a_webhook_without_the_secret_stores_nothing(
    esp: Callable[..., int], alice: Subscriber, credentials: str
) -> None:
    assert esp(POSTMARK, postmark_bounce("alice@example.org"), credentials=credentials) == 401

    assert not EmailEvent.objects.exists()
    assert status_of(alice) == Subscriber.Status.ACTIVE


def test_a_postmark_soft_bounce_is_counted(esp: Callable[..., int], carol: Subscriber) -> None:
    soft = postmark_bounce(
        "carol@example.org",
        ID=4323372036854775808,
        Type="SoftBounce",
        TypeCode=4096,
        Name="Soft bounce",
        Description="The server could not temporarily deliver your message "
        "(ex: Message is delayed due to network troubles).",
        Details="smtp;452 4.2.2 The email account that you tried to reach is over quota.",
        Inactive=False,
    )

    assert esp(POSTMARK, soft) == 200

    # Anymail reports it as bounced/bounced, like a hard bounce: the detail decides.
    [event] = EmailEvent.objects.all()
    assert (event.event_type, event.reject_reason) == ("bounced", "bounced")
    assert event.outcome.startswith("soft bounce 1 of 3 (452 4.2.2")
    carol.refresh_from_db()
    assert (carol.status, carol.soft_bounces) == (Subscriber.Status.ACTIVE, 1)

    delivered = {
        "RecordType": "Delivery",
        "ServerID": 23,
        "MessageStream": "outbound",
        "MessageID": "5d3b3a43-1b6e-4b1a-9a52-0bf38c4c4c1e",
        "Recipient": "carol@example.org",
        "Tag": "digest",
        "DeliveredAt": "2026-03-11T07:00:41.2735393Z",
        "Details": "smtp;250 2.0.0 OK 1773212441 a1si123456qkb.12 - gsmtp",
        "Metadata": {},
    }
    assert esp(POSTMARK, delivered) == 200

    carol.refresh_from_db()
    assert carol.soft_bounces == 0
    assert EmailEvent.objects.get(event_type="delivered").outcome == (
        "delivered: soft bounce count reset (was 1)"
    )


def test_a_spam_complaint_suppresses(esp: Callable[..., int], bob: Subscriber) -> None:
    complaint = {
        "RecordType": "SpamComplaint",
        "ID": 901542550,
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "Name": "Spam complaint",
        "Tag": "digest",
        "MessageID": "2706ee8a-737c-4285-b032-ccd317af53ed",
        "ServerID": 23,
        "MessageStream": "outbound",
        "Description": "The subscriber explicitly marked this message as spam.",
        "Details": "",
        "Email": "bob@example.org",
        "From": "paperboy@paperboy.example",
        "BouncedAt": "2026-03-10T09:12:50.3963933Z",
        "DumpAvailable": False,
        "Inactive": True,
        "CanActivate": False,
        "Subject": "Your papers for Tuesday 10 March",
    }

    assert esp(POSTMARK, complaint) == 200

    bob.refresh_from_db()
    assert bob.status == Subscriber.Status.SUPPRESSED
    assert bob.suppressed_reason.startswith("spam complaint")


def test_a_postmark_subscription_change_unsubscribes(
    esp: Callable[..., int], alice: Subscriber
) -> None:
    change = {
        "RecordType": "SubscriptionChange",
        "MessageID": "a4909a96-73d7-4c49-b148-a54522d3f7ac",
        "ServerID": 23,
        "MessageStream": "outbound",
        "ChangedAt": "2026-03-10T08:17:32Z",
        "Recipient": "alice@example.org",
        "Origin": "Recipient",
        "SuppressSending": True,
        "SuppressionReason": "ManualSuppression",
        "Tag": "digest",
        "Metadata": {},
    }

    assert esp(POSTMARK, change) == 200
    assert esp(POSTMARK, change) == 200  # no ID in this record: its hash dedupes it

    [event] = EmailEvent.objects.all()
    assert event.event_id.startswith("Postmark:sha256:")
    assert event.outcome == "unsubscribed"
    assert status_of(alice) == Subscriber.Status.UNSUBSCRIBED


@pytest.fixture
def diffusion_paper(make_paper: Callable[..., Paper]) -> Paper:
    return make_paper("Video Diffusion at Scale", "A diffusion model for video generation.")


def test_after_a_bounce_no_digest_goes_to_the_address(
    esp: Callable[..., int], alice: Subscriber, bob: Subscriber, diffusion_paper: Paper
) -> None:
    # Planned before the bounce arrived: skipped when its turn to send comes.
    today = edition_prepare(date=EDITION_DATE, scrape=False).edition
    assert esp(POSTMARK, postmark_bounce("alice@example.org")) == 200
    edition_send(edition=today)
    assert Delivery.objects.get(edition=today, subscriber=alice).status == Delivery.Status.SKIPPED

    # The next day's edition does not plan her one.
    tomorrow_date = EDITION_DATE + dt.timedelta(days=1)
    diffusion_paper.batch_date = tomorrow_date
    diffusion_paper.save()
    tomorrow = edition_prepare(date=tomorrow_date, scrape=False).edition
    assert not Delivery.objects.filter(edition=tomorrow, subscriber=alice).exists()
    assert Delivery.objects.filter(edition=tomorrow, subscriber=bob).exists()


# --- Mailgun and Amazon SES ------------------------------------------------------------


def mailgun_event(event_data: dict[str, Any], token: str) -> dict[str, Any]:
    timestamp = "1773126072"
    signature = hmac.new(
        MAILGUN_SIGNING_KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256
    ).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event_data,
    }


def mailgun_failure(recipient: str, severity: str, message: str) -> dict[str, Any]:
    return {
        "id": "G9Bn5sl1TC6nu79C8C0bwg",
        "timestamp": 1773126072.521,
        "log-level": "error" if severity == "permanent" else "warn",
        "event": "failed",
        "severity": severity,
        "reason": "bounce" if severity == "permanent" else "generic",
        "recipient": recipient,
        "recipient-domain": recipient.partition("@")[2],
        "message": {
            "headers": {
                "to": recipient,
                "message-id": "20260310070112.1.C2E7A9F1B@mg.paperboy.example",
                "from": "Paperboy <paperboy@mg.paperboy.example>",
                "subject": "Your papers for Tuesday 10 March",
            }
        },
        "delivery-status": {
            "attempt-no": 1,
            "message": message,
            "code": int(message[:3]),
            "description": "",
            "session-seconds": 1.4,
        },
        "tags": ["digest"],
        "user-variables": {},
    }


def test_mailgun_permanent_failure_suppresses_and_temporary_waits(
    esp: Callable[..., int], bob: Subscriber, carol: Subscriber
) -> None:
    permanent = mailgun_failure(
        "bob@example.org",
        "permanent",
        "550 5.1.1 The email account that you tried to reach does not exist.",
    )
    temporary = mailgun_failure(
        "carol@example.org", "temporary", "421 4.7.0 Try again later, closing connection."
    )

    assert esp("/anymail/mailgun/tracking/", mailgun_event(permanent, "a" * 50)) == 200
    assert esp("/anymail/mailgun/tracking/", mailgun_event(temporary, "b" * 50)) == 200

    assert status_of(bob) == Subscriber.Status.SUPPRESSED
    assert status_of(carol) == Subscriber.Status.ACTIVE
    deferred = EmailEvent.objects.get(recipient="carol@example.org")
    assert deferred.outcome == "ignored: deferred (421 4.7.0 Try again later, closing connection.)"


def ses_notification(ses_event: dict[str, Any], message_id: str) -> dict[str, Any]:
    """An Amazon SNS notification carrying an SES event, as SNS posts it."""
    return {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:paperboy-ses-events",
        "Subject": None,
        "Message": json.dumps(ses_event),
        "Timestamp": "2026-03-10T07:01:13.021Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLEpH+..",
        "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService.pem",
        "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe",
    }


def ses_bounce(
    bounce_type: str, sub_type: str, recipients: list[tuple[str, str]]
) -> dict[str, Any]:
    return {
        "eventType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": sub_type,
            "bouncedRecipients": [
                {"emailAddress": email, "action": "failed", "diagnosticCode": diagnostic}
                for email, diagnostic in recipients
            ],
            "timestamp": "2026-03-10T07:01:12.859Z",
            "feedbackId": "0102018e2b7e1c2f-5b3c7e1a-1e2f-4a6b-9c1d-2f3e4a5b6c7d-000000",
            "reportingMTA": "dsn; a8-55.smtp-out.amazonses.com",
        },
        "mail": {
            "timestamp": "2026-03-10T07:01:11.000Z",
            "source": "paperboy@paperboy.example",
            "messageId": "0102018e2b7e1a11-8f1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d-000000",
            "destination": [email for email, _ in recipients],
            "headers": [],
        },
    }


def ses_post(
    esp: Callable[..., int], notification: dict[str, Any], credentials: str = WEBHOOK_SECRET
) -> int:
    sns_headers = {
        "x-amz-sns-message-type": "Notification",
        "x-amz-sns-message-id": notification["MessageId"],
    }
    return esp("/anymail/amazon_ses/tracking/", notification, credentials, sns_headers)


def test_ses_transient_bounce_is_soft_and_one_notification_reaches_each_recipient(
    esp: Callable[..., int], alice: Subscriber, carol: Subscriber
) -> None:
    # SES reports a full mailbox as a "Bounce", of type Transient.
    full = ses_notification(
        ses_bounce(
            "Transient",
            "MailboxFull",
            [
                ("carol@example.org", "smtp; 452 4.2.2 Mailbox full"),
                ("alice@example.org", "smtp; 452 4.2.2 Mailbox full"),
            ],
        ),
        "5f1c0a6e-0b53-5d6c-9f7e-2f6f0c1e9a10",
    )
    hard = ses_notification(
        ses_bounce("Permanent", "General", [("alice@example.org", "smtp; 550 5.1.1 user unknown")]),
        "5f1c0a6e-0b53-5d6c-9f7e-2f6f0c1e9a11",
    )

    assert ses_post(esp, full) == 200
    assert ses_post(esp, hard) == 200

    assert EmailEvent.objects.count() == 3
    carol.refresh_from_db()
    assert (carol.status, carol.soft_bounces) == (Subscriber.Status.ACTIVE, 1)
    alice.refresh_from_db()
    assert alice.status == Subscriber.Status.SUPPRESSED
    assert alice.suppressed_reason == "hard bounce (550 5.1.1 user unknown)"


def test_ses_asks_for_credentials_with_a_401(esp: Callable[..., int], alice: Subscriber) -> None:
    hard = ses_notification(
        ses_bounce("Permanent", "General", [("alice@example.org", "smtp; 550 5.1.1 user unknown")]),
        "5f1c0a6e-0b53-5d6c-9f7e-2f6f0c1e9a12",
    )

    assert ses_post(esp, hard, credentials="") == 401

    assert not EmailEvent.objects.exists()
    assert status_of(alice) == Subscriber.Status.ACTIVE


# --- The receiver, through Anymail's signal --------------------------------------------


def bounce(**fields: Any) -> AnymailTrackingEvent:
    fields.setdefault("event_type", "bounced")
    fields.setdefault("recipient", "alice@example.org")
    fields.setdefault("reject_reason", "bounced")
    fields.setdefault("mta_response", "550 5.1.1 user unknown")
    return AnymailTrackingEvent(**fields)


@pytest.fixture
def send_signal(
    django_capture_on_commit_callbacks: CaptureCallbacks,
) -> Iterator[Callable[[AnymailTrackingEvent], None]]:
    def send(event: AnymailTrackingEvent) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            tracking.send(sender=object, event=event, esp_name="Postmark")

    yield send


def test_the_receiver_stores_an_event_once_and_processes_it(
    send_signal: Callable[[AnymailTrackingEvent], None], alice: Subscriber
) -> None:
    event = bounce(event_id="1234", esp_event={"ID": 1234})

    send_signal(event)
    send_signal(event)

    [stored] = EmailEvent.objects.all()
    assert stored.event_id == "Postmark:1234:alice@example.org"
    assert stored.outcome == "suppressed: hard bounce (550 5.1.1 user unknown)"
    assert status_of(alice) == Subscriber.Status.SUPPRESSED


def test_events_without_an_id_are_keyed_by_their_raw_content(
    send_signal: Callable[[AnymailTrackingEvent], None], alice: Subscriber
) -> None:
    first = {"RecordType": "Delivery", "Recipient": "alice@example.org", "DeliveredAt": "07:00"}
    second = {**first, "DeliveredAt": "07:05"}

    send_signal(
        AnymailTrackingEvent(event_type="delivered", recipient="alice@example.org", esp_event=first)
    )
    send_signal(
        AnymailTrackingEvent(
            event_type="delivered", recipient="alice@example.org", esp_event=dict(first)
        )
    )
    send_signal(
        AnymailTrackingEvent(
            event_type="delivered", recipient="alice@example.org", esp_event=second
        )
    )

    assert EmailEvent.objects.count() == 2
    key = email_event_key(
        event=AnymailTrackingEvent(event_type="delivered", esp_event=dict(reversed(first.items()))),
        esp_name="Postmark",
    )
    assert key == email_event_key(
        event=AnymailTrackingEvent(event_type="delivered", esp_event=first), esp_name="Postmark"
    )


def test_opens_and_clicks_are_not_stored(
    send_signal: Callable[[AnymailTrackingEvent], None], alice: Subscriber
) -> None:
    send_signal(AnymailTrackingEvent(event_type="opened", recipient="alice@example.org"))
    send_signal(AnymailTrackingEvent(event_type="clicked", recipient="alice@example.org"))

    assert not EmailEvent.objects.exists()


def test_a_replay_of_an_event_whose_task_was_lost_processes_it(
    send_signal: Callable[[AnymailTrackingEvent], None],
    alice: Subscriber,
    django_capture_on_commit_callbacks: CaptureCallbacks,
) -> None:
    event = bounce(event_id="5678")
    # The broker was down: the row committed but its task never ran.
    with django_capture_on_commit_callbacks(execute=False):
        tracking.send(sender=object, event=event, esp_name="Postmark")
    assert EmailEvent.objects.get().processed_at is None

    send_signal(event)  # the ESP sends it again

    assert EmailEvent.objects.get().outcome.startswith("suppressed: hard bounce")
    assert status_of(alice) == Subscriber.Status.SUPPRESSED
