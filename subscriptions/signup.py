"""Signing up, confirming, and sending the confirmation again: plain functions the views call.

Double opt-in. The public form only ever creates (or refreshes) a *pending* subscriber and
sends one email, with a link that proves the address belongs to whoever typed it; nothing
else is sent to a pending address. Whatever state an address is in, the person at the
form sees the same "check your inbox" page, so the form cannot be used to find out who
subscribes. What differs happens in the owner's inbox only:

==============  ==================================================================
address is      what happens
==============  ==================================================================
new             pending; confirmation email
pending         settings (topics, mix, frequency, hour, zone…) updated to what was typed
                now; confirmation sent again, but at most once per CONFIRMATION_INTERVAL
unsubscribed    pending again, with the new settings; confirmation email
active, paused  nothing changes (a stranger must not edit someone's topics); a short
                "you're already subscribed" email with the settings link, at most
                once per CONFIRMATION_INTERVAL
suppressed      nothing at all: the address bounced or complained, and only an
                operator may put it back
==============  ==================================================================

Emails go out after the transaction commits, so an email never refers to a row that was
rolled back; a send that fails is logged and does not fail the page (the person can ask
again, and the throttle slot is handed back).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any

from django.core import signing
from django.core.cache import cache
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from digest.emails import (
    already_subscribed_message,
    authors_line,
    confirmation_message,
    one_line,
    shorten,
    summary_of,
)
from digest.models import Paper

from . import ratelimit
from .intent import clean_intent
from .models import Subscriber, normalise_email
from .ratelimit import Limit
from .tokens import BadToken, Purpose, subscriber_for_token
from .topics import MAX_INTEREST_LENGTH, clean_interests

logger = logging.getLogger(__name__)

# Abuse limits. Per IP: a household or an office shares one, so a few tries each way.
# Per address: counted on every valid request for it, whatever the address's state, so a
# 429 says nothing about whether the address subscribes; it also caps the emails one
# address can be sent from the form in a day.
SIGNUP_PER_IP = Limit("signup-ip", count=5, seconds=10 * 60)
RESEND_PER_IP = Limit("resend-ip", count=5, seconds=10 * 60)
REQUESTS_PER_ADDRESS = Limit("signup-address", count=3, seconds=24 * 60 * 60)
# At most one signup email per address this often, whatever the counters say.
CONFIRMATION_INTERVAL = dt.timedelta(minutes=10)

SUGGESTION_DAYS = 14
SUGGESTIONS_SHOWN = 40
SUGGESTIONS_CACHE_SECONDS = 10 * 60


class Outcome(StrEnum):
    """What a signup or resend did. For logs and tests: the page is the same for all."""

    CONFIRMATION_SENT = "confirmation sent"
    CONFIRMATION_SENT_RECENTLY = "confirmation sent recently, not again yet"
    ALREADY_SUBSCRIBED = "already subscribed, settings link sent"
    ALREADY_SUBSCRIBED_RECENTLY = "already subscribed, settings link sent recently"
    NOTHING_SENT = "nothing sent"


# --- Signing up -------------------------------------------------------------------------


def subscriber_signup(
    *,
    email: str,
    interests: Sequence[str],
    frequency: str,
    max_papers: int,
    ip: str,
    intent: str = "",
    **choices: Any,
) -> Outcome:
    """Ask for a subscription: the form's cleaned data and the client's IP key.

    `choices`: more of the reader's settings (trending, send_hour, send_weekday,
    time_zone), stored like the rest; without topics the reader gets the trending list.

    Raises ratelimit.RateLimited before touching the database when over a limit.
    """
    email = normalise_email(email)
    topics = clean_interests(interests)
    intent = clean_intent(intent)  # the form cleaned it; other callers may not
    ratelimit.check(limit=SIGNUP_PER_IP, key=ip)
    ratelimit.check(limit=REQUESTS_PER_ADDRESS, key=email)
    with transaction.atomic():
        subscriber, created = Subscriber.objects.select_for_update().get_or_create(
            email=email,
            defaults={
                "interests": topics,
                "intent": intent,
                "frequency": frequency,
                "max_papers": max_papers,
                "status": Subscriber.Status.PENDING,
                **choices,
            },
        )
        status = subscriber.status
        if status == Subscriber.Status.SUPPRESSED:
            outcome = Outcome.NOTHING_SENT
        elif status in (Subscriber.Status.ACTIVE, Subscriber.Status.PAUSED):
            outcome = _tell_already_subscribed(subscriber)
        else:  # new, pending or unsubscribed: (again) pending, with what they typed now
            if not created:
                subscriber.interests = topics
                subscriber.intent = intent
                subscriber.frequency = frequency
                subscriber.max_papers = max_papers
                subscriber.status = Subscriber.Status.PENDING
                for name, value in choices.items():
                    setattr(subscriber, name, value)
                subscriber.save(
                    update_fields=[
                        "interests",
                        "intent",
                        "frequency",
                        "max_papers",
                        "status",
                        *choices,
                    ]
                )
            outcome = _send_confirmation(subscriber)
    logger.info("signup %s: %s", subscriber.pk, outcome)
    return outcome


def subscriber_resend(*, email: str, ip: str) -> Outcome:
    """Send the confirmation again ("didn't get it?"), changing no settings.

    Same rules and same silence as a signup; an address with no pending or active
    subscription is sent nothing.
    """
    email = normalise_email(email)
    ratelimit.check(limit=RESEND_PER_IP, key=ip)
    ratelimit.check(limit=REQUESTS_PER_ADDRESS, key=email)
    with transaction.atomic():
        subscriber = Subscriber.objects.select_for_update().filter(email=email).first()
        if subscriber is None:
            return Outcome.NOTHING_SENT
        if subscriber.status == Subscriber.Status.PENDING:
            outcome = _send_confirmation(subscriber)
        elif subscriber.status in (Subscriber.Status.ACTIVE, Subscriber.Status.PAUSED):
            outcome = _tell_already_subscribed(subscriber)
        else:
            outcome = Outcome.NOTHING_SENT
    logger.info("resend %s: %s", subscriber.pk, outcome)
    return outcome


def confirmation_send(*, subscriber: Subscriber) -> bool:
    """Send a pending subscriber the confirmation email (the admin's "resend" action).

    True if one was queued; False if one went out less than CONFIRMATION_INTERVAL ago
    or the subscriber is not pending. No per-IP or per-address counters: an operator
    is not a stranger at the form.
    """
    with transaction.atomic():
        return _send_confirmation(subscriber) is Outcome.CONFIRMATION_SENT


def _send_confirmation(subscriber: Subscriber) -> Outcome:
    """Claim the address's confirmation slot with a conditional update, then send on commit.

    confirmation_sent_at is the truth about the last email: two requests at once cannot
    both change the row, so they cannot both send.
    """
    now = timezone.now()
    previous = subscriber.confirmation_sent_at
    claimed = (
        Subscriber.objects.filter(pk=subscriber.pk, status=Subscriber.Status.PENDING)
        .filter(
            Q(confirmation_sent_at__isnull=True)
            | Q(confirmation_sent_at__lte=now - CONFIRMATION_INTERVAL)
        )
        .update(confirmation_sent_at=now)
    )
    if claimed != 1:
        return Outcome.CONFIRMATION_SENT_RECENTLY
    subscriber.confirmation_sent_at = now

    def give_back() -> None:
        # Only if no later request has claimed the slot since.
        Subscriber.objects.filter(pk=subscriber.pk, confirmation_sent_at=now).update(
            confirmation_sent_at=previous
        )

    transaction.on_commit(
        partial(_send_after_commit, subscriber.pk, confirmation_message, give_back)
    )
    return Outcome.CONFIRMATION_SENT


def _tell_already_subscribed(subscriber: Subscriber) -> Outcome:
    # No field records this email (the model is not ours to change), so the cache keeps
    # the "at most one per interval" slot; losing it on a cache flush costs one email.
    if not ratelimit.cooldown(
        name="already-subscribed",
        key=subscriber.email,
        seconds=int(CONFIRMATION_INTERVAL.total_seconds()),
    ):
        return Outcome.ALREADY_SUBSCRIBED_RECENTLY
    transaction.on_commit(
        partial(_send_after_commit, subscriber.pk, already_subscribed_message, lambda: None)
    )
    return Outcome.ALREADY_SUBSCRIBED


def _send_after_commit(
    subscriber_pk: int,
    make_message: Callable[..., EmailMultiAlternatives],
    on_failure: Callable[[], None],
) -> None:
    """Send one signup email; a failure is logged, never shown: the page is already made."""
    try:
        subscriber = Subscriber.objects.get(pk=subscriber_pk)
        make_message(subscriber=subscriber).send()
    except Exception:  # SMTP and ESP errors have no common base class
        logger.exception("could not send a signup email to subscriber %s", subscriber_pk)
        on_failure()


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


def confirm_link_read(*, token: str) -> ConfirmLink:
    """What a confirmation link leads to. Raises BadToken if we did not make it."""
    try:
        subscriber, _ = subscriber_for_token(token, Purpose.CONFIRM)
        expired = False
    except BadToken:
        subscriber = _subscriber_for_expired_token(token)
        expired = True
    return ConfirmLink(subscriber, _link_state(subscriber, expired=expired))


def _subscriber_for_expired_token(token: str) -> Subscriber:
    """The subscriber of a token that is ours but too old; BadToken for anything else.

    tokens.read_token folds "expired" into BadToken; an expired link deserves an offer
    of a new one, a tampered one the bad-link page, so check the signature without age.
    """
    try:
        value = signing.TimestampSigner(salt=Purpose.CONFIRM.value).unsign(token)
    except signing.BadSignature:
        raise BadToken("not a confirmation token") from None
    subscriber = Subscriber.objects.filter(key=value.partition(":")[0]).first()
    if subscriber is None:
        raise BadToken("no such subscriber")
    return subscriber


def _link_state(subscriber: Subscriber, *, expired: bool) -> LinkState:
    if subscriber.status in (Subscriber.Status.ACTIVE, Subscriber.Status.PAUSED):
        return LinkState.CONFIRMED  # whoever holds the link owns the address
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
            if not phrase or phrase.startswith("-") or len(phrase) > MAX_INTEREST_LENGTH:
                continue
            spellings[phrase.lower()][phrase] += 1
            seen.add(phrase.lower())
        papers_with.update(seen)
    ranked = sorted(papers_with, key=lambda k: (-papers_with[k], k))[:count]
    suggestions = [spellings[k].most_common(1)[0][0] for k in ranked]
    cache.set(key, suggestions, SUGGESTIONS_CACHE_SECONDS)
    return suggestions
