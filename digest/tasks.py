"""Celery tasks: thin wrappers that take ids or dates and call the plain functions.

Celery on Redis may run a task twice or lose one whose worker died, so no task carries
what is owed: the Delivery rows do. An hourly run plans, then queues its matching in
chunks (`match_chunk_task`) so that every worker process takes a share. `send_owed_task`
drains whatever is owed from the database, under leases (digest/mail/leases.py); the beat's
`sweep_sends_task` frees the leases of dead senders, starts drains whenever something is
owed and re-queues matching lost with its worker, so a lost task costs a sweep period,
not Redis's visibility timeout.
"""

from __future__ import annotations

import datetime as dt
import time

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from .daily import edition_prepare, run_prepare
from .mail import lapsed_release, owed_now, owed_send
from .matching import chunk_match
from .models import Delivery, Edition
from .queueing import start_matchers, start_senders

# Below an hour, so a run held up past its hour does not lock the next one out.
RUN_LOCK_SECONDS = 50 * 60


@shared_task(name="digest.tasks.run_daily_task")
def run_daily_task(date: str | None = None) -> dict[str, int]:
    """The beat's hourly job: scrape and plan what is owed now, then queue its matching
    in chunks; each matched chunk starts a sender. With `date`, the replay of that
    listing day for everyone instead."""
    now = timezone.now()
    # A second beat scheduler firing the same run finds the lock taken and stops; even
    # without it, the Edition and Delivery rows make the run idempotent.
    run = date or f"{now:%Y-%m-%dT%H}"
    if not cache.add(f"paperboy:run:{run}", "1", RUN_LOCK_SECONDS):
        return {"skipped_locked": 1}
    edition: Edition | None
    if date:
        edition = edition_prepare(date=dt.date.fromisoformat(date), match=False).edition
    else:
        edition = run_prepare(match=False).edition
    if edition is None:
        return {"match_chunks": 0}
    with transaction.atomic():
        return {"match_chunks": start_matchers(edition)}


@shared_task(name="digest.tasks.match_chunk_task")
def match_chunk_task(edition_id: int, delivery_ids: list[int]) -> dict[str, int]:
    """Match one chunk of an edition's deliveries, then start a sender for them."""
    edition = Edition.objects.filter(id=edition_id).first()
    if edition is None:  # deleted meanwhile: nothing is owed
        return {"matched": 0}
    summary = chunk_match(edition=edition, delivery_ids=delivery_ids)
    send_owed_task.delay(edition_id)
    return {"matched": summary.matched, "skipped": summary.skipped_total}


@shared_task(name="digest.tasks.send_owed_task")
def send_owed_task(edition_id: int | None = None) -> dict[str, int]:
    """Send what is owed, batch by batch. After PAPERBOY_SEND_TASK_SECONDS it queues its
    own successor and returns, so a long run does not hold one task for an hour."""
    until = time.monotonic() + settings.PAPERBOY_SEND_TASK_SECONDS
    result = owed_send(edition_id=edition_id, until=until)
    if time.monotonic() >= until and owed_now(edition_id=edition_id).exists():
        send_owed_task.delay(edition_id)
    return {outcome.value: n for outcome, n in result.counts.items()}


@shared_task(name="digest.tasks.sweep_sends_task")
def sweep_sends_task() -> dict[str, int]:
    """Every PAPERBOY_SEND_SWEEP_SECONDS: free the leases of senders that died (their
    deliveries are queued again), and start senders if anything is owed — retries whose
    time has come, or deliveries whose drain was lost with its worker."""
    queued, failed = lapsed_release()
    senders = matchers = 0
    with transaction.atomic():
        if owed_now().exists():
            senders = start_senders()
        for edition in editions_left_unmatched():
            matchers += start_matchers(edition)
    return {"requeued": queued, "failed": failed, "senders": senders, "match_chunks": matchers}


def editions_left_unmatched() -> QuerySet[Edition]:
    """Editions with deliveries still unmatched well after they were planned: a matching
    task was lost with its worker. (Matching them again is safe: see chunk_match.)"""
    cutoff = timezone.now() - dt.timedelta(seconds=settings.PAPERBOY_MATCH_LOST_SECONDS)
    stale = Delivery.objects.filter(
        status=Delivery.Status.QUEUED, matched_at__isnull=True, created_at__lt=cutoff
    )
    return Edition.objects.filter(id__in=stale.values("edition_id"))
