"""Celery tasks for subscriptions: thin, ids in, the work done by plain functions.

The ESP's tracking events (bounces, complaints) are applied here. The emails a person
asks for on a page are sent by `pages.tasks`.
"""

from __future__ import annotations

from celery import shared_task

from .suppression import email_event_process, email_events_process_pending


@shared_task(name="subscriptions.tasks.process_email_event_task")
def process_email_event_task(event_id: int) -> str | None:
    """Apply one stored ESP tracking event; a second run finds it claimed and does nothing."""
    return email_event_process(event_id=event_id)


@shared_task(name="subscriptions.tasks.process_pending_email_events_task")
def process_pending_email_events_task() -> int:
    """From the beat: apply stored events whose task was lost."""
    return email_events_process_pending()
