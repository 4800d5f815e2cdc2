"""Forged and malformed ESP webhooks: a 4xx, and no subscriber changes.

Mallory knows Paperboy uses Postmark and posts bounces for addresses she wants dropped:
without the webhook's basic auth she gets a 401, with a guessed one a 401, with garbage a
400, and alice keeps getting her digest. Only the configured ESP's URL exists. And a
deployment whose webhook could not tell Postmark from Mallory does not start.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from subscriptions.models import EmailEvent, Subscriber

pytestmark = pytest.mark.django_db

WEBHOOK_SECRET = "paperboy-esp:n0t-a-real-secret"
MAILGUN_SIGNING_KEY = "key-0123456789abcdef0123456789abcdef"
POSTMARK = "/anymail/postmark/tracking/"
MAILGUN = "/anymail/mailgun/tracking/"
SES = "/anymail/amazon_ses/tracking/"
BREVO = "/anymail/brevo/tracking/"

CaptureCallbacks = Callable[..., AbstractContextManager[list[Callable[[], Any]]]]
Post = Callable[..., Any]  # returns the test client's response


def basic_auth(credentials: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


def postmark_bounce(email: str, **fields: Any) -> dict[str, Any]:
    """A Postmark hard bounce (RecordType Bounce), as Postmark posts it."""
    return {
        "RecordType": "Bounce",
        "ID": 4323372036854775807,
        "Type": "HardBounce",
        "TypeCode": 1,
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "MessageStream": "outbound",
        "Description": "The server was unable to deliver your message "
        "(ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": email,
        "BouncedAt": "2026-03-10T07:01:12.3963933Z",
        "Inactive": True,
        "Metadata": {},
        **fields,
    }


@pytest.fixture
def postmark(settings: Any) -> None:
    """Paperboy sends through Postmark, its webhook protected by the basic auth secret."""
    settings.PAPERBOY_ESP = "postmark"
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "pm-token", "WEBHOOK_SECRET": WEBHOOK_SECRET}


@pytest.fixture
def post(client: Client, django_capture_on_commit_callbacks: CaptureCallbacks) -> Post:
    """POST raw bytes to a webhook URL; run what it queued on commit; return the response."""

    def send(
        path: str,
        body: bytes | str | dict[str, Any],
        credentials: str | None = WEBHOOK_SECRET,
        headers: dict[str, str] | None = None,
    ) -> Any:
        data = json.dumps(body) if isinstance(body, dict) else body
        auth = basic_auth(credentials) if credentials is not None else {}
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                path,
                data=data,
                content_type="application/json",
                headers={**auth, **(headers or {})},
            )
        return response

    return send


def unchanged(*subscribers: Subscriber) -> bool:
    """Nothing was stored, and every subscriber is as active as before."""
    for subscriber in subscribers:
        subscriber.refresh_from_db()
    return not EmailEvent.objects.exists() and all(
        s.status == Subscriber.Status.ACTIVE and s.soft_bounces == 0 for s in subscribers
    )


# --- Only the configured ESP's tracking URL exists -------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        MAILGUN,
        SES,
        BREVO,
        "/anymail/sendgrid/tracking/",
        "/anymail/mandrill/",
        "/anymail/postmark/inbound/",  # inbound mail is not used
    ],
)
def test_other_esps_urls_are_not_found(
    postmark: None, post: Post, alice: Subscriber, path: str
) -> None:
    assert post(path, postmark_bounce("alice@example.org")).status_code == 404
    assert unchanged(alice)


def test_without_an_esp_no_webhook_is_mounted(settings: Any, post: Post, alice: Subscriber) -> None:
    settings.PAPERBOY_ESP = ""
    settings.ANYMAIL = {"WEBHOOK_SECRET": WEBHOOK_SECRET}

    assert post(POSTMARK, postmark_bounce("alice@example.org")).status_code == 404
    assert unchanged(alice)


def test_the_configured_esps_url_is_mounted(postmark: None, post: Post, bob: Subscriber) -> None:
    assert post(POSTMARK, postmark_bounce("bob@example.org")).status_code == 200
    bob.refresh_from_db()
    assert bob.status == Subscriber.Status.SUPPRESSED


# --- Credentials ------------------------------------------------------------------------


def test_a_forged_bounce_without_credentials_gets_401(
    postmark: None, post: Post, alice: Subscriber
) -> None:
    response = post(POSTMARK, postmark_bounce("alice@example.org"), credentials=None)

    assert response.status_code == 401
    assert response.content == b"Credentials required.\n"
    assert response["WWW-Authenticate"].startswith("Basic ")
    assert unchanged(alice)


@pytest.mark.parametrize(
    "headers",
    [
        basic_auth("paperboy-esp:guessed"),
        basic_auth("mallory:n0t-a-real-secret"),
        basic_auth(WEBHOOK_SECRET + "x"),
        basic_auth(WEBHOOK_SECRET.partition(":")[2]),
        basic_auth(""),
        {"authorization": "Basic !!not-base64!!"},
        {"authorization": "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode()},
        {"authorization": "Bearer " + WEBHOOK_SECRET},
        {"authorization": ""},
    ],
    ids=[
        "guessed password",
        "guessed user",
        "secret plus a letter",
        "password only",
        "empty basic auth",
        "not base64",
        "not UTF-8",
        "bearer token",
        "empty header",
    ],
)
def test_wrong_credentials_get_401(
    postmark: None, post: Post, alice: Subscriber, headers: dict[str, str]
) -> None:
    response = post(POSTMARK, postmark_bounce("alice@example.org"), None, headers)

    assert response.status_code == 401
    assert unchanged(alice)


def test_credentials_are_checked_before_the_body_is_read(
    postmark: None, post: Post, alice: Subscriber
) -> None:
    # Mallory learns nothing about the parser without the secret.
    assert post(POSTMARK, b"{not json", credentials=None).status_code == 401
    assert post(POSTMARK, b"{not json", credentials="mallory:guess").status_code == 401


def test_without_a_secret_configured_the_webhook_accepts_nothing(
    settings: Any, post: Post, alice: Subscriber
) -> None:
    # Only possible with DEBUG on: settings refuse to start so otherwise (below).
    settings.PAPERBOY_ESP = "postmark"
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "pm-token"}

    for credentials in (None, WEBHOOK_SECRET):
        response = post(POSTMARK, postmark_bounce("alice@example.org"), credentials)
        assert response.status_code == 403
        assert response.content == b"This webhook is not configured.\n"
    assert unchanged(alice)


# --- Malformed bodies, with the right credentials ---------------------------------------

DEEP_LIST = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = ('{"Metadata":' * 40 + "{}" + "}" * 40).encode()

MALFORMED = {
    "empty": b"",
    "not JSON": b"RecordType=Bounce&Email=alice@example.org",
    "truncated JSON": json.dumps(postmark_bounce("alice@example.org")).encode()[:-10],
    "not UTF-8": b'{"RecordType": "Bounce", "Email": "alice@example.org\xff"}',
    "UTF-16": json.dumps(postmark_bounce("alice@example.org")).encode("utf-16"),
    "a list": json.dumps([postmark_bounce("alice@example.org")]).encode(),
    "a string": b'"alice@example.org"',
    "a number": b"550",
    "null": b"null",
    "nested past the parser's stack": DEEP_LIST,
    "nested 40 objects deep": DEEP_OBJECT,
    "record type a list": {"RecordType": ["Bounce"], "Email": "alice@example.org"},
    "date a number": postmark_bounce("alice@example.org", BouncedAt=1773126072),
    "metadata a string": postmark_bounce("alice@example.org", Metadata="x"),
    "recipient a list": postmark_bounce("alice@example.org", Email=["alice@example.org"]),
    "recipient an object": postmark_bounce("alice@example.org", Email={"a": 1}),
    "an inbound email": {"FromFull": {"Email": "mallory@example.org"}, "To": "x"},
}


@pytest.mark.parametrize("body", list(MALFORMED.values()), ids=list(MALFORMED))
def test_a_malformed_body_gets_400_and_changes_nothing(
    postmark: None,
    post: Post,
    alice: Subscriber,
    body: bytes | dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        response = post(POSTMARK, body)

    assert response.status_code == 400
    assert response.content == b"Malformed webhook body.\n"
    assert response["Content-Type"].startswith("text/plain")
    assert unchanged(alice)
    # Logged as a warning about the request, never as a server error.
    assert [r.levelname for r in caplog.records if r.name == "subscriptions.webhooks"] == [
        "WARNING"
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_body_over_the_upload_limit_gets_413(
    postmark: None, post: Post, settings: Any, alice: Subscriber
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_000
    huge = postmark_bounce("alice@example.org", Description="x" * 5_000)

    assert post(POSTMARK, huge).status_code == 413
    assert unchanged(alice)


def test_text_postgres_cannot_store_is_cleaned_not_a_500(
    postmark: None, post: Post, alice: Subscriber
) -> None:
    # "\u0000" and a lone surrogate are valid JSON but not PostgreSQL text.
    body = postmark_bounce(
        "alice@example.org", ID="4323\u0000\ud800", Description="Hard\u0000 bounce \ud800"
    )

    assert post(POSTMARK, body).status_code == 200

    [event] = EmailEvent.objects.all()
    assert event.description.startswith("HardBounce: Hard bounce ?")
    alice.refresh_from_db()
    assert alice.status == Subscriber.Status.SUPPRESSED


def test_other_methods_read_nothing(postmark: None, client: Client, alice: Subscriber) -> None:
    assert client.get(POSTMARK).status_code == 405
    assert client.head(POSTMARK).status_code == 200  # how some ESPs probe the URL
    assert unchanged(alice)


# --- A genuine event, once --------------------------------------------------------------


def test_an_authenticated_bounce_suppresses_once_and_its_replay_changes_nothing(
    postmark: None, post: Post, alice: Subscriber, bob: Subscriber
) -> None:
    bounce = postmark_bounce("alice@example.org")

    assert post(POSTMARK, bounce).status_code == 200

    [event] = EmailEvent.objects.all()
    alice.refresh_from_db()
    assert alice.status == Subscriber.Status.SUPPRESSED
    suppressed = (alice.suppressed_at, alice.suppressed_reason)
    first = (event.pk, event.processed_at, event.outcome)

    for _ in range(3):  # Postmark retries; Mallory replays what she captured
        assert post(POSTMARK, bounce).status_code == 200

    [again] = EmailEvent.objects.all()
    assert (again.pk, again.processed_at, again.outcome) == first
    alice.refresh_from_db()
    assert (alice.suppressed_at, alice.suppressed_reason) == suppressed
    bob.refresh_from_db()
    assert bob.status == Subscriber.Status.ACTIVE


# --- Mailgun: the signature is the credential -------------------------------------------


@pytest.fixture
def mailgun(settings: Any) -> None:
    """Mailgun with its webhook signing key and no basic auth, as Anymail allows."""
    settings.PAPERBOY_ESP = "mailgun"
    settings.ANYMAIL = {
        "MAILGUN_API_KEY": "mg-key",
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_SIGNING_KEY,
    }


def mailgun_failure(recipient: str, key: str = MAILGUN_SIGNING_KEY) -> dict[str, Any]:
    timestamp, token = "1773126072", "c" * 50
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256)
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature.hexdigest()},
        "event-data": {
            "id": "G9Bn5sl1TC6nu79C8C0bwg",
            "timestamp": 1773126072.521,
            "event": "failed",
            "severity": "permanent",
            "reason": "bounce",
            "recipient": recipient,
            "message": {"headers": {"message-id": "20260310070112.1.C2E7A9F1B@mg.example"}},
            "delivery-status": {"code": 550, "message": "550 5.1.1 No such user"},
        },
    }


def test_mailgun_refuses_a_forged_signature_with_403(
    mailgun: None, post: Post, bob: Subscriber
) -> None:
    forged = mailgun_failure("bob@example.org", key="key-guessed")
    unsigned = {"event-data": forged["event-data"]}

    assert post(MAILGUN, forged, credentials=None).status_code == 403
    assert post(MAILGUN, unsigned, credentials=None).status_code == 403
    assert unchanged(bob)

    assert post(MAILGUN, mailgun_failure("bob@example.org"), credentials=None).status_code == 200
    bob.refresh_from_db()
    assert bob.status == Subscriber.Status.SUPPRESSED


@pytest.mark.parametrize(
    "body",
    [b"", b"token=x&timestamp=1&signature=y", b"[]", {"signature": "a string"}],
    ids=["empty", "form-encoded", "a list", "signature a string"],
)
def test_mailgun_malformed_bodies_get_400(
    mailgun: None, post: Post, bob: Subscriber, body: bytes | dict[str, Any]
) -> None:
    assert post(MAILGUN, body, credentials=None).status_code == 400
    assert unchanged(bob)


# --- Amazon SES, through SNS ------------------------------------------------------------


def sns(message: str, message_id: str = "5f1c0a6e-0b53-5d6c-9f7e-2f6f0c1e9a10") -> dict[str, Any]:
    return {"Type": "Notification", "MessageId": message_id, "Message": message}


def sns_headers(message_type: str = "Notification") -> dict[str, str]:
    return {
        "x-amz-sns-message-type": message_type,
        "x-amz-sns-message-id": "5f1c0a6e-0b53-5d6c-9f7e-2f6f0c1e9a10",
    }


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (sns("{}"), {}, 401),  # SNS asks for the basic auth only after a 401
        (sns("not json"), sns_headers(), 400),
        (sns('"a string"'), sns_headers(), 400),
        ({**sns("{}"), "Type": "Surprise"}, sns_headers("Surprise"), 400),
        (sns("{}"), sns_headers("SubscriptionConfirmation"), 403),  # headers ≠ body
        (sns("{}", message_id="another"), sns_headers(), 403),
    ],
    ids=[
        "no credentials",
        "message not JSON",
        "message a string",
        "unknown SNS type",
        "type header mismatch",
        "id header mismatch",
    ],
)
def test_ses_refuses_forged_and_malformed_notifications(
    settings: Any,
    post: Post,
    alice: Subscriber,
    body: dict[str, Any],
    headers: dict[str, str],
    status: int,
) -> None:
    settings.PAPERBOY_ESP = "ses"
    settings.ANYMAIL = {"WEBHOOK_SECRET": WEBHOOK_SECRET}
    credentials = WEBHOOK_SECRET if headers else None

    assert post(SES, body, credentials, headers).status_code == status
    assert unchanged(alice)


# --- Brevo ------------------------------------------------------------------------------


def test_brevo_refuses_its_inbound_payload_and_accepts_a_hard_bounce(
    settings: Any, post: Post, carol: Subscriber
) -> None:
    settings.PAPERBOY_ESP = "brevo"
    settings.ANYMAIL = {"BREVO_API_KEY": "bv-key", "WEBHOOK_SECRET": WEBHOOK_SECRET}
    hard_bounce = {
        "event": "hard_bounce",
        "email": "carol@example.org",
        "id": 1234567,
        "date": "2026-03-10 08:01:12",
        "ts_event": 1773126072,
        "message-id": "<202603100701.12345678901@smtp-relay.mailin.fr>",
        "reason": "550 5.1.1 No such user",
        "tag": "digest",
    }

    assert post(BREVO, {"items": [hard_bounce]}).status_code == 400
    assert post(BREVO, hard_bounce, credentials=None).status_code == 401
    assert unchanged(carol)

    assert post(BREVO, hard_bounce).status_code == 200
    carol.refresh_from_db()
    assert carol.status == Subscriber.Status.SUPPRESSED


# --- Settings refuse to start an ESP whose webhook anyone could call --------------------

ROOT = Path(__file__).resolve().parent.parent
CLEAN = (
    "DATABASE_URL",
    "REDIS_URL",
    "EMAIL_URL",
    "PAPERBOY_ESP",
    "DJANGO_DEBUG",
    "ANYMAIL_WEBHOOK_SECRET",
    "MAILGUN_WEBHOOK_SIGNING_KEY",
    "PAPERBOY_PRODUCTION",
)
# A key production accepts (paperboy/secret_key.py): long, random-looking, ours alone.
PRODUCTION_KEY = "t7Qm2vX9pL4sK8wR1zN6yB3cF5hJ0dG-aE_uV2iO7eT9rW4qY1xZ8nM3bP6kS5lD"


def start(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Load the settings in a fresh Python, as `manage.py` or gunicorn would."""
    base = {k: v for k, v in os.environ.items() if k not in CLEAN}
    base.update(DJANGO_SETTINGS_MODULE="paperboy.settings", PAPERBOY_VAR_DIR=str(tmp_path))
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        env={**base, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"PAPERBOY_ESP": "postmark"}, "needs ANYMAIL_WEBHOOK_SECRET set to 'user:password'"),
        ({"PAPERBOY_ESP": "ses"}, "/anymail/amazon_ses/tracking/"),
        ({"PAPERBOY_ESP": "brevo"}, "needs ANYMAIL_WEBHOOK_SECRET"),
        ({"PAPERBOY_ESP": "mailgun", "MAILGUN_API_KEY": "k"}, "needs MAILGUN_WEBHOOK_SIGNING_KEY"),
        (
            {"PAPERBOY_ESP": "postmark", "ANYMAIL_WEBHOOK_SECRET": "no-colon-here"},
            "ANYMAIL_WEBHOOK_SECRET is not of the form 'user:password'",
        ),
        ({"PAPERBOY_ESP": "postmark", "ANYMAIL_WEBHOOK_SECRET": ":password"}, "'user:password'"),
        (
            # DEBUG does not excuse a deployment.
            {"PAPERBOY_ESP": "postmark", "DJANGO_DEBUG": "1", "PAPERBOY_PRODUCTION": "1"},
            "needs ANYMAIL_WEBHOOK_SECRET",
        ),
    ],
    ids=[
        "postmark",
        "ses",
        "brevo",
        "mailgun",
        "secret without a colon",
        "secret without user",
        "production with debug",
    ],
)
def test_an_esp_without_webhook_auth_does_not_start(
    tmp_path: Path, env: dict[str, str], says: str
) -> None:
    result = start(tmp_path, **{"DJANGO_DEBUG": "0", "SECRET_KEY": PRODUCTION_KEY, **env})

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert says in result.stderr


@pytest.mark.parametrize(
    "env",
    [
        {"PAPERBOY_ESP": "postmark", "ANYMAIL_WEBHOOK_SECRET": WEBHOOK_SECRET},
        {"PAPERBOY_ESP": "mailgun", "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_SIGNING_KEY},
        {"PAPERBOY_ESP": "postmark", "DJANGO_DEBUG": "1"},  # development: the webhook 403s
        {},  # no ESP, no webhook
    ],
    ids=["postmark with its secret", "mailgun with its key", "debug", "no esp"],
)
def test_an_esp_with_webhook_auth_starts(tmp_path: Path, env: dict[str, str]) -> None:
    result = start(tmp_path, **{"DJANGO_DEBUG": "0", **env})

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started"
