"""Who is sending which digest: claims with leases, kept in the database.

A sender claims a batch of owed deliveries in one statement (queued → sending), stamping
them with its own random owner id and a lease that runs out PAPERBOY_SEND_LEASE_SECONDS
later. While it works it renews the lease; every outcome it records is conditional on
still owning the row. A sender that dies (a killed worker, a lost machine) stops
renewing, and `lapsed_release` — run by the beat every PAPERBOY_SEND_SWEEP_SECONDS —
hands its deliveries back to the queue, where any sender takes them. So PostgreSQL, not
the broker, holds what is owed: a lost Celery task costs nothing but a sweep period.

What a crash can duplicate is bounded: only messages handed to the server whose outcome
was not recorded yet (the sender records every PAPERBOY_SEND_RECORD_EVERY messages), and
each carries the delivery's stable Message-ID, so the receiving side can recognise it.
A delivery whose sender keeps dying (a message that crashes the renderer, say) is given
up on after PAPERBOY_MAX_SEND_ATTEMPTS claims, with the reason.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from ..lookups import ints
from ..models import Delivery

# An ESP's id is stored as the delivery's message_id, cut to the column.
MESSAGE_ID_MAX = Delivery._meta.get_field("message_id").max_length or 255


def stored_message_id(esp_id: object | None) -> str | None:
    """An ESP's message id as a delivery stores it; None when the ESP gave none."""
    return str(esp_id)[:MESSAGE_ID_MAX] if esp_id is not None else None


logger = logging.getLogger(__name__)

INTERRUPTED = "interrupted while sending (the sender stopped); queued again"
INTERRUPTED_TOO_OFTEN = "interrupted while sending {n} times; given up (see the worker logs)"


@dataclass(frozen=True)
class Lease:
    owner: str
    ids: list[int]


def lease_length() -> dt.timedelta:
    return dt.timedelta(seconds=settings.PAPERBOY_SEND_LEASE_SECONDS)


def owed_now(*, edition_id: int | None = None) -> QuerySet[Delivery]:
    """Queued deliveries with their papers chosen, whose retry time (if any) has come."""
    qs = Delivery.objects.filter(status=Delivery.Status.QUEUED, matched_at__isnull=False).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=timezone.now())
    )
    return qs.filter(edition_id=edition_id) if edition_id is not None else qs


def claim(limit: int, *, edition_id: int | None = None, after: int = 0) -> Lease:
    """Claim up to `limit` owed deliveries, lowest ids first (above `after`: a sender
    moves on from its last batch rather than stepping over every row claimed before)."""
    owner = secrets.token_hex(16)
    now = timezone.now()
    if connection.vendor == "postgresql":
        return Lease(owner, _claim_skip_locked(owner, now, limit, edition_id, after))
    # Elsewhere (SQLite: one writer at a time) pick, then take those still queued.
    owed = owed_now(edition_id=edition_id).filter(id__gt=after).order_by("id")
    picked = list(owed.values_list("id", flat=True)[:limit])
    if not picked:
        return Lease(owner, [])
    Delivery.objects.filter(id__in_ints=ints(picked), status=Delivery.Status.QUEUED).update(
        status=Delivery.Status.SENDING,
        lease_owner=owner,
        lease_until=now + lease_length(),
        claimed_at=now,
        attempts=F("attempts") + 1,
    )
    mine = Delivery.objects.filter(lease_owner=owner, status=Delivery.Status.SENDING)
    return Lease(owner, sorted(mine.values_list("id", flat=True)))


def _claim_skip_locked(
    owner: str, now: dt.datetime, limit: int, edition_id: int | None, after: int
) -> list[int]:
    # SKIP LOCKED: concurrent senders take disjoint batches instead of queueing behind one
    # another's row locks. One statement, so there is no window between pick and take.
    table = Delivery._meta.db_table
    edition = "AND edition_id = %s" if edition_id is not None else ""
    sql = f"""
        UPDATE {table} SET status = %s, lease_owner = %s, lease_until = %s, claimed_at = %s,
               attempts = attempts + 1
        WHERE id IN (
            SELECT id FROM {table}
            WHERE status = %s AND matched_at IS NOT NULL AND id > %s
              AND (next_attempt_at IS NULL OR next_attempt_at <= %s) {edition}
            ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)
        RETURNING id"""
    params: list[Any] = [Delivery.Status.SENDING, owner, now + lease_length(), now]
    params += [Delivery.Status.QUEUED, after, now]
    params += [edition_id] if edition_id is not None else []
    params.append(limit)
    with transaction.atomic(), connection.cursor() as cursor:
        # Walk the owed rows' partial index in id order and stop at `limit`. A run's rows
        # are planned and matched minutes before they are sent, before autovacuum has
        # counted them: on its old statistics the planner gathered every owed row of the
        # run and sorted them, for each batch (half a second a batch at a million).
        cursor.execute("SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off")
        cursor.execute(sql, params)
        return sorted(row[0] for row in cursor.fetchall())


P = ParamSpec("P")
T = TypeVar("T")


def reconnecting(write: Callable[P, T]) -> Callable[P, T]:
    """A holder's write that survives a lost database connection (PostgreSQL restarted
    or failed over, the connection killed): it is tried once more on a fresh connection.

    Without this a sender whose connection dies between two records fails at the next
    one, with messages the server took that nobody recorded: they went out a second time
    once its lease lapsed (in tests/test_send_faults.py, 86 of 2,000 digests). A second
    try is safe because these writes change only rows the writer still holds (`held`):
    one that did commit before the connection dropped finds nothing left to change."""

    @functools.wraps(write)
    def write_reconnecting(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return write(*args, **kwargs)
        except OperationalError:
            # In a transaction, its earlier work is lost too; a live connection was not lost.
            if connection.in_atomic_block or connection.is_usable():
                raise
            logger.warning("database connection lost; recording on a new one", exc_info=True)
            connection.close()
            return write(*args, **kwargs)

    return write_reconnecting


@reconnecting
def renew(owner: str) -> int:
    """Push the lease on; returns how many deliveries the owner still holds."""
    return Delivery.objects.filter(lease_owner=owner, status=Delivery.Status.SENDING).update(
        lease_until=timezone.now() + lease_length()
    )


def held(owner: str, ids: list[int]) -> QuerySet[Delivery]:
    """The owner's deliveries among `ids` that it still holds: outcomes are written only
    through this, so a sender whose lease lapsed cannot overwrite its successor's work."""
    return Delivery.objects.filter(
        id__in_ints=ints(ids), lease_owner=owner, status=Delivery.Status.SENDING
    )


def lapsed_release(*, now: dt.datetime | None = None) -> tuple[int, int]:
    """Give deliveries whose lease ran out back to the queue; give up on those claimed
    PAPERBOY_MAX_SEND_ATTEMPTS times. Returns (queued again, failed)."""
    now = now or timezone.now()
    lapsed = Delivery.objects.filter(status=Delivery.Status.SENDING).filter(
        # Rows claimed before leases existed have none: their claim time counts instead.
        Q(lease_until__lt=now) | Q(lease_until__isnull=True, claimed_at__lt=now - lease_length())
    )
    limit = settings.PAPERBOY_MAX_SEND_ATTEMPTS
    failed = 0
    for attempts in (
        lapsed.filter(attempts__gte=limit).values_list("attempts", flat=True).distinct()
    ):
        failed += lapsed.filter(attempts=attempts).update(
            status=Delivery.Status.FAILED,
            last_error=INTERRUPTED_TOO_OFTEN.format(n=attempts),
            lease_owner="",
            lease_until=None,
            next_attempt_at=None,
        )
    queued = lapsed.filter(attempts__lt=limit).update(
        status=Delivery.Status.QUEUED,
        last_error=INTERRUPTED,
        lease_owner="",
        lease_until=None,
        next_attempt_at=None,
    )
    return queued, failed
