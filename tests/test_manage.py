"""Alice looks after her own digest from the manage link at the bottom of every email."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from digest.models import Delivery, DeliveryPaper, Edition, Feedback, Paper
from digest.planning import edition_plan
from subscriptions.links import manage_url
from subscriptions.models import EmailEvent, Subscriber
from subscriptions.tokens import Purpose, make_token, subscriber_for_token
from tests.conftest import EDITION_DATE

SITE = "https://paperboy.example"
EARLIER = EDITION_DATE - dt.timedelta(days=3)  # a Saturday in the same week


def path_of(url: str) -> str:
    assert url.startswith(SITE)
    return url.removeprefix(SITE)


def page_of(subscriber: Subscriber) -> str:
    return path_of(manage_url(subscriber))


def text(response: Any) -> str:
    return str(response.content.decode())


@pytest.fixture
def papers(make_paper: Callable[..., Paper]) -> dict[str, Paper]:
    """The day's papers, and one from earlier in the week."""
    return {
        "helios": make_paper(
            "Helios: Real-Time Long Video Generation with Autoregressive Diffusion",
            "An autoregressive video diffusion model that generates minute-long videos.",
            upvotes=214,
        ),
        "whisper": make_paper(
            "Whisper-Turbo: Streaming Speech Recognition on the Edge",
            "We distil a large speech recognition model into a streaming one.",
            upvotes=120,
        ),
        "survey": make_paper(
            "A Survey of Diffusion Models for Video",
            "We survey diffusion models for video generation.",
            upvotes=300,
        ),
        "reward": make_paper(
            "Reward Models Are Secretly Judges",
            "Reinforcement learning from human feedback with a reward model.",
            upvotes=90,
        ),
        "older": make_paper(
            "SoundStorm-2: Parallel Text-to-Speech",
            "Fast text-to-speech and speech recognition in one model.",
            upvotes=60,
            batch_date=EARLIER,
        ),
    }


def sent_digest(
    subscriber: Subscriber,
    date: dt.date,
    chosen: list[Paper],
    *,
    status: str = Delivery.Status.SENT,
) -> Delivery:
    edition, _ = Edition.objects.get_or_create(date=date)
    delivery = Delivery.objects.create(
        edition=edition,
        subscriber=subscriber,
        status=status,
        matched_at=timezone.now(),
        sent_at=timezone.now() if status == Delivery.Status.SENT else None,
        message_id=f"<{date.isoformat()}@paperboy.example>",
    )
    for rank, paper in enumerate(chosen, start=1):
        DeliveryPaper.objects.create(
            delivery=delivery,
            paper=paper,
            rank=rank,
            score=4,
            reasons=[
                {
                    "topic": "diffusion",
                    "field": "title",
                    "before": "",
                    "match": "Diffusion",
                    "after": "",
                }
            ],
        )
    return delivery


def reloaded(subscriber: Subscriber) -> Subscriber:
    return Subscriber.objects.get(pk=subscriber.pk)


def emailed_link(
    client: Client, url: str, outbox: list[Any], capture: Callable[..., Any], *, button: str
) -> str:
    """POST the manage page's "download" or "delete": the page says an email is on its
    way, and the link in it (the path) is what does it."""
    with capture(execute=True):  # the email task is queued once the request commits
        response = client.post(url)
    assert response.status_code == 200
    page = text(response)
    assert "We sent you an email to confirm" in page and f"<b>{button}</b>" in page
    [message] = outbox
    assert message.to == ["alice@example.org"]
    found = re.search(r"https://paperboy\.example(/your-data/\S+)", message.body)
    assert found, message.body
    outbox.clear()
    return found.group(1)


def form_data(**changes: str) -> dict[str, str]:
    data = {"topics": "diffusion\nvideo generation\n-survey", "frequency": "daily"}
    data["max_papers"] = "10"
    data.update(changes)
    return data


# --- The page --------------------------------------------------------------------------


def test_the_page_shows_the_settings_ready_to_edit_and_a_preview(
    alice: Subscriber, papers: dict[str, Paper], client: Client
) -> None:
    response = client.get(page_of(alice))

    assert response.status_code == 200
    page = text(response)
    assert "Your Paperboy settings" in page
    assert "a•••@example.org" in page and "alice@example.org" not in page
    assert re.search(r"<textarea[^>]*>\ndiffusion\nvideo generation\n-survey</textarea>", page)
    assert re.search(r'<input type="radio" name="frequency" value="daily"[^>]*checked', page)
    assert re.search(r'<input type="number" name="max_papers" value="10"', page)
    assert "csrfmiddlewaretoken" in page
    # The preview: what her next digest would hold, from the latest papers.
    assert "Your next digest" in page
    assert "of the 4 from Tuesday, 10 March 2026" in page
    assert "Real-Time Long Video Generation" in page
    assert "A Survey of Diffusion Models" not in page  # -survey leaves it out
    assert "Whisper-Turbo" not in page
    assert response["Cache-Control"].startswith("max-age=0")
    # The token is in the URL: links out (to the papers) must not carry it as a referrer.
    assert response["Referrer-Policy"] == "same-origin"


def test_no_link_on_the_page_shows_an_address_or_an_id(
    alice: Subscriber, papers: dict[str, Paper], client: Client
) -> None:
    sent_digest(alice, EDITION_DATE, [papers["helios"]])
    page = text(client.get(page_of(alice)))

    links = re.findall(r'(?:href|action|data-url)="([^"]*)"', page)
    own = [link for link in links if link.startswith("/") and link != "/"]
    assert len(own) >= 7  # save, preview, pause, export, delete, unsubscribe, a digest
    for link in own:
        assert "@" not in link and "alice" not in link
        assert str(alice.pk) not in link.split("/")  # the token signs a random key


def test_topics_are_escaped(
    make_subscriber: Callable[..., Subscriber], papers: dict[str, Paper], client: Client
) -> None:
    mallory = make_subscriber("mallory@example.org", ["<script>alert(1)</script>", "diffusion"])
    page = text(client.get(page_of(mallory)))
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# --- Editing ---------------------------------------------------------------------------


def test_saving_topics_frequency_and_papers_per_email(
    alice: Subscriber, papers: dict[str, Paper], client: Client
) -> None:
    response = client.post(
        page_of(alice),
        form_data(
            topics="speech recognition,  Text-to-Speech \n\n- survey\nspeech recognition",
            frequency="weekly",
            max_papers="5",
        ),
    )

    assert response.status_code == 302
    # Back to alice's own page (its token minted afresh, so compare whose it is).
    location = response["Location"]
    assert location.startswith("/manage/")
    assert subscriber_for_token(location.removeprefix("/manage/"), Purpose.MANAGE)[0] == alice
    alice = reloaded(alice)
    # Tidied as on signup: commas or lines, spaces collapsed, repeats dropped.
    assert alice.topics == ["speech recognition", "Text-to-Speech", "-survey"]
    assert alice.frequency == Subscriber.Frequency.WEEKLY
    assert alice.max_papers == 5
    page = text(client.get(page_of(alice)))
    assert "Saved. Your next digest uses these settings." in page
    assert "Weekly on Mondays at 07:00 (UTC) · Up to 5 papers a digest" in page
    assert '<li class="chip">Text-to-Speech</li>' in page

    client.post(page_of(alice), form_data(frequency="daily", max_papers="20"))
    alice = reloaded(alice)
    assert (alice.frequency, alice.max_papers) == ("daily", 20)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"topics": "diffusion\n" + "x" * 81}, "topics", "is longer than 80 characters"),
        ({"topics": "-survey\n-benchmark"}, "topics", "Add at least one topic to look for"),
        ({"topics": "diffusion\n\x07beep"}, "topics", "control characters"),
        ({"topics": "diffusion\n\u202egnippam"}, "topics", "text-direction control"),
        ({"topics": "\n".join(f"topic {i}" for i in range(21))}, "topics", "At most 20 topics"),
        ({"max_papers": "0"}, "max_papers", "Choose a number from 1 to 20."),
        ({"max_papers": "21"}, "max_papers", "Choose a number from 1 to 20."),
        ({"max_papers": "lots"}, "max_papers", "Choose a number from 1 to 20."),
        ({"frequency": "hourly"}, "frequency", "Select a valid choice."),
        ({"time_zone": "Mars/Olympus"}, "time_zone", "like Europe/Berlin or UTC"),
        ({"send_hour": "25"}, "send_hour", "from 00:00 to 23:00"),
        ({"send_weekday": "0"}, "send_weekday", "a day of the week"),
        ({"channel": "pigeon"}, "channel", "email or the feed only"),
    ],
)
def test_a_mistake_is_shown_next_to_its_field_and_what_she_typed_is_kept(
    alice: Subscriber,
    papers: dict[str, Paper],
    client: Client,
    changes: dict[str, str],
    field: str,
    message: str,
) -> None:
    before = reloaded(alice)
    data = form_data(**changes)

    response = client.post(page_of(alice), data)

    assert response.status_code == 200
    page = text(response)
    # The message sits in the field's own error list, which the input points to.
    error_list = re.search(rf'<ul class="errorlist" id="id_{field}_error">(.*?)</ul>', page, re.S)
    assert error_list and message in error_list.group(1), page
    if field not in ("frequency", "channel"):
        assert re.search(rf'name="{field}"[^>]*aria-invalid="true"', page)
    # What she typed is still there to fix.
    typed = data["topics"]
    shown = typed.replace("<", "&lt;").replace(">", "&gt;")
    assert f">\n{shown}</textarea>" in page
    if field == "max_papers":
        assert f'name="max_papers" value="{data["max_papers"]}"' in page
    assert "Not saved yet" in page
    # Nothing changed.
    after = reloaded(alice)
    assert (after.topics, after.frequency, after.max_papers) == (
        before.topics,
        before.frequency,
        before.max_papers,
    )


# --- Preview ---------------------------------------------------------------------------


def test_the_preview_follows_the_topics_as_typed_and_saves_nothing(
    alice: Subscriber, papers: dict[str, Paper], client: Client
) -> None:
    url = page_of(alice) + "/preview"

    response = client.post(url, form_data(topics="speech recognition"))

    assert response.status_code == 200
    fragment = text(response)
    assert "<html" not in fragment  # a fragment for the page's script to swap in
    assert "Whisper-Turbo" in fragment and "<mark>Speech Recognition</mark>" in fragment
    assert "Helios" not in fragment
    assert "1 paper</strong> of the 4 from Tuesday, 10 March 2026" in fragment
    assert reloaded(alice).topics == ["diffusion", "video generation", "-survey"]

    # The same from a GET with the settings in the query; and with none, the saved ones.
    by_get = text(client.get(url, form_data(topics="reward model")))
    assert "<mark>Reward Models</mark> Are Secretly Judges" in by_get
    assert "Whisper" not in by_get
    saved = text(client.get(url))
    assert "Helios" in saved and "Whisper" not in saved


def test_the_preview_follows_frequency_and_papers_per_email(
    alice: Subscriber, papers: dict[str, Paper], client: Client
) -> None:
    url = page_of(alice) + "/preview"
    speech = "speech recognition\ntext-to-speech"

    daily = text(client.post(url, form_data(topics=speech)))
    weekly = text(client.post(url, form_data(topics=speech, frequency="weekly")))
    one = text(client.post(url, form_data(topics="diffusion", max_papers="1")))

    assert "SoundStorm-2" not in daily
    # A weekly digest draws on the whole week's papers.
    assert "SoundStorm-2" in weekly and "Whisper-Turbo" in weekly
    assert "of the 5 from 4–10 March 2026" in weekly
    assert one.count('class="pv-paper"') == 1


def test_the_preview_explains_an_empty_digest(
    alice: Subscriber, papers: dict[str, Paper], client: Client
) -> None:
    url = page_of(alice) + "/preview"

    nothing = text(client.post(url, form_data(topics="protein folding")))
    invalid = text(client.post(url, form_data(topics="-survey")))

    assert "None of the 4 papers from Tuesday, 10 March 2026 match these topics" in nothing
    assert "No preview yet: Add at least one topic to look for" in invalid


def test_the_preview_before_any_papers_were_collected(alice: Subscriber, client: Client) -> None:
    fragment = text(client.post(page_of(alice) + "/preview", form_data()))
    assert "No papers have been collected yet" in fragment


def test_the_preview_leaves_out_papers_she_already_got(
    alice: Subscriber, papers: dict[str, Paper], client: Client
) -> None:
    sent_digest(alice, EARLIER, [papers["older"]])
    weekly = text(
        client.post(
            page_of(alice) + "/preview",
            form_data(topics="text-to-speech\nspeech recognition", frequency="weekly"),
        )
    )
    assert "Whisper-Turbo" in weekly and "SoundStorm-2" not in weekly


def test_the_preview_button_works_without_javascript(
    alice: Subscriber, papers: dict[str, Paper], client: Client
) -> None:
    response = client.post(
        page_of(alice), {**form_data(topics="speech recognition"), "action": "preview"}
    )

    assert response.status_code == 200
    page = text(response)
    assert ">\nspeech recognition</textarea>" in page
    assert "Whisper-Turbo" in page and "Helios" not in page
    assert "Not saved yet" in page
    assert reloaded(alice).topics == ["diffusion", "video generation", "-survey"]


# --- Pause, resume, resubscribe ---------------------------------------------------------


def planned_for(date: dt.date) -> set[str]:
    edition = edition_plan(date=date)
    return set(edition.deliveries.values_list("subscriber__email", flat=True))


def test_a_paused_subscriber_gets_nothing_until_she_resumes(
    alice: Subscriber, bob: Subscriber, client: Client
) -> None:
    response = client.post(page_of(alice) + "/pause")

    assert response.status_code == 302
    assert reloaded(alice).status == Subscriber.Status.PAUSED
    page = text(client.get(page_of(alice)))
    assert "Your digest is paused." in page and "Resume my digest" in page
    assert planned_for(EDITION_DATE) == {"bob@example.org"}

    client.post(page_of(alice) + "/resume")

    assert reloaded(alice).status == Subscriber.Status.ACTIVE
    assert "Resumed. Your next digest comes as usual." in text(client.get(page_of(alice)))
    assert planned_for(EDITION_DATE + dt.timedelta(days=1)) == {
        "alice@example.org",
        "bob@example.org",
    }


def test_pausing_twice_or_resuming_an_active_digest_changes_nothing(
    alice: Subscriber, client: Client
) -> None:
    client.post(page_of(alice) + "/resume")
    assert reloaded(alice).status == Subscriber.Status.ACTIVE
    client.post(page_of(alice) + "/pause")
    client.post(page_of(alice) + "/pause")
    assert reloaded(alice).status == Subscriber.Status.PAUSED


def test_an_unsubscribed_reader_can_resubscribe_from_her_manage_link(
    alice: Subscriber, client: Client
) -> None:
    confirmed = timezone.now() - dt.timedelta(days=30)
    Subscriber.objects.filter(pk=alice.pk).update(
        status=Subscriber.Status.UNSUBSCRIBED,
        confirmed_at=confirmed,
        unsubscribed_at=timezone.now(),
    )
    page = text(client.get(page_of(alice)))
    assert "You’re unsubscribed." in page and ">Resubscribe</button>" in page
    assert ">Unsubscribe</button>" not in page

    client.post(page_of(alice) + "/resume")

    alice = reloaded(alice)
    assert alice.status == Subscriber.Status.ACTIVE
    assert alice.confirmed_at == confirmed
    assert alice.unsubscribed_at is None
    assert "Welcome back." in text(client.get(page_of(alice)))


def test_an_address_never_confirmed_must_sign_up_again(alice: Subscriber, client: Client) -> None:
    Subscriber.objects.filter(pk=alice.pk).update(
        status=Subscriber.Status.UNSUBSCRIBED, confirmed_at=None
    )
    page = text(client.get(page_of(alice)))
    assert "this address was never confirmed" in page and "Resubscribe</button>" not in page

    client.post(page_of(alice) + "/resume")
    assert reloaded(alice).status == Subscriber.Status.UNSUBSCRIBED


def test_a_suppressed_address_cannot_come_back_from_here(alice: Subscriber, client: Client) -> None:
    Subscriber.objects.filter(pk=alice.pk).update(
        status=Subscriber.Status.SUPPRESSED,
        confirmed_at=timezone.now(),
        suppressed_at=dt.datetime(2026, 3, 8, 9, 0, tzinfo=dt.UTC),
        suppressed_reason="Hard bounce: mailbox does not exist",
    )
    page = text(client.get(page_of(alice)))
    assert "We’ve stopped sending to this address" in page
    assert "since 8 March 2026: Hard bounce: mailbox does not exist" in page
    assert "only the operator of this Paperboy can lift it" in page
    assert "Resubscribe" not in page and "Resume" not in page

    client.post(page_of(alice) + "/resume")
    assert reloaded(alice).status == Subscriber.Status.SUPPRESSED


def test_a_pending_subscriber_is_asked_to_confirm_first(
    make_subscriber: Callable[..., Subscriber], client: Client
) -> None:
    dan = make_subscriber("dan@example.org", ["robotics"], status=Subscriber.Status.PENDING)
    page = text(client.get(page_of(dan)))
    assert "Confirm your address first." in page
    assert "Pause my digest" not in page

    client.post(page_of(dan) + "/pause")
    client.post(page_of(dan) + "/resume")
    assert reloaded(dan).status == Subscriber.Status.PENDING


# --- Looking back -----------------------------------------------------------------------


def test_her_last_digests_are_listed_newest_first(
    alice: Subscriber, bob: Subscriber, papers: dict[str, Paper], client: Client
) -> None:
    sent_digest(alice, EARLIER, [papers["older"]])
    sent_digest(alice, EDITION_DATE, [papers["helios"], papers["survey"]])
    sent_digest(alice, EDITION_DATE - dt.timedelta(days=1), [], status=Delivery.Status.SKIPPED)
    sent_digest(alice, EDITION_DATE + dt.timedelta(days=1), [papers["helios"]], status="queued")
    sent_digest(bob, EDITION_DATE - dt.timedelta(days=2), [papers["reward"]])

    page = text(client.get(page_of(alice)))

    listed = re.findall(
        r'<span class="d-date">([^<]+)</span>\s*<span class="d-count">([^<]+)<', page
    )
    assert listed == [("Tuesday, 10 March 2026", "2 papers"), ("Saturday, 7 March 2026", "1 paper")]
    views = re.findall(r'<a class="d-view" href="(/digest/[^"]+)"', page)
    assert len(views) == 2
    assert client.get(views[0]).status_code == 200


def test_no_digests_yet(alice: Subscriber, client: Client) -> None:
    assert "No digests sent yet." in text(client.get(page_of(alice)))


# --- Her data ---------------------------------------------------------------------------


def test_she_can_download_everything_kept_about_her(
    alice: Subscriber,
    bob: Subscriber,
    papers: dict[str, Paper],
    client: Client,
    mailoutbox: list[Any],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    sent_digest(alice, EDITION_DATE, [papers["helios"], papers["survey"]])
    sent_digest(alice, EARLIER, [], status=Delivery.Status.SKIPPED)
    sent_digest(bob, EDITION_DATE, [papers["reward"]])
    EmailEvent.objects.create(
        event_id="ev-1", event_type="delivered", recipient="alice@example.org", subscriber=alice
    )
    EmailEvent.objects.create(event_id="ev-2", event_type="opened", recipient="bob@example.org")

    link = emailed_link(
        client,
        page_of(alice) + "/export",
        mailoutbox,
        django_capture_on_commit_callbacks,
        button="Download my data",
    )
    # Opening the link shows a button (mail scanners follow links); the button downloads.
    assert "Download my data</button>" in text(client.get(link))
    response = client.post(link)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="paperboy-data-\d{4}-\d\d-\d\d\.json"',
        response["Content-Disposition"],
    )
    data = json.loads(response.content)
    me = data["subscriber"]
    assert me["email"] == "alice@example.org"
    assert me["status"] == "active"
    assert me["topics"] == ["diffusion", "video generation", "-survey"]
    assert (me["frequency"], me["max_papers"]) == ("daily", 10)
    assert (me["trending"], me["channel"], me["time_zone"]) == ("none", "email", "UTC")
    assert (me["send_hour"], me["send_weekday"], me["next_due_at"]) == (7, 1, None)
    assert me["created_at"] == alice.created_at.isoformat()
    assert {"confirmed_at", "unsubscribed_at", "suppressed_at", "suppressed_reason"} <= set(me)
    assert [d["edition_date"] for d in data["deliveries"]] == ["2026-03-10", "2026-03-07"]
    sent = data["deliveries"][0]
    assert sent["status"] == "sent" and sent["sent_at"]
    assert [(p["rank"], p["arxiv_id"], p["title"]) for p in sent["papers"]] == [
        (1, papers["helios"].arxiv_id, papers["helios"].title),
        (2, papers["survey"].arxiv_id, papers["survey"].title),
    ]
    assert sent["papers"][0]["reasons"][0]["topic"] == "diffusion"
    assert data["deliveries"][1]["papers"] == []
    assert [e["type"] for e in data["email_events"]] == ["delivered"]
    assert "bob" not in response.content.decode()


def test_deleting_asks_first_then_removes_everything(
    alice: Subscriber,
    bob: Subscriber,
    papers: dict[str, Paper],
    client: Client,
    mailoutbox: list[Any],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    sent_digest(alice, EDITION_DATE, [papers["helios"]])
    sent_digest(bob, EDITION_DATE, [papers["reward"]])
    EmailEvent.objects.create(
        event_id="ev-1", event_type="delivered", recipient="alice@example.org", subscriber=alice
    )
    EmailEvent.objects.create(event_id="ev-2", event_type="bounced", recipient="alice@example.org")
    EmailEvent.objects.create(event_id="ev-3", event_type="delivered", recipient="bob@example.org")
    url = page_of(alice) + "/delete"

    confirm = client.get(url)

    assert confirm.status_code == 200
    assert "Delete everything about you?" in text(confirm)
    assert "the record of the digest we sent you" in text(confirm)
    assert "Email me the link to delete</button>" in text(confirm)
    link = emailed_link(
        client, url, mailoutbox, django_capture_on_commit_callbacks, button="Delete my data…"
    )
    assert Subscriber.objects.filter(pk=alice.pk).exists()  # asking deleted nothing
    last_chance = client.get(link)
    assert "Delete everything about you?" in text(last_chance)
    assert "Delete everything</button>" in text(last_chance)
    assert Subscriber.objects.filter(pk=alice.pk).exists()  # nor did opening the link

    done = client.post(link)

    assert done.status_code == 200
    assert "Everything is deleted" in text(done) and "a•••@example.org" in text(done)
    assert not Subscriber.objects.filter(email="alice@example.org").exists()
    assert not Delivery.objects.filter(subscriber_id=alice.pk).exists()
    assert not DeliveryPaper.objects.filter(delivery__subscriber_id=alice.pk).exists()
    assert not EmailEvent.objects.filter(recipient="alice@example.org").exists()
    # Bob, and the papers themselves, are untouched.
    assert Delivery.objects.filter(subscriber=bob).count() == 1
    assert EmailEvent.objects.filter(recipient="bob@example.org").count() == 1
    assert Paper.objects.count() == len(papers)
    # Her old links now get the friendly bad-link page.
    for later in (client.get(page_of(alice)), client.get(url), client.post(url), client.get(link)):
        assert later.status_code == 400
        assert "This link doesn’t work" in text(later)


# --- Links are safe to follow -----------------------------------------------------------


def snapshot() -> list[Any]:
    return [
        list(Subscriber.objects.order_by("pk").values()),
        list(Delivery.objects.order_by("pk").values()),
        DeliveryPaper.objects.count(),
        EmailEvent.objects.count(),
        Edition.objects.count(),
    ]


def test_following_any_link_changes_nothing(
    alice: Subscriber, papers: dict[str, Paper], client: Client
) -> None:
    sent_digest(alice, EDITION_DATE, [papers["helios"]])
    base = page_of(alice)
    before = snapshot()

    for suffix in ("", "/preview", "/export", "/delete"):
        assert client.get(base + suffix).status_code == 200
    assert client.get(base + "/preview", form_data(topics="speech")).status_code == 200
    for suffix in ("/pause", "/resume"):
        assert client.get(base + suffix).status_code == 405

    assert snapshot() == before


def test_a_tampered_or_borrowed_token_opens_nothing(alice: Subscriber, client: Client) -> None:
    base = page_of(alice)
    token = base.removeprefix("/manage/")
    tampered = "/manage/" + token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    unsubscribe_token = make_token(alice, Purpose.UNSUBSCRIBE)
    before = snapshot()

    for root in (tampered, f"/manage/{unsubscribe_token}", "/manage/not-a-token"):
        for suffix in ("", "/preview", "/export", "/delete"):
            response = client.get(root + suffix)
            assert response.status_code == 400, root + suffix
            assert "This link doesn’t work" in text(response)
        for suffix in ("", "/pause", "/delete"):
            assert client.post(root + suffix, form_data()).status_code == 400

    assert snapshot() == before


def test_forms_need_the_csrf_token(alice: Subscriber) -> None:
    browser = Client(enforce_csrf_checks=True)
    base = page_of(alice)

    for suffix in ("", "/preview", "/pause", "/export", "/delete"):
        assert browser.post(base + suffix, form_data()).status_code == 403

    assert reloaded(alice).status == Subscriber.Status.ACTIVE


def test_queries_are_pinned_however_long_her_history(
    alice: Subscriber,
    papers: dict[str, Paper],
    client: Client,
    django_assert_num_queries: Any,
) -> None:
    for days in range(1, 13):
        sent_digest(alice, EDITION_DATE - dt.timedelta(days=days), [papers["reward"]])
    for paper in papers.values():
        Feedback.objects.create(subscriber=alice, paper=paper, value=Feedback.Value.MORE)
    base = page_of(alice)

    # The first look embeds the recent papers once (a read and a bulk update).
    client.get(base)
    # Subscriber; last digests; papers she rated (with the papers); then the preview:
    # latest date, edition, background papers, papers, already sent (her deliveries, then
    # their papers), her feedback, the rated papers' vectors (read once a run, however
    # many subscribers rated them), chosen papers, count.
    with django_assert_num_queries(13):
        client.get(base)
    with django_assert_num_queries(11):
        client.post(base + "/preview", form_data(topics="speech recognition"))
    # From the emailed link: subscriber; deliveries, their papers (two prefetches);
    # feedback; ESP events.
    export = "/your-data/" + make_token(alice, Purpose.ACTION, extra="export")
    with django_assert_num_queries(6):
        client.post(export)


def test_she_moves_her_digest_to_her_evening_and_takes_the_feed_only(
    client: Client, alice: Subscriber
) -> None:
    Subscriber.objects.filter(pk=alice.pk).update(next_due_at=timezone.now())
    page = client.get(page_of(alice)).content.decode()
    assert "Your next digest:" in page and "(UTC)" in page
    client.post(
        page_of(alice),
        form_data(send_hour="19", time_zone="Europe/Berlin", trending="few", channel="feed"),
    )
    alice = reloaded(alice)
    assert (alice.send_hour, alice.time_zone, alice.trending, alice.channel) == (
        19,
        "Europe/Berlin",
        "few",
        "feed",
    )
    assert alice.next_due_at is None  # a new hour: the next run works out when
    page = client.get(page_of(alice)).content.decode()
    assert "19:00 (Europe/Berlin)" in page

    bad = client.post(page_of(alice), form_data(time_zone="Mars/Olympus")).content.decode()
    assert "like Europe/Berlin or UTC" in bad
    assert reloaded(alice).time_zone == "Europe/Berlin"


def test_she_picks_a_weekday_and_the_next_digest_is_worked_out_again(
    client: Client, alice: Subscriber
) -> None:
    Subscriber.objects.filter(pk=alice.pk).update(next_due_at=timezone.now())
    with time_machine.travel(dt.datetime(2026, 4, 6, 12, tzinfo=dt.UTC)):  # a Monday
        client.post(
            page_of(alice),
            form_data(
                frequency="weekly", send_weekday="2", send_hour="8", time_zone="europe/berlin"
            ),
        )
        alice = reloaded(alice)
        assert (alice.frequency, alice.send_weekday, alice.send_hour) == ("weekly", 2, 8)
        assert alice.time_zone == "Europe/Berlin"  # as the zone is spelt
        assert alice.next_due_at is None
        page = text(client.get(page_of(alice)))
    assert "Your next digest: <b>Tuesday 7 April, 08:00 (Europe/Berlin)</b>" in page
    assert "Weekly on Tuesdays at 08:00 (Europe/Berlin)" in page
    assert '<option value="2" selected>Tuesday</option>' in page
    assert '<option value="America/New_York"></option>' in page  # zones to pick from

    # Saving the same schedule again leaves a planned digest where it is.
    planned = timezone.now() + dt.timedelta(hours=3)
    Subscriber.objects.filter(pk=alice.pk).update(next_due_at=planned)
    client.post(
        page_of(alice),
        form_data(frequency="weekly", send_weekday="2", send_hour="8", time_zone="Europe/Berlin"),
    )
    assert reloaded(alice).next_due_at == planned


def test_without_topics_she_gets_the_trending_papers_and_her_mix_is_kept(
    client: Client, alice: Subscriber, papers: dict[str, Paper]
) -> None:
    client.post(page_of(alice), form_data(trending="few"))
    assert reloaded(alice).trending == "few"

    # She empties her topics; the page (without JavaScript) still sends the mix.
    response = client.post(page_of(alice), form_data(topics="", trending="none"))
    assert response.status_code == 302
    alice = reloaded(alice)
    assert (alice.topics, alice.trending, alice.effective_trending) == ([], "few", "only")
    page = text(client.get(page_of(alice)))
    assert "No topics: the day’s trending papers" in page
    # The preview ranks the day's papers by upvotes, and says so.
    assert "Trending: <b>#1 today · 300 upvotes</b>." in page
    assert page.index("A Survey of Diffusion Models") < page.index("Real-Time Long Video")


def test_the_preview_mixes_in_the_trending_papers_she_picks(
    client: Client, alice: Subscriber, papers: dict[str, Paper]
) -> None:
    url = page_of(alice) + "/preview"
    only_topics = text(client.post(url, form_data(topics="speech recognition")))
    assert "Trending:" not in only_topics
    mixed = text(client.post(url, form_data(topics="speech recognition", trending="few")))
    assert "Whisper-Turbo" in mixed
    assert "Trending: <b>#1 today · 300 upvotes</b>." in mixed  # the survey, top of the day
    assert reloaded(alice).trending == "none"  # a preview saves nothing
