"""Queueing work for the workers, once the caller's rows are committed: the services that
start tasks, so that the admin, the beat's tasks and benchmarks start them the same way."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from .matching import edition_chunks
from .models import Edition


def start_senders(*, edition_id: int | None = None, count: int | None = None) -> int:
    """Queue `count` drains (PAPERBOY_SEND_TASKS) once the caller's rows are committed;
    each takes batches until nothing is owed, so more drains only means more hands."""
    from . import tasks  # which imports this module to queue its own follow-ups

    count = count or settings.PAPERBOY_SEND_TASKS
    for _ in range(count):
        transaction.on_commit(lambda: tasks.send_owed_task.delay(edition_id))
    return count


def start_matchers(edition: Edition) -> int:
    """Queue the edition's unmatched deliveries as chunk tasks, for every worker process
    to take a share (once the caller's rows are committed)."""
    from . import tasks  # which imports this module to queue its own follow-ups

    chunks = edition_chunks(edition, processes=settings.PAPERBOY_MATCH_TASK_PROCESSES)
    for chunk in chunks:
        transaction.on_commit(lambda c=chunk: tasks.match_chunk_task.delay(edition.id, c))  # type: ignore[misc]
    return len(chunks)
