"""Receive ESP tracking events from Anymail's webhooks: store each one once, apply it later.

The configured ESP's webhook (`webhooks.py`, under /anymail/) verifies the request and
sends one `anymail.signals.tracking` signal per event. The receiver here only stores the
event, keyed by its id, and queues `process_email_event_task` once the row commits; the
policy lives in `suppression.py`. A replayed webhook finds its row and queues nothing, so
it is processed once. An event whose fields are not text where text belongs raises
`MalformedEmailEvent` (the webhook answers 400); any other error here (the database is
down) becomes a 500, which the ESP answers by sending the webhook again later.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

from anymail.signals import AnymailTrackingEvent, EventType
from django.db import transaction
from django.utils import timezone
from django.utils.datastructures import MultiValueDict

from .models import EmailEvent, normalise_email
from .tasks import process_email_event_task

logger = logging.getLogger(__name__)

# Only events the policy can act on, or an operator would want to see next to them, are
# stored; opens, clicks and "sent" would be a row per subscriber per digest for nothing.
RECORDED_EVENT_TYPES = frozenset(
    {
        EventType.BOUNCED,
        EventType.DEFERRED,
        EventType.COMPLAINED,
        EventType.UNSUBSCRIBED,
        EventType.SUBSCRIBED,
        EventType.REJECTED,
        EventType.DELIVERED,
        EventType.FAILED,
    }
)

EVENT_ID_MAX = 255  # EmailEvent.event_id


class MalformedEmailEvent(ValueError):
    """An event no ESP would send (a recipient that is not text): refused, not stored."""


def _text(value: object, limit: int | None = None) -> str:
    """A field as text PostgreSQL stores: no NUL, no lone surrogate, at most limit long.

    Anymail passes the ESP's JSON strings through as they are, and "\\u0000" or
    "\\ud800" in a body would otherwise fail the INSERT (a 500, retried for ever).
    """
    text = str(value or "").replace("\x00", "")
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text if limit is None else text[:limit]


def _recipient(event: AnymailTrackingEvent) -> str:
    if event.recipient is not None and not isinstance(event.recipient, str):
        raise MalformedEmailEvent(f"recipient is a {type(event.recipient).__name__}")
    return normalise_email(_text(event.recipient))


def _canonical(raw: object) -> str:
    """The raw event as stable text: the same webhook body always gives the same string."""
    if isinstance(raw, MultiValueDict):  # a form-encoded webhook (Mailgun's legacy one)
        raw = sorted(raw.lists())
    return json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)


def _digest(text: str) -> str:
    # surrogatepass: two raw events that differ only in a lone surrogate stay two keys.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def email_event_key(*, event: AnymailTrackingEvent, esp_name: str) -> str:
    """The unique key an event is stored under, the same for every replay of it.

    The ESP's event id, named with the ESP (two ESPs' ids may collide) and the recipient
    (Amazon SES gives the events of one notification's several recipients one id). An ESP
    that gives no id (Postmark's deliveries, for one) gets a hash of the raw event.
    """
    recipient = _recipient(event)
    if event.event_id:
        key = f"{esp_name}:{event.event_id}"
        if recipient:
            key = f"{key}:{recipient}"
    else:
        raw = event.esp_event
        if raw is None:  # nothing raw to hash: the normalised fields are the next best
            raw = [event.event_type, event.message_id, str(event.timestamp)]
        key = f"{esp_name}:sha256:{_digest(_canonical(raw) + recipient)}"
    if len(key) > EVENT_ID_MAX or key != _text(key):  # too long, or not storable text
        key = f"{esp_name[:32]}:sha256:{_digest(key)}"
    return key


def _esp_bounce_kind(esp_name: str, raw: object) -> str:
    """The ESP's own name for a bounce, when the normalised event drops it.

    Anymail maps Postmark's SoftBounce and HardBounce alike to bounced/bounced, and a
    SubscriptionChange for a hard bounce carries no text at all; the kind is kept in the
    stored description so the policy (and the operator) can read it.
    """
    if esp_name.lower() != "postmark" or not isinstance(raw, Mapping):
        return ""
    record_type = raw.get("RecordType")
    if record_type == "Bounce":
        return str(raw.get("Type") or "")
    if record_type == "SubscriptionChange":
        return str(raw.get("SuppressionReason") or "")
    return ""


def _occurred_at(timestamp: object) -> dt.datetime | None:
    if not isinstance(timestamp, dt.datetime):
        return None
    if timezone.is_naive(timestamp):
        return timezone.make_aware(timestamp, dt.UTC)
    return timestamp


def _event_fields(event: AnymailTrackingEvent, esp_name: str) -> dict[str, Any]:
    description = _text(event.description)
    kind = _text(_esp_bounce_kind(esp_name, event.esp_event))
    if kind and kind.lower() not in description.lower():
        description = f"{kind}: {description}" if description else kind
    return {
        "event_type": _text(event.event_type or EventType.UNKNOWN, 32),
        "esp_name": _text(esp_name, 32),
        "recipient": _recipient(event)[:254],
        "message_id": _text(event.message_id, 255),
        "occurred_at": _occurred_at(event.timestamp),
        "reject_reason": _text(event.reject_reason, 32),
        "description": description,
        "mta_response": _text(event.mta_response),
    }


def email_event_record(*, event: AnymailTrackingEvent, esp_name: str) -> EmailEvent | None:
    """Store the event once and queue its processing after commit; None if not recorded."""
    if event.event_type not in RECORDED_EVENT_TYPES:
        return None
    key = email_event_key(event=event, esp_name=esp_name)
    with transaction.atomic():
        row, created = EmailEvent.objects.get_or_create(
            event_id=key, defaults=_event_fields(event, esp_name)
        )
        # A replay of an event still unprocessed queues it again: its first task may have
        # been lost (the broker was down and the webhook answered 500). The claim in
        # email_event_process makes the extra task harmless.
        if created or row.processed_at is None:
            pk = row.pk
            transaction.on_commit(lambda: process_email_event_task.delay(pk))
        else:
            logger.info("email event %s already processed; replay ignored", key)
    return row


def tracking_event_receive(
    sender: object, event: AnymailTrackingEvent, esp_name: str, **kwargs: object
) -> None:
    """The `anymail.signals.tracking` receiver (connected in SubscriptionsConfig.ready)."""
    email_event_record(event=event, esp_name=esp_name)
