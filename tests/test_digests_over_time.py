"""Digests over days of a moving clock, against a Hugging Face that lists papers all day.

Every test here runs `python manage.py run_daily` (no arguments: whatever is owed now) at
each hour of a stretch of days, the clock moved by time-machine, against a loopback
Hugging Face that lists each paper at its own time (tests/hf_timeline.py). What a subscriber
got is read back from the deliveries, as the admin shows them.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any, cast

import pytest
import time_machine
from django.core.management import call_command

from digest.models import Delivery, DeliveryPaper, Paper
from subscriptions.models import Subscriber
from tests.hf_timeline import SUBJECTS, HFTimeline, listed_at, sample_days, synthetic_days
from tests.hf_wire import hf_item
from tests.mail import html_of, text_of

pytestmark = pytest.mark.django_db(transaction=True)

UTC = dt.UTC
MONDAY = dt.date(2026, 4, 13)


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=UTC)


def hours(
    start: dt.datetime, end: dt.datetime, *, skip: Callable[[dt.datetime], bool] = lambda _: False
) -> Iterable[dt.datetime]:
    moment = start
    while moment <= end:
        if not skip(moment):
            yield moment
        moment += dt.timedelta(hours=1)


def run_at(moment: dt.datetime) -> None:
    """One beat of the hourly run, two minutes past the hour."""
    with time_machine.travel(moment + dt.timedelta(minutes=2), tick=False):
        call_command("run_daily", "--no-progress", stdout=_Quiet(), stderr=_Quiet())


class _Quiet:
    def write(self, *_: Any) -> None:
        pass

    def flush(self) -> None:
        pass


def received(subscriber: Subscriber) -> Counter[str]:
    """arXiv id -> how many of the subscriber's digests (emailed or in the feed) carried it."""
    rows = DeliveryPaper.objects.filter(
        delivery__subscriber=subscriber,
        delivery__status__in=[Delivery.Status.SENT, Delivery.Status.FEED],
    ).values_list("paper__arxiv_id", flat=True)
    return Counter(rows)


@pytest.fixture
def hf(sources_on_loopback: Any, settings: Any) -> HFTimeline:
    settings.PAPERBOY_SCRAPE_DAYS = 3
    settings.PAPERBOY_MATCH_PROCESSES = 1
    timeline = HFTimeline(synthetic_days(MONDAY, 5))
    timeline.install(sources_on_loopback)
    return timeline


def follower(subject: str, **fields: Any) -> Subscriber:
    fields.setdefault("send_hour", 7)
    fields.setdefault("time_zone", "UTC")
    fields.setdefault("email", f"{subject.replace(' ', '-')}@example.org")
    return Subscriber.objects.create(
        topics=[subject],
        status=Subscriber.Status.ACTIVE,
        confirmed_at=at(MONDAY, 0) - dt.timedelta(days=1),
        **fields,
    )


def sent_to(address: str, outbox: list[Any]) -> list[EmailMessage]:
    """The emails sent to `address`, oldest first, as a mail client parses them."""
    parse = BytesParser(policy=policy.default).parsebytes
    return [cast(EmailMessage, parse(m.message().as_bytes())) for m in outbox if address in m.to]


def test_a_week_of_hourly_runs_brings_every_paper_once_at_each_readers_hour(
    hf: HFTimeline, mailoutbox: list[Any]
) -> None:
    """Half of each day's papers are listed after the 07:00 digest: each one reaches its
    follower the next morning, none twice; weekly and trending subscribers too."""
    followers = {subject: follower(subject) for subject, _ in SUBJECTS[:8]}
    trending = Subscriber.objects.create(
        email="trend@example.org",
        topics=[],
        status=Subscriber.Status.ACTIVE,
        send_hour=7,
        max_papers=5,
        confirmed_at=at(MONDAY, 0) - dt.timedelta(days=1),
    )
    weekly = follower(
        "speech recognition", email="weekly@example.org", frequency="weekly", send_weekday=1
    )

    for moment in hours(at(MONDAY, 0), at(MONDAY + dt.timedelta(days=7), 9)):
        run_at(moment)

    by_subject = {item["paper"]["id"]: item["paper"]["ai_keywords"][0] for item in hf.items}
    late = [i for i in hf.items if listed_at(i).hour >= 7]
    assert len(late) >= 15  # the point of the test: many papers come after the morning run
    for subject, reader in followers.items():
        got = received(reader)
        wanted = {pid for pid, s in by_subject.items() if s == subject}
        assert set(got) == wanted, subject
        assert max(got.values()) == 1, f"{subject}: a paper came twice"

    # Every digest came at 07:00 UTC (sent by the 07:00 run), one a day at most.
    sent = Delivery.objects.filter(status=Delivery.Status.SENT)
    assert sent.exists()
    assert {d.sent_at.hour for d in sent if d.sent_at} == {7}
    days = Counter((d.subscriber_id, d.due_at.date()) for d in Delivery.objects.all() if d.due_at)
    assert max(days.values()) == 1

    # The trending subscriber got the top papers by upvotes, each once, with its place.
    got = received(trending)
    assert got and max(got.values()) == 1
    first = Delivery.objects.filter(subscriber=trending, status="sent").order_by("due_at")[1]
    reasons = [item.reasons[0]["topic"] for item in first.items.order_by("rank")]
    assert reasons[0].startswith("#1 today · ") and reasons[0].endswith(" upvotes")
    assert len(reasons) == 5
    # And the subscriber sees it so, in both parts of the email.
    mail = sent_to("trend@example.org", mailoutbox)
    assert len(mail) == Delivery.objects.filter(subscriber=trending, status="sent").count()
    assert f"Trending: {reasons[0]}." in " ".join(text_of(mail[1]).split())
    assert "Trending: <b>#1 today" in html_of(mail[1])
    assert "the trending papers" in " ".join(text_of(mail[1]).split())
    assert "The 5 papers most upvoted today" in text_of(mail[1])

    # The weekly subscriber: Monday's first digest, then the whole week's on the next Monday.
    weekly_got = received(weekly)
    speech = {pid for pid, s in by_subject.items() if s == "speech recognition"}
    assert set(weekly_got) == speech and max(weekly_got.values()) == 1
    weekly_days = sorted(d.due_at.date() for d in weekly.deliveries.all() if d.due_at)
    assert weekly_days == [MONDAY, MONDAY + dt.timedelta(days=7)]


def test_a_paper_added_to_an_earlier_day_goes_in_the_next_digest(hf: HFTimeline) -> None:
    reader = follower("chip design")
    for moment in hours(at(MONDAY, 0), at(MONDAY + dt.timedelta(days=1), 8)):
        run_at(moment)
    late = hf_item(
        "2604.09999",
        "Chip design with reinforcement learning",
        "Placing chip blocks.",
        date=MONDAY,
        upvotes=50,
        ai_keywords=["chip design"],
    )
    hf.add(late, day=MONDAY)  # on Monday's list, from Tuesday 15:00 on
    listed = at(MONDAY + dt.timedelta(days=1), 15)
    late["paper"]["submittedOnDailyAt"] = listed.isoformat().replace("+00:00", "Z")
    for moment in hours(at(MONDAY + dt.timedelta(days=1), 9), at(MONDAY + dt.timedelta(days=2), 8)):
        run_at(moment)
    assert Paper.objects.filter(arxiv_id="2604.09999").exists()
    got = received(reader)
    assert got["2604.09999"] == 1
    wednesday = reader.deliveries.get(due_at=at(MONDAY + dt.timedelta(days=2), 7))
    assert "2604.09999" in {i.paper.arxiv_id for i in wednesday.items.all()}


def test_a_six_hour_outage_catches_up_late_rather_than_skipping(hf: HFTimeline) -> None:
    reader = follower("machine translation")  # Monday's is listed at 21:54
    tuesday = MONDAY + dt.timedelta(days=1)
    down = lambda m: at(tuesday, 4) <= m < at(tuesday, 10)  # noqa: E731
    for moment in hours(at(MONDAY, 0), at(tuesday + dt.timedelta(days=1), 8), skip=down):
        run_at(moment)
    digests = {d.due_at: d for d in reader.deliveries.all()}
    caught_up = digests[at(tuesday, 7)]
    assert caught_up.status == Delivery.Status.SENT
    # Sent at the first run after the outage.
    assert caught_up.sent_at is not None and caught_up.sent_at.hour == 10
    # And Wednesday's digest came at its hour again, covering from the late one's cutoff.
    wednesday = digests[at(tuesday + dt.timedelta(days=1), 7)]
    assert wednesday.covers_from == caught_up.covers_until
    assert max(received(reader).values()) == 1


@pytest.mark.parametrize(
    ("zone", "change_day"),
    [("Europe/Berlin", dt.date(2026, 3, 29)), ("America/New_York", dt.date(2026, 3, 8))],
)
def test_daylight_saving_neither_skips_nor_doubles_a_digest(
    sources_on_loopback: Any, settings: Any, zone: str, change_day: dt.date
) -> None:
    """Clocks go forward on `change_day` (a Sunday): the 07:00 digest still comes once a
    local day, at 07:00 local time, before and after."""
    settings.PAPERBOY_SCRAPE_DAYS = 3
    settings.PAPERBOY_MATCH_PROCESSES = 1
    friday = change_day - dt.timedelta(days=2)
    HFTimeline(synthetic_days(friday - dt.timedelta(days=1), 5)).install(sources_on_loopback)
    reader = Subscriber.objects.create(
        email="tz@example.org",
        topics=[],
        status=Subscriber.Status.ACTIVE,
        time_zone=zone,
        send_hour=7,
        confirmed_at=at(friday, 0) - dt.timedelta(days=2),
    )
    for moment in hours(at(friday, 0), at(change_day + dt.timedelta(days=2), 12)):
        run_at(moment)
    local = zoneinfo.ZoneInfo(zone)
    due = [d.due_at.astimezone(local) for d in reader.deliveries.order_by("due_at") if d.due_at]
    dates = [d.date() for d in due]
    assert dates == [friday + dt.timedelta(days=i) for i in range(5)]  # Fri … Tue, once each
    assert {d.hour for d in due} == {7}
    offsets = {d.utcoffset() for d in due}
    assert len(offsets) == 2  # the change fell inside the stretch


@pytest.mark.skipif(not sample_days(), reason="needs ../shared/samples (real captured days)")
def test_real_days_listed_through_the_day_reach_their_followers(
    sources_on_loopback: Any, settings: Any
) -> None:
    """The captured days of March 2026, each paper listed at its real time: subscribers
    following one paper listed before 07:00 and one listed after both get it, once."""
    settings.PAPERBOY_SCRAPE_DAYS = 3
    settings.PAPERBOY_MATCH_PROCESSES = 1
    items = [
        i
        for i in sample_days()
        if i["paper"]["submittedOnDailyAt"][:10] in ("2026-03-10", "2026-03-11")
    ]
    HFTimeline(items).install(sources_on_loopback)
    tuesday = dt.date(2026, 3, 10)
    chosen = [i for i in items if i["paper"]["submittedOnDailyAt"][:10] == "2026-03-10"]
    early = next(i for i in chosen if listed_at(i).hour < 7)
    late = next(i for i in chosen if listed_at(i).hour >= 12)
    readers = {}
    for item in (early, late):
        # Following one paper: trending only, with room for the whole day, so it is in.
        readers[item["paper"]["id"]] = Subscriber.objects.create(
            email=f"{item['paper']['id']}@example.org",
            topics=[],
            max_papers=20,
            status=Subscriber.Status.ACTIVE,
            send_hour=7,
            confirmed_at=at(tuesday, 0) - dt.timedelta(days=1),
        )
    for moment in hours(at(tuesday, 0), at(tuesday + dt.timedelta(days=2), 8)):
        run_at(moment)
    for arxiv_id, reader in readers.items():
        got = received(reader)
        assert max(got.values()) == 1
        # Every paper of the two days came to these trending subscribers within two digests,
        # at most 20 a digest: the late one too.
        assert arxiv_id in got or len(got) >= 20, arxiv_id
