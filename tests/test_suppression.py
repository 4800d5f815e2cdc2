"""What a bounce, a complaint or an ESP unsubscribe does to a subscriber (the policy)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from digest.daily import edition_prepare, edition_send
from digest.mail.sending import SKIP_LEFT
from digest.models import Delivery, Paper
from subscriptions.models import EmailEvent, Subscriber
from subscriptions.services import subscriber_add, subscriber_suppress, subscriber_unsuppress
from subscriptions.suppression import (
    NO_SUCH_SUBSCRIBER,
    Action,
    bounce_is_soft,
    email_event_process,
    email_events_process_pending,
    event_decide,
    smtp_status_class,
)
from tests.conftest import EDITION_DATE

# --- The policy on its own: realistic events as Anymail normalises them ---------------

GMAIL_NO_SUCH_USER = (
    "smtp;550 5.1.1 The email account that you tried to reach does not exist. Please try "
    "double-checking the recipient's email address for typos or unnecessary spaces."
)
GMAIL_OVER_QUOTA = (
    "452 4.2.2 The email account that you tried to reach is over quota. Please direct the "
    "recipient to https://support.google.com/mail/?p=OverQuotaTemp"
)
POSTMARK_HARD = (
    "HardBounce: The server was unable to deliver your message "
    "(ex: unknown user, mailbox not found)."
)
POSTMARK_SOFT = (
    "SoftBounce: The server could not temporarily deliver your message "
    "(ex: Message is delayed due to network troubles)."
)

HARD_BOUNCES = {
    "postmark hard bounce, gmail 5.1.1": ("bounced", POSTMARK_HARD, GMAIL_NO_SUCH_USER),
    "ses permanent, user unknown": (
        "bounced",
        "Permanent: General",
        "smtp; 550 5.1.1 user unknown",
    ),
    "ses permanent, no text from the server": ("bounced", "Permanent: NoEmail", ""),
    "mailgun permanent failure": (
        "bounced",
        "",
        "550 5.1.1 The email account that you tried to reach does not exist.",
    ),
    "outlook mailbox unavailable": (
        "bounced",
        "",
        "550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302).",
    ),
    "yahoo, basic code only": (
        "bounced",
        "",
        "554 delivery error: dd This user doesn't have a yahoo.com account "
        "(carol@yahoo.com) [0] - mta1047.mail.ne1.yahoo.com",
    ),
    "an IP that looks like 4.4.7 does not make it soft": (
        "bounced",
        "",
        "Host 10.4.4.7 said: 550 5.1.1 <carol@example.org>: Recipient address rejected",
    ),
    "postmark suppression after a hard bounce, no text": ("bounced", "HardBounce", ""),
    "no detail at all": ("bounced", "", ""),
    "invalid address": ("invalid", "", ""),
}

SOFT_BOUNCES = {
    "gmail over quota, 452 4.2.2": ("bounced", "", GMAIL_OVER_QUOTA),
    "a 5.2.2 mailbox full is still a full mailbox": ("bounced", "", "552 5.2.2 Mailbox full"),
    "expired after retries, enhanced 4.4.7": (
        "other",
        "",
        "4.4.7 Delivery time expired: message too old, retried for 24 hours",
    ),
    "greylisted": ("bounced", "", "451 4.7.1 Greylisting in action, please come back later"),
    "words only: try again later": (
        "bounced",
        "",
        "Mail server temporarily rejected message. Try again later.",
    ),
    "words only: quota": ("bounced", "", "Recipient exceeded their storage quota"),
    "timed out": ("timed_out", "", ""),
    "ses transient, no text from the server": ("bounced", "Transient: General", ""),
    "ses transient mailbox full": ("bounced", "Transient: MailboxFull", ""),
    "ses undetermined": ("bounced", "Undetermined: Undetermined", ""),
    "postmark soft bounce, no details": ("bounced", POSTMARK_SOFT, ""),
    "postmark soft bounce with a 4xx": ("bounced", POSTMARK_SOFT, "smtp;421 4.4.2 timeout"),
}


@pytest.mark.parametrize(
    ("reject_reason", "description", "mta_response"),
    list(HARD_BOUNCES.values()),
    ids=list(HARD_BOUNCES),
)
def test_hard_bounces_suppress(reject_reason: str, description: str, mta_response: str) -> None:
    assert not bounce_is_soft(
        reject_reason=reject_reason, description=description, mta_response=mta_response
    )
    decision = event_decide(
        event_type="bounced",
        reject_reason=reject_reason,
        description=description,
        mta_response=mta_response,
    )
    assert decision.action is Action.SUPPRESS
    assert decision.why == "hard bounce"


@pytest.mark.parametrize(
    ("reject_reason", "description", "mta_response"),
    list(SOFT_BOUNCES.values()),
    ids=list(SOFT_BOUNCES),
)
def test_soft_bounces_are_counted(reject_reason: str, description: str, mta_response: str) -> None:
    assert bounce_is_soft(
        reject_reason=reject_reason, description=description, mta_response=mta_response
    )
    decision = event_decide(
        event_type="bounced",
        reject_reason=reject_reason,
        description=description,
        mta_response=mta_response,
    )
    assert decision.action is Action.SOFT_BOUNCE


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("smtp;550 5.1.1 user unknown", "5"),
        ("452 4.2.2 mailbox full", "4"),
        ("4.4.7 Delivery expired", "4"),
        ("550-5.7.26 Unauthenticated email is not accepted", "5"),
        ("smtp; 421 Service not available", "4"),
        ("250 2.0.0 OK 1773126072 a1si123456qkb.12 - gsmtp", "2"),
        ("Sent from 192.168.4.4 in 450 ms", ""),
        ("", ""),
    ],
)
def test_smtp_status_is_read_from_codes_where_servers_put_them(text: str, status: str) -> None:
    assert smtp_status_class(text) == status


@pytest.mark.parametrize(
    ("event", "action"),
    [
        ({"event_type": "complained", "reject_reason": "spam"}, Action.SUPPRESS),
        ({"event_type": "complained", "description": "abuse"}, Action.SUPPRESS),
        ({"event_type": "unsubscribed", "reject_reason": "unsubscribed"}, Action.UNSUBSCRIBE),
        ({"event_type": "delivered", "mta_response": "250 2.0.0 OK"}, Action.DELIVERED),
        ({"event_type": "rejected", "reject_reason": "invalid"}, Action.SUPPRESS),
        ({"event_type": "rejected", "reject_reason": "bounced"}, Action.SUPPRESS),
        ({"event_type": "rejected", "reject_reason": "spam"}, Action.SUPPRESS),
        ({"event_type": "rejected", "reject_reason": "unsubscribed"}, Action.UNSUBSCRIBE),
        ({"event_type": "rejected", "reject_reason": "timed_out"}, Action.SOFT_BOUNCE),
        # A block or a DMARC failure is about our mail, not the subscriber's address.
        ({"event_type": "rejected", "reject_reason": "blocked"}, Action.IGNORE),
        ({"event_type": "rejected", "reject_reason": "other"}, Action.IGNORE),
        # The ESP retries a deferral itself; a failure to send is our problem.
        ({"event_type": "deferred", "mta_response": "451 4.3.0 try later"}, Action.IGNORE),
        ({"event_type": "failed", "description": "TemplateRenderingFailed"}, Action.IGNORE),
        ({"event_type": "subscribed"}, Action.IGNORE),
    ],
)
def test_every_other_event(event: dict[str, str], action: Action) -> None:
    assert event_decide(**event).action is action


# --- Applying it to subscribers --------------------------------------------------------

StoreEvent = Callable[..., EmailEvent]


@pytest.fixture
def store_event(db: None) -> StoreEvent:
    """An event as the webhook receiver stores it, not yet processed."""
    counter = iter(range(1, 10_000))

    def store(recipient: str, event_type: str, **fields: Any) -> EmailEvent:
        fields.setdefault("esp_name", "Postmark")
        return EmailEvent.objects.create(
            event_id=f"Postmark:{next(counter)}",
            event_type=event_type,
            recipient=recipient,
            **fields,
        )

    return store


def process(event: EmailEvent) -> str:
    outcome = email_event_process(event_id=event.pk)
    assert outcome is not None
    event.refresh_from_db()
    assert event.outcome == outcome
    assert event.processed_at is not None
    return outcome


def test_a_hard_bounce_suppresses_with_the_servers_words(
    alice: Subscriber, bob: Subscriber, store_event: StoreEvent
) -> None:
    event = store_event(
        "alice@example.org",
        "bounced",
        reject_reason="bounced",
        description=POSTMARK_HARD,
        mta_response="smtp;550 5.1.1 user unknown",
    )

    assert process(event) == "suppressed: hard bounce (550 5.1.1 user unknown)"

    alice.refresh_from_db()
    assert alice.status == Subscriber.Status.SUPPRESSED
    assert alice.suppressed_reason == "hard bounce (550 5.1.1 user unknown)"
    assert alice.suppressed_at is not None
    assert event.subscriber == alice
    bob.refresh_from_db()
    assert bob.status == Subscriber.Status.ACTIVE


def test_processing_an_event_twice_applies_it_once(
    alice: Subscriber, store_event: StoreEvent
) -> None:
    event = store_event("alice@example.org", "bounced", mta_response=GMAIL_OVER_QUOTA)

    assert process(event).startswith("soft bounce 1 of 3")
    assert email_event_process(event_id=event.pk) is None  # Celery ran the task again

    alice.refresh_from_db()
    assert alice.soft_bounces == 1


def test_soft_bounces_suppress_at_the_limit_and_a_delivery_resets_them(
    alice: Subscriber, store_event: StoreEvent
) -> None:
    def full_mailbox() -> str:
        return process(store_event("alice@example.org", "bounced", mta_response=GMAIL_OVER_QUOTA))

    first = full_mailbox()
    assert first.startswith(
        "soft bounce 1 of 3 (452 4.2.2 The email account that you tried to reach is over quota."
    )
    assert first.endswith("…)")  # the server's words, trimmed to fit
    assert full_mailbox().startswith("soft bounce 2 of 3")
    assert process(store_event("alice@example.org", "delivered")) == (
        "delivered: soft bounce count reset (was 2)"
    )
    alice.refresh_from_db()
    assert (alice.status, alice.soft_bounces) == (Subscriber.Status.ACTIVE, 0)

    assert full_mailbox().startswith("soft bounce 1 of 3")
    assert full_mailbox().startswith("soft bounce 2 of 3")
    assert full_mailbox().startswith("suppressed: soft bounce 3 of 3 (452 4.2.2")

    alice.refresh_from_db()
    assert alice.status == Subscriber.Status.SUPPRESSED
    assert alice.suppressed_reason.startswith("3 soft bounces: soft bounce 3 of 3 (452 4.2.2")
    assert process(store_event("alice@example.org", "delivered")).startswith("delivered")
    alice.refresh_from_db()
    assert alice.status == Subscriber.Status.SUPPRESSED  # a delivery never lifts it


def test_the_soft_bounce_limit_is_a_setting(
    settings: Any, alice: Subscriber, store_event: StoreEvent
) -> None:
    settings.PAPERBOY_SOFT_BOUNCE_LIMIT = 1
    event = store_event("alice@example.org", "bounced", reject_reason="timed_out")

    assert process(event) == "suppressed: soft bounce 1 of 1"


def test_a_complaint_suppresses_even_after_unsubscribing(
    make_subscriber: Callable[..., Subscriber], store_event: StoreEvent
) -> None:
    dora = make_subscriber(
        "dora@example.org",
        ["agents"],
        status=Subscriber.Status.UNSUBSCRIBED,
        unsubscribed_at=timezone.now(),
    )
    event = store_event("dora@example.org", "complained", reject_reason="spam")

    assert process(event) == "suppressed: spam complaint"
    dora.refresh_from_db()
    assert dora.status == Subscriber.Status.SUPPRESSED


def test_an_esp_unsubscribe_unsubscribes(carol: Subscriber, store_event: StoreEvent) -> None:
    event = store_event("Carol@Example.org", "unsubscribed", reject_reason="unsubscribed")

    assert process(event) == "unsubscribed"
    carol.refresh_from_db()
    assert carol.status == Subscriber.Status.UNSUBSCRIBED
    assert carol.unsubscribed_at is not None


def test_a_suppression_keeps_its_first_reason(alice: Subscriber, store_event: StoreEvent) -> None:
    process(store_event("alice@example.org", "complained", reject_reason="spam"))

    later = store_event("alice@example.org", "bounced", mta_response="550 5.1.1 user unknown")
    assert process(later) == ("ignored: already suppressed; hard bounce (550 5.1.1 user unknown)")
    alice.refresh_from_db()
    assert alice.suppressed_reason == "spam complaint"


def test_events_that_change_nothing_say_so(alice: Subscriber, store_event: StoreEvent) -> None:
    deferred = store_event("alice@example.org", "deferred", mta_response="451 4.3.0 try later")
    blocked = store_event(
        "alice@example.org",
        "rejected",
        reject_reason="blocked",
        description="DMARCPolicy",
    )

    assert process(deferred) == "ignored: deferred (451 4.3.0 try later)"
    assert process(blocked) == "ignored: rejected (blocked) (DMARCPolicy)"
    assert process(store_event("alice@example.org", "delivered")) == "ignored: delivered"
    alice.refresh_from_db()
    assert (alice.status, alice.soft_bounces) == (Subscriber.Status.ACTIVE, 0)


def test_an_unknown_recipient_changes_nothing(alice: Subscriber, store_event: StoreEvent) -> None:
    event = store_event("mallory@example.net", "complained", reject_reason="spam")

    assert process(event) == NO_SUCH_SUBSCRIBER
    assert event.subscriber is None
    alice.refresh_from_db()
    assert alice.status == Subscriber.Status.ACTIVE


def test_events_whose_task_was_lost_are_processed_by_the_sweep(
    alice: Subscriber, store_event: StoreEvent
) -> None:
    lost = store_event(
        "alice@example.org",
        "complained",
        received_at=timezone.now() - dt.timedelta(hours=1),
    )
    just_in = store_event("bob@example.org", "complained")  # its task is still on its way

    assert email_events_process_pending() == 1
    lost.refresh_from_db()
    just_in.refresh_from_db()
    assert lost.outcome == "suppressed: spam complaint"
    assert just_in.processed_at is None


# --- The operator's functions, and what suppression means for digests ----------------


def test_suppress_and_unsuppress(alice: Subscriber) -> None:
    subscriber_suppress(subscriber=alice, reason="asked by phone to stop all mail")
    assert alice.status == Subscriber.Status.SUPPRESSED
    assert alice.suppressed_reason == "asked by phone to stop all mail"
    first_time = alice.suppressed_at

    subscriber_suppress(subscriber=alice, reason="again")
    assert (alice.suppressed_at, alice.suppressed_reason) == (
        first_time,
        "asked by phone to stop all mail",
    )

    Subscriber.objects.filter(pk=alice.pk).update(soft_bounces=2, confirmed_at=timezone.now())
    subscriber_unsuppress(subscriber=alice)
    assert alice.status == Subscriber.Status.ACTIVE
    assert (alice.suppressed_at, alice.suppressed_reason, alice.soft_bounces) == (None, "", 0)


def test_unsuppress_does_not_bring_back_someone_who_had_left(
    make_subscriber: Callable[..., Subscriber],
) -> None:
    confirmed = timezone.now() - dt.timedelta(days=30)
    erin = make_subscriber(
        "erin@example.org",
        ["robotics"],
        status=Subscriber.Status.UNSUBSCRIBED,
        confirmed_at=confirmed,
        unsubscribed_at=confirmed + dt.timedelta(days=3),
    )
    subscriber_suppress(subscriber=erin, reason="spam complaint")

    subscriber_unsuppress(subscriber=erin)

    assert erin.status == Subscriber.Status.UNSUBSCRIBED


def test_a_suppressed_address_stays_suppressed_when_added_again(alice: Subscriber) -> None:
    subscriber_suppress(subscriber=alice, reason="hard bounce (550 5.1.1 user unknown)")

    again, created = subscriber_add(email="ALICE@example.org", topics=["diffusion"])

    assert not created
    assert again.status == Subscriber.Status.SUPPRESSED


@pytest.fixture
def diffusion_paper(make_paper: Callable[..., Paper]) -> Paper:
    return make_paper("Video Diffusion at Scale", "A diffusion model for video generation.")


def test_a_suppressed_subscriber_is_not_planned_a_digest(
    alice: Subscriber, bob: Subscriber, diffusion_paper: Paper
) -> None:
    subscriber_suppress(subscriber=alice, reason="spam complaint")

    edition = edition_prepare(date=EDITION_DATE, scrape=False).edition

    assert not Delivery.objects.filter(edition=edition, subscriber=alice).exists()
    assert Delivery.objects.filter(edition=edition, subscriber=bob).exists()


def test_a_digest_planned_before_the_bounce_is_skipped_at_send(
    alice: Subscriber, diffusion_paper: Paper, store_event: StoreEvent
) -> None:
    edition = edition_prepare(date=EDITION_DATE, scrape=False).edition
    planned = Delivery.objects.get(edition=edition, subscriber=alice)
    assert planned.status == Delivery.Status.QUEUED

    process(store_event("alice@example.org", "bounced", mta_response="550 5.1.1 user unknown"))
    edition_send(edition=edition)

    planned.refresh_from_db()
    assert (planned.status, planned.skip_reason) == (Delivery.Status.SKIPPED, SKIP_LEFT)
    assert planned.sent_at is None
