"""Reading a subscriber's deliveries."""

from __future__ import annotations

import datetime as dt

from subscriptions.models import Subscriber

from .models import Delivery


def sent_delivery(*, subscriber: Subscriber, edition_date: dt.date) -> Delivery | None:
    """Their delivery of that edition, if it was sent: only a sent digest can be viewed."""
    return (
        Delivery.objects.select_related("edition", "subscriber")
        .filter(subscriber=subscriber, edition__date=edition_date, status=Delivery.Status.SENT)
        .first()
    )
