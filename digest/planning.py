"""Plan who is owed a digest: an edition's deliveries, and each subscriber's next time.

Planning is idempotent: it inserts one Delivery per (edition, subscriber) and ignores
rows that exist, so running it twice, or from two schedulers at once, owes nobody a
second digest. Which papers each delivery gets is digest.matching's job.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import DateTimeField, F, Max, OuterRef, Q, QuerySet, Subquery, Value
from django.utils import timezone

from subscriptions.models import Subscriber
from subscriptions.schedule import Schedule

from .lookups import ints
from .models import Delivery, Edition, Paper
from .statistics import STATISTICS_AFTER_ROWS

logger = logging.getLogger(__name__)


def latest_stored_date() -> dt.date | None:
    """The latest listing day among the papers stored here (no request): the edition a
    preview is most like. `daily.latest_listing_date` asks Hugging Face instead."""
    latest: dt.date | None = Paper.objects.aggregate(latest=Max("batch_date"))["latest"]
    return latest


def due_frequencies(date: dt.date) -> list[str]:
    """Daily subscribers are due every day; weekly ones on the configured weekday."""
    due = [Subscriber.Frequency.DAILY.value]
    if date.isoweekday() == settings.PAPERBOY_WEEKLY_WEEKDAY:
        due.append(Subscriber.Frequency.WEEKLY.value)
    return due


def edition_plan(*, date: dt.date, subscriber_ids: Sequence[int] | None = None) -> Edition:
    """The replay of listing day `date`: a queued delivery for every active subscriber
    due on that day, whatever their hour (`run_daily --date`, the demo, evaluations).

    `subscriber_ids` narrows it to some subscribers (an evaluation runs its own subscribers
    through the same path without touching anyone else's digest).
    """
    edition, _ = Edition.objects.get_or_create(date=date, slot=None)
    now = timezone.now()
    due = Subscriber.objects.filter(
        status=Subscriber.Status.ACTIVE, frequency__in=due_frequencies(date)
    )
    if subscriber_ids is not None:
        due = due.filter(id__in=subscriber_ids)
    _insert_deliveries(edition, due, now)
    _mark_planned(edition, now)
    return edition


def _mark_planned(edition: Edition, now: dt.datetime) -> None:
    if edition.planned_at is None:
        Edition.objects.filter(pk=edition.pk, planned_at__isnull=True).update(planned_at=now)
        edition.refresh_from_db()


def run_plan(*, now: dt.datetime, subscriber_ids: Sequence[int] | None = None) -> Edition | None:
    """The run of `now`'s hour: a queued delivery for every active subscriber whose digest is
    owed by now (their `next_due_at` has come), covering the papers first seen since their
    previous digest's cutoff, up to `now`. Each planned subscriber's next time moves on.

    A run missed (workers down) is caught up by the next: a subscriber's time stays owed until
    a run plans it. Two runs at once plan a subscriber's time once (one delivery per subscriber and
    due time, and the rows are written in one transaction). Returns the run's edition, or
    None when no digest is owed (most hours: no edition is made for them).
    """
    readers = Subscriber.objects.filter(status=Subscriber.Status.ACTIVE)
    if subscriber_ids is not None:
        readers = readers.filter(id__in=subscriber_ids)
    schedules_fill(readers.filter(next_due_at__isnull=True), now=now)
    with transaction.atomic():
        due = readers.filter(next_due_at__lte=now)
        groups = _by_schedule(due.select_for_update())
        if not groups:
            return None
        edition = _run_edition(now.replace(minute=0, second=0, microsecond=0), now)
        _insert_deliveries(edition, due, now, windowed=True)
        schedules_advance(groups, now=now)
    _mark_planned(edition, now)
    return edition


def _run_edition(slot: dt.datetime, now: dt.datetime) -> Edition:
    try:
        with transaction.atomic():
            edition, _ = Edition.objects.get_or_create(
                slot=slot, defaults={"date": slot.date(), "cutoff": now}
            )
    except IntegrityError:  # a second scheduler made it at the same moment
        edition = Edition.objects.get(slot=slot)
    return edition


_SCHEDULE = ("time_zone", "send_hour", "frequency", "send_weekday")


def _by_schedule(readers: QuerySet[Subscriber]) -> dict[Schedule, list[int]]:
    """The ids of `readers` by schedule: a run's due subscribers (a twenty-fourth of everyone,
    found by the (status, next_due_at) index) share a few hundred schedules at most."""
    groups: dict[Schedule, list[int]] = defaultdict(list)
    for reader_id, *row in readers.order_by().values_list("id", *_SCHEDULE):
        zone, hour, frequency, weekday = row
        groups[Schedule(zone, hour, frequency, weekday)].append(reader_id)
    return groups


def _set_next_due(groups: dict[Schedule, list[int]], after: dt.datetime) -> None:
    for schedule, ids in groups.items():
        for start in range(0, len(ids), 5000):
            Subscriber.objects.filter(id__in_ints=ints(ids[start : start + 5000])).update(
                next_due_at=schedule.next_after(after)
            )


def schedules_fill(readers: QuerySet[Subscriber], *, now: dt.datetime) -> None:
    """Work out when subscribers without a next time (new, resumed, or who changed their
    hour) are next owed a digest: their first hour after the previous run (an hour ago),
    so a subscriber who confirmed at 06:59 gets the 07:00 digest and one who came at 07:30
    waits for tomorrow's."""
    _set_next_due(_by_schedule(readers), now - dt.timedelta(hours=1))


def schedules_advance(due: dict[Schedule, list[int]], *, now: dt.datetime) -> None:
    """Move the subscribers just planned on to their next time after `now`: one digest per
    subscriber per run, however many of their hours a long outage missed."""
    _set_next_due(due, now)


def _insert_deliveries(
    edition: Edition, due: QuerySet[Subscriber], now: dt.datetime, *, windowed: bool = False
) -> None:
    """One queued delivery per due subscriber, in a single INSERT … SELECT in the database.

    A hundred thousand subscribers would otherwise travel to Python and back as model
    instances. Rows that exist already (a second run, a second scheduler) are left alone.
    `windowed`: an hourly run's delivery, due at the subscriber's time and covering from their
    previous digest's cutoff (failed ones aside: their papers are owed still) to `now`.
    """
    meta = Delivery._meta
    quote = connection.ops.quote_name
    column = {f.name: str(f.column) for f in meta.concrete_fields}
    values: dict[str, Any] = {
        "edition": Value(edition.pk),
        "subscriber": F("id"),
        "topics": F("topics"),
        "status": Value(Delivery.Status.QUEUED.value),
        "skip_reason": Value(""),
        "message_id": Value(""),
        "attempts": Value(0),
        "last_error": Value(""),
        "created_at": Value(now, output_field=DateTimeField()),
    }
    if windowed:
        previous = (
            Delivery.objects.filter(subscriber=OuterRef("id"), covers_until__isnull=False)
            .exclude(status=Delivery.Status.FAILED)
            .order_by("-covers_until")
            .values("covers_until")[:1]
        )
        values |= {
            "due_at": F("next_due_at"),
            "covers_from": Subquery(previous, output_field=DateTimeField()),
            "covers_until": Value(now, output_field=DateTimeField()),
        }
    # In subscriber order, so deliveries are numbered (and later sent) in that order.
    source = due.order_by("id").annotate(**{f"new_{n}": v for n, v in values.items()})
    select, params = source.values_list(*(f"new_{n}" for n in values)).query.sql_with_params()
    columns = ", ".join(quote(column[n]) for n in values)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(meta.db_table)} ({columns}) {select} ON CONFLICT DO NOTHING",
            params,
        )
        if connection.vendor == "postgresql" and cursor.rowcount >= STATISTICS_AFTER_ROWS:
            # The run's matching and sending query these rows within minutes, before
            # autovacuum would count them: plans made on the old counts can be wrong
            # (statistics.py).
            cursor.execute(f"ANALYZE {quote(meta.db_table)}")


def ready_to_send(edition: Edition | None = None) -> QuerySet[Delivery]:
    """Queued deliveries with their papers chosen, whose retry time (if any) has come."""
    qs = Delivery.objects.filter(status=Delivery.Status.QUEUED, matched_at__isnull=False).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=timezone.now())
    )
    return qs.filter(edition=edition) if edition is not None else qs
