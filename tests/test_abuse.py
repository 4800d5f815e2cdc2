"""Hostile input: what a stranger can and cannot do to someone else's address.

mallory has a script, many networks, dave's address, and a digest alice forwarded to her.
She cannot lock dave out of Paperboy, cannot tell from the signup page (or its timing)
whether an address subscribes, cannot replay the signup form, and cannot take or delete
alice's data with alice's manage link; and that link stops working after a while, when a
fresh one is only a request to alice's inbox away.

Emails here go through Django's test outbox (`mailoutbox`). Tasks run in the test's
process (tests/conftest.py), right after the request's transaction commits: a test that
needs to see the request finish before any email uses `django_capture_on_commit_callbacks`
or holds the task's `delay`.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
import time_machine
from django.core import mail, signing
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from digest.mail import render_digest_for
from pages import tasks
from pages.manage import MANAGE_LINK_PER_IP
from subscriptions.forms import form_stamp
from subscriptions.links import manage_url
from subscriptions.models import Subscriber
from subscriptions.tokens import CONFIRM_MAX_AGE, Purpose, make_token
from tests.conftest import EDITION_DATE

SITE = "https://paperboy.example"
DAVE = "dave@example.org"
ALICE = "alice@example.org"
T0 = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)
CONFIRM_LINK = re.compile(r"https://paperboy\.example(/confirm/\S+)")
MANAGE_LINK = re.compile(r"https://paperboy\.example(/manage/\S+)")
ACTION_LINK = re.compile(r"https://paperboy\.example(/your-data/\S+)")


def form_data(**changes: str) -> dict[str, str]:
    """What a person's browser posts: the form was shown a minute ago."""
    data = {
        "email": DAVE,
        "topics": "diffusion\nspeech recognition",
        "frequency": "daily",
        "max_papers": "10",
        "website": "",
        "started": form_stamp(now=time.time() - 60),
    }
    data.update(changes)
    return data


def link_in(message: mail.EmailMessage, pattern: re.Pattern[str]) -> str:
    found = pattern.search(str(message.body))
    assert found, message.body
    return found.group(1)


def to(outbox: list[Any], address: str) -> list[mail.EmailMessage]:
    return [m for m in outbox if m.to == [address]]


def page_of(response: Any) -> str:
    """A page as compared between addresses: the CSRF token differs on every render."""
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", response.content.decode())


def reloaded(subscriber: Subscriber) -> Subscriber:
    return Subscriber.objects.get(pk=subscriber.pk)


# --- A stranger cannot lock the owner out -----------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_mallory_cannot_lock_dave_out(mailoutbox: list[Any]) -> None:
    # Mallory signs dave up again and again, from many networks, with her own topics.
    for n in range(12):
        response = Client().post(
            "/", form_data(topics="crypto airdrops"), REMOTE_ADDR=f"198.51.100.{n}"
        )
        assert response.status_code == 302
        assert response["Location"] == "/signup/check-inbox"
    # Dave's inbox has one email, not twelve.
    [first] = to(mailoutbox, DAVE)
    assert first.subject == "Confirm your Paperboy subscription"

    # Dave, minutes later, signs up himself: not refused, and what he typed is kept.
    response = Client().post("/", form_data(), REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 302
    assert response["Location"] == "/signup/check-inbox"
    dave = Subscriber.objects.get(email=DAVE)
    assert dave.topics == ["diffusion", "speech recognition"]
    assert len(to(mailoutbox, DAVE)) == 1  # the one in his inbox is minutes old

    # The link in his inbox works, and confirms what he typed.
    confirm = link_in(first, CONFIRM_LINK)
    assert Client().post(confirm).status_code == 200
    dave = reloaded(dave)
    assert dave.status == Subscriber.Status.ACTIVE
    assert dave.topics == ["diffusion", "speech recognition"]


@pytest.mark.django_db(transaction=True)
def test_once_the_ten_minutes_pass_a_signup_sends_a_fresh_email(mailoutbox: list[Any]) -> None:
    for n in range(5):
        Client().post("/", form_data(), REMOTE_ADDR=f"198.51.100.{n}")
    assert len(mailoutbox) == 1
    Subscriber.objects.filter(email=DAVE).update(
        confirmation_sent_at=timezone.now() - dt.timedelta(minutes=11)
    )

    response = Client().post("/", form_data(), REMOTE_ADDR="203.0.113.7")

    assert response.status_code == 302
    assert len(to(mailoutbox, DAVE)) == 2
    Client().post(link_in(mailoutbox[-1], CONFIRM_LINK))
    assert Subscriber.objects.get(email=DAVE).status == Subscriber.Status.ACTIVE


# --- The same answer, after the same work, whatever the address -------------------------


def _statements(queries: list[dict[str, str]]) -> list[str]:
    """The SQL run, with its values blanked: what the database was asked to do."""
    shapes = []
    for query in queries:
        sql = re.sub(r"'(?:[^']|'')*'", "?", query["sql"])
        shapes.append(re.sub(r"\b\d+(\.\d+)?\b", "0", sql))
    return shapes


@pytest.mark.django_db(transaction=True)
def test_every_address_gets_the_same_answer_after_the_same_work(
    make_subscriber: Callable[..., Subscriber], mailoutbox: list[Any]
) -> None:
    make_subscriber("pending@example.org", ["a"], status=Subscriber.Status.PENDING)
    make_subscriber("active@example.org", ["a"])
    make_subscriber("paused@example.org", ["a"], status=Subscriber.Status.PAUSED)
    make_subscriber("left@example.org", ["a"], status=Subscriber.Status.UNSUBSCRIBED)
    make_subscriber("bounced@example.org", ["a"], status=Subscriber.Status.SUPPRESSED)
    addresses = {
        "new": "new@example.org",
        "pending": "pending@example.org",
        "active": "active@example.org",
        "paused": "paused@example.org",
        "unsubscribed": "left@example.org",
        "suppressed": "bounced@example.org",
    }
    answers, work, queued = {}, {}, {}
    with mock.patch.object(tasks.send_signup_email_task, "delay") as delay:
        for n, (state, address) in enumerate(addresses.items()):
            browser = Client()
            delay.reset_mock()
            with CaptureQueriesContext(connection) as queries:
                response = browser.post("/", form_data(email=address), REMOTE_ADDR=f"192.0.2.{n}")
            work[state] = _statements(queries.captured_queries)
            queued[state] = delay.call_count
            follow = browser.get(response["Location"])
            answers[state] = (
                response.status_code,
                response["Location"],
                follow.status_code,
                page_of(follow).replace(address, "ADDRESS"),
            )

    assert len(set(answers.values())) == 1, answers
    assert answers["new"][:3] == (302, "/signup/check-inbox", 200)
    # The same statements (one insert that may do nothing, one update that may match
    # nothing, one read, and the session) for every state, and one task queued...
    assert all(w == work["new"] for w in work.values()), work
    assert queued == dict.fromkeys(addresses, 1)
    # ...and no email sent while the page was being made.
    assert mailoutbox == []


@pytest.mark.django_db
def test_the_confirmation_email_is_queued_not_sent_in_the_request(
    client: Client,
    mailoutbox: list[Any],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post("/", form_data(), REMOTE_ADDR="203.0.113.7")

    # The answer is made, the row is there, and nothing has been sent yet.
    assert response.status_code == 302
    dave = Subscriber.objects.get(email=DAVE)
    assert dave.status == Subscriber.Status.PENDING
    assert mailoutbox == []
    # Once the transaction commits, one task is queued with dave's id only...
    [queue] = callbacks
    with mock.patch.object(tasks.send_signup_email_task, "delay") as delay:
        queue()
    delay.assert_called_once_with(dave.pk)
    assert mailoutbox == []
    # ...and the worker sends the email.
    assert tasks.send_signup_email_task.delay(dave.pk).get() == "confirmation sent"
    [message] = mailoutbox
    assert message.to == [DAVE]
    assert message.subject == "Confirm your Paperboy subscription"


# --- The form's stamp is good once ------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_form_stamp_is_good_for_one_signup(
    client: Client, mailoutbox: list[Any], settings: Any
) -> None:
    page = form_data()
    assert client.post("/", page, REMOTE_ADDR="203.0.113.7").status_code == 302

    # The same page again (Back and Subscribe), or a bot replaying it with other addresses.
    for address in (DAVE, "victim1@example.org", "victim2@example.org"):
        replay = client.post("/", {**page, "email": address}, REMOTE_ADDR="203.0.113.7")
        assert replay.status_code == 200
        shown = replay.content.decode()
        assert (
            '<div class="alert" role="alert">This form was already sent. We’ve refreshed it: '
            "check your details and press Subscribe again.</div>"
        ) in shown
        assert f'value="{address}"' in shown  # what was typed stays
    assert list(Subscriber.objects.values_list("email", flat=True)) == [DAVE]
    assert len(mailoutbox) == 1

    # The page it shows carries a fresh stamp, good for one more signup.
    fresh = re.search(r'name="started" value="([^"]+)"', shown)
    assert fresh and fresh.group(1) != page["started"]
    settings.PAPERBOY_SIGNUP_MIN_SECONDS = 0  # sent back at once, in this test
    again = client.post("/", {**page, "email": "erin@example.org", "started": fresh.group(1)})
    assert again.status_code == 302
    assert Subscriber.objects.filter(email="erin@example.org").exists()


@pytest.mark.django_db(transaction=True)
def test_a_mistake_does_not_use_the_stamp_and_an_old_page_is_refreshed(client: Client) -> None:
    page = form_data(topics="-survey")  # only an exclusion: a mistake to fix
    assert client.post("/", page).status_code == 200
    assert client.post("/", {**page, "topics": "diffusion"}).status_code == 302

    yesterday = form_data(email="erin@example.org", started=form_stamp(now=time.time() - 90_000))
    stale = client.post("/", yesterday)
    assert stale.status_code == 200
    assert "This page was open for a long time." in stale.content.decode()
    assert not Subscriber.objects.filter(email="erin@example.org").exists()


# --- A forwarded digest does not reach the subscriber's data --------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_forwarded_manage_link_cannot_take_or_delete_alices_data(
    alice: Subscriber, mailoutbox: list[Any]
) -> None:
    mallory = Client()  # she has the manage link from a digest alice forwarded
    base = manage_url(alice).removeprefix(SITE)

    for _ in range(3):
        export = mallory.post(base + "/export")
        assert export.status_code == 200
        assert export["Content-Type"].startswith("text/html")  # not her data
        assert "We sent you an email to confirm" in export.content.decode()
        delete = mallory.post(base + "/delete")
        assert "We sent you an email to confirm" in delete.content.decode()
    assert reloaded(alice).status == Subscriber.Status.ACTIVE

    # Alice alone is told, once per action however often it was asked.
    assert all(m.to == [ALICE] for m in mailoutbox)
    by_subject = {m.subject: m for m in mailoutbox}
    assert len(mailoutbox) == 2
    download = link_in(by_subject["Download your Paperboy data"], ACTION_LINK)
    destroy = link_in(by_subject["Confirm: delete your Paperboy data"], ACTION_LINK)
    assert "/manage/" not in download and "/manage/" not in destroy

    # Her links do it, and only what they say: an export link cannot delete.
    data = Client().post(download)
    assert data["Content-Type"] == "application/json; charset=utf-8"
    assert '"email": "alice@example.org"' in data.content.decode()
    swapped = download.replace(":export:", ":delete:")
    assert Client().post(swapped).status_code == 400
    assert Client().post("/your-data/" + make_token(alice, Purpose.MANAGE)).status_code == 400
    assert (
        Client().get(f"/manage/{make_token(alice, Purpose.ACTION, extra='export')}").status_code
        == 400
    )
    assert Subscriber.objects.filter(pk=alice.pk).exists()
    assert "Everything is deleted" in Client().post(destroy).content.decode()
    assert not Subscriber.objects.filter(pk=alice.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_an_emailed_data_link_works_for_an_hour(alice: Subscriber, settings: Any) -> None:
    assert settings.PAPERBOY_ACTION_LINK_MAX_AGE_MINUTES == 60
    with time_machine.travel(T0, tick=False):
        link = "/your-data/" + make_token(alice, Purpose.ACTION, extra="delete")
    with time_machine.travel(T0 + dt.timedelta(minutes=59), tick=False):
        assert "Delete everything</button>" in Client().get(link).content.decode()
    with time_machine.travel(T0 + dt.timedelta(minutes=61), tick=False):
        for response in (Client().get(link), Client().post(link)):
            assert response.status_code == 410
            page = response.content.decode()
            assert "Links to download or delete your data work for 1 hour" in page
            assert 'action="/manage-link"' in page
    assert Subscriber.objects.filter(pk=alice.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_no_link_is_emailed_to_a_suppressed_address(
    alice: Subscriber, mailoutbox: list[Any]
) -> None:
    Subscriber.objects.filter(pk=alice.pk).update(status=Subscriber.Status.SUPPRESSED)
    response = Client().post(manage_url(alice).removeprefix(SITE) + "/export")
    assert "We can’t email this address" in response.content.decode()
    assert mailoutbox == []


# --- Manage links expire; a fresh one comes by email ------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_manage_link_expires_and_a_fresh_one_comes_by_email(
    alice: Subscriber, mailoutbox: list[Any], settings: Any
) -> None:
    assert settings.PAPERBOY_MANAGE_LINK_MAX_AGE_DAYS == 60
    with time_machine.travel(T0, tick=False):
        old = manage_url(alice).removeprefix(SITE)
    with time_machine.travel(T0 + dt.timedelta(days=59), tick=False):
        assert Client().get(old).status_code == 200

    with time_machine.travel(T0 + dt.timedelta(days=61), tick=False):
        browser = Client()
        expired = browser.get(old)
        assert expired.status_code == 410
        page = expired.content.decode()
        assert "This link has expired" in page
        assert "Links to your settings work for 60 days" in page
        assert '<form method="post" action="/manage-link"' in page
        assert 'name="email"' in page
        assert "alice" not in page and "a•••" not in page  # the page names nobody
        # Nothing it would have done is done.
        assert browser.post(old + "/pause").status_code == 410
        assert browser.post(old + "/export").status_code == 410
        assert reloaded(alice).status == Subscriber.Status.ACTIVE
        assert mailoutbox == []

        asked = browser.post("/manage-link", {"email": " Alice@Example.org "})
        assert asked.status_code == 302
        assert asked["Location"] == "/manage-link/sent"
        sent = browser.get(asked["Location"]).content.decode()
        assert "If that address gets Paperboy, we’ve sent it a link to its settings." in sent

        [message] = mailoutbox
        assert message.to == [ALICE]
        assert message.subject == "Your Paperboy settings link"
        assert "The link works for 60 days" in message.body
        fresh = link_in(message, MANAGE_LINK)
        assert fresh != old
        assert "Your Paperboy settings" in browser.get(fresh).content.decode()


@pytest.mark.django_db(transaction=True)
def test_the_link_age_is_a_setting(alice: Subscriber, settings: Any) -> None:
    settings.PAPERBOY_MANAGE_LINK_MAX_AGE_DAYS = 7
    with time_machine.travel(T0, tick=False):
        link = manage_url(alice).removeprefix(SITE)
    with time_machine.travel(T0 + dt.timedelta(days=8), tick=False):
        response = Client().get(link)
    assert response.status_code == 410
    assert "Links to your settings work for 7 days" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_manage_link_from_before_links_had_an_age_counts_as_expired(
    alice: Subscriber,
) -> None:
    legacy = signing.Signer(salt=Purpose.MANAGE.value).sign(alice.key)
    response = Client().get(f"/manage/{legacy}")
    assert response.status_code == 410
    assert "This link has expired" in response.content.decode()
    # A tampered one is still just broken.
    assert Client().get(f"/manage/{legacy[:-2]}xx").status_code == 400


@pytest.mark.django_db(transaction=True)
def test_each_digest_carries_a_fresh_manage_link(alice: Subscriber) -> None:
    def manage_link_in_digest() -> str:
        text = render_digest_for(subscriber=alice, edition_date=EDITION_DATE, items=[]).text
        found = re.search(r"Manage preferences: https://paperboy\.example(\S+)", text)
        assert found, text
        return found.group(1)

    with time_machine.travel(T0, tick=False):
        march = manage_link_in_digest()
    with time_machine.travel(T0 + dt.timedelta(days=90), tick=False):
        june = manage_link_in_digest()
        assert Client().get(march).status_code == 410
        assert Client().get(june).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_the_new_link_form_answers_alike_for_every_address(
    make_subscriber: Callable[..., Subscriber], mailoutbox: list[Any]
) -> None:
    make_subscriber(ALICE, ["a"])
    make_subscriber("pending@example.org", ["a"], status=Subscriber.Status.PENDING)
    make_subscriber("left@example.org", ["a"], status=Subscriber.Status.UNSUBSCRIBED)
    make_subscriber("bounced@example.org", ["a"], status=Subscriber.Status.SUPPRESSED)
    addresses = [
        ALICE,
        "pending@example.org",
        "left@example.org",
        "bounced@example.org",
        "nobody@example.org",
    ]
    answers, work = set(), set()
    with mock.patch.object(tasks.send_manage_link_task, "delay") as delay:
        for n, address in enumerate(addresses):
            browser = Client()
            with CaptureQueriesContext(connection) as queries:
                response = browser.post(
                    "/manage-link", {"email": address}, REMOTE_ADDR=f"10.1.0.{n}"
                )
            follow = browser.get(response["Location"])
            answers.add((response.status_code, response["Location"], page_of(follow)))
            work.add(tuple(_statements(queries.captured_queries)))

    # One answer, and one piece of work: the request does not even look the address up.
    assert len(answers) == 1 and work == {()}
    assert mailoutbox == []
    # The worker does, and writes to the addresses that may be written to.
    assert [call.args for call in delay.call_args_list] == [(a,) for a in addresses]
    for call in delay.call_args_list:
        tasks.send_manage_link_task(*call.args)
    assert sorted(m.to[0] for m in mailoutbox) == [
        ALICE,
        "left@example.org",
        "pending@example.org",
    ]


@pytest.mark.django_db(transaction=True)
def test_the_new_link_form_is_rate_limited_and_checks_the_address(
    alice: Subscriber, mailoutbox: list[Any]
) -> None:
    with mock.patch.object(tasks.send_manage_link_task, "delay") as delay:
        bad = Client().post("/manage-link", {"email": "alice@example.org\r\nBcc: x@example.org"})
        assert bad.status_code == 200
        assert "An email address cannot contain line breaks." in bad.content.decode()
        assert delay.call_count == 0

        codes = [
            Client().post("/manage-link", {"email": ALICE}, REMOTE_ADDR="192.0.2.9").status_code
            for _ in range(MANAGE_LINK_PER_IP.count + 1)
        ]
        assert codes == [302] * MANAGE_LINK_PER_IP.count + [429]
        # The request queues the address as typed, tidied; the task looks it up.
        assert delay.call_args_list == [mock.call(ALICE)] * MANAGE_LINK_PER_IP.count
    # And however often it is asked, alice gets one link every ten minutes.
    for _ in range(3):
        Client().post("/manage-link", {"email": ALICE}, REMOTE_ADDR="192.0.2.10")
    assert len(mailoutbox) == 1


# --- Old confirmation links do not hand out settings links ------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_old_confirmation_link_does_not_open_the_settings(alice: Subscriber) -> None:
    with time_machine.travel(T0, tick=False):
        old = f"/confirm/{make_token(alice, Purpose.CONFIRM)}"
    with time_machine.travel(T0 + CONFIRM_MAX_AGE + dt.timedelta(hours=1), tick=False):
        page = Client().get(old).content.decode()
    assert "You’re already confirmed" in page
    assert "/manage/" not in page
    assert 'href="/manage-link"' in page
    fresh = Client().get(f"/confirm/{make_token(alice, Purpose.CONFIRM)}").content.decode()
    assert "/manage/" in fresh
