"""The subscriber's own page: change the digest, pause it, look back, take the data, leave.

Plain functions the manage views call. Reads (preview, recent digests, export) never
write, because mail scanners and link previewers follow every GET; every write is a
function of its own, reached only by a POST.

The manage link travels in digests, and digests get forwarded. So the link expires
(PAPERBOY_MANAGE_LINK_MAX_AGE_DAYS; every digest carries a fresh one), and whoever holds
it may change the digest but not take or destroy the person's data: downloading it or
deleting everything first emails the address a short-lived link (an ACTION token,
PAPERBOY_ACTION_LINK_MAX_AGE_MINUTES), and only that link does it. An expired manage link
leads to a form that emails a fresh one (`manage_link_request`), answering alike for
every address. Each of these emails goes out at most once per EMAIL_INTERVAL per address
and action, from a Celery task.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from digest.feedback import feedback_undo, subscriber_feedback, value_word
from digest.mail import (
    PaperEntry,
    build_message,
    paper_entry,
    render_email,
    signup_headers,
)
from digest.matching import SKIP_NO_PAPERS, candidates_count, subscriber_preview
from digest.models import Delivery, Paper
from digest.planning import latest_stored_date
from paperboy.text import long_date
from subscriptions import ratelimit
from subscriptions.intent import clean_intent
from subscriptions.links import digest_path, manage_action_url, manage_url
from subscriptions.models import (
    MAX_PAPERS,
    MIN_PAPERS,
    EmailEvent,
    Subscriber,
    new_subscriber_key,
    normalise_email,
)
from subscriptions.ratelimit import Limit
from subscriptions.schedule import zone
from subscriptions.tokens import (
    BadToken,
    Purpose,
    action_link_max_age,
    manage_link_max_age,
    subscriber_for_token,
)
from subscriptions.topics import clean_topic_list

from .signup import EMAIL_INTERVAL, email_send

RECENT_DIGESTS = 10


# --- Settings and status ----------------------------------------------------------------


def subscriber_settings_update(
    *,
    subscriber: Subscriber,
    topics: Sequence[str],
    intent: str,
    frequency: str,
    max_papers: int,
    **choices: Any,
) -> None:
    """Save what the subscriber chose. The next planned digest uses it; one already
    matched today keeps the papers it was given. `choices`: trending, send_hour,
    time_zone, channel; a new schedule makes the next run work out the next digest."""
    if frequency not in Subscriber.Frequency.values:
        raise ValueError(f"unknown frequency {frequency!r}")
    if not MIN_PAPERS <= max_papers <= MAX_PAPERS:
        raise ValueError(f"max_papers must be {MIN_PAPERS}–{MAX_PAPERS}, not {max_papers}")
    # The form cleaned them; other callers may not have.
    subscriber.topics = clean_topic_list(topics)
    subscriber.intent = clean_intent(intent)
    subscriber.frequency = frequency
    before = [getattr(subscriber, f) for f in Subscriber.SCHEDULE_FIELDS]
    subscriber.max_papers = max_papers
    for name, value in choices.items():
        setattr(subscriber, name, value)
    fields = ["topics", "intent", "frequency", "max_papers", *choices]
    if before != [getattr(subscriber, f) for f in Subscriber.SCHEDULE_FIELDS]:
        subscriber.next_due_at = None
        fields.append("next_due_at")
    subscriber.save(update_fields=fields)


def subscriber_pause(*, subscriber: Subscriber) -> bool:
    """active → paused; True if it changed. Planning only picks active subscribers, and a
    send re-checks the status, so a paused subscriber gets nothing from now on."""
    changed = Subscriber.objects.filter(pk=subscriber.pk, status=Subscriber.Status.ACTIVE).update(
        status=Subscriber.Status.PAUSED
    )
    subscriber.refresh_from_db(fields=["status"])
    return changed == 1


def subscriber_can_resume(subscriber: Subscriber) -> bool:
    """Paused, or unsubscribed after having confirmed the address once.

    The manage link only travels in digests, which go to confirmed addresses, so holding
    it is proof enough to come back. An address never confirmed has to sign up again, and
    a suppressed one (bounces, complaints) only comes back when the operator lifts it.
    """
    if subscriber.status == Subscriber.Status.PAUSED:
        return True
    return subscriber.status == Subscriber.Status.UNSUBSCRIBED and bool(subscriber.confirmed_at)


def subscriber_resume(*, subscriber: Subscriber) -> bool:
    """paused or unsubscribed → active, keeping confirmed_at; True if it changed."""
    changed = (
        Subscriber.objects.filter(pk=subscriber.pk)
        .filter(
            Q(status=Subscriber.Status.PAUSED)
            | Q(status=Subscriber.Status.UNSUBSCRIBED, confirmed_at__isnull=False)
        )
        # The next digest is worked out again at the next run, from now: a subscriber back
        # from a pause gets it at their hour, not at once.
        .update(status=Subscriber.Status.ACTIVE, unsubscribed_at=None, next_due_at=None)
    )
    subscriber.refresh_from_db(fields=["status", "unsubscribed_at", "next_due_at"])
    return changed == 1


def next_digest_words(subscriber: Subscriber) -> str:
    """ "Tuesday 8 April, 07:00 (Europe/Berlin)": when the next digest comes, in their zone."""
    if subscriber.status != Subscriber.Status.ACTIVE:
        return ""
    schedule = subscriber.schedule
    due = subscriber.next_due_at or schedule.next_after(timezone.now())
    local = due.astimezone(zone(schedule.timezone))
    return f"{local:%A} {local.day} {local:%B}, {local:%H:%M} ({schedule.timezone})"


def subscriber_feed_key_renew(*, subscriber: Subscriber) -> None:
    """A new secret for the subscriber's feed address: the old address answers 404 from now."""
    subscriber.feed_key = new_subscriber_key()
    subscriber.save(update_fields=["feed_key"])


# --- Preview ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    """What a digest from the latest papers would hold with some settings."""

    date: dt.date | None  # the latest day with papers; None before the first scrape
    period: str  # "Tuesday, 10 March 2026", or "4–10 March 2026" for a weekly digest
    papers: list[PaperEntry]
    candidates: int  # papers the digest chose from
    reason: str  # why it would be empty; "" when it has papers

    @property
    def no_papers_yet(self) -> bool:
        return self.date is None


def _period(date: dt.date, frequency: str) -> str:
    if frequency != Subscriber.Frequency.WEEKLY:
        return long_date(date)
    start = date - dt.timedelta(days=6)
    if start.month == date.month:
        return f"{start.day}–{date.day} {date:%B %Y}"
    if start.year == date.year:
        return f"{start.day} {start:%B} – {date.day} {date:%B %Y}"
    return f"{start.day} {start:%B %Y} – {date.day} {date:%B %Y}"


def digest_preview(
    *,
    subscriber: Subscriber,
    topics: Sequence[str],
    frequency: str,
    max_papers: int,
    intent: str | None = None,
    trending: str | None = None,
) -> Preview:
    """The digest the subscriber would get from the latest papers with these settings.

    Computed on an unsaved copy of the subscriber, so what they are typing is never
    stored; papers already sent to them by other editions stay out, as they would.
    """
    date = latest_stored_date()
    if date is None:
        return Preview(None, "", [], 0, SKIP_NO_PAPERS)
    draft = Subscriber(
        id=subscriber.id,
        key=subscriber.key,
        email=subscriber.email,
        status=subscriber.status,
        topics=list(topics),
        intent=subscriber.intent if intent is None else intent,
        frequency=frequency,
        max_papers=max_papers,
        trending=trending or subscriber.trending,
        channel=subscriber.channel,
        time_zone=subscriber.time_zone,
        send_hour=subscriber.send_hour,
        send_weekday=subscriber.send_weekday,
    )
    items, reason = subscriber_preview(subscriber=draft, date=date)
    return Preview(
        date=date,
        period=_period(date, frequency),
        papers=[paper_entry(item) for item in items],
        candidates=candidates_count(date=date, frequency=frequency),
        reason=reason,
    )


# --- Past digests -----------------------------------------------------------------------


@dataclass(frozen=True)
class SentDigest:
    edition_date: dt.date
    sent_at: dt.datetime | None
    papers: int
    path: str  # the view-in-browser page


def subscriber_recent_digests(
    *, subscriber: Subscriber, limit: int = RECENT_DIGESTS
) -> list[SentDigest]:
    """The digests that reached them, newest first."""
    rows = (
        Delivery.objects.filter(subscriber=subscriber, status=Delivery.Status.SENT)
        .annotate(n_papers=Count("items"))
        .order_by("-edition__date")
        .values_list("edition__date", "sent_at", "n_papers")[:limit]
    )
    return [
        SentDigest(edition_date=day, sent_at=sent_at, papers=n, path=digest_path(subscriber, day))
        for day, sent_at, n in rows
    ]


def subscriber_sent_count(*, subscriber: Subscriber) -> int:
    return Delivery.objects.filter(subscriber=subscriber, status=Delivery.Status.SENT).count()


# --- Their feedback on papers -----------------------------------------------------------


def subscriber_feedback_undo(*, subscriber: Subscriber, arxiv_id: str) -> Paper | None:
    """Forget what they said about the paper with this arXiv id (the Undo button).

    Returns the paper if there was something to forget; None for an id that names no
    paper or one they said nothing about, so a second Undo is harmless.
    """
    paper = Paper.objects.filter(arxiv_id=arxiv_id).first()
    if paper is None or not feedback_undo(subscriber=subscriber, paper=paper):
        return None
    return paper


# --- Their data -------------------------------------------------------------------------


def _when(value: dt.datetime | dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _events(subscriber: Subscriber) -> QuerySet[EmailEvent]:
    # Events the ESP reported for their address, linked to the row or not (an event can
    # arrive before the row existed, or name the address only).
    return EmailEvent.objects.filter(Q(subscriber=subscriber) | Q(recipient=subscriber.email))


def subscriber_export(*, subscriber: Subscriber) -> dict[str, Any]:
    """Everything Paperboy keeps about them, as plain JSON-ready values."""
    deliveries = (
        Delivery.objects.filter(subscriber=subscriber)
        .select_related("edition")
        .prefetch_related("items__paper")
        .order_by("-edition__date")
    )
    return {
        "exported_at": timezone.now().isoformat(),
        "subscriber": {
            "email": subscriber.email,
            "status": subscriber.status,
            "topics": list(subscriber.topics),
            "intent": subscriber.intent,
            "frequency": subscriber.frequency,
            "max_papers": subscriber.max_papers,
            "trending": subscriber.trending,
            "channel": subscriber.channel,
            "time_zone": subscriber.time_zone,
            "send_hour": subscriber.send_hour,
            "send_weekday": subscriber.send_weekday,
            "next_due_at": _when(subscriber.next_due_at),
            "created_at": _when(subscriber.created_at),
            "confirmation_sent_at": _when(subscriber.confirmation_sent_at),
            "confirmed_at": _when(subscriber.confirmed_at),
            "unsubscribed_at": _when(subscriber.unsubscribed_at),
            "suppressed_at": _when(subscriber.suppressed_at),
            "suppressed_reason": subscriber.suppressed_reason,
            "soft_bounces": subscriber.soft_bounces,
        },
        "deliveries": [
            {
                "edition_date": _when(delivery.edition.date),
                "status": delivery.status,
                "sent_at": _when(delivery.sent_at),
                "skip_reason": delivery.skip_reason,
                "message_id": delivery.message_id,
                "papers": [
                    {
                        "rank": item.rank,
                        "arxiv_id": item.paper.arxiv_id,
                        "title": item.paper.title,
                        "url": item.paper.arxiv_url,
                        "reasons": item.reasons,
                    }
                    for item in sorted(delivery.items.all(), key=lambda i: i.rank)
                ],
            }
            for delivery in deliveries
        ],
        "feedback": [
            {
                "arxiv_id": feedback.paper.arxiv_id,
                "title": feedback.paper.title,
                "url": feedback.paper.arxiv_url,
                "value": value_word(feedback.value),
                "created_at": _when(feedback.created_at),
            }
            for feedback in subscriber_feedback(subscriber=subscriber)
        ],
        "email_events": [
            {
                "type": event.event_type,
                "occurred_at": _when(event.occurred_at),
                "received_at": _when(event.received_at),
                "description": event.description,
                "outcome": event.outcome,
            }
            for event in _events(subscriber).order_by("received_at")
        ],
    }


@transaction.atomic
def subscriber_delete(*, subscriber: Subscriber) -> None:
    """Delete the subscriber and everything about them: deliveries and their papers, and
    their feedback on papers, go with the row (CASCADE); ESP events are kept by SET_NULL
    and name the address, so they go explicitly."""
    _events(subscriber).delete()
    Subscriber.objects.filter(pk=subscriber.pk).delete()


# --- Links by email ---------------------------------------------------------------------

# Per client IP, for the "email me a new link" form: it sends mail, so it is counted.
MANAGE_LINK_PER_IP = Limit("manage-link-ip", count=5, seconds=10 * 60)
LINK_EMAIL = "account_link"  # account_link.mjml, account_link.txt, account_link_subject.txt


class Action(StrEnum):
    """What an emailed action link does."""

    EXPORT = "export"
    DELETE = "delete"


class LinkOutcome(StrEnum):
    """What a link email task did. For logs and tests: the pages say the same for all."""

    SENT = "sent"
    SENT_RECENTLY = "sent recently, not again yet"
    NOTHING_SENT = "nothing sent"
    FAILED = "the send failed"


def duration_words(span: dt.timedelta) -> str:
    """ "60 days", "1 hour", "45 minutes": how long a link works, as a person says it."""
    minutes = int(span.total_seconds() // 60)
    if minutes % (24 * 60) == 0:
        count, word = minutes // (24 * 60), "day"
    elif minutes % 60 == 0:
        count, word = minutes // 60, "hour"
    else:
        count, word = minutes, "minute"
    return f"{count} {word}{'' if count == 1 else 's'}"


def _link_email(
    *, subscriber: Subscriber, kind: str, url: str, valid_for: str
) -> EmailMultiAlternatives:
    context = {
        "kind": kind,
        "email": subscriber.email,
        "action_url": url,
        "valid_for": valid_for,
        "site_url": settings.SITE_URL,
        "site_name": settings.SITE_URL.split("://", 1)[-1],
    }
    return build_message(
        to=subscriber.email,
        rendered=render_email(name=LINK_EMAIL, context=context),
        headers=signup_headers(),
    )


def manage_link_message(*, subscriber: Subscriber) -> EmailMultiAlternatives:
    """A fresh link to their settings, asked for on the expired-link page."""
    return _link_email(
        subscriber=subscriber,
        kind="manage_link",
        url=manage_url(subscriber),
        valid_for=duration_words(manage_link_max_age()),
    )


def manage_action_message(*, subscriber: Subscriber, action: str) -> EmailMultiAlternatives:
    """The link that downloads or deletes their data, asked for on the manage page."""
    return _link_email(
        subscriber=subscriber,
        kind=Action(action).value,
        url=manage_action_url(subscriber, action),
        valid_for=duration_words(action_link_max_age()),
    )


def _send_once(
    subscriber: Subscriber, slot: str, message: Callable[..., EmailMultiAlternatives]
) -> LinkOutcome:
    """Send unless this slot (an address and a kind of email) was used in EMAIL_INTERVAL."""
    seconds = int(EMAIL_INTERVAL.total_seconds())
    if not ratelimit.cooldown(name=slot, key=subscriber.key, seconds=seconds):
        return LinkOutcome.SENT_RECENTLY
    if not email_send(subscriber=subscriber, make_message=message):
        ratelimit.cooldown_release(name=slot, key=subscriber.key)
        return LinkOutcome.FAILED
    return LinkOutcome.SENT


def manage_link_request(*, email: str, ip: str) -> None:
    """Someone typed an address to get a fresh settings link.

    Raises ratelimit.RateLimited when the IP is over MANAGE_LINK_PER_IP. Otherwise the same
    work for every address, known or not: one task queued; the task looks it up.
    """
    ratelimit.check(limit=MANAGE_LINK_PER_IP, key=ip)
    address = normalise_email(email)
    from .tasks import send_manage_link_task  # the tasks module imports this one

    with transaction.atomic():
        transaction.on_commit(lambda: send_manage_link_task.delay(address))


def manage_link_send(*, email: str) -> LinkOutcome:
    """The task's half: a settings link to a subscriber's address; nothing to an address
    we do not know or may not write to (suppressed)."""
    subscriber = Subscriber.objects.filter(email=normalise_email(email)).first()
    if subscriber is None or subscriber.status == Subscriber.Status.SUPPRESSED:
        return LinkOutcome.NOTHING_SENT
    return _send_once(subscriber, "manage-link", manage_link_message)


def manage_action_possible(subscriber: Subscriber) -> bool:
    """Whether we can email them the link: not to an address that bounced or complained."""
    return subscriber.status != Subscriber.Status.SUPPRESSED


def manage_action_request(*, subscriber: Subscriber, action: Action) -> None:
    """From the manage page: email the address the link that does `action`."""
    from .tasks import send_manage_action_task  # the tasks module imports this one

    subscriber_id, value = subscriber.pk, action.value
    with transaction.atomic():
        transaction.on_commit(lambda: send_manage_action_task.delay(subscriber_id, value))


def manage_action_send(*, subscriber_id: int, action: str) -> LinkOutcome:
    """The task's half: at most one such link per action every EMAIL_INTERVAL."""
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is None or not manage_action_possible(subscriber):
        return LinkOutcome.NOTHING_SENT
    message = partial(manage_action_message, action=Action(action).value)
    return _send_once(subscriber, f"manage-{action}", message)


def action_link_read(*, token: str) -> tuple[Subscriber, Action]:
    """Whose data an emailed action link is for, and what it does.

    Raises ExpiredToken (a BadToken) when it is too old, BadToken when it is not ours or
    its subscriber is gone (deleted: the link did its work).
    """
    subscriber, extra = subscriber_for_token(token, Purpose.ACTION)
    try:
        return subscriber, Action(extra)
    except ValueError:
        raise BadToken(f"no such action {extra!r}") from None
