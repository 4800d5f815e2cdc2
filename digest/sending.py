"""Send digests: claim a delivery, render it, hand it to the email backend, record the outcome.

A delivery is claimed with a conditional update (queued → sending, exactly one row
changed), so two workers, or a task Celery delivered twice, never send the same digest.

Errors are sorted into transient (the server may accept it later: connection trouble,
timeouts, SMTP 4xx, an ESP's 5xx or 429) and permanent (SMTP 5xx for the recipient, an
ESP rejecting the message, a template error). A transient error puts the delivery back in
the queue with a backoff, up to PAPERBOY_MAX_SEND_ATTEMPTS; a permanent one marks it
failed with the reason. Nothing is dropped silently.

Recovery policy for a crash mid-send: a delivery left in `sending` longer than
PAPERBOY_STALE_SENDING_MINUTES is marked failed ("interrupted"), not resent, because the
message may already have left; no digest goes out twice. An operator can requeue it from
the admin after checking the mail log.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from anymail.exceptions import AnymailAPIError, AnymailError, AnymailRecipientsRefused
from django.conf import settings
from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db.models import F
from django.utils import timezone

from subscriptions.models import Subscriber

from .emails import digest_message, message_id
from .models import Delivery

logger = logging.getLogger(__name__)

SKIP_LEFT = "no longer active when it was due to send (paused, unsubscribed or suppressed)"
INTERRUPTED = "interrupted while sending; not resent automatically, it may have gone out"


class Outcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"  # transient failure: queued again for later
    FAILED = "failed"
    NOT_CLAIMED = "not claimed"  # another worker has it, or it is no longer queued
    FEED = "feed"  # a feed-only reader's: published to their feed, no email


@dataclass(frozen=True)
class SendResult:
    delivery_id: int
    outcome: Outcome
    retry_in: float = 0.0
    error: str = ""


def retry_delay(attempts: int) -> float:
    """Exponential backoff: 1, 2, 4, 8 … minutes, capped at half an hour (below Redis's
    visibility timeout, past which a waiting task would be delivered twice)."""
    return float(min(60 * 2 ** max(0, attempts - 1), 1800))


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return bool(codes) and all(400 <= code < 500 for code in codes)
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPServerDisconnected | TimeoutError | ConnectionError):
        return True
    if isinstance(exc, AnymailRecipientsRefused):
        return False
    if isinstance(exc, AnymailAPIError):
        status = getattr(exc, "status_code", None)
        return status is None or status >= 500 or status == 429
    if isinstance(exc, AnymailError):
        return False
    return isinstance(exc, OSError)


def claim(delivery_id: int) -> bool:
    """queued → sending; True only for the one caller whose update changed the row.

    The subscriber must still be active at this moment, so an unsubscribe (or a
    suppression) takes effect before the next send, even for a digest already planned.
    The channel is read now too: a feed-only reader's digest goes to their feed instead
    (queued → feed, nothing to send), even if they chose "feed only" after planning.
    """
    owed = Delivery.objects.filter(
        id=delivery_id,
        status=Delivery.Status.QUEUED,
        matched_at__isnull=False,
        subscriber__status=Subscriber.Status.ACTIVE,
    )
    now = timezone.now()
    changed = owed.filter(subscriber__channel=Subscriber.Channel.EMAIL).update(
        status=Delivery.Status.SENDING, claimed_at=now, attempts=F("attempts") + 1
    )
    if changed == 1:
        return True
    if not owed.filter(subscriber__channel=Subscriber.Channel.FEED).update(
        status=Delivery.Status.FEED, sent_at=now
    ):
        Delivery.objects.filter(id=delivery_id, status=Delivery.Status.QUEUED).exclude(
            subscriber__status=Subscriber.Status.ACTIVE
        ).update(status=Delivery.Status.SKIPPED, skip_reason=SKIP_LEFT)
    return False


def _record_sent(delivery_id: int, message_id: str) -> None:
    Delivery.objects.filter(id=delivery_id, status=Delivery.Status.SENDING).update(
        status=Delivery.Status.SENT,
        sent_at=timezone.now(),
        message_id=message_id[:255],
        last_error="",
        next_attempt_at=None,
    )


def _record_failure(delivery: Delivery, exc: BaseException) -> SendResult:
    error = f"{type(exc).__name__}: {exc}"[:2000]
    transient = is_transient(exc)
    if transient and delivery.attempts < settings.PAPERBOY_MAX_SEND_ATTEMPTS:
        delay = retry_delay(delivery.attempts)
        Delivery.objects.filter(id=delivery.id, status=Delivery.Status.SENDING).update(
            status=Delivery.Status.QUEUED,
            last_error=error,
            next_attempt_at=timezone.now() + dt.timedelta(seconds=delay),
        )
        logger.warning("delivery %s: transient error, retry in %ss: %s", delivery.id, delay, error)
        return SendResult(delivery.id, Outcome.RETRY, retry_in=delay, error=error)
    if transient:
        error = f"gave up after {delivery.attempts} attempts: {error}"
    Delivery.objects.filter(id=delivery.id, status=Delivery.Status.SENDING).update(
        status=Delivery.Status.FAILED, last_error=error, next_attempt_at=None
    )
    logger.error("delivery %s failed: %s", delivery.id, error)
    return SendResult(delivery.id, Outcome.FAILED, error=error)


def delivery_send(*, delivery_id: int, connection: BaseEmailBackend | None = None) -> SendResult:
    """Send one delivery if it can be claimed; record what happened."""
    if not claim(delivery_id):
        in_feed = Delivery.objects.filter(id=delivery_id, status=Delivery.Status.FEED).exists()
        return SendResult(delivery_id, Outcome.FEED if in_feed else Outcome.NOT_CLAIMED)
    delivery = Delivery.objects.select_related("edition", "subscriber").get(id=delivery_id)
    try:
        message = digest_message(delivery=delivery)
        message.connection = connection or get_connection()
        if message.send() != 1:
            raise smtplib.SMTPException("the email backend accepted no message")
    except Exception as exc:
        return _record_failure(delivery, exc)
    # An ESP's own id is what its webhooks will name; fall back to our Message-ID.
    status = getattr(message, "anymail_status", None)
    esp_id = getattr(status, "message_id", None) if status is not None else None
    _record_sent(delivery_id, str(esp_id) if esp_id is not None else message_id(message))
    return SendResult(delivery_id, Outcome.SENT)


@dataclass
class BatchResult:
    results: list[SendResult] = field(default_factory=list)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)


def deliveries_send(
    *, delivery_ids: Iterable[int], on_progress: Callable[[SendResult], None] | None = None
) -> BatchResult:
    """Send several deliveries over one backend connection (one SMTP session)."""
    batch = BatchResult()
    connection = get_connection()
    try:
        connection.open()
    except Exception as exc:  # the server is down: every delivery stays owed
        logger.warning("email backend unavailable: %s", exc)
    try:
        for delivery_id in delivery_ids:
            result = delivery_send(delivery_id=delivery_id, connection=connection)
            batch.results.append(result)
            if on_progress:
                on_progress(result)
    finally:
        try:
            connection.close()
        except Exception:  # closing a dead connection must not hide the results
            logger.debug("closing the email connection failed", exc_info=True)
    return batch


def stale_sends_recover(*, older_than: dt.timedelta | None = None) -> int:
    """Mark deliveries stuck in `sending` as failed (see the policy above); return how many."""
    age = older_than or dt.timedelta(minutes=settings.PAPERBOY_STALE_SENDING_MINUTES)
    return Delivery.objects.filter(
        status=Delivery.Status.SENDING, claimed_at__lt=timezone.now() - age
    ).update(status=Delivery.Status.FAILED, last_error=INTERRUPTED)


def deliveries_requeue(*, delivery_ids: Iterable[int]) -> int:
    """An operator's decision: send failed deliveries again (from the admin)."""
    return Delivery.objects.filter(id__in=list(delivery_ids), status=Delivery.Status.FAILED).update(
        status=Delivery.Status.QUEUED, next_attempt_at=None, attempts=0
    )
