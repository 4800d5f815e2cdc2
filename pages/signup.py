"""Signing up, confirming, and sending the confirmation again: plain functions the views call.

Double opt-in. The public form only ever creates (or refreshes) a *pending* subscriber and
has one email sent, with a link that proves the address belongs to whoever typed it;
nothing else is sent to a pending address. Whatever state an address is in, the person at
the form sees the same "check your inbox" page, after the same work: the request runs the
same three SQL statements for every address and queues one Celery task
(`send_signup_email_task`, after the commit), and the task decides what, if anything, to
send. So neither the page nor its timing says whether an address subscribes. What differs
happens in the owner's inbox only:

==============  ==================================================================
address is      what the owner gets
==============  ==================================================================
new             pending; confirmation email
pending         settings (topics, mix, frequency, hour, zone…) updated to what was typed
                now; confirmation sent again, at most once per EMAIL_INTERVAL
unsubscribed    pending again, with the new settings; confirmation email
active, paused  nothing changes (a stranger must not edit someone's topics); a short
                "you're already subscribed" email with the settings link, at most
                once per EMAIL_INTERVAL
suppressed      nothing at all: the address bounced or complained, and only an
                operator may put it back
==============  ==================================================================

Abuse limits. Per client IP (an IPv6 client by its /64; behind a proxy, see
paperboy/client_ip.py): SIGNUP_PER_IP signups and RESEND_PER_IP "send it again"s, over
which the page is a 429. Per address there is no refusal at all, only EMAIL_INTERVAL
between two emails to it: strangers typing someone's address can neither lock its owner
out (their signup and their confirmation link always work) nor send it more than six
signup emails an hour. The confirmation link confirms whatever was typed last.

A send that fails is logged, never shown (the page is long made), and the 10-minute slot
is handed back so the person can ask again at once.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.core.cache import cache
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from digest.mail import (
    already_subscribed_message,
    authors_line,
    confirmation_message,
    summary_of,
)
from digest.models import Paper
from paperboy.text import one_line, shorten
from subscriptions import ratelimit
from subscriptions.intent import clean_intent
from subscriptions.models import Subscriber, normalise_email
from subscriptions.ratelimit import Limit
from subscriptions.tokens import BadToken, ExpiredToken, Purpose, subscriber_for_token
from subscriptions.topics import MAX_TOPIC_LENGTH, clean_topic_list

logger = logging.getLogger(__name__)

# Per IP: a household or an office shares one, so a few tries each way.
SIGNUP_PER_IP = Limit("signup-ip", count=5, seconds=10 * 60)
RESEND_PER_IP = Limit("resend-ip", count=5, seconds=10 * 60)
# Per address: at most one email from the form this often, whoever asks.
EMAIL_INTERVAL = dt.timedelta(minutes=10)

SUGGESTION_DAYS = 14
SUGGESTIONS_SHOWN = 40
SUGGESTIONS_CACHE_SECONDS = 10 * 60


class Outcome(StrEnum):
    """What a signup email task did. For logs and tests: the page is the same for all."""

    CONFIRMATION_SENT = "confirmation sent"
    CONFIRMATION_SENT_RECENTLY = "confirmation sent recently, not again yet"
    ALREADY_SUBSCRIBED = "already subscribed, settings link sent"
    ALREADY_SUBSCRIBED_RECENTLY = "already subscribed, settings link sent recently"
    NOTHING_SENT = "nothing sent"
    FAILED = "the send failed"


# --- Signing up -------------------------------------------------------------------------


def subscriber_signup(
    *,
    email: str,
    topics: Sequence[str],
    frequency: str,
    max_papers: int,
    ip: str,
    intent: str = "",
    **choices: Any,
) -> None:
    """Ask for a subscription: the form's cleaned data and the client's IP key.

    `choices`: more of the subscriber's settings (trending, send_hour, send_weekday,
    time_zone), stored like the rest; without topics the subscriber gets the trending list.

    Raises ratelimit.RateLimited before touching the database when the IP is over its
    limit. The email is the task's business (`signup_email_send`).
    """
    email = normalise_email(email)
    fields: dict[str, Any] = {
        "topics": clean_topic_list(topics),
        "intent": clean_intent(intent),  # the form cleaned it; other callers may not
        "frequency": frequency,
        "max_papers": max_papers,
        **choices,
    }
    ratelimit.check(limit=SIGNUP_PER_IP, key=ip)
    with transaction.atomic():
        # The same three statements whatever the address's state. New: the row is made
        # pending. Pending or unsubscribed: (again) pending, with what was typed now.
        # Active, paused, suppressed: the update matches nothing.
        Subscriber.objects.bulk_create(
            [Subscriber(email=email, status=Subscriber.Status.PENDING, **fields)],
            ignore_conflicts=True,
        )
        Subscriber.objects.filter(
            email=email,
            status__in=[Subscriber.Status.PENDING, Subscriber.Status.UNSUBSCRIBED],
        ).update(status=Subscriber.Status.PENDING, **fields)
        subscriber_id = Subscriber.objects.values_list("pk", flat=True).get(email=email)
        _queue_signup_email(subscriber_id)


def subscriber_resend(*, email: str, ip: str) -> None:
    """Send the confirmation again ("didn't get it?"), changing no settings.

    Same rules and same silence as a signup; an address with no pending or active
    subscription is sent nothing.
    """
    email = normalise_email(email)
    ratelimit.check(limit=RESEND_PER_IP, key=ip)
    with transaction.atomic():
        ids = Subscriber.objects.filter(email=email).values_list("pk", flat=True)
        for subscriber_id in ids:  # none for an address never typed into the form
            _queue_signup_email(subscriber_id)


def confirmation_send(*, subscriber: Subscriber) -> bool:
    """Have a pending subscriber sent the confirmation email (the admin's "resend").

    True if one was queued; False if one went out less than EMAIL_INTERVAL ago or the
    subscriber is not pending. No per-IP counters: an operator is not a stranger at the
    form.
    """
    due = (
        Subscriber.objects.filter(pk=subscriber.pk, status=Subscriber.Status.PENDING)
        .filter(_slot_free(timezone.now()))
        .exists()
    )
    if due:
        with transaction.atomic():
            _queue_signup_email(subscriber.pk)
    return due


def _queue_signup_email(subscriber_id: int) -> None:
    # Imported here: the tasks module imports this one.
    from .tasks import send_signup_email_task

    transaction.on_commit(lambda: send_signup_email_task.delay(subscriber_id))


def signup_email_send(*, subscriber_id: int) -> Outcome:
    """The email a signup or resend owes the address, if any (see the module's table).

    Run by the task, so safe to run twice: the second run finds the slot taken.
    """
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is None:  # deleted since
        outcome = Outcome.NOTHING_SENT
    elif subscriber.status == Subscriber.Status.PENDING:
        outcome = _send_confirmation(subscriber)
    elif subscriber.status in (Subscriber.Status.ACTIVE, Subscriber.Status.PAUSED):
        outcome = _tell_already_subscribed(subscriber)
    else:
        outcome = Outcome.NOTHING_SENT
    logger.info("signup email for %s: %s", subscriber_id, outcome)
    return outcome


def _slot_free(now: dt.datetime) -> Q:
    return Q(confirmation_sent_at__isnull=True) | Q(confirmation_sent_at__lte=now - EMAIL_INTERVAL)


def _send_confirmation(subscriber: Subscriber) -> Outcome:
    """Claim the address's confirmation slot with a conditional update, then send.

    confirmation_sent_at is the truth about the last email: two tasks at once cannot both
    change the row, so they cannot both send.
    """
    now = timezone.now()
    previous = subscriber.confirmation_sent_at
    claimed = (
        Subscriber.objects.filter(pk=subscriber.pk, status=Subscriber.Status.PENDING)
        .filter(_slot_free(now))
        .update(confirmation_sent_at=now)
    )
    if claimed != 1:
        return Outcome.CONFIRMATION_SENT_RECENTLY
    subscriber.confirmation_sent_at = now
    if not email_send(subscriber=subscriber, make_message=confirmation_message):
        # Handed back, unless a later request has claimed the slot since.
        Subscriber.objects.filter(pk=subscriber.pk, confirmation_sent_at=now).update(
            confirmation_sent_at=previous
        )
        return Outcome.FAILED
    return Outcome.CONFIRMATION_SENT


def _tell_already_subscribed(subscriber: Subscriber) -> Outcome:
    # No field records this email (the model is not ours to change), so the cache keeps
    # the "at most one per interval" slot; losing it on a cache flush costs one email.
    slot = {"name": "already-subscribed", "key": subscriber.email}
    if not ratelimit.cooldown(**slot, seconds=int(EMAIL_INTERVAL.total_seconds())):
        return Outcome.ALREADY_SUBSCRIBED_RECENTLY
    if not email_send(subscriber=subscriber, make_message=already_subscribed_message):
        ratelimit.cooldown_release(**slot)
        return Outcome.FAILED
    return Outcome.ALREADY_SUBSCRIBED


def email_send(
    *, subscriber: Subscriber, make_message: Callable[..., EmailMultiAlternatives]
) -> bool:
    """Send one email made for the subscriber; a failure is logged and returns False.

    For the emails a person asks for on a page (confirmations, links): the page is
    already made, and the person can ask again.
    """
    try:
        make_message(subscriber=subscriber).send()
    except Exception:  # SMTP and ESP errors have no common base class
        logger.exception("could not send an email to subscriber %s", subscriber.pk)
        return False
    return True


# --- Confirming -------------------------------------------------------------------------


class LinkState(StrEnum):
    READY = "ready"  # pending, link valid: show the button
    EXPIRED = "expired"  # pending, link too old: offer a new one
    CONFIRMED = "confirmed"  # active or paused: nothing to do
    CLOSED = "closed"  # unsubscribed or suppressed since: this link confirms nothing


@dataclass(frozen=True)
class ConfirmLink:
    subscriber: Subscriber
    state: LinkState
    expired: bool = False  # older than CONFIRM_MAX_AGE, whatever the state


def confirm_link_read(*, token: str) -> ConfirmLink:
    """What a confirmation link leads to. Raises BadToken if we did not make it."""
    try:
        subscriber, _ = subscriber_for_token(token, Purpose.CONFIRM)
        expired = False
    except ExpiredToken as exc:
        # Ours but too old: it deserves an offer of a new one, not the bad-link page.
        found = exc.subscriber()
        if found is None:
            raise BadToken("no such subscriber") from None
        subscriber, expired = found, True
    return ConfirmLink(subscriber, _link_state(subscriber, expired=expired), expired)


def _link_state(subscriber: Subscriber, *, expired: bool) -> LinkState:
    if subscriber.status in (Subscriber.Status.ACTIVE, Subscriber.Status.PAUSED):
        return LinkState.CONFIRMED
    if subscriber.status != Subscriber.Status.PENDING:
        return LinkState.CLOSED
    return LinkState.EXPIRED if expired else LinkState.READY


def subscriber_confirm(*, subscriber: Subscriber) -> LinkState:
    """Pending → active, once (a conditional update); returns the state afterwards.

    Confirming twice is harmless. An address unsubscribed or suppressed since the link
    was sent stays so: the link is older than that decision.
    """
    Subscriber.objects.filter(pk=subscriber.pk, status=Subscriber.Status.PENDING).update(
        status=Subscriber.Status.ACTIVE, confirmed_at=timezone.now(), next_due_at=None
    )
    subscriber.refresh_from_db()
    return _link_state(subscriber, expired=False)


# --- What the home page shows -----------------------------------------------------------


@dataclass(frozen=True)
class SamplePaper:
    """A paper as the home page shows it; plain text, escaped by the template."""

    title: str
    url: str
    authors: str
    summary: str
    upvotes: int


@dataclass(frozen=True)
class Sample:
    date: dt.date | None
    papers: list[SamplePaper]


def home_sample(*, count: int = 5) -> Sample:
    """The latest day's most upvoted papers: what a digest is made of."""
    latest = Paper.objects.aggregate(latest=Max("batch_date"))["latest"]
    if latest is None:
        return Sample(None, [])
    papers = Paper.objects.filter(batch_date=latest).order_by("-upvotes", "arxiv_id")[:count]
    return Sample(
        latest,
        [
            SamplePaper(
                title=one_line(paper.title),
                url=paper.hf_url,
                authors=authors_line(paper.authors or []),
                summary=shorten(summary_of(paper), 160),
                upvotes=paper.upvotes,
            )
            for paper in papers
        ],
    )


def topic_suggestions(*, count: int = SUGGESTIONS_SHOWN) -> list[str]:
    """The commonest ai_keywords of the last SUGGESTION_DAYS days of papers, most first.

    Counted once per paper, case-insensitively, shown in their commonest spelling.
    Cached for a few minutes: every visit to the home page asks, and it reads a
    fortnight of papers.
    """
    latest = Paper.objects.aggregate(latest=Max("batch_date"))["latest"]
    if latest is None:
        return []
    key = f"paperboy:topic-suggestions:{latest.isoformat()}:{count}"
    cached = cache.get(key)
    if isinstance(cached, list):
        return cached
    since = latest - dt.timedelta(days=SUGGESTION_DAYS - 1)
    papers_with: Counter[str] = Counter()
    spellings: defaultdict[str, Counter[str]] = defaultdict(Counter)
    rows = Paper.objects.filter(batch_date__gte=since).values_list("ai_keywords", flat=True)
    for keywords in rows.iterator(chunk_size=500):
        if not isinstance(keywords, list):
            continue  # scraped data: a malformed row is skipped, not trusted
        seen: set[str] = set()
        for keyword in keywords:
            phrase = one_line(keyword) if isinstance(keyword, str) else ""
            if not phrase or phrase.startswith("-") or len(phrase) > MAX_TOPIC_LENGTH:
                continue
            spellings[phrase.lower()][phrase] += 1
            seen.add(phrase.lower())
        papers_with.update(seen)
    ranked = sorted(papers_with, key=lambda k: (-papers_with[k], k))[:count]
    suggestions = [spellings[k].most_common(1)[0][0] for k in ranked]
    cache.set(key, suggestions, SUGGESTIONS_CACHE_SECONDS)
    return suggestions
