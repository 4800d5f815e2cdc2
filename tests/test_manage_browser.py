"""Alice changes her digest in a real browser: the live preview, saving, pausing, leaving.

Headless Debian Chromium against the live server; screenshots land in test-artifacts/.
All database work happens before the browser starts or after it stops (see `chromium`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from digest.models import Delivery, DeliveryPaper, Edition, Paper
from subscriptions.links import digest_url, manage_url
from subscriptions.models import Subscriber
from tests.conftest import EDITION_DATE
from tests.test_email_screenshots import (
    ARTIFACTS,
    DESKTOP,
    PHONE,
    chromium,
    open_page,
    requires_chromium,
    scrolls_sideways,
    shoot,
)
from tests.test_emails import SAMPLE_PAPERS, sample_paper

pytestmark = [pytest.mark.browser, requires_chromium]

SITE = "https://paperboy.example"

SPEECH_PAPERS = [
    (
        "Whisper-Turbo: Streaming Speech Recognition on the Edge",
        "We distil a large speech recognition model into a streaming one that runs on a phone.",
        ["Sanchit Gandhi", "Patrick von Platen", "Alexander Rush"],
        143,
    ),
    (
        "VoiceCraft-2: Zero-Shot Text-to-Speech in Any Voice",
        "A codec language model for text-to-speech and speech editing from three seconds of audio.",
        ["Puyuan Peng", "Po-Yao Huang", "Daniel Li", "Abdelrahman Mohamed", "David Harwath"],
        97,
    ),
    (
        "Listening Before Speaking: Full-Duplex Spoken Dialogue Models",
        "Spoken dialogue models that listen while they talk, built on speech recognition.",
        ["Wenyi Yu", "Siyin Wang"],
        41,
    ),
]


@pytest.fixture
def alice_with_history(
    transactional_db: None,
    make_subscriber: Callable[..., Subscriber],
    make_paper: Callable[..., Paper],
) -> Subscriber:
    """Alice, the day's papers, and the digest she got that morning."""
    alice = make_subscriber(
        "alice@example.org", ["diffusion", "video generation", "-survey"], max_papers=5
    )
    sampled = []
    for entry in SAMPLE_PAPERS:
        fields, reasons = sample_paper(entry)
        sampled.append((make_paper(**fields), reasons))
    for title, abstract, authors, upvotes in SPEECH_PAPERS:
        make_paper(title, abstract, authors=authors, upvotes=upvotes)
    for day, chosen in ((EDITION_DATE, sampled[:5]), (EDITION_DATE - dt.timedelta(1), [])):
        edition = Edition.objects.create(date=day)
        delivery = Delivery.objects.create(
            edition=edition,
            subscriber=alice,
            status=Delivery.Status.SENT if chosen else Delivery.Status.SKIPPED,
            matched_at=timezone.now(),
            sent_at=timezone.now() if chosen else None,
        )
        for rank, (paper, reasons) in enumerate(chosen, start=1):
            DeliveryPaper.objects.create(delivery=delivery, paper=paper, rank=rank, reasons=reasons)
    return alice


def expect_text(page: Any, selector: str, text: str) -> None:
    expect = pytest.importorskip("playwright.sync_api").expect
    expect(page.locator(selector)).to_contain_text(text, timeout=5000)


def check_page(page: Any, name: str) -> None:
    """What any subscriber notices first: nothing scrolls sideways, and the text is readable."""
    assert not scrolls_sideways(page), f"{name} scrolls sideways"
    assert page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)") >= 16


def tap_heights(page: Any) -> list[float]:
    return list(
        page.eval_on_selector_all(
            "main button:not([hidden]), main .button, .choice, .segmented label, .d-view, "
            "main input[type=number], main select, #id_time_zone",
            "els => els.filter(e => e.offsetParent !== null)"
            ".map(e => e.getBoundingClientRect().height)",
        )
    )


def test_alice_edits_her_digest_with_a_live_preview(
    live_server: Any, alice_with_history: Subscriber
) -> None:
    alice = alice_with_history
    manage = live_server.url + manage_url(alice).removeprefix(SITE)
    digest = live_server.url + digest_url(alice, EDITION_DATE).removeprefix(SITE)

    with chromium() as browser:
        # The digest she got this morning, as it was sent (before she changes anything:
        # the copy is rendered with her settings of the moment).
        for width in (PHONE, DESKTOP):
            page = open_page(browser, digest, width)
            check_page(page, f"digest at {width} px")
            text = page.inner_text("body")
            assert "5 papers picked for your topics: diffusion, video generation" in text
            for entry in SAMPLE_PAPERS[:5]:
                assert entry["title"] in text
            shoot(page, f"page-digest-view-{width}")

        for width in (PHONE, DESKTOP):
            page = open_page(browser, manage, width)
            check_page(page, f"manage at {width} px")
            # The saved topics' preview is there from the start; the no-JS button is not.
            expect_text(page, "#preview", "Helios")
            assert not page.get_by_role("button", name="Preview").is_visible()
            assert min(tap_heights(page)) >= 44, tap_heights(page)
            shoot(page, f"page-manage-{width}")

            # She types new topics: the preview follows, and says nothing is saved yet.
            page.fill("#id_topics", "speech recognition\ntext-to-speech\n-dialogue")
            expect_text(page, "#preview", "Whisper-Turbo")
            expect_text(page, "#preview", "VoiceCraft-2")
            preview = page.inner_text("#preview")
            assert "Helios" not in preview and "Full-Duplex" not in preview
            assert "2 papers of the 11 from Tuesday, 10 March 2026" in preview
            assert page.locator("#unsaved").is_visible()
            page.locator("#preview-title").scroll_into_view_if_needed()
            shoot(page, f"page-manage-preview-{width}")
            check_page(page, f"manage with a preview at {width} px")

        # Dark mode holds up too.
        dark = open_page(browser, manage, PHONE, dark=True)
        expect_text(dark, "#preview", "Helios")
        shoot(dark, f"page-manage-{PHONE}-dark")

        # A mistake shows up next to the field, and the preview says why it is empty.
        page.fill("#id_max_papers", "30")
        expect_text(page, "#preview", "No preview yet: Choose a number from 1 to 20.")
        page.get_by_role("button", name="Save changes").click()
        expect_text(page, ".field.invalid", "Choose a number from 1 to 20.")
        assert page.input_value("#id_topics") == "speech recognition\ntext-to-speech\n-dialogue"

        # Fixed, weekly, saved.
        page.fill("#id_max_papers", "8")
        page.get_by_text("Weekly", exact=True).click()
        page.get_by_role("button", name="Save changes").click()
        expect_text(page, "main", "Saved. Your next digest uses these settings.")
        expect_text(page, ".glance", "Weekly on Mondays at 07:00 (UTC) · Up to 8 papers a digest")
        assert not page.locator("#unsaved").is_visible()

        # A break, and back.
        page.get_by_role("button", name="Pause my digest").click()
        expect_text(page, "#status", "Your digest is paused.")
        page.set_viewport_size({"width": PHONE, "height": 900})
        shoot(page, f"page-manage-paused-{PHONE}")
        page.get_by_role("button", name="Resume my digest").click()
        expect_text(page, "main", "Resumed. Your next digest comes as usual.")

        # Her last digest is a click away.
        page.get_by_role("link", name="View the digest of 10 March 2026").click()
        page.wait_for_load_state()
        assert page.url == digest
        expect_text(page, "body", "Helios")

        # Deleting asks first, and then asks her inbox: the manage link may be forwarded.
        for width in (PHONE, DESKTOP):
            page = open_page(browser, manage, width)
            page.get_by_role("link", name="Delete everything…").click()
            expect_text(page, "h1", "Delete everything about you?")
            check_page(page, f"delete at {width} px")
            shoot(page, f"page-manage-delete-{width}")
        page.get_by_role("button", name="Email me the link to delete").click()
        expect_text(page, "h1", "Check your inbox")
        expect_text(page, "main", "We sent you an email to confirm")
        check_page(page, "delete asked")
        shoot(page, f"page-manage-delete-asked-{DESKTOP}")
        [message] = mail.outbox
        found = re.search(r"https://paperboy\.example(/your-data/\S+)", str(message.body))
        assert found, message.body
        for width in (PHONE, DESKTOP):
            page = open_page(browser, live_server.url + found.group(1), width)
            expect_text(page, "h1", "Delete everything about you?")
            check_page(page, f"delete confirmed at {width} px")
            shoot(page, f"page-manage-delete-confirm-{width}")
        page.get_by_role("button", name="Delete everything").click()
        expect_text(page, "h1", "Everything is deleted")
        shoot(page, f"page-manage-deleted-{DESKTOP}")
        gone = open_page(browser, manage, PHONE)
        expect_text(gone, "h1", "This link doesn’t work")

    assert not Subscriber.objects.filter(email="alice@example.org").exists()
    assert not Delivery.objects.exists()


def test_without_javascript_the_preview_button_does_the_work(
    live_server: Any, alice_with_history: Subscriber
) -> None:
    manage = live_server.url + manage_url(alice_with_history).removeprefix(SITE)

    with chromium() as browser:
        context = browser.new_context(
            java_script_enabled=False, viewport={"width": 390, "height": 900}
        )
        page = context.new_page()
        page.goto(manage)
        page.fill("#id_topics", "text-to-speech")
        page.get_by_role("button", name="Preview").click()
        expect_text(page, "#preview", "VoiceCraft-2")
        assert "Helios" not in page.inner_text("#preview")
        assert page.locator("#unsaved").is_visible()
        context.close()

    alice = Subscriber.objects.get(pk=alice_with_history.pk)
    assert alice.topics == ["diffusion", "video generation", "-survey"]


def test_every_status_reads_clearly(
    live_server: Any, make_subscriber: Callable[..., Subscriber], transactional_db: None
) -> None:
    now = timezone.now()
    people = {
        "pending": make_subscriber("erin@example.org", ["robotics"], status="pending"),
        "unsubscribed": make_subscriber(
            "frank@example.org",
            ["graph neural networks"],
            status="unsubscribed",
            confirmed_at=now,
            unsubscribed_at=now,
        ),
        "suppressed": make_subscriber(
            "grace@example.org",
            ["retrieval augmented generation"],
            status="suppressed",
            confirmed_at=now,
            suppressed_at=now,
            suppressed_reason="the mail server said the mailbox does not exist",
        ),
    }
    urls = {
        status: live_server.url + manage_url(who).removeprefix(SITE)
        for status, who in people.items()
    }
    says = {
        "pending": "Confirm your address first.",
        "unsubscribed": "You’re unsubscribed.",
        "suppressed": "only the operator of this Paperboy can lift it",
    }

    with chromium() as browser:
        for status, url in urls.items():
            for width in (PHONE, DESKTOP):
                page = open_page(browser, url, width)
                expect_text(page, "#status", says[status])
                check_page(page, f"{status} at {width} px")
                assert min(tap_heights(page)) >= 44
            shoot(page, f"page-manage-{status}-{DESKTOP}")
            page.set_viewport_size({"width": PHONE, "height": 900})
            shoot(page, f"page-manage-{status}-{PHONE}")


def test_she_moves_her_digest_to_her_new_zone_and_mixes_in_trending(
    live_server: Any, alice_with_history: Subscriber
) -> None:
    """In New York now: the page offers this device's zone; weekly shows the day; the
    mix is hidden once her topics are gone, and the preview turns to the trending list."""
    manage = live_server.url + manage_url(alice_with_history).removeprefix(SITE)

    with chromium() as browser:
        for width in (PHONE, DESKTOP):
            context = browser.new_context(
                viewport={"width": width, "height": 900}, timezone_id="America/New_York"
            )
            page = context.new_page()
            page.goto(manage)
            expect_text(page, "#preview", "Helios")
            assert page.locator("[data-mix]").is_visible()
            assert not page.locator("#id_send_weekday").is_visible()
            use = page.get_by_role("button", name="Use this device’s: America/New York")
            assert use.is_visible()
            page.get_by_text("Weekly", exact=True).click()
            assert page.locator("#id_send_weekday").is_visible()
            check_page(page, f"manage schedule at {width} px")
            assert min(tap_heights(page)) >= 44, tap_heights(page)
            page.locator(".when").scroll_into_view_if_needed()
            shoot(page, f"page-manage-schedule-{width}")
            page.locator("#settings").screenshot(path=str(ARTIFACTS / f"form-manage-{width}.png"))
            if width == PHONE:
                context.close()  # the laptop's page goes on below

        use.click()
        assert page.input_value("#id_time_zone") == "America/New_York"
        assert not use.is_visible()
        page.select_option("#id_send_weekday", "5")
        page.select_option("#id_send_hour", "18")
        page.get_by_text("Plus the top 3 trending").click()
        expect_text(page, "#preview", "Trending: #2 this week · 143 upvotes")
        page.get_by_text("Feed only, no email").click()
        page.get_by_role("button", name="Save changes").click()
        expect_text(page, "main", "Saved. Your next digest uses these settings.")
        expect_text(page, ".glance", "Weekly on Fridays at 18:00 (America/New_York)")
        expect_text(page, ".glance", "Feed only, no email")
        expect_text(page, ".next-digest", "Your next digest: Friday")
        assert "18:00 (America/New_York)" in page.inner_text(".next-digest")

        # No topics: the mix goes (it means nothing now), and the preview is trending.
        page.fill("#id_topics", "")
        assert not page.locator("[data-mix]").is_visible()
        expect_text(page, "#preview", "Trending: #1 this week · 214 upvotes")
        page.fill("#id_topics", "speech recognition")
        assert page.locator("[data-mix]").is_visible()

    alice = Subscriber.objects.get(pk=alice_with_history.pk)
    assert (alice.frequency, alice.send_weekday, alice.send_hour) == ("weekly", 5, 18)
    assert (alice.time_zone, alice.trending, alice.channel) == ("America/New_York", "few", "feed")
    assert alice.next_due_at is None
