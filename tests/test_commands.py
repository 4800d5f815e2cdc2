"""The operator's management commands, as an operator runs them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from digest.mail import leases
from digest.matching import edition_match
from digest.models import Delivery, Edition, Paper
from digest.planning import edition_plan
from subscriptions.models import Subscriber
from tests.conftest import EDITION_DATE
from tests.hf_wire import tuesday_papers
from tests.loopback_http import LoopbackServer
from tests.smtp_server import Mailbox

pytestmark = pytest.mark.django_db
DAY = EDITION_DATE.isoformat()


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def stored_papers(make_paper: Callable[..., Paper]) -> list[Paper]:
    return [
        make_paper("Consistent Video Generation with Diffusion Transformers", upvotes=90),
        make_paper("Reward Model Ensembles Make RLHF Robust", upvotes=40),
    ]


def test_add_subscriber_adds_a_confirmed_reader_and_rejects_bad_input() -> None:
    out = run("add_subscriber", "  Dana@Example.ORG ", "--", "graph neural networks", "-survey")
    assert "Added dana@example.org: graph neural networks, -survey" in out
    dana = Subscriber.objects.get()
    assert (dana.status, dana.frequency, dana.max_papers) == ("active", "daily", 10)

    out = run("add_subscriber", "dana@example.org", "GNN", "--frequency", "weekly")
    assert out.startswith("Updated")
    dana.refresh_from_db()
    assert (dana.topics, dana.frequency) == (["GNN"], "weekly")

    with pytest.raises(CommandError, match="not an email address"):
        run("add_subscriber", "not-an-address", "diffusion")
    with pytest.raises(CommandError, match="control characters"):
        run("add_subscriber", "eve@example.org", "diffusion\x00")


def test_add_subscriber_without_topics_adds_a_trending_reader_at_their_own_hour() -> None:
    out = run("add_subscriber", "fay@example.org", "--timezone", "Europe/Berlin", "--hour", "8")
    assert "no topics: the trending papers, most upvoted first" in out
    assert "daily at 08:00 Europe/Berlin" in out
    fay = Subscriber.objects.get(email="fay@example.org")
    assert (fay.topics, fay.effective_trending) == ([], Subscriber.Trending.ONLY)
    assert (fay.time_zone, fay.send_hour, fay.status) == ("Europe/Berlin", 8, "active")

    out = run(
        "add_subscriber",
        "fay@example.org",
        "RLHF",
        "--trending",
        "few",
        "--feed-only",
        "--frequency",
        "weekly",
        "--weekday",
        "friday",
        "--hour",
        "18",
    )
    assert (
        "Updated fay@example.org: RLHF, plus the top 3 trending; Fridays at 18:00 "
        "Europe/Berlin; feed only, no email"
    ) in out
    fay.refresh_from_db()
    assert (fay.trending, fay.channel, fay.send_weekday) == ("few", "feed", 5)
    assert fay.next_due_at is None  # a new schedule: the next run works it out again

    with pytest.raises(CommandError, match="not an IANA time zone"):
        run("add_subscriber", "gus@example.org", "--timezone", "Mars/Olympus")
    with pytest.raises(CommandError, match="not an hour"):
        run("add_subscriber", "gus@example.org", "--hour", "24")
    with pytest.raises(CommandError, match="not a weekday"):
        run("add_subscriber", "gus@example.org", "--weekday", "8")
    with pytest.raises(CommandError, match="invalid choice: 'lots'"):
        run("add_subscriber", "gus@example.org", "--trending", "lots")
    assert not Subscriber.objects.filter(email="gus@example.org").exists()


def test_add_subscriber_reads_a_day_by_its_short_name_and_keeps_topics_for_trending_only() -> None:
    out = run(
        "add_subscriber",
        "hal@example.org",
        "RLHF",
        "--trending",
        "only",
        "--frequency",
        "weekly",
        "--weekday",
        "Sun",
    )
    assert "the trending papers only (topics kept: RLHF); Sundays at 07:00 UTC" in out
    hal = Subscriber.objects.get(email="hal@example.org")
    assert (hal.send_weekday, hal.effective_trending, hal.channel) == (7, "only", "email")


def test_scrape_papers_reports_what_it_stored(
    sources_on_loopback: LoopbackServer, settings: Any
) -> None:
    settings.PAPERBOY_REFRESH_DAYS = 0
    sources_on_loopback.route(
        "/api/daily_papers", query={"p": "0"}, json=tuesday_papers(EDITION_DATE)
    )
    sources_on_loopback.route("/api/daily_papers", json=[])
    assert "4 papers fetched for 2026-03-10: 4 new" in run("scrape_papers", "--date", DAY)
    assert "0 new" in run("scrape_papers", "--date", DAY)
    assert Paper.objects.count() == 4


def test_a_bad_date_is_a_clear_error() -> None:
    with pytest.raises(CommandError, match="is not a date like 2026-03-10"):
        run("send_digests", "--date", "10/03/2026")


def test_send_digests_dry_run_shows_who_gets_what_and_changes_nothing(
    alice: Subscriber, carol: Subscriber, stored_papers: list[Paper], smtp_server: Mailbox
) -> None:
    out = run("send_digests", "--date", DAY, "--dry-run")
    assert "alice@example.org: 1 papers" in out
    assert "1. Consistent Video Generation with Diffusion Transformers" in out
    assert "carol@example.org: skipped (nothing matched their topics)" in out
    assert Edition.objects.count() == 0 and Delivery.objects.count() == 0
    assert smtp_server.messages == []


def test_send_digests_sends_from_stored_papers_once(
    alice: Subscriber, bob: Subscriber, stored_papers: list[Paper], smtp_server: Mailbox
) -> None:
    out = run("send_digests", "--date", DAY)
    assert "2 sent now, 2 sent in all, 0 skipped" in out
    out = run("send_digests", "--date", DAY)
    assert "0 sent now, 2 sent in all" in out
    assert len(smtp_server.messages) == 2


def test_preview_digest_writes_the_html_and_prints_its_path(
    alice: Subscriber, stored_papers: list[Paper], settings: Any, tmp_path: Path
) -> None:
    settings.VAR_DIR = tmp_path
    out = run("preview_digest", "ALICE@example.org", "--date", DAY)
    path = Path(out.strip().splitlines()[-1])
    assert path.parent == tmp_path / "previews"
    assert "Consistent Video Generation" in path.read_text()
    assert "Subject: Paperboy" in out
    assert Delivery.objects.count() == 0  # a preview saves nothing

    with pytest.raises(CommandError, match="No subscriber"):
        run("preview_digest", "nobody@example.org", "--date", DAY)
    with pytest.raises(CommandError, match="would get no digest"):
        run("preview_digest", "alice@example.org", "--date", "2026-01-01")


def test_recover_sends_queues_interrupted_deliveries_again(
    alice: Subscriber, stored_papers: list[Paper]
) -> None:
    edition = edition_plan(date=EDITION_DATE)
    edition_match(edition=edition)
    assert leases.claim(10).ids
    Delivery.objects.update(lease_until=timezone.now() - dt.timedelta(minutes=1))
    assert "1 interrupted deliveries queued again, 0 given up" in run("recover_sends")
    assert Delivery.objects.get().status == Delivery.Status.QUEUED


def test_process_email_events_applies_events_whose_task_was_lost(alice: Subscriber) -> None:
    from subscriptions.models import EmailEvent

    EmailEvent.objects.create(
        event_id="postmark:1:alice@example.org",
        event_type="complained",
        esp_name="Postmark",
        recipient="alice@example.org",
        received_at=timezone.now() - dt.timedelta(hours=1),
    )
    assert "1 pending email events applied" in run("process_email_events")
    assert "0 pending email events applied" in run("process_email_events")
    alice.refresh_from_db()
    assert alice.status == Subscriber.Status.SUPPRESSED
