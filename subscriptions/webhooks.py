"""The ESP's tracking webhook: mounted only for the ESP in use, answering forgers with 4xx.

Anymail's views do the ESP-specific work: check the basic auth (and Mailgun's signature),
turn the ESP's JSON into events and send the `anymail.signals.tracking` signal. Left to
themselves they answer a missing password with a 400, a body their parser chokes on with
a 500, and they are all mounted whether or not the ESP is used. Here only the configured
ESP's tracking URL exists (at Anymail's own path, under /anymail/), and its view answers
before Anymail does:

- 403 when nothing is configured that could tell the ESP from a forger (DEBUG only:
  settings refuse to start without it otherwise);
- 401 without the right basic auth;
- 400 for a body that is not a JSON object of reasonable depth, or one the ESP's parser
  cannot read, and 403 for a signature that does not verify.

Nothing is stored for any of them. Only a failure of ours while storing the events (the
database is down) is a 500, which the ESP answers by sending the webhook again later.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from anymail.exceptions import (
    AnymailAPIError,
    AnymailConfigurationError,
    AnymailWebhookValidationFailure,
)
from anymail.utils import get_request_basic_auth
from anymail.webhooks.amazon_ses import AmazonSESTrackingWebhookView
from anymail.webhooks.base import AnymailBaseWebhookView
from anymail.webhooks.brevo import BrevoTrackingWebhookView
from anymail.webhooks.mailgun import MailgunTrackingWebhookView
from anymail.webhooks.postmark import PostmarkTrackingWebhookView
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig
from django.core.signals import setting_changed
from django.db import transaction
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, clear_url_caches, path
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt

from .tracking import MalformedEmailEvent

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EspWebhook:
    path: str  # under /anymail/, as Anymail's own urls.py mounts it
    name: str  # Anymail's URL name, so reverse("anymail:…") keeps working
    view: type[AnymailBaseWebhookView]


# The tracking webhook of each ESP settings.PAPERBOY_ESP accepts; inbound mail is not used.
ESP_WEBHOOKS: dict[str, EspWebhook] = {
    "postmark": EspWebhook(
        "postmark/tracking/", "postmark_tracking_webhook", PostmarkTrackingWebhookView
    ),
    "mailgun": EspWebhook(
        "mailgun/tracking/", "mailgun_tracking_webhook", MailgunTrackingWebhookView
    ),
    "brevo": EspWebhook("brevo/tracking/", "brevo_tracking_webhook", BrevoTrackingWebhookView),
    "ses": EspWebhook(
        "amazon_ses/tracking/", "amazon_ses_tracking_webhook", AmazonSESTrackingWebhookView
    ),
}

# Real events nest a handful of levels (Mailgun's event-data → message → headers); a body
# nested deeper is an attack on the parser, not an event.
MAX_JSON_DEPTH = 32

# What Anymail's parsers raise on a body of the right syntax but the wrong shape: a field
# missing, of the wrong type, a date that is not one. AnymailConfigurationError is among
# them because Anymail raises it for an inbound payload posted to a tracking URL.
PARSE_ERRORS = (
    AnymailAPIError,
    AnymailConfigurationError,
    ValueError,
    LookupError,
    TypeError,
    AttributeError,
    RecursionError,
)


def webhook_auth_missing(esp: str) -> str:
    """The setting this ESP's webhook needs to tell the ESP from a forger, or "" if set.

    The same rule as paperboy/settings.py, which refuses to start without it outside
    development: Mailgun signs every post with its webhook signing key (basic auth is
    optional there); Postmark, Brevo and Amazon SNS can only send the basic auth in the URL.
    """
    if esp == "mailgun":
        signed = settings.ANYMAIL.get("MAILGUN_WEBHOOK_SIGNING_KEY")
        return "" if signed else "MAILGUN_WEBHOOK_SIGNING_KEY"
    return "" if basic_auth_secrets() else "ANYMAIL_WEBHOOK_SECRET"


def basic_auth_secrets() -> list[str]:
    """The accepted "user:password" strings (Anymail allows a list, to rotate one)."""
    secret = settings.ANYMAIL.get("WEBHOOK_SECRET") or []
    return [secret] if isinstance(secret, str) else list(secret)


def basic_auth_ok(request: HttpRequest, secrets: list[str]) -> bool:
    given = get_request_basic_auth(request)
    # Every secret is compared in constant time; only how many there are could leak.
    return given is not None and any(constant_time_compare(given, s) for s in secrets)


def json_too_deep(value: object, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether lists and objects nest deeper than limit (walked without recursion)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def body_problem(body: bytes) -> str:
    """Why this body cannot be an ESP's tracking event, or "" when it may be one.

    Every ESP mounted here posts one JSON object, in UTF-8 (Mailgun's form-encoded legacy
    webhooks are not accepted).
    """
    try:
        payload = json.loads(body.decode("utf-8"))
    except RecursionError:  # nested deeper than the parser's own stack allows
        return "nested too deeply"
    except ValueError:  # invalid UTF-8 or JSON (both are ValueErrors)
        return "not JSON"
    if not isinstance(payload, dict):
        return "not a JSON object"
    if json_too_deep(payload):
        return "nested too deeply"
    return ""


def plain(status: int, text: str) -> HttpResponse:
    return HttpResponse(f"{text}\n", status=status, content_type="text/plain; charset=utf-8")


def refuse(esp: str, status: int, text: str, why: str) -> HttpResponse:
    # A warning, not an error: a stranger's garbage is not ours to fix, but a burst of
    # these in the log is worth a look (a guessed secret, or the ESP's format changed).
    logger.warning("%s webhook answered %s: %s", esp, status, why[:300])
    return plain(status, text)


def unauthorized(esp: str, why: str) -> HttpResponse:
    response = refuse(esp, 401, "Credentials required.", why)
    # Amazon SNS sends the basic auth in the URL only after a 401 that asks for it.
    response["WWW-Authenticate"] = 'Basic realm="Paperboy ESP webhook"'
    return response


def webhook_receive(request: HttpRequest, *, esp: str) -> HttpResponse:
    """Check, parse and apply one tracking webhook post of the ESP in use."""
    webhook = ESP_WEBHOOKS[esp]
    missing = webhook_auth_missing(esp)
    if missing:
        logger.error("%s webhook refuses every request: %s is not set", esp, missing)
        return plain(403, "This webhook is not configured.")
    if request.method != "POST":
        # HEAD (some ESPs probe the URL) and OPTIONS read nothing; Anymail answers them,
        # and anything else with a 405.
        return webhook.view.as_view()(request)
    secrets = basic_auth_secrets()
    if secrets and not basic_auth_ok(request, secrets):
        given = "no" if "HTTP_AUTHORIZATION" not in request.META else "wrong"
        return unauthorized(esp, f"{given} basic auth")
    try:
        problem = body_problem(request.body)
    except RequestDataTooBig:
        return refuse(esp, 413, "Body too large.", "body over DATA_UPLOAD_MAX_MEMORY_SIZE")
    if problem:
        return refuse(esp, 400, "Malformed webhook body.", problem)

    view = webhook.view()  # a missing setting raises here: a 500, as it should be
    view.setup(request)
    try:
        view.run_validators(request)
        events = list(view.parse_events(request))
    except AnymailWebhookValidationFailure as exc:
        return refuse(esp, 403, "Signature refused.", str(exc))
    except PARSE_ERRORS as exc:
        return refuse(esp, 400, "Malformed webhook body.", f"{type(exc).__name__}: {exc}")
    try:
        # All of a post's events or none: a malformed one must not leave the others half
        # applied. Each receiver queues its task on commit, so only after this block.
        with transaction.atomic():
            for event in events:
                view.signal.send(sender=webhook.view, event=event, esp_name=view.esp_name)
    except MalformedEmailEvent as exc:
        return refuse(esp, 400, "Malformed webhook body.", str(exc))
    return HttpResponse()


def webhook_view(esp: str) -> Callable[[HttpRequest], HttpResponse]:
    @csrf_exempt  # the ESP has no CSRF token; the basic auth or signature stands for it
    @login_not_required
    def view(request: HttpRequest) -> HttpResponse:
        return webhook_receive(request, esp=esp)

    return view


def webhook_urlpatterns(esp: str) -> list[URLPattern]:
    """The tracking URL of the ESP in use, at Anymail's path; none without an ESP."""
    webhook = ESP_WEBHOOKS.get(esp)
    if webhook is None:
        return []
    return [path(webhook.path, webhook_view(esp), name=webhook.name)]


def webhook_urls_reload() -> None:
    """Mount the webhook of settings.PAPERBOY_ESP as it is now.

    The URLconf is built once, at import; both it and the root URLconf that includes it
    are imported again, and Django's resolver cache is dropped.
    """
    from . import webhook_urls

    importlib.reload(webhook_urls)
    importlib.reload(importlib.import_module(settings.ROOT_URLCONF))
    clear_url_caches()


@receiver(setting_changed, dispatch_uid="subscriptions.webhooks.remount")
def webhook_urls_remount(*, setting: str, **kwargs: object) -> None:
    """A test that sets PAPERBOY_ESP (override_settings) gets that ESP's URL, and only it.

    Only overrides send setting_changed, so in production this never runs. Connected when
    this module is first imported, with the URLconf: before that there is nothing to
    rebuild, the first request builds it from the overridden setting.
    """
    if setting == "PAPERBOY_ESP":
        webhook_urls_reload()
