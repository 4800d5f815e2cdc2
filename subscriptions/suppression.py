"""What an ESP's tracking event means for a subscriber, decided and then applied.

Policy (one event at a time, in the order the events are processed):

- **complained** (a spam complaint, or an ESP's feedback loop): suppress at once.
- **bounced**: read the detail before suppressing, because some ESPs (Amazon SES,
  Postmark's SoftBounce, Mailgun after its retries) report transient failures as
  `bounced`. The bounce is *soft* when the reject reason is `timed_out`, when the SMTP
  reply is temporary (a basic code 4xx or an enhanced status 4.x.x, e.g. "452 4.2.2",
  "4.4.7"), or when the text says the mailbox is full or over quota (even with a 5.2.2:
  a full mailbox empties); otherwise a permanent code (5xx, 5.x.x) makes it *hard*; with
  no code, words decide ("HardBounce", "Permanent" → hard; "SoftBounce", "Transient",
  "temporarily", "try again later", "greylisted", SES's "Undetermined" → soft); with no
  detail at all it is hard. A hard bounce suppresses; a soft bounce is counted, and the
  PAPERBOY_SOFT_BOUNCE_LIMIT-th soft bounce in a row (default 3) suppresses.
- **delivered**: the address works, so the soft bounce count goes back to 0.
- **unsubscribed** (an ESP's own list-unsubscribe or suppression): unsubscribe.
- **rejected** (the ESP refused to send): an `invalid` address, or one the ESP holds
  for an earlier `bounced` or `spam` report, is suppressed; `unsubscribed` unsubscribes;
  `timed_out` counts as a soft bounce. `blocked` and `other` are left alone and logged:
  they usually describe our message or our sending reputation (content, DMARC, an ISP
  blocking the ESP), not the recipient's address, and suppressing for them could drop
  every subscriber of one mail provider at once.
- **deferred** (the ESP will retry by itself), **failed** (the ESP could not send: our
  problem), **subscribed** (Paperboy never re-subscribes on an ESP's word) and anything
  else: recorded and ignored.

Suppression sets status `suppressed`, `suppressed_at` and `suppressed_reason`. A
suppressed subscriber gets no digest (planning takes active subscribers only, and
`claim()` skips a planned delivery whose subscriber is no longer active) and only an
operator can lift it (`subscriber_unsuppress`). An event for an address that is no
subscriber is recorded with the outcome "no such subscriber" and changes nothing.

Every event is processed at most once: `email_event_process` claims the stored event with
a conditional update (processed_at IS NULL → now, exactly one row), in the same
transaction as its effect, so a task Celery runs twice, or two workers, apply it once.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from enum import StrEnum

from anymail.signals import EventType, RejectReason
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .models import EmailEvent, Subscriber, normalise_email
from .services import subscriber_suppress, subscriber_unsubscribe

logger = logging.getLogger(__name__)

DEFAULT_SOFT_BOUNCE_LIMIT = 3
REASON_MAX = 200  # Subscriber.suppressed_reason and EmailEvent.outcome
DETAIL_MAX = 120  # the quoted SMTP text inside a reason, so the reason's words survive

NO_SUCH_SUBSCRIBER = "no such subscriber"


class Action(StrEnum):
    SUPPRESS = "suppress"
    SOFT_BOUNCE = "soft bounce"
    UNSUBSCRIBE = "unsubscribe"
    DELIVERED = "delivered"
    IGNORE = "ignore"


@dataclass(frozen=True)
class Decision:
    action: Action
    # Why, in a few words a person reads in the admin: "hard bounce", "spam complaint".
    why: str
    # The ESP's or the receiving server's own words, e.g. "550 5.1.1 user unknown".
    detail: str = ""

    def reason(self) -> str:
        return f"{self.why} ({self.detail})" if self.detail else self.why


# An enhanced status code (RFC 3463), "4.2.2", not part of an IP address or a version.
_ENHANCED = re.compile(r"(?<![\d.])([245])\.\d{1,3}\.\d{1,3}(?![\d.])")
# A basic reply code where servers and ESPs put one: at the start, or after "smtp;".
_BASIC = re.compile(r"(?:^|[;:]\s*)([245])\d\d(?=[\s-]|$)", re.MULTILINE)
_MAILBOX_FULL = re.compile(
    r"mailbox\s*(?:is\s*)?full|quota|insufficient\s+(?:system\s+)?storage|out of storage",
    re.IGNORECASE,
)
_PERMANENT_WORDS = re.compile(r"hard\s*bounce|\bpermanent", re.IGNORECASE)
_TRANSIENT_WORDS = re.compile(
    r"soft\s*bounce|transient|temporar(?:y|ily)|try again later|gr[ae]ylist|undetermined",
    re.IGNORECASE,
)


def smtp_status_class(text: str) -> str:
    """'4' or '5' (or '2') from the first enhanced status in the text, else the first basic
    reply code; '' when the text carries no code."""
    if match := _ENHANCED.search(text):
        return match.group(1)
    if match := _BASIC.search(text):
        return match.group(1)
    return ""


def bounce_is_soft(*, reject_reason: str, description: str, mta_response: str) -> bool:
    """Whether a `bounced` event is transient (see the policy in the module docstring)."""
    if reject_reason == RejectReason.TIMED_OUT:
        return True
    # The receiving server's own reply is the best evidence, the ESP's summary the next.
    text = f"{mta_response}\n{description}"
    status = smtp_status_class(text)
    if status == "4" or _MAILBOX_FULL.search(text):
        return True
    if status == "5" or _PERMANENT_WORDS.search(text):
        return False
    return bool(_TRANSIENT_WORDS.search(text))


def event_detail(*, description: str, mta_response: str) -> str:
    """The most telling text of an event, trimmed: the SMTP reply, else the ESP's words."""
    text = mta_response.strip() or description.strip()
    text = re.sub(r"^smtp;\s*", "", text, flags=re.IGNORECASE)
    text = " ".join(text.split())
    return text if len(text) <= DETAIL_MAX else text[: DETAIL_MAX - 1] + "…"


def event_decide(
    *, event_type: str, reject_reason: str = "", description: str = "", mta_response: str = ""
) -> Decision:
    """What one tracking event means, without looking at the subscriber (pure policy)."""
    detail = event_detail(description=description, mta_response=mta_response)
    if event_type == EventType.COMPLAINED:
        return Decision(Action.SUPPRESS, "spam complaint", detail)
    if event_type == EventType.BOUNCED:
        soft = bounce_is_soft(
            reject_reason=reject_reason, description=description, mta_response=mta_response
        )
        if soft:
            return Decision(Action.SOFT_BOUNCE, "soft bounce", detail)
        return Decision(Action.SUPPRESS, "hard bounce", detail)
    if event_type == EventType.DELIVERED:
        return Decision(Action.DELIVERED, "delivered")
    if event_type == EventType.UNSUBSCRIBED:
        return Decision(Action.UNSUBSCRIBE, "unsubscribed at the ESP", detail)
    if event_type == EventType.REJECTED:
        return _rejected_decide(reject_reason, detail)
    return Decision(Action.IGNORE, event_type or "unknown event", detail)


def _rejected_decide(reject_reason: str, detail: str) -> Decision:
    if reject_reason == RejectReason.INVALID:
        return Decision(Action.SUPPRESS, "rejected: invalid address", detail)
    if reject_reason == RejectReason.BOUNCED:
        return Decision(Action.SUPPRESS, "rejected: the ESP holds an earlier bounce", detail)
    if reject_reason == RejectReason.SPAM:
        return Decision(Action.SUPPRESS, "rejected: the ESP holds a spam complaint", detail)
    if reject_reason == RejectReason.UNSUBSCRIBED:
        return Decision(Action.UNSUBSCRIBE, "rejected: unsubscribed at the ESP", detail)
    if reject_reason == RejectReason.TIMED_OUT:
        return Decision(Action.SOFT_BOUNCE, "rejected: timed out", detail)
    return Decision(Action.IGNORE, f"rejected ({reject_reason or 'no reason given'})", detail)


def soft_bounce_limit() -> int:
    return int(getattr(settings, "PAPERBOY_SOFT_BOUNCE_LIMIT", DEFAULT_SOFT_BOUNCE_LIMIT))


def _clip(text: str) -> str:
    return text if len(text) <= REASON_MAX else text[: REASON_MAX - 1] + "…"


def decision_apply(*, decision: Decision, subscriber: Subscriber) -> str:
    """Apply a decision to a subscriber (locked by the caller); return the outcome text."""
    suppressed = subscriber.status == Subscriber.Status.SUPPRESSED
    if decision.action is Action.IGNORE:
        return _clip(f"ignored: {decision.reason()}")
    if decision.action is Action.DELIVERED:
        was = subscriber.soft_bounces
        if not was:
            return "ignored: delivered"
        Subscriber.objects.filter(pk=subscriber.pk).update(soft_bounces=0)
        return f"delivered: soft bounce count reset (was {was})"
    if suppressed:
        return _clip(f"ignored: already suppressed; {decision.reason()}")
    if decision.action is Action.SUPPRESS:
        subscriber_suppress(subscriber=subscriber, reason=_clip(decision.reason()))
        return _clip(f"suppressed: {decision.reason()}")
    if decision.action is Action.UNSUBSCRIBE:
        if subscriber.status == Subscriber.Status.UNSUBSCRIBED:
            return "ignored: already unsubscribed"
        subscriber_unsubscribe(subscriber=subscriber)
        return "unsubscribed"
    # A soft bounce: counted, and the limit-th in a row (no delivery between) suppresses.
    limit = soft_bounce_limit()
    # F() rather than count + 1: SQLite ignores select_for_update, the database does not.
    Subscriber.objects.filter(pk=subscriber.pk).update(soft_bounces=F("soft_bounces") + 1)
    subscriber.refresh_from_db(fields=["soft_bounces"])
    count = subscriber.soft_bounces
    counted = f"{decision.why} {count} of {limit}"
    if decision.detail:
        counted += f" ({decision.detail})"
    if count < limit:
        return _clip(counted)
    subscriber_suppress(subscriber=subscriber, reason=_clip(f"{limit} soft bounces: {counted}"))
    return _clip(f"suppressed: {counted}")


def email_event_process(*, event_id: int) -> str | None:
    """Apply a stored event once; return its outcome, or None if it was already taken.

    Safe to run twice or from two workers: the claim and the effect commit together, so
    a crash in between leaves the event unclaimed for the next run.
    """
    with transaction.atomic():
        claimed = EmailEvent.objects.filter(pk=event_id, processed_at__isnull=True).update(
            processed_at=timezone.now()
        )
        if claimed != 1:
            return None
        event = EmailEvent.objects.get(pk=event_id)
        # Locked so two events for one address (a bounce and a delivery) count correctly.
        recipient = normalise_email(event.recipient)
        subscriber = (
            Subscriber.objects.select_for_update().filter(email=recipient).first()
            if recipient
            else None
        )
        if subscriber is None:
            outcome = NO_SUCH_SUBSCRIBER
        else:
            decision = event_decide(
                event_type=event.event_type,
                reject_reason=event.reject_reason,
                description=event.description,
                mta_response=event.mta_response,
            )
            outcome = decision_apply(decision=decision, subscriber=subscriber)
            if decision.action is Action.IGNORE and event.event_type == EventType.REJECTED:
                # Left alone on purpose, but an operator should see a pattern of these.
                logger.warning("ESP rejected mail to %s: %s", event.recipient, outcome)
        EmailEvent.objects.filter(pk=event_id).update(outcome=outcome, subscriber=subscriber)
    logger.info("email event %s (%s %s): %s", event_id, event.event_type, event.recipient, outcome)
    return outcome


def email_events_process_pending(*, older_than: dt.timedelta | None = None) -> int:
    """Process stored events whose task went missing (Celery lost it, or the broker was
    down when the webhook came); return how many were applied here."""
    age = older_than if older_than is not None else dt.timedelta(minutes=10)
    pending = EmailEvent.objects.filter(
        processed_at__isnull=True, received_at__lt=timezone.now() - age
    ).order_by("received_at", "pk")
    done = 0
    for pk in pending.values_list("pk", flat=True)[:10_000]:
        if email_event_process(event_id=pk) is not None:
            done += 1
    return done
