"""`make demo`'s commands: seed the demo subscribers, run one daily cycle, read the outbox."""

from __future__ import annotations

import email
import email.policy
import json
import os
import subprocess
import sys
import time
from email.message import EmailMessage
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from digest.management.commands.seed_demo import DEMO_SUBSCRIBERS
from subscriptions.models import Subscriber
from tests.conftest import EDITION_DATE, SAMPLES
from tests.hf_wire import hf_item, tuesday_papers
from tests.loopback_http import LoopbackServer
from tests.mail import html_of, text_of

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.django_db


def serve_day(loopback: LoopbackServer, items: list[dict[str, Any]]) -> None:
    loopback.route("/api/daily_papers", query={"p": "0"}, json=items)
    loopback.route("/api/daily_papers", json=[])


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def outbox_messages(folder: Path) -> dict[str, EmailMessage]:
    messages: dict[str, EmailMessage] = {}
    for path in sorted(folder.glob("*.eml")):
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        assert path.with_suffix(".html").exists(), "the HTML sits beside each .eml"
        messages[str(parsed["To"])] = parsed
    return messages


@pytest.fixture
def demo_day(loopback: LoopbackServer, settings: Any) -> list[dict[str, Any]]:
    settings.EMAIL_BACKEND = "digest.mail.outbox.OutboxBackend"  # pytest-django swaps in locmem
    settings.PAPERBOY_HF_URL = loopback.base_url
    settings.PAPERBOY_REFRESH_DAYS = 0
    items = [
        *tuesday_papers(EDITION_DATE),
        hf_item(
            "2603.10005",
            "ToolBench-2: Evaluating Agents that Use Tools",
            "A benchmark of 3,000 tasks for LLM agents that call APIs.",
            date=EDITION_DATE,
            upvotes=50,
        ),
    ]
    serve_day(loopback, items)
    return items


def test_the_demo_writes_one_digest_per_matching_reader_and_nothing_twice(
    demo_day: list[dict[str, Any]], settings: Any
) -> None:
    outbox = Path(settings.PAPERBOY_OUTBOX_DIR)
    run("seed_demo")
    run("seed_demo")  # idempotent
    assert Subscriber.objects.count() == len(DEMO_SUBSCRIBERS)

    report = run("run_daily", "--date", EDITION_DATE.isoformat(), "--no-progress")

    messages = outbox_messages(outbox)
    # erin reads about proteins: nothing today, so no email, and the summary says why.
    assert set(messages) == {
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
        "dave@example.com",
    }
    for message in messages.values():
        assert message.get_content_type() == "multipart/alternative"
        for header in ("From", "Subject", "Date", "Message-ID", "List-Id", "List-Unsubscribe"):
            assert message[header], header
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["Auto-Submitted"] == "auto-generated"
    alice_text = text_of(messages["alice@example.com"])
    assert "Consistent Video Generation with Diffusion Transformers" in alice_text

    assert "papers fetched" in report and " 5" in report
    assert "digests written now  4" in report
    assert "skipped" in report and "nothing matched their topics" in report
    assert str(outbox) in report

    # A second run for the same day writes nothing new.
    again = run("run_daily", "--date", EDITION_DATE.isoformat(), "--no-progress")
    assert len(list(outbox.glob("*.eml"))) == 4
    assert "digests written now  0" in again
    assert "already written" in again


def test_the_demo_s_latest_day_is_the_latest_with_papers(
    loopback: LoopbackServer, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt

    from django.utils import timezone

    settings.PAPERBOY_HF_URL = loopback.base_url
    settings.PAPERBOY_REFRESH_DAYS = 0
    # "Today" is Sunday 15 March: the weekend has nothing, Friday the 13th has papers.
    monkeypatch.setattr(timezone, "now", lambda: dt.datetime(2026, 3, 15, 9, tzinfo=dt.UTC))
    friday = "2026-03-13"
    loopback.route(
        "/api/daily_papers",
        query={"date": friday, "p": "0"},
        json=tuesday_papers(dt.date(2026, 3, 13)),
    )
    loopback.route("/api/daily_papers", json=[])
    run("seed_demo")
    report = run("run_daily", "--date", "latest", "--no-progress")
    assert "Friday 13 March 2026" in report
    asked = {r.query.get("date") for r in loopback.requests_to("/api/daily_papers")}
    assert "2026-03-14" not in asked and "2026-03-15" not in asked  # weekends not asked


def test_offline_the_run_fails_fast_naming_the_url_and_the_setting(settings: Any) -> None:
    settings.PAPERBOY_HF_URL = "http://127.0.0.1:9"  # nothing listens there
    settings.PAPERBOY_HTTP_BACKOFF_S = 0.05
    run("seed_demo")
    started = time.monotonic()
    with pytest.raises(CommandError) as failure:
        run("run_daily", "--date", EDITION_DATE.isoformat(), "--no-progress")
    assert time.monotonic() - started < 10
    message = str(failure.value)
    assert "http://127.0.0.1:9" in message
    assert "PAPERBOY_HF_URL" in message


def test_the_command_line_exits_non_zero_with_a_clear_message_offline(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
        "PAPERBOY_VAR_DIR": str(tmp_path),
        "PAPERBOY_HF_URL": "http://127.0.0.1:9",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True, cwd=ROOT)
    started = time.monotonic()
    result = subprocess.run(
        [*manage, "run_daily", "--date", "2026-03-10"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert "http://127.0.0.1:9/api/daily_papers" in result.stderr
    assert "PAPERBOY_HF_URL" in result.stderr
    assert "Traceback" not in result.stderr
    assert elapsed < 15


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/samples is not here")
def test_the_demo_on_a_real_hugging_face_day(loopback: LoopbackServer, settings: Any) -> None:
    props = json.loads((SAMPLES / "hf_daily_papers_props_2026-03-10.json").read_text())
    settings.EMAIL_BACKEND = "digest.mail.outbox.OutboxBackend"
    settings.PAPERBOY_HF_URL = loopback.base_url
    settings.PAPERBOY_REFRESH_DAYS = 0
    serve_day(loopback, props["dailyPapers"])
    run("seed_demo")
    run("run_daily", "--date", "2026-03-10", "--no-progress")
    messages = outbox_messages(Path(settings.PAPERBOY_OUTBOX_DIR))
    assert len(messages) >= 3
    titles = {item["paper"]["title"].split()[0] for item in props["dailyPapers"]}
    for message in messages.values():
        html = html_of(message)
        assert len(html.encode()) < 102 * 1024
        assert any(word in html for word in titles)
