"""Where an edition's sending stands, for the operator watching it in the admin.

Every count and both rates come from one aggregate query over the edition's deliveries
(the (edition, subscriber) constraint's index finds them), so the admin page can ask
again every few seconds.

- owed: queued, never tried and no error: waiting for its first send;
- retrying: queued after a failed try (attempts > 0) or put back by an operator after
  failing (an error kept): waiting for `next_attempt_at`;
- sending, sent, failed, skipped, feed: the delivery's status.

The rates are of emails (status "sent"): a feed-only subscriber's delivery gets a `sent_at`
too, but thousands are published at once by one UPDATE, which is no send rate.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Max, Min, Q
from django.utils import timezone

from .models import Delivery

RECENT = dt.timedelta(seconds=60)

_status = Delivery.Status
_queued = Q(status=_status.QUEUED)
_tried = Q(attempts__gt=0) | ~Q(last_error="")
_sent = Q(status=_status.SENT, sent_at__isnull=False)


@dataclass(frozen=True)
class EditionProgress:
    owed: int
    retrying: int
    sending: int
    sent: int
    failed: int
    skipped: int
    feed: int
    sent_last_minute: int  # emails whose sent_at is in the last RECENT
    emails_timed: int  # emails with a sent_at, the overall rate's count
    first_sent_at: dt.datetime | None
    last_sent_at: dt.datetime | None
    as_of: dt.datetime

    @property
    def recent_rate(self) -> float:
        """Emails per second over the last minute."""
        return self.sent_last_minute / RECENT.total_seconds()

    @property
    def overall_rate(self) -> float | None:
        """Emails per second from the first send to the last; None before two sends.

        n sends at a steady rate r span (n - 1) / r seconds, hence (n - 1) / span.
        """
        if self.first_sent_at is None or self.last_sent_at is None or self.emails_timed < 2:
            return None
        span = (self.last_sent_at - self.first_sent_at).total_seconds()
        return (self.emails_timed - 1) / span if span > 0 else None

    def as_json(self) -> dict[str, Any]:
        def iso(when: dt.datetime | None) -> str | None:
            return when.isoformat() if when else None

        return {
            "counts": {
                "owed": self.owed,
                "retrying": self.retrying,
                "sending": self.sending,
                "sent": self.sent,
                "failed": self.failed,
                "skipped": self.skipped,
                "feed": self.feed,
            },
            "rate": {"last_minute": self.recent_rate, "overall": self.overall_rate},
            "first_sent_at": iso(self.first_sent_at),
            "last_sent_at": iso(self.last_sent_at),
            "as_of": iso(self.as_of),
        }


def edition_progress(*, edition_id: int, now: dt.datetime | None = None) -> EditionProgress:
    """The edition's deliveries counted by state, and its send rates, in one query."""
    now = now or timezone.now()

    def count(condition: Q) -> Count:
        return Count("pk", filter=condition)

    row = Delivery.objects.filter(edition_id=edition_id).aggregate(
        owed=count(_queued & ~_tried),
        retrying=count(_queued & _tried),
        sending=count(Q(status=_status.SENDING)),
        sent=count(Q(status=_status.SENT)),
        failed=count(Q(status=_status.FAILED)),
        skipped=count(Q(status=_status.SKIPPED)),
        feed=count(Q(status=_status.FEED)),
        sent_last_minute=count(_sent & Q(sent_at__gt=now - RECENT, sent_at__lte=now)),
        emails_timed=count(_sent),
        first_sent_at=Min("sent_at", filter=_sent),
        last_sent_at=Max("sent_at", filter=_sent),
    )
    return EditionProgress(**row, as_of=now)
