"""Celery tasks: thin wrappers that take ids or dates and call the plain functions.

Celery on Redis may run a task twice or lose one whose worker died, so no task carries
what is owed: the Delivery rows do. `send_owed_task` drains whatever is owed from the
database, under leases (digest/leases.py); the beat's `sweep_sends_task` frees the
leases of dead senders and starts drains whenever something is owed, so a lost task
costs a sweep period, not Redis's visibility timeout.
"""

from __future__ import annotations

import datetime as dt
import time

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from .daily import edition_prepare, run_prepare
from .leases import lapsed_release, owed_now
from .sending import owed_send

# Below an hour, so a run held up past its hour does not lock the next one out.
RUN_LOCK_SECONDS = 50 * 60


def start_senders(*, edition_id: int | None = None, count: int | None = None) -> int:
    """Queue `count` drains (PAPERBOY_SEND_TASKS) once the caller's rows are committed;
    each takes batches until nothing is owed, so more drains only means more hands."""
    count = count or settings.PAPERBOY_SEND_TASKS
    for _ in range(count):
        transaction.on_commit(lambda: send_owed_task.delay(edition_id))
    return count


@shared_task(name="digest.tasks.run_daily_task")
def run_daily_task(date: str | None = None) -> dict[str, int]:
    """The beat's hourly job: scrape, plan and match what is owed now, then start the
    senders. With `date`, the replay of that listing day for everyone instead."""
    now = timezone.now()
    # A second beat scheduler firing the same run finds the lock taken and stops; even
    # without it, the Edition and Delivery rows make the run idempotent.
    run = date or f"{now:%Y-%m-%dT%H}"
    if not cache.add(f"paperboy:run:{run}", "1", RUN_LOCK_SECONDS):
        return {"skipped_locked": 1}
    prepared = edition_prepare(date=dt.date.fromisoformat(date)) if date else run_prepare()
    if prepared.edition is None:
        return {"matched": 0, "senders": 0}
    return {"matched": prepared.matching.matched, "senders": start_senders()}


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
    senders = 0
    if owed_now().exists():
        with transaction.atomic():
            senders = start_senders()
    return {"requeued": queued, "failed": failed, "senders": senders}
