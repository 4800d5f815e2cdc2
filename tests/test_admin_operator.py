"""The operator's day in the admin: find a subscriber, see what they got and what bounced,
send a test digest, resend a confirmation, suppress and unsuppress, export and import CSV,
check an edition, and preview anyone's digest for any date.

alice and carol are active, bob signed up but has not confirmed, mallory's address
bounced and is suppressed, erin left. The papers are of EDITION_DATE (10 March 2026).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Count
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from digest.daily import edition_prepare, edition_send
from digest.models import Delivery, DeliveryPaper, Edition, Paper
from pages.csv_import import MAX_IMPORT_BYTES
from subscriptions.models import EmailEvent, Subscriber
from tests.conftest import EDITION_DATE
from tests.mail import html_of, text_of
from tests.smtp_server import Mailbox

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:subscriptions_subscriber_changelist"
NOW = timezone.now()


@pytest.fixture
def papers(make_paper: Callable[..., Paper]) -> list[Paper]:
    return [
        make_paper(
            "<b>Diffusion</b> Forcing for Long Video Generation",
            "We train a video diffusion model that <script>alert(1)</script> rolls out "
            "minutes of video.",
            upvotes=42,
        ),
        make_paper(
            "Reward Models Are Not Enough: RLHF at Scale",
            "Reinforcement learning from human feedback, studied at scale.",
            upvotes=17,
        ),
    ]


@pytest.fixture
def bob(make_subscriber: Callable[..., Subscriber]) -> Subscriber:
    """Signed up, has not clicked the link yet."""
    return make_subscriber(
        "bob@example.org", ["reinforcement learning", "RLHF"], status=Subscriber.Status.PENDING
    )


@pytest.fixture
def mallory(make_subscriber: Callable[..., Subscriber]) -> Subscriber:
    return make_subscriber(
        "mallory@example.org",
        ["diffusion"],
        status=Subscriber.Status.SUPPRESSED,
        confirmed_at=NOW - dt.timedelta(days=30),
        suppressed_at=NOW - dt.timedelta(days=2),
        suppressed_reason="hard bounce: 550 5.1.1 no such user",
    )


@pytest.fixture
def erin(make_subscriber: Callable[..., Subscriber]) -> Subscriber:
    return make_subscriber(
        "erin@example.org",
        ["-survey", "speech recognition"],
        status=Subscriber.Status.UNSUBSCRIBED,
        confirmed_at=NOW - dt.timedelta(days=60),
        unsubscribed_at=NOW - dt.timedelta(days=20),
    )


def bounce(subscriber: Subscriber, n: int, event_type: str = "bounced") -> None:
    for i in range(n):
        EmailEvent.objects.create(
            event_id=f"{subscriber.pk}-{event_type}-{i}",
            event_type=event_type,
            esp_name="Postmark",
            recipient=subscriber.email,
            subscriber=subscriber,
            description="452 4.2.2 mailbox full",
            outcome="soft bounce 1 of 3",
        )


def sent_delivery(subscriber: Subscriber, day: dt.date, paper: Paper) -> Delivery:
    edition, _ = Edition.objects.get_or_create(date=day)
    delivery = Delivery.objects.create(
        edition=edition,
        subscriber=subscriber,
        status=Delivery.Status.SENT,
        matched_at=NOW,
        sent_at=timezone.make_aware(dt.datetime.combine(day, dt.time(7, 0))),
    )
    DeliveryPaper.objects.create(delivery=delivery, paper=paper, rank=1)
    return delivery


def act(client: Client, action: str, *subscribers: Subscriber) -> Any:
    return client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [s.pk for s in subscribers]},
        follow=True,
    )


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- The list -----------------------------------------------------------------------------


def test_the_list_shows_topics_times_last_digest_and_counts_that_do_not_multiply(
    admin_client: Client, alice: Subscriber, carol: Subscriber, papers: list[Paper]
) -> None:
    # Two sent digests and three bounces: a join of both would show six of each.
    sent_delivery(alice, EDITION_DATE - dt.timedelta(days=1), papers[1])
    sent_delivery(alice, EDITION_DATE, papers[0])
    bounce(alice, 3)
    bounce(alice, 1, event_type="delivered")

    response = admin_client.get(reverse(CHANGELIST))

    rows = {s.email: s for s in response.context["cl"].result_list}
    assert (rows["alice@example.org"]._sent, rows["alice@example.org"]._bounces) == (2, 3)
    assert rows["alice@example.org"]._last.date() == EDITION_DATE
    assert (rows["carol@example.org"]._sent, rows["carol@example.org"]._bounces) == (0, 0)
    assert rows["carol@example.org"]._last is None
    page = response.content.decode()
    assert "diffusion, video generation, -survey" in page
    for column in ("Signed up", "Confirmed", "Last digest", "Sent", "Bounces"):
        assert column in page
    assert f"{timezone.localtime(rows['alice@example.org']._last):%Y-%m-%d %H:%M}" in page
    assert reverse("admin:subscriptions_subscriber_import") in page  # the Import CSV button


def test_the_list_filters_and_searches(
    admin_client: Client, alice: Subscriber, bob: Subscriber, carol: Subscriber
) -> None:
    Subscriber.objects.filter(pk=carol.pk).update(frequency="weekly", confirmed_at=NOW)
    url = reverse(CHANGELIST)

    def emails(**query: str) -> list[str]:
        response = admin_client.get(url, query)
        assert response.status_code == 200
        return [s.email for s in response.context["cl"].result_list]

    assert emails(status__exact="pending") == ["bob@example.org"]
    assert emails(frequency__exact="weekly") == ["carol@example.org"]
    assert emails(confirmed_at__isnull="True") == ["alice@example.org", "bob@example.org"]
    assert emails(q="speech") == ["carol@example.org"]  # a topic
    assert emails(q="bob@") == ["bob@example.org"]
    since = str(NOW - dt.timedelta(days=1))  # as the "Created at" filter's links write it
    assert len(emails(created_at__gte=since)) == 3


def test_the_list_makes_the_same_few_queries_for_30_subscribers(
    admin_client: Client,
    make_subscriber: Callable[..., Subscriber],
    papers: list[Paper],
    django_assert_max_num_queries: Any,
) -> None:
    url = reverse(CHANGELIST)
    first = make_subscriber("first@example.org", ["diffusion"])
    sent_delivery(first, EDITION_DATE, papers[0])
    bounce(first, 2)
    admin_client.get(url)  # the session and the admin's caches warm up
    with django_assert_max_num_queries(12) as one:
        admin_client.get(url)
    for i in range(29):
        someone = make_subscriber(f"reader{i:02d}@example.org", ["diffusion", f"topic {i}"])
        sent_delivery(someone, EDITION_DATE, papers[0])
        sent_delivery(someone, EDITION_DATE - dt.timedelta(days=1), papers[1])
        bounce(someone, 2)

    with django_assert_max_num_queries(len(one.captured_queries)):
        response = admin_client.get(url)

    assert len(response.context["cl"].result_list) == 30
    assert {s._sent for s in response.context["cl"].result_list} == {1, 2}


def test_the_change_page_shows_recent_events_escaped_and_links_onwards(
    admin_client: Client, alice: Subscriber, papers: list[Paper]
) -> None:
    sent_delivery(alice, EDITION_DATE, papers[0])
    EmailEvent.objects.create(
        event_id="evt-1",
        event_type="bounced",
        recipient=alice.email,
        subscriber=alice,
        description="<img src=x onerror=alert(1)> 550 rejected",
        outcome="suppressed: hard bounce",
    )

    page = admin_client.get(reverse("admin:subscriptions_subscriber_change", args=[alice.pk]))

    html = page.content.decode()
    assert page.status_code == 200
    assert "&lt;img src=x onerror=alert(1)&gt; 550 rejected" in html
    assert "<img src=x" not in html
    assert "suppressed: hard bounce" in html
    assert "1 sent, last" in html and "1 bounced" in html
    deliveries = f"{reverse('admin:digest_delivery_changelist')}?subscriber__id__exact={alice.pk}"
    events = (
        f"{reverse('admin:subscriptions_emailevent_changelist')}?subscriber__id__exact={alice.pk}"
    )
    preview = reverse("admin:subscriptions_subscriber_preview", args=[alice.pk])
    for link in (deliveries, events, preview):
        assert f'href="{link}"' in html
    listed = admin_client.get(deliveries).context["cl"].result_list
    assert [d.subscriber_id for d in listed] == [alice.pk]
    assert admin_client.get(events).context["cl"].result_count == 1


def test_choosing_a_status_by_hand_records_when(admin_client: Client, bob: Subscriber) -> None:
    url = reverse("admin:subscriptions_subscriber_change", args=[bob.pk])
    form = {
        "email": bob.email,
        "status": "active",
        "topics": '["RLHF", "  reward   model "]',
        "frequency": "daily",
        "max_papers": "10",
        "trending": "none",
        "channel": "email",
        "send_hour": "7",
        "send_weekday": "1",
        "time_zone": "UTC",
    }
    assert admin_client.post(url, form).status_code == 302
    bob.refresh_from_db()
    assert bob.status == "active" and bob.confirmed_at is not None
    assert bob.topics == ["RLHF", "reward model"]

    admin_client.post(url, {**form, "status": "suppressed"})
    bob.refresh_from_db()
    assert bob.suppressed_at is not None and bob.suppressed_reason == "suppressed by an operator"

    refused = admin_client.post(url, {**form, "max_papers": "50", "topics": '"diffusion"'})
    assert refused.status_code == 200
    assert "Choose a number from 1 to 20." in refused.content.decode()
    assert "JSON list" in refused.content.decode()


def test_the_list_shows_each_readers_hour_zone_mix_and_channel_and_filters_by_them(
    admin_client: Client, alice: Subscriber, make_subscriber: Callable[..., Subscriber]
) -> None:
    make_subscriber(
        "fay@example.org",
        [],
        frequency="weekly",
        send_weekday=5,
        send_hour=18,
        time_zone="Europe/Berlin",
        channel="feed",
    )
    make_subscriber("gil@example.org", ["RLHF"], trending="few")
    url = reverse(CHANGELIST)

    page = admin_client.get(url).content.decode()
    for shown in ("18:00 Fri", "07:00 daily", "Europe/Berlin", "– (trending)", "Feed only"):
        assert shown in page
    for column in ("When", "Time zone", "Trending", "Channel"):
        assert column in page

    def emails(**query: str) -> list[str]:
        return [s.email for s in admin_client.get(url, query).context["cl"].result_list]

    assert emails(channel__exact="feed") == ["fay@example.org"]
    assert emails(trending__exact="few") == ["gil@example.org"]
    assert emails(time_zone="Europe/Berlin") == ["fay@example.org"]
    assert emails(send_hour="7") == ["alice@example.org", "gil@example.org"]


def test_the_change_page_says_when_the_next_digest_comes_and_edits_the_schedule(
    admin_client: Client, alice: Subscriber
) -> None:
    due = dt.datetime(2026, 4, 7, 5, 0, tzinfo=dt.UTC)
    Subscriber.objects.filter(pk=alice.pk).update(
        time_zone="Europe/Berlin", send_hour=7, next_due_at=due
    )
    url = reverse("admin:subscriptions_subscriber_change", args=[alice.pk])

    page = admin_client.get(url).content.decode()
    assert "Tue 2026-04-07 05:00 UTC · Tue 2026-04-07 07:00 Europe/Berlin" in page

    form = {
        "email": alice.email,
        "status": "active",
        "topics": '["diffusion"]',
        "intent": "",
        "trending": "few",
        "frequency": "daily",
        "max_papers": "10",
        "channel": "email",
        "send_hour": "9",
        "send_weekday": "1",
        "time_zone": "Europe/Berlin",
    }
    assert admin_client.post(url, form).status_code == 302
    alice.refresh_from_db()
    assert (alice.send_hour, alice.trending, alice.next_due_at) == (9, "few", None)
    page = admin_client.get(url).content.decode()
    assert "not planned yet: the next hourly run works it out" in page

    refused = admin_client.post(url, {**form, "time_zone": "Mars/Olympus", "send_hour": "24"})
    assert refused.status_code == 200
    assert "Select a valid choice. Mars/Olympus is not one of the available choices." in (
        refused.content.decode()
    )
    alice.refresh_from_db()
    assert (alice.time_zone, alice.send_hour) == ("Europe/Berlin", 9)


# --- Actions ------------------------------------------------------------------------------


def test_a_test_digest_reaches_the_inbox_marked_and_records_nothing(
    admin_client: Client,
    alice: Subscriber,
    bob: Subscriber,
    carol: Subscriber,
    papers: list[Paper],
    smtp_server: Mailbox,
) -> None:
    response = act(admin_client, "send_test_digest", alice, bob, carol)

    [received] = smtp_server.messages
    message = received.message
    assert received.rcpt_tos == ["alice@example.org"]
    # strip(): Python's email folding puts a long encoded subject on a line of its own,
    # which reads back with a leading space (the real digest's subject does the same).
    subject = message["Subject"].strip()
    assert subject.startswith("[Test] Paperboy · 10 Mar: ")
    assert "<b>Diffusion</b> Forcing" in subject
    assert "<https://paperboy.example/unsubscribe/" in message["List-Unsubscribe"]
    assert "Diffusion</b> Forcing" in text_of(message)  # plain text: as scraped
    assert "&lt;b&gt;Diffusion&lt;/b&gt;" in html_of(message)
    notes = messages_of(response)
    assert "1 test digest of Tuesday, 10 March 2026 sent." in notes
    assert "1 subscriber: nothing to send (nothing matched their topics)." in notes
    assert "1 subscriber not sent a test (pending confirmation)." in notes
    # No Delivery, no paper marked as given: the real digest of the day still has it.
    assert not Delivery.objects.exists() and not DeliveryPaper.objects.exists()
    edition_send(edition=edition_prepare(date=EDITION_DATE, scrape=False).edition)
    real = Delivery.objects.get(subscriber=alice)
    assert real.status == Delivery.Status.SENT
    assert list(real.items.values_list("paper_id", flat=True)) == [papers[0].pk]


def test_a_test_digest_that_cannot_be_sent_says_so(
    admin_client: Client, alice: Subscriber, papers: list[Paper], smtp_server: Mailbox
) -> None:
    smtp_server.refusals.append("550 5.1.1 mailbox unavailable")

    notes = messages_of(act(admin_client, "send_test_digest", alice))

    assert any(n.startswith("Not sent: alice@example.org: ") and "550" in n for n in notes)


def test_the_confirmation_is_sent_again_to_pending_subscribers_only(
    admin_client: Client,
    alice: Subscriber,
    bob: Subscriber,
    smtp_server: Mailbox,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = act(admin_client, "resend_confirmation", alice, bob)

    [received] = smtp_server.messages
    assert received.rcpt_tos == ["bob@example.org"]
    assert "Confirm" in received.message["Subject"]
    assert f"/confirm/{bob.key}:" in text_of(received.message)
    notes = messages_of(response)
    assert "1 confirmation email sent." in notes
    assert "1 subscriber skipped: only pending subscribers are sent one." in notes
    bob.refresh_from_db()
    assert bob.confirmation_sent_at is not None and bob.status == "pending"

    # A second click a moment later does not send it twice.
    with django_capture_on_commit_callbacks(execute=True):
        again = act(admin_client, "resend_confirmation", bob)
    assert len(smtp_server.messages) == 1
    assert "1 subscriber had one sent a few minutes ago; not sent again." in messages_of(again)


def test_suppress_and_unsuppress(
    admin_client: Client, alice: Subscriber, carol: Subscriber, mallory: Subscriber
) -> None:
    Subscriber.objects.filter(pk=alice.pk).update(confirmed_at=NOW)

    notes = messages_of(act(admin_client, "suppress", alice, mallory))

    alice.refresh_from_db()
    mallory.refresh_from_db()
    assert alice.status == "suppressed" and alice.suppressed_reason == "suppressed by an operator"
    assert mallory.suppressed_reason.startswith("hard bounce")  # kept its first reason
    assert notes == ["1 subscriber suppressed.", "1 subscriber already suppressed."]
    assert LogEntry.objects.filter(object_id=str(alice.pk)).count() == 1

    notes = messages_of(act(admin_client, "unsuppress", alice, mallory, carol))

    alice.refresh_from_db()
    mallory.refresh_from_db()
    carol.refresh_from_db()
    assert (alice.status, alice.suppressed_at, alice.suppressed_reason) == ("active", None, "")
    assert mallory.status == "active"  # she had confirmed
    assert carol.status == "active"
    assert notes == ["2 subscribers unsuppressed.", "1 subscriber not suppressed; unchanged."]


def body_of(response: Any) -> bytes:
    return b"".join(response.streaming_content)


def read_csv(response: Any) -> list[list[str]]:
    body = body_of(response).decode("utf-8")
    assert body.startswith("\ufeff")  # so Excel reads UTF-8
    return list(csv.reader(io.StringIO(body[1:], newline="")))


def test_export_csv_lists_the_selected_and_defuses_formulas(
    admin_client: Client,
    alice: Subscriber,
    carol: Subscriber,
    erin: Subscriber,
    make_subscriber: Callable[..., Subscriber],
) -> None:
    trudy = make_subscriber("trudy@example.org", ['=HYPERLINK("http://evil.example")', "@SUM"])

    response = admin_client.post(
        reverse(CHANGELIST),
        {"action": "export_csv", "_selected_action": [alice.pk, erin.pk, trudy.pk]},
    )

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="subscribers-')
    header, *rows = read_csv(response)
    assert header == [
        "email", "status", "frequency", "max_papers", "topics", "created_at", "confirmed_at"
    ]  # fmt: skip
    by_email = {row[0]: row for row in rows}
    assert set(by_email) == {"alice@example.org", "erin@example.org", "trudy@example.org"}
    assert by_email["alice@example.org"][1:5] == [
        "active", "daily", "10", "diffusion; video generation; -survey"
    ]  # fmt: skip
    assert by_email["alice@example.org"][6] == ""  # never confirmed (added by hand)
    assert dt.datetime.fromisoformat(by_email["erin@example.org"][6]) == erin.confirmed_at
    # A cell a spreadsheet would run starts with an apostrophe; the data itself is intact.
    assert by_email["trudy@example.org"][4] == '\'=HYPERLINK("http://evil.example"); @SUM'
    assert by_email["erin@example.org"][4] == "'-survey; speech recognition"
    erin.refresh_from_db()
    assert erin.topics == ["-survey", "speech recognition"]


def test_an_export_imports_back_unchanged(
    admin_client: Client, alice: Subscriber, make_subscriber: Callable[..., Subscriber]
) -> None:
    make_subscriber("frank@example.org", ["-survey", "graph neural networks"], max_papers=5)
    exported = admin_client.post(
        reverse(CHANGELIST),
        {
            "action": "export_csv",
            "_selected_action": list(Subscriber.objects.values_list("pk", flat=True)),
        },
    )
    data = body_of(exported)

    report = upload(admin_client, data, mode="pre_confirmed").context["report"]

    assert (report.added, report.updated, report.unchanged, report.bad_rows) == (0, 0, 2, [])
    frank = Subscriber.objects.get(email="frank@example.org")
    assert frank.topics == ["-survey", "graph neural networks"] and frank.max_papers == 5


# --- CSV import ---------------------------------------------------------------------------

MIXED = (
    "\ufeffEmail,Topics,Frequency,Max papers\r\n"  # 1: Excel's "CSV UTF-8", with a header
    "Dave@Example.org ,diffusion; speech recognition ;-survey,weekly,7\r\n"  # 2 new
    "alice@example.org,video generation,,\r\n"  # 3: update alice's topics, keep the rest
    "not-an-address,diffusion,,\r\n"  # 4
    "gina@example.org,,daily,5\r\n"  # 5: no topics, a trending subscriber
    "hank@example.org,-survey,daily,5\r\n"  # 6
    "ivy@example.org,diffusion,hourly,5\r\n"  # 7
    "jo@example.org,diffusion,daily,0\r\n"  # 8
    "kim@example.org,diffusion,daily,ten\r\n"  # 9
    "\r\n"  # 10: a blank line is skipped quietly
    'lee@example.org,"diffusion\r\nmodels",daily,5\r\n'  # 11-12: a line break in a cell
    "mallory@example.org,diffusion,daily,5\r\n"  # 13: suppressed
    "erin@example.org,speech,daily,5\r\n"  # 14: unsubscribed
    "dave@example.org,robots,daily,3\r\n"  # 15: dave again
    "nan@example.org,diffusion,daily,21\r\n"  # 16
    "olga@exa\u202eelpmaxe.org,diffusion,,\r\n"  # 17: a right-to-left override
    "pat@example.org,protein folding\r\n"  # 18: short row: optional columns left out
)


def upload(client: Client, data: bytes, *, mode: str) -> Any:
    return client.post(
        reverse("admin:subscriptions_subscriber_import"),
        {"file": SimpleUploadedFile("subscribers.csv", data, "text/csv"), "mode": mode},
    )


def test_importing_a_file_with_good_and_bad_rows_pre_confirmed(
    admin_client: Client,
    alice: Subscriber,
    mallory: Subscriber,
    erin: Subscriber,
    smtp_server: Mailbox,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(admin_client, MIXED.encode(), mode="pre_confirmed")

    report = response.context["report"]
    assert [(r.line, r.reason) for r in report.bad_rows] == [
        (4, "bad email address “not-an-address”"),
        (6, "no topics: a topic starting with “-” only leaves papers out"),
        (7, "bad frequency “hourly”: use daily or weekly"),
        (8, "max_papers “0” is not a whole number from 1 to 20"),
        (9, "max_papers “ten” is not a whole number from 1 to 20"),
        (11, "contains control characters (a line break or tab inside a cell?)"),
        (13, "suppressed address (hard bounce: 550 5.1.1 no such user): "
             "an import never subscribes it again"),
        (14, "unsubscribed by themselves: an import does not sign them up again"),
        (15, "duplicate: the address is on line 2"),
        (16, "max_papers “21” is not a whole number from 1 to 20"),
        (17, "contains control characters (a line break or tab inside a cell?)"),
    ]  # fmt: skip
    assert (report.added, report.updated, report.unchanged) == (3, 1, 0)
    page = response.content.decode()
    assert "<td>13</td><td>mallory@example.org</td>" in page
    assert "duplicate: the address is on line 2" in page
    dave = Subscriber.objects.get(email="dave@example.org")
    assert (dave.status, dave.frequency, dave.max_papers) == ("active", "weekly", 7)
    assert dave.topics == ["diffusion", "speech recognition", "-survey"]
    assert dave.confirmed_at is not None
    gina = Subscriber.objects.get(email="gina@example.org")
    assert (gina.topics, gina.effective_trending, gina.max_papers) == ([], "only", 5)
    pat = Subscriber.objects.get(email="pat@example.org")
    assert (pat.status, pat.frequency, pat.max_papers) == ("active", "daily", 10)
    alice.refresh_from_db()
    assert (alice.topics, alice.frequency, alice.max_papers) == (
        ["video generation"],
        "daily",
        10,
    )
    mallory.refresh_from_db()
    erin.refresh_from_db()
    assert (mallory.status, erin.status) == ("suppressed", "unsubscribed")
    assert smtp_server.messages == []  # pre-confirmed: nobody is emailed


def test_importing_with_confirmation_emails_the_new_addresses_only(
    admin_client: Client,
    alice: Subscriber,
    smtp_server: Mailbox,
    django_capture_on_commit_callbacks: Any,
) -> None:
    data = b"dave@example.org,diffusion\nalice@example.org,diffusion;robots\nbad,x\n"

    with django_capture_on_commit_callbacks(execute=True):
        response = upload(admin_client, data, mode="send_confirmation")

    report = response.context["report"]
    assert (report.added, report.updated, report.confirmations_sent) == (1, 1, 1)
    assert report.confirmations_held == 0
    assert [r.line for r in report.bad_rows] == [3]
    [received] = smtp_server.messages
    assert received.rcpt_tos == ["dave@example.org"]
    assert "Confirm" in received.message["Subject"]
    dave = Subscriber.objects.get(email="dave@example.org")
    assert (dave.status, dave.confirmed_at) == ("pending", None)
    alice.refresh_from_db()
    assert alice.status == "active" and alice.topics == ["diffusion", "robots"]
    assert "1</strong> confirmation email sent" in response.content.decode()


def test_importing_readers_without_topics(
    admin_client: Client, alice: Subscriber, django_capture_on_commit_callbacks: Any
) -> None:
    # A list of addresses alone: trending readers. A blank topics cell keeps alice's.
    data = b"email\nnew@example.org\n"
    with django_capture_on_commit_callbacks(execute=True):
        report = upload(admin_client, data, mode="pre_confirmed").context["report"]
    assert (report.added, report.bad_rows) == (1, [])
    new = Subscriber.objects.get(email="new@example.org")
    assert (new.topics, new.effective_trending, new.status) == ([], "only", "active")

    data = b"email,topics,frequency\nalice@example.org,,weekly\n"
    report = upload(admin_client, data, mode="pre_confirmed").context["report"]
    assert (report.updated, report.bad_rows) == (1, [])
    alice.refresh_from_db()
    assert (alice.topics, alice.frequency) == (
        ["diffusion", "video generation", "-survey"],
        "weekly",
    )


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"email,topics\nd\xe9sir\xe9@example.org,diffusion\n", "not UTF-8 text (first bad byte on line 2)"),  # noqa: E501
        (b"email,interests_typo\nx@example.org,diffusion\n", "no “topics” column"),
        (b"\xef\xbb\xbfemail,topics\r\n\r\n", "no subscribers in it"),
        (b"Email;Topics\r\nx@example.org;diffusion\r\n", "columns are separated by “;”"),
    ],
)  # fmt: skip
def test_a_file_that_cannot_be_read_imports_nothing(
    admin_client: Client, data: bytes, error: str
) -> None:
    response = upload(admin_client, data, mode="pre_confirmed")

    assert error in response.context["report"].error
    assert "The file was not imported" in response.content.decode()
    assert not Subscriber.objects.exists()


def test_a_file_over_the_size_limit_is_refused_before_reading(admin_client: Client) -> None:
    data = b"email,topics\n" + b"x@example.org,diffusion\n" * (MAX_IMPORT_BYTES // 20)

    response = upload(admin_client, data, mode="pre_confirmed")

    assert response.context["report"] is None
    assert "larger than 2 MB" in response.content.decode()
    assert not Subscriber.objects.exists()


def test_the_import_and_add_pages_are_for_staff_only(client: Client, admin_client: Client) -> None:
    for url in (
        reverse("admin:subscriptions_subscriber_import"),
        reverse("admin:subscriptions_subscriber_add"),
    ):
        assert admin_client.get(url).status_code == 200
        assert client.get(url).status_code == 302  # to the login page


# --- Editions -----------------------------------------------------------------------------


def test_the_edition_page_counts_deliveries_and_links_to_them(
    admin_client: Client,
    alice: Subscriber,
    bob: Subscriber,
    carol: Subscriber,
    papers: list[Paper],
    smtp_server: Mailbox,
) -> None:
    Subscriber.objects.filter(pk=bob.pk).update(status="active")
    smtp_server.refusals.append("550 5.1.1 no such user")  # the first send fails for good
    edition = edition_prepare(date=EDITION_DATE, scrape=False).edition
    edition_send(edition=edition)
    counts = dict(
        Delivery.objects.filter(edition=edition).values_list("status").annotate(n=Count("pk"))
    )
    assert counts == {"sent": 1, "failed": 1, "skipped": 1}

    page = admin_client.get(reverse("admin:digest_edition_change", args=[edition.pk]))

    html = page.content.decode()
    assert page.status_code == 200
    base = f"{reverse('admin:digest_delivery_changelist')}?edition__id__exact={edition.pk}"
    assert f'<a href="{base}&amp;status__exact=sent">1</a>' in html
    assert f'<a href="{base}&amp;status__exact=failed">1</a>' in html
    assert f'<a href="{base}&amp;status__exact=skipped">1</a>' in html
    assert f'<a href="{base}&amp;status__exact=queued">0</a>' in html
    assert "nothing matched their topics: 1" in html
    assert f'<a href="{base}">All deliveries of 2026-03-10</a>' in html
    listed = admin_client.get(base).context["cl"].result_list
    assert {d.edition_id for d in listed} == {edition.pk} and len(listed) == 3
    failed = admin_client.get(base + "&status__exact=failed").context["cl"].result_list
    assert [d.status for d in failed] == ["failed"]
    # The list counts papers with a subquery: no multiplied counts, no query per row.
    row = admin_client.get(reverse("admin:digest_edition_changelist")).context["cl"].result_list[0]
    assert (row._papers, row._sent, row._failed, row._skipped) == (2, 1, 1, 1)


# --- Preview ------------------------------------------------------------------------------


def preview_url(subscriber: Subscriber) -> str:
    return reverse("admin:subscriptions_subscriber_preview", args=[subscriber.pk])


def test_the_preview_shows_the_digest_of_the_latest_day_escaped(
    admin_client: Client, alice: Subscriber, papers: list[Paper], make_paper: Callable[..., Paper]
) -> None:
    make_paper("An older paper", batch_date=EDITION_DATE - dt.timedelta(days=3))

    response = admin_client.get(preview_url(alice))

    html = response.content.decode()
    assert response.status_code == 200
    assert 'value="2026-03-10"' in html  # the date picker starts at the latest papers
    assert "Digest of Tuesday, 10 March 2026" in html
    assert '<iframe title="HTML part" sandbox srcdoc="' in html
    # Scraped markup is text everywhere: escaped in the email, escaped again in srcdoc.
    assert "<b>Diffusion</b>" not in html and "<script>alert(1)</script>" not in html
    assert "&amp;lt;b&amp;gt;Diffusion&amp;lt;/b&amp;gt;" in html  # in the srcdoc
    assert "&lt;b&gt;Diffusion&lt;/b&gt; Forcing" in html  # the plain text part, and subject
    assert not Delivery.objects.exists()


def test_the_preview_of_another_date_gives_the_skip_reason(
    admin_client: Client, bob: Subscriber, alice: Subscriber, papers: list[Paper]
) -> None:
    Subscriber.objects.filter(pk=bob.pk).update(topics=["protein folding"])

    nothing = admin_client.get(preview_url(bob), {"date": "2026-03-10"}).content.decode()
    assert "No digest: nothing matched their topics." in nothing
    assert "The subscriber is pending confirmation: no digest is sent to them." in nothing

    empty = admin_client.get(preview_url(alice), {"date": "2026-03-01"}).content.decode()
    assert "No digest: no new papers to send." in empty

    bad = admin_client.get(preview_url(alice), {"date": "10/03/2026"})
    assert bad.status_code == 200 and "Enter a date as YYYY-MM-DD." in bad.content.decode()


def test_the_preview_is_for_staff_only(client: Client, alice: Subscriber) -> None:
    response = client.get(preview_url(alice))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_edition_list_makes_the_same_few_queries_for_many_editions(
    admin_client: Client, alice: Subscriber, papers: list[Paper], django_assert_max_num_queries: Any
) -> None:
    url = reverse("admin:digest_edition_changelist")
    sent_delivery(alice, EDITION_DATE, papers[0])
    admin_client.get(url)
    with django_assert_max_num_queries(12) as one:
        admin_client.get(url)
    for days in range(1, 20):
        sent_delivery(alice, EDITION_DATE - dt.timedelta(days=days), papers[1])

    with django_assert_max_num_queries(len(one.captured_queries)):
        response = admin_client.get(url)

    assert len(response.context["cl"].result_list) == 20
