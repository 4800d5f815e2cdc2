"""Celery tasks: thin wrappers that take ids or dates and call the plain functions.

Celery on Redis may run a task twice or lose one whose worker died, so every task is safe
to repeat and the database rows say what is owed: `recover_stale_sends_task` re-queues
deliveries whose task went missing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from .daily import edition_prepare, run_prepare
from .planning import ready_to_send
from .sending import Outcome, deliveries_send, stale_sends_recover

# Below an hour, so a run held up past its hour does not lock the next one out.
RUN_LOCK_SECONDS = 50 * 60


def enqueue_sends(delivery_ids: Sequence[int]) -> int:
    """Fan the deliveries out to workers in chunks, once the rows are committed."""
    size = settings.PAPERBOY_SEND_CHUNK
    chunks = [list(delivery_ids[i : i + size]) for i in range(0, len(delivery_ids), size)]
    for chunk in chunks:
        transaction.on_commit(lambda c=chunk: send_deliveries_task.delay(c))  # type: ignore[misc]
    return len(chunks)


@shared_task(name="digest.tasks.run_daily_task")
def run_daily_task(date: str | None = None) -> dict[str, int]:
    """The beat's hourly job: scrape, plan and match what is owed now, then queue the
    sends. With `date`, the replay of that listing day for everyone instead."""
    now = timezone.now()
    # A second beat scheduler firing the same run finds the lock taken and stops; even
    # without it, the Edition and Delivery rows make the run idempotent.
    run = date or f"{now:%Y-%m-%dT%H}"
    if not cache.add(f"paperboy:run:{run}", "1", RUN_LOCK_SECONDS):
        return {"skipped_locked": 1}
    prepared = edition_prepare(date=dt.date.fromisoformat(date)) if date else run_prepare()
    if prepared.edition is None:
        return {"matched": 0, "chunks": 0}
    ids = list(ready_to_send(prepared.edition).values_list("id", flat=True))
    return {"matched": prepared.matching.matched, "chunks": enqueue_sends(ids)}


@shared_task(name="digest.tasks.send_deliveries_task")
def send_deliveries_task(delivery_ids: list[int]) -> dict[str, int]:
    batch = deliveries_send(delivery_ids=delivery_ids)
    for result in batch.results:
        if result.outcome is Outcome.RETRY:
            send_deliveries_task.apply_async(([result.delivery_id],), countdown=result.retry_in)
    return {outcome.value: batch.count(outcome) for outcome in Outcome}


@shared_task(name="digest.tasks.recover_stale_sends_task")
def recover_stale_sends_task() -> dict[str, int]:
    """Every few minutes: settle interrupted sends, and re-queue owed deliveries whose
    task was lost (queued and due, but not picked up within a few minutes)."""
    recovered = stale_sends_recover()
    cutoff = timezone.now() - dt.timedelta(minutes=10)
    owed = list(
        ready_to_send()
        .filter(created_at__lt=cutoff)
        .exclude(next_attempt_at__gt=cutoff)
        .values_list("id", flat=True)[:10_000]
    )
    with transaction.atomic():
        chunks = enqueue_sends(owed)
    return {"recovered": recovered, "requeued": len(owed), "chunks": chunks}
