"""Celery tasks for the pages: thin, ids in, the work done by plain functions.

The emails a person asks for on a page (confirmation, settings link, export or delete
link) are sent here rather than in the request, so that every page answers at once and in
the same time whatever the address; they are queued with `transaction.on_commit`. With no
broker (the embedded mode) Celery runs them in-process, right after the commit.

The tasks keep the names they had when they lived in `subscriptions.tasks`: a name is
what a queued message carries, and a renamed task would leave messages queued before an
upgrade with no one to run them.
"""

from __future__ import annotations

from celery import shared_task

from .manage import manage_action_send, manage_link_send
from .signup import signup_email_send


@shared_task(name="subscriptions.tasks.send_signup_email_task")
def send_signup_email_task(subscriber_id: int) -> str:
    """The confirmation (or "already subscribed") email a signup or resend owes, if any."""
    return signup_email_send(subscriber_id=subscriber_id).value


@shared_task(name="subscriptions.tasks.send_manage_link_task")
def send_manage_link_task(email: str) -> str:
    """A fresh settings link, asked for on the expired-link page. Takes the address, not an
    id: the request does not look it up, so it answers alike for every address."""
    return manage_link_send(email=email).value


@shared_task(name="subscriptions.tasks.send_manage_action_task")
def send_manage_action_task(subscriber_id: int, action: str) -> str:
    """The link that confirms an export or a delete asked for on the manage page."""
    return manage_action_send(subscriber_id=subscriber_id, action=action).value
