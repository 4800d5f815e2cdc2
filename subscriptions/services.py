"""What happens to a subscriber, as plain functions the views, admin and commands call."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone

from .models import Subscriber, normalise_email
from .topics import clean_interests


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
    interests: Sequence[str],
    frequency: str = Subscriber.Frequency.DAILY,
    max_papers: int = 10,
    confirmed: bool = True,
) -> tuple[Subscriber, bool]:
    """Add (or update) a subscriber as an operator would: pre-confirmed by default.

    Returns (subscriber, created). A suppressed address stays suppressed.
    """
    email = normalise_email(email)
    topics = clean_interests(interests)
    subscriber, created = Subscriber.objects.select_for_update().get_or_create(
        email=email,
        defaults={"interests": topics, "frequency": frequency, "max_papers": max_papers},
    )
    if not created:
        subscriber.interests = topics
        subscriber.frequency = frequency
        subscriber.max_papers = max_papers
    if confirmed and subscriber.status in (
        Subscriber.Status.PENDING,
        Subscriber.Status.UNSUBSCRIBED,
    ):
        subscriber.status = Subscriber.Status.ACTIVE
        subscriber.confirmed_at = subscriber.confirmed_at or timezone.now()
    subscriber.save()
    return subscriber, created
