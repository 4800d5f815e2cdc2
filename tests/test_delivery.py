"""Delivery: digests planned, matched and sent to a real SMTP server on loopback."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django.core.mail.backends import locmem
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.utils import timezone

from digest.daily import edition_counts, edition_prepare, edition_send
from digest.mail import leases
from digest.mail.leases import INTERRUPTED, lapsed_release
from digest.mail.sending import SKIP_LEFT, Outcome, SendResult, owed_send
from digest.matching import SKIP_NOTHING_MATCHED, edition_match
from digest.models import Delivery, DeliveryPaper, Edition, Paper
from digest.planning import edition_plan
from subscriptions.models import Subscriber
from subscriptions.services import subscriber_unsubscribe
from tests.conftest import EDITION_DATE
from tests.mail import html_of, text_of
from tests.smtp_server import UNAVAILABLE, Mailbox

pytestmark = pytest.mark.django_db


@pytest.fixture
def papers(make_paper: Callable[..., Paper]) -> dict[str, Paper]:
    return {
        "video": make_paper(
            "Consistent Video Generation with Diffusion Transformers",
            "We generate minute-long videos with a diffusion transformer.",
            upvotes=120,
            ai_summary="A diffusion transformer keeps long videos consistent.",
        ),
        "survey": make_paper(
            "A Survey of Diffusion Models",
            "We review diffusion models for images, audio and video.",
            upvotes=300,
        ),
        "rlhf": make_paper(
            "Reward Model Ensembles Make RLHF Robust",
            "Reinforcement learning from human feedback with several reward models.",
            upvotes=40,
        ),
    }


def prepare_and_send() -> Edition:
    prepared = edition_prepare(date=EDITION_DATE, scrape=False)
    edition_send(edition=prepared.edition)
    return prepared.edition


def owe(paper: Paper, readers: int) -> list[Subscriber]:
    """`readers` digests of `paper`, matched and owed, to reader0@… reader{n-1}@…"""
    edition = Edition.objects.create(date=EDITION_DATE)
    subscribers = Subscriber.objects.bulk_create(
        Subscriber(
            email=f"reader{n}@example.org",
            topics=["diffusion"],
            status=Subscriber.Status.ACTIVE,
        )
        for n in range(readers)
    )
    deliveries = Delivery.objects.bulk_create(
        Delivery(edition=edition, subscriber=s, matched_at=timezone.now()) for s in subscribers
    )
    DeliveryPaper.objects.bulk_create(
        DeliveryPaper(delivery=d, paper=paper, rank=1, reasons=[]) for d in deliveries
    )
    return subscribers


def test_each_reader_gets_their_papers_and_the_unmatched_reader_gets_nothing(
    smtp_server: Mailbox, alice: Subscriber, bob: Subscriber, carol: Subscriber, papers: dict
) -> None:
    edition = prepare_and_send()

    [to_alice] = smtp_server.to("alice@example.org")
    assert to_alice.get_content_type() == "multipart/alternative"
    text = text_of(to_alice)
    assert "Consistent Video Generation with Diffusion Transformers" in text
    # Alice excludes surveys, so the most upvoted diffusion paper is not hers.
    assert "A Survey of Diffusion Models" not in text
    assert "Reward Model Ensembles" not in text
    assert "Consistent Video Generation" in html_of(to_alice)
    assert to_alice["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert to_alice["List-Unsubscribe"].strip().startswith("<https://paperboy.example/unsubscribe/")
    assert to_alice["Auto-Submitted"] == "auto-generated"
    assert to_alice["Message-ID"]

    [to_bob] = smtp_server.to("bob@example.org")
    assert "Reward Model Ensembles Make RLHF Robust" in text_of(to_bob)

    assert smtp_server.to("carol@example.org") == []
    carol_delivery = Delivery.objects.get(edition=edition, subscriber=carol)
    assert carol_delivery.status == Delivery.Status.SKIPPED
    assert carol_delivery.skip_reason == SKIP_NOTHING_MATCHED

    sent = Delivery.objects.get(edition=edition, subscriber=alice)
    assert sent.status == Delivery.Status.SENT
    assert sent.message_id == to_alice["Message-ID"]
    assert [item.paper for item in sent.items.all()] == [papers["video"]]
    assert sent.items.get().reasons[0]["topic"] in ("diffusion", "video generation")


def test_running_the_cycle_twice_sends_once(
    smtp_server: Mailbox, alice: Subscriber, bob: Subscriber, papers: dict
) -> None:
    prepare_and_send()
    prepare_and_send()
    assert len(smtp_server.messages) == 2
    assert Delivery.objects.count() == 2
    assert edition_counts(Edition.objects.get())["sent"] == 2


def test_inactive_subscribers_are_not_planned(
    smtp_server: Mailbox, make_subscriber: Callable[..., Subscriber], papers: dict
) -> None:
    make_subscriber("pending@example.org", ["diffusion"], status=Subscriber.Status.PENDING)
    make_subscriber("gone@example.org", ["diffusion"], status=Subscriber.Status.UNSUBSCRIBED)
    make_subscriber("bounced@example.org", ["diffusion"], status=Subscriber.Status.SUPPRESSED)
    prepare_and_send()
    assert smtp_server.messages == []
    assert Delivery.objects.count() == 0


def test_an_unsubscribe_after_planning_stops_the_send(
    smtp_server: Mailbox, alice: Subscriber, papers: dict
) -> None:
    edition = edition_plan(date=EDITION_DATE)
    edition_match(edition=edition)
    subscriber_unsubscribe(subscriber=alice)
    edition_send(edition=edition)
    assert smtp_server.messages == []
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.skip_reason) == (Delivery.Status.SKIPPED, SKIP_LEFT)


def test_a_transient_smtp_error_is_retried_later_not_lost(
    smtp_server: Mailbox, alice: Subscriber, papers: dict
) -> None:
    smtp_server.refusals.append("451 4.3.0 Mailbox busy, try again later")
    edition = prepare_and_send()
    delivery = Delivery.objects.get(edition=edition, subscriber=alice)
    assert delivery.status == Delivery.Status.QUEUED
    assert delivery.attempts == 1
    assert "451" in delivery.last_error
    assert delivery.next_attempt_at is not None and delivery.next_attempt_at > timezone.now()

    # Not due yet: a run now leaves it waiting.
    edition_send(edition=edition)
    assert smtp_server.messages == []

    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    edition_send(edition=edition)
    assert len(smtp_server.to("alice@example.org")) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("sent", 2, "")


def test_a_permanent_smtp_error_is_recorded_as_failed(
    smtp_server: Mailbox, alice: Subscriber, papers: dict
) -> None:
    smtp_server.refusals.append("550 5.1.1 No such user here")
    edition = prepare_and_send()
    delivery = Delivery.objects.get(edition=edition, subscriber=alice)
    assert delivery.status == Delivery.Status.FAILED
    assert "550" in delivery.last_error and "No such user" in delivery.last_error


def test_retries_stop_after_the_last_attempt(
    settings: object, smtp_server: Mailbox, alice: Subscriber, papers: dict
) -> None:
    settings.PAPERBOY_MAX_SEND_ATTEMPTS = 2  # type: ignore[attr-defined]
    smtp_server.refusals.extend(["421 4.7.0 Try later"] * 2)
    edition = prepare_and_send()
    Delivery.objects.update(next_attempt_at=timezone.now())
    edition_send(edition=edition)
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.last_error.startswith("gave up after 2 attempts")


def test_the_smtp_server_being_down_keeps_the_digest_owed(
    settings: object, alice: Subscriber, papers: dict
) -> None:
    settings.EMAIL_BACKEND = "digest.mail.smtp.EmailBackend"  # type: ignore[attr-defined]
    settings.EMAIL_HOST = "127.0.0.1"  # type: ignore[attr-defined]
    settings.EMAIL_PORT = 9  # type: ignore[attr-defined]  # nothing listens on discard
    settings.EMAIL_TIMEOUT = 2  # type: ignore[attr-defined]
    prepare_and_send()
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.Status.QUEUED
    assert delivery.attempts == 1
    assert "Connection refused" in delivery.last_error or "Errno" in delivery.last_error


def test_only_one_worker_can_claim_a_delivery(alice: Subscriber, papers: dict) -> None:
    edition = edition_plan(date=EDITION_DATE)
    edition_match(edition=edition)
    delivery = Delivery.objects.get()
    first = leases.claim(10)
    assert first.ids == [delivery.id]
    assert leases.claim(10).ids == []
    delivery.refresh_from_db()
    assert (delivery.status, delivery.lease_owner) == (Delivery.Status.SENDING, first.owner)


def test_an_interrupted_send_is_sent_again_with_the_same_message_id(
    settings: object, smtp_server: Mailbox, alice: Subscriber, papers: dict
) -> None:
    edition = edition_plan(date=EDITION_DATE)
    edition_match(edition=edition)
    delivery = Delivery.objects.get()
    assert leases.claim(10).ids == [delivery.id]  # a worker claimed it, then died

    # Its lease has not run out: nobody else may take it yet.
    assert lapsed_release() == (0, 0)
    edition_send(edition=edition)
    assert smtp_server.messages == []

    Delivery.objects.update(lease_until=timezone.now() - dt.timedelta(seconds=1))
    assert lapsed_release() == (1, 0)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_error) == (Delivery.Status.QUEUED, INTERRUPTED)
    edition_send(edition=edition)
    [message] = smtp_server.to("alice@example.org")
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (Delivery.Status.SENT, 2)
    assert message["Message-ID"] == delivery.message_id == f"<digest-{delivery.id}@localhost>"


def test_a_delivery_whose_sender_keeps_dying_is_given_up(
    settings: object, smtp_server: Mailbox, alice: Subscriber, papers: dict
) -> None:
    settings.PAPERBOY_MAX_SEND_ATTEMPTS = 2  # type: ignore[attr-defined]
    edition = edition_plan(date=EDITION_DATE)
    edition_match(edition=edition)
    for expected in [(1, 0), (0, 1)]:
        assert len(leases.claim(10).ids) == 1
        Delivery.objects.update(lease_until=timezone.now() - dt.timedelta(seconds=1))
        assert lapsed_release() == expected
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.Status.FAILED
    assert "interrupted while sending 2 times" in delivery.last_error
    edition_send(edition=edition)
    assert smtp_server.messages == []


def test_a_paper_already_sent_is_never_sent_again(
    smtp_server: Mailbox, alice: Subscriber, papers: dict, make_paper: Callable[..., Paper]
) -> None:
    prepare_and_send()
    # The next day Hugging Face lists the same paper again, beside a new one.
    next_day = EDITION_DATE + dt.timedelta(days=1)
    Paper.objects.filter(pk=papers["video"].pk).update(batch_date=next_day)
    make_paper("Diffusion Policies for Robot Video Imitation", batch_date=next_day)
    edition = edition_plan(date=next_day)
    edition_match(edition=edition)
    edition_send(edition=edition)

    first, second = smtp_server.to("alice@example.org")
    assert "Consistent Video Generation" in text_of(first)
    assert "Consistent Video Generation" not in text_of(second)
    assert "Diffusion Policies for Robot Video Imitation" in text_of(second)


def test_weekly_readers_get_the_week_on_their_weekday(
    settings: object,
    smtp_server: Mailbox,
    make_subscriber: Callable[..., Subscriber],
    make_paper: Callable[..., Paper],
) -> None:
    settings.PAPERBOY_WEEKLY_WEEKDAY = EDITION_DATE.isoweekday()  # type: ignore[attr-defined]
    make_subscriber("dana@example.org", ["diffusion"], frequency=Subscriber.Frequency.WEEKLY)
    make_paper("Diffusion on Monday", batch_date=EDITION_DATE - dt.timedelta(days=5))
    make_paper("Diffusion on Tuesday", batch_date=EDITION_DATE)
    make_paper("Diffusion last month", batch_date=EDITION_DATE - dt.timedelta(days=30))
    prepare_and_send()
    [digest] = smtp_server.to("dana@example.org")
    text = text_of(digest)
    assert "Diffusion on Monday" in text and "Diffusion on Tuesday" in text
    assert "last month" not in text

    # The next day is another weekday: a weekly subscriber is not due.
    edition_plan(date=EDITION_DATE + dt.timedelta(days=1))
    assert Delivery.objects.count() == 1


def test_a_digest_remembers_the_topics_it_was_picked_for(
    smtp_server: Mailbox, alice: Subscriber, papers: dict
) -> None:
    from digest.mail import render_digest

    edition = prepare_and_send()
    alice.topics = ["speech recognition"]
    alice.save()
    copy = render_digest(delivery=Delivery.objects.get(edition=edition, subscriber=alice))
    assert "picked for your topics: diffusion" in copy.text
    assert "speech recognition" not in copy.text


def test_the_sweep_matches_and_sends_what_a_lost_task_left(
    smtp_server: Mailbox,
    alice: Subscriber,
    papers: dict,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    from digest.tasks import sweep_sends_task

    edition_plan(date=EDITION_DATE)  # planned; its matching task died with its worker
    assert sweep_sends_task()["match_chunks"] == 0  # too recent to call lost
    Delivery.objects.update(created_at=timezone.now() - dt.timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep_sends_task()["match_chunks"] == 1
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.Status.SENT
    assert len(smtp_server.to("alice@example.org")) == 1


@pytest.mark.django_db(transaction=True)
def test_a_database_connection_lost_mid_send_is_opened_again_to_record_the_sends(
    settings: Any, make_paper: Callable[..., Paper]
) -> None:
    """The sender's database connection dies between two records (PostgreSQL restarted
    or failed over, the connection killed): the sender records what it sent on a fresh
    connection and goes on, rather than dying with those digests unrecorded, to be sent a
    second time once its lease lapsed. (tests/test_send_faults.py: on a real worker.)"""
    if connection.vendor != "postgresql":
        pytest.skip("kills the connection with pg_terminate_backend, which is PostgreSQL's")
    settings.PAPERBOY_SEND_RECORD_EVERY = 5
    readers = owe(make_paper("Diffusion on a phone", "An abstract."), 12)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()

    def kill_the_senders_connection() -> None:
        other = connections.create_connection(DEFAULT_DB_ALIAS)
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
                for _ in range(100):  # until it is gone
                    cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
                    if cursor.fetchone()[0] == 0:
                        break
                    time.sleep(0.05)
        finally:
            other.close()

    class Backend(locmem.EmailBackend):
        def send_messages(self, messages: Any) -> int:
            sent = super().send_messages(messages)
            if len(mail.outbox) == 7:  # the 5th is recorded, the 10th not yet
                kill_the_senders_connection()
            return sent

    try:
        result = owed_send(connection=Backend())
    finally:
        connection.close_if_unusable_or_obsolete()  # a dead one would fail the teardown

    assert result.count(Outcome.SENT) == 12
    assert sorted(m.to[0] for m in mail.outbox) == sorted(r.email for r in readers)
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SENT}


def test_a_sender_failing_partway_sends_nothing_it_had_queued(
    settings: Any, smtp_server: Mailbox, make_paper: Callable[..., Paper]
) -> None:
    """An exception partway through a batch (here in the caller's progress callback; a
    database gone for good, a time limit): the messages rendered and waiting for a
    connection are not sent, since nobody would record them and they would go out again
    later. Only those already with the server go out: at most two per connection, one
    being sent and one sent and not yet read back. The rest are owed again, untouched."""
    connections = 2
    settings.PAPERBOY_SEND_CONNECTIONS = connections
    settings.PAPERBOY_SEND_RECORD_EVERY = 1
    smtp_server.delay_s = 0.2  # the renderer fills the queue while the server works
    owe(make_paper("Diffusion on a phone", "An abstract."), 30)

    def fail_at_the_first_sent(result: SendResult) -> None:
        if result.outcome == Outcome.SENT:
            raise RuntimeError("the sender fails here")

    with pytest.raises(RuntimeError, match="the sender fails here"):
        owed_send(on_progress=fail_at_the_first_sent)

    time.sleep(0.5)  # anything still going out would arrive meanwhile
    sent = Delivery.objects.filter(status=Delivery.Status.SENT).count()
    assert sent == 1
    assert sent <= len(smtp_server.messages) <= sent + 2 * connections  # not the queue's 16
    owed = Delivery.objects.filter(status=Delivery.Status.QUEUED, attempts=0, last_error="")
    assert owed.count() == 29


@pytest.mark.parametrize("stage", ["MAIL", "RCPT", "DATA"])
def test_a_421_at_any_stage_stops_the_batch_and_the_rest_stays_owed(
    stage: str, settings: Any, smtp_server: Mailbox, make_paper: Callable[..., Paper]
) -> None:
    """421 is the server going away, whichever command it answers: the batch stops at
    once, as when the connection is refused, and only the digest that met it counts an
    attempt; the others are owed again as they were."""
    settings.PAPERBOY_SEND_CONNECTIONS = 1  # one message at a time: the first meets the 421
    owe(make_paper("Diffusion on a phone", "An abstract."), 10)
    if stage == "MAIL":
        smtp_server.unavailable_for(60)
    elif stage == "RCPT":
        smtp_server.rcpt_refusals.append(UNAVAILABLE)
    else:
        smtp_server.refusals.append(UNAVAILABLE)

    result = owed_send()

    assert (result.total, result.count(Outcome.RETRY)) == (1, 1)
    assert smtp_server.messages == []
    [retried] = Delivery.objects.exclude(attempts=0)
    assert retried.status == Delivery.Status.QUEUED and retried.next_attempt_at is not None
    assert "421" in retried.last_error
    untouched = Delivery.objects.filter(
        status=Delivery.Status.QUEUED, attempts=0, last_error="", next_attempt_at=None
    )
    assert untouched.count() == 9


def test_a_refused_recipient_does_not_cost_the_connection(
    settings: Any, smtp_server: Mailbox, make_paper: Callable[..., Paper]
) -> None:
    """A 550 to RCPT refuses that subscriber, not the session: smtplib has sent RSET, and the
    connection goes on to the next message instead of connecting and greeting again."""
    connections = 2
    settings.PAPERBOY_SEND_CONNECTIONS = connections
    smtp_server.refuse_rcpt = re.compile(r"^<?reader1?[37]@")  # 3, 7, 13 and 17
    owe(make_paper("Diffusion on a phone", "An abstract."), 20)

    result = owed_send()

    assert (result.count(Outcome.SENT), result.count(Outcome.FAILED)) == (16, 4)
    assert len(smtp_server.messages) == 16
    failed = Delivery.objects.filter(status=Delivery.Status.FAILED)
    assert sorted(d.subscriber.email for d in failed) == [
        f"reader{n}@example.org" for n in (13, 17, 3, 7)
    ]
    assert all("550" in d.last_error for d in failed)
    assert len(smtp_server.sessions) <= connections  # one each, however many refusals
