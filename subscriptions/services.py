"""What happens to a subscriber, as plain functions the views, admin and commands call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from .models import Subscriber, normalise_email
from .topics import clean_topic_list


def subscriber_unsubscribe(*, subscriber: Subscriber) -> None:
    """Stop all digests at once. Idempotent: a second call changes nothing."""
    Subscriber.objects.filter(pk=subscriber.pk).exclude(
        status__in=[Subscriber.Status.UNSUBSCRIBED, Subscriber.Status.SUPPRESSED]
    ).update(status=Subscriber.Status.UNSUBSCRIBED, unsubscribed_at=timezone.now())
    subscriber.refresh_from_db()


@transaction.atomic
def subscriber_add(
    *,
    email: str,
    topics: Sequence[str],
    frequency: str = Subscriber.Frequency.DAILY,
    max_papers: int = 10,
    confirmed: bool = True,
    **choices: Any,
) -> tuple[Subscriber, bool]:
    """Add (or update) a subscriber as an operator would: pre-confirmed by default.

    No topics makes a trending-only reader. `choices` sets other fields of theirs
    (time_zone, send_hour, send_weekday, trending, channel); a change of schedule makes
    the next run work out their next digest again. Returns (subscriber, created). A
    suppressed address stays suppressed.
    """
    email = normalise_email(email)
    topics = clean_topic_list(topics)
    fields = {"topics": topics, "frequency": frequency, "max_papers": max_papers, **choices}
    subscriber, created = Subscriber.objects.select_for_update().get_or_create(
        email=email, defaults=fields
    )
    if not created:
        if any(
            getattr(subscriber, f) != fields[f] for f in Subscriber.SCHEDULE_FIELDS if f in fields
        ):
            subscriber.next_due_at = None
        for name, value in fields.items():
            setattr(subscriber, name, value)
    if confirmed and subscriber.status in (
        Subscriber.Status.PENDING,
        Subscriber.Status.UNSUBSCRIBED,
    ):
        subscriber.status = Subscriber.Status.ACTIVE
        subscriber.confirmed_at = subscriber.confirmed_at or timezone.now()
        subscriber.next_due_at = None  # worked out at the next run
    subscriber.save()
    return subscriber, created


def subscriber_suppress(*, subscriber: Subscriber, reason: str) -> None:
    """Stop all mail to an address that bounced hard or complained (or as an operator says).

    Works from any status; the public form cannot undo it, only `subscriber_unsuppress`.
    Idempotent: an address already suppressed keeps its first time and reason.
    """
    Subscriber.objects.filter(pk=subscriber.pk).exclude(status=Subscriber.Status.SUPPRESSED).update(
        status=Subscriber.Status.SUPPRESSED,
        suppressed_at=timezone.now(),
        suppressed_reason=reason[:200],
    )
    subscriber.refresh_from_db()


@transaction.atomic
def subscriber_unsuppress(*, subscriber: Subscriber) -> None:
    """An operator's decision: the address works again (e.g. the person fixed it).

    The subscriber goes back to where they were before: unsubscribed if they had left
    after their last confirmation, active if confirmed, pending otherwise. The soft bounce
    count starts again from 0.
    """
    locked = Subscriber.objects.select_for_update().filter(pk=subscriber.pk).first()
    if locked is None or locked.status != Subscriber.Status.SUPPRESSED:
        subscriber.refresh_from_db()
        return
    left = locked.unsubscribed_at is not None and (
        locked.confirmed_at is None or locked.unsubscribed_at >= locked.confirmed_at
    )
    if left:
        locked.status = Subscriber.Status.UNSUBSCRIBED
    elif locked.confirmed_at is not None:
        locked.status = Subscriber.Status.ACTIVE
    else:
        locked.status = Subscriber.Status.PENDING
    locked.suppressed_at = None
    locked.suppressed_reason = ""
    locked.soft_bounces = 0
    locked.next_due_at = None  # worked out at the next run, from now
    locked.save(
        update_fields=[
            "status",
            "suppressed_at",
            "suppressed_reason",
            "soft_bounces",
            "next_due_at",
        ]
    )
    subscriber.refresh_from_db()


OPERATOR_SUPPRESS_REASON = "suppressed by an operator"


def status_stamp(subscriber: Subscriber, *, previous: str | None) -> None:
    """A status an operator chose by hand: set the times and fields the functions above
    would have set (not saved), so the history and the unsuppress rules stay right."""
    now = timezone.now()
    status = subscriber.status
    if previous == Subscriber.Status.SUPPRESSED and status != Subscriber.Status.SUPPRESSED:
        subscriber.suppressed_at = None
        subscriber.suppressed_reason = ""
        subscriber.soft_bounces = 0
    if status == Subscriber.Status.SUPPRESSED:
        subscriber.suppressed_at = subscriber.suppressed_at or now
        subscriber.suppressed_reason = subscriber.suppressed_reason or OPERATOR_SUPPRESS_REASON
    elif status == Subscriber.Status.ACTIVE:
        subscriber.confirmed_at = subscriber.confirmed_at or now  # the operator vouches
        subscriber.unsubscribed_at = None
    elif status == Subscriber.Status.UNSUBSCRIBED:
        subscriber.unsubscribed_at = now
