"""Signing up in a real browser, from the home page to "You're subscribed".

Headless Chromium (Debian's, driven by Playwright; never `playwright install`) against
the live server, with an SMTP server on loopback receiving the confirmation email.
Screenshots land in test-artifacts/ at 390 px (a phone) and 1280 px (a laptop) for a
person to look at.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from digest.models import Paper
from pages.signup import SIGNUP_PER_IP
from subscriptions import ratelimit
from subscriptions.models import Subscriber
from subscriptions.ratelimit import client_key
from subscriptions.tokens import Purpose, make_token
from tests.conftest import EDITION_DATE
from tests.mail import html_of, text_of
from tests.own_cache import clear_test_cache
from tests.smtp_server import Mailbox
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

KEYWORDS = [
    ["video generation", "diffusion", "autoregressive models"],
    ["large language models", "long-form generation", "consistency"],
    ["diffusion", "world models", "video generation"],
    ["reinforcement learning", "large language models", "reasoning"],
    ["speech recognition", "large language models"],
    ["diffusion", "image editing"],
    ["world models", "robotics", "reinforcement learning"],
    ["large language models", "agents", "reasoning"],
]


@pytest.fixture(autouse=True)
def _site(live_server: Any, settings: Any, transactional_db: None) -> Iterator[None]:
    """Links in emails point at the live server; people here type fast."""
    settings.SITE_URL = live_server.url
    settings.PAPERBOY_SIGNUP_MIN_SECONDS = 0
    clear_test_cache()
    for rank, entry in enumerate(SAMPLE_PAPERS):
        fields, _ = sample_paper(entry)
        fields.setdefault("ai_keywords", KEYWORDS[rank % len(KEYWORDS)])
        Paper.objects.create(arxiv_id=f"2603.{rank + 1:05d}", batch_date=EDITION_DATE, **fields)
    yield
    clear_test_cache()


def wait_for_mail(mailbox: Mailbox, count: int, timeout: float = 10) -> list[EmailMessage]:
    deadline = time.monotonic() + timeout
    while len(mailbox.messages) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(mailbox.messages) == count, [r.message["Subject"] for r in mailbox.messages]
    return [r.message for r in mailbox.messages]


def looks_right(page: Any, name: str) -> None:
    assert not scrolls_sideways(page), f"{name} scrolls sideways"
    body_size = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
    assert body_size >= 16


def shoot_both(page: Any, name: str) -> None:
    """Screenshots of the page as it is, on a phone and on a laptop."""
    for width in (PHONE, DESKTOP):
        page.set_viewport_size({"width": width, "height": 900})
        looks_right(page, f"{name} at {width} px")
        shoot(page, f"page-{name}-{width}")
    page.set_viewport_size({"width": PHONE, "height": 900})


def test_signing_up_with_topic_chips_and_confirming(
    live_server: Any, smtp_server: Mailbox, tmp_path: Path
) -> None:
    home = live_server.url + "/"

    with chromium() as browser:
        # The home page, as it first looks.
        page = open_page(browser, home, PHONE)
        assert "Helios" in page.inner_text(".sample")
        shoot_both(page, "home")
        dark = open_page(browser, home, PHONE, dark=True)
        shoot(dark, f"page-home-{PHONE}-dark")

        # A form with mistakes: the messages sit next to the fields, the typing stays.
        page.fill("#id_email", "dave@example")
        page.get_by_role("button", name="Subscribe").click()
        page.wait_for_load_state()
        assert page.locator("#email-error").inner_text() == (
            "Enter an email address like name@example.org."
        )
        assert page.locator("#topics-error").count() == 0  # topics are optional
        assert page.input_value("#id_email") == "dave@example"
        shoot_both(page, "home-errors")

        # Now properly, topics as chips.
        page.fill("#id_email", "Dave@Example.org")
        entry = page.get_by_role("combobox", name="Topics", exact=True)
        assert entry.get_attribute("id") == "id_topics_entry"  # the chip input, with JS
        entry.fill("diffusion")
        entry.press("Enter")
        entry.type("speech recognition,")
        entry.fill("-survey")
        entry.press("Enter")
        suggestion = page.locator("button.suggestion", has_text="reasoning")
        suggestion.click()
        assert suggestion.get_attribute("aria-pressed") == "true"
        chips = page.locator(".chipbox .chip").all_inner_texts()
        assert [re.sub(r"\s*×$", "", chip) for chip in chips] == [
            "diffusion",
            "speech recognition",
            "not “survey”",
            "reasoning",
        ]
        assert page.locator("#id_topics").is_hidden()
        assert page.input_value("#id_topics") == (
            "diffusion\nspeech recognition\n-survey\nreasoning"
        )
        # Removing a chip, as with the mouse.
        entry.fill("oops")
        entry.press("Enter")
        page.get_by_role("button", name="Remove oops").click()
        page.get_by_text("Weekly", exact=True).click()
        page.fill("#id_max_papers", "8")
        page.set_viewport_size({"width": PHONE, "height": 900})
        shoot(page, f"page-home-filled-{PHONE}")
        submit = page.get_by_role("button", name="Subscribe")
        assert submit.bounding_box()["height"] >= 44
        submit.click()
        page.wait_for_url("**/signup/check-inbox")
        main = page.inner_text("main")
        assert "Check your inbox" in main and "dave@example.org" in main
        shoot_both(page, "signup-check-inbox")

        # The email, as the SMTP server got it.
        [message] = wait_for_mail(smtp_server, 1)
        assert message["To"] == "dave@example.org"
        assert "diffusion" not in text_of(message)
        html_file = tmp_path / "confirm.html"
        html_file.write_text(html_of(message), encoding="utf-8")
        for width in (PHONE, DESKTOP):
            email_page = open_page(browser, html_file.as_uri(), width)
            assert not scrolls_sideways(email_page)
            shoot(email_page, f"email-confirm-{width}")
        link = re.search(r"(http://\S+/confirm/\S+)", text_of(message))
        assert link

        # The link shows a button; the button confirms.
        page.goto(link.group(1))
        assert "Confirm your subscription" in page.inner_text("main")
        assert "reasoning" in page.inner_text("main")
        shoot_both(page, "confirm")
        button = page.get_by_role("button", name="Confirm my subscription")
        assert button.bounding_box()["height"] >= 44
        button.click()
        page.wait_for_load_state()
        main = page.inner_text("main")
        assert "You’re subscribed" in main
        assert "Your weekly digest comes on Mondays" in main
        shoot_both(page, "confirmed")
        manage_link = page.get_by_role("link", name="Manage your settings")
        assert "/manage/" in (manage_link.get_attribute("href") or "")

    dave = Subscriber.objects.get(email="dave@example.org")
    assert dave.status == Subscriber.Status.ACTIVE
    assert dave.topics == ["diffusion", "speech recognition", "-survey", "reasoning"]
    assert dave.frequency == Subscriber.Frequency.WEEKLY
    assert dave.max_papers == 8


def test_signing_up_without_javascript(live_server: Any, smtp_server: Mailbox) -> None:
    with chromium() as browser:
        context = browser.new_context(
            java_script_enabled=False, viewport={"width": PHONE, "height": 900}
        )
        page = context.new_page()
        page.goto(live_server.url + "/")
        assert page.locator(".chipbox").count() == 0
        page.fill("#id_email", "erin@example.org")
        page.fill("#id_topics", "world models, robotics\n-survey")
        page.get_by_role("button", name="Subscribe").click()
        page.wait_for_url("**/signup/check-inbox")
        assert "erin@example.org" in page.inner_text("main")
        wait_for_mail(smtp_server, 1)
        context.close()

    erin = Subscriber.objects.get(email="erin@example.org")
    assert erin.status == Subscriber.Status.PENDING
    assert erin.topics == ["world models", "robotics", "-survey"]
    assert erin.frequency == Subscriber.Frequency.DAILY and erin.max_papers == 10


def test_the_expired_link_and_too_many_pages(live_server: Any, smtp_server: Mailbox) -> None:
    carol = Subscriber.objects.create(
        email="carol@example.org", topics=["speech"], status=Subscriber.Status.PENDING
    )
    four_days_ago = time.time() - 4 * 24 * 3600
    with mock.patch("django.core.signing.time.time", return_value=four_days_ago):
        expired = f"{live_server.url}/confirm/{make_token(carol, Purpose.CONFIRM)}"
    # This browser's network has used up its sign-ups for the next few minutes.
    for _ in range(SIGNUP_PER_IP.count):
        ratelimit.hit(limit=SIGNUP_PER_IP, key=client_key("127.0.0.1"))

    with chromium() as browser:
        page = open_page(browser, expired, PHONE)
        assert "This link has expired" in page.inner_text("main")
        shoot_both(page, "confirm-expired")
        page.get_by_role("button", name="Email me a new link").click()
        page.wait_for_url("**/signup/check-inbox")
        [message] = wait_for_mail(smtp_server, 1)
        assert message["To"] == "carol@example.org"

        page = open_page(browser, live_server.url + "/", PHONE)
        page.fill("#id_email", "dave@example.org")
        page.get_by_role("combobox", name="Topics", exact=True).fill("diffusion")
        page.get_by_role("button", name="Subscribe").click()
        page.wait_for_load_state()
        assert "Let’s take a short break" in page.inner_text("main")
        shoot_both(page, "signup-too-many")


def test_signing_up_without_topics_in_the_browser_guesses_the_time_zone(
    live_server: Any, smtp_server: Mailbox
) -> None:
    """No topics: the mix control stays hidden, the zone is the browser's, and the subscriber
    is a trending one. Typing a topic shows the mix; removing it hides it again."""
    home = live_server.url + "/"
    with chromium() as browser:
        for width in (PHONE, DESKTOP):
            context = browser.new_context(
                viewport={"width": width, "height": 900}, timezone_id="America/New_York"
            )
            page = context.new_page()
            page.goto(home)
            assert page.input_value("#id_time_zone") == "America/New_York"
            mix = page.locator("[data-mix]")
            assert not mix.is_visible()
            entry = page.get_by_role("combobox", name="Topics", exact=True)
            entry.fill("diffusion")
            entry.press("Enter")
            assert mix.is_visible()
            shoot(page, f"page-home-mix-{width}")
            assert not scrolls_sideways(page)
            page.get_by_role("button", name="Remove diffusion").click()
            assert not mix.is_visible()
            context.close()
        page = browser.new_page(viewport={"width": PHONE, "height": 900})
        page.goto(home)
        page.fill("#id_email", "tia@example.org")
        page.select_option("#id_send_hour", "18")
        page.fill("#id_time_zone", "Europe/Berlin")
        page.get_by_role("button", name="Subscribe").click()
        page.wait_for_load_state()
        assert "Check your inbox" in page.content()
    wait_for_mail(smtp_server, 1)
    tia = Subscriber.objects.get(email="tia@example.org")
    assert (tia.topics, tia.send_hour, tia.time_zone) == ([], 18, "Europe/Berlin")
    assert tia.effective_trending == Subscriber.Trending.ONLY


def test_a_weekly_reader_picks_the_day_hour_and_zone_and_the_mix_is_one_control(
    live_server: Any, smtp_server: Mailbox
) -> None:
    """The weekday appears once "Weekly" is picked; the mix is three segments a thumb can
    hit; a subscriber in New York signs up without topics for Fridays at 18:00 their time."""
    with chromium() as browser:
        for width in (PHONE, DESKTOP):
            context = browser.new_context(
                viewport={"width": width, "height": 900}, timezone_id="America/New_York"
            )
            page = context.new_page()
            page.goto(live_server.url + "/")
            weekday = page.locator("#id_send_weekday")
            assert not weekday.is_visible()
            page.get_by_text("Weekly", exact=True).click()
            assert weekday.is_visible()
            entry = page.get_by_role("combobox", name="Topics", exact=True)
            entry.fill("diffusion")
            entry.press("Enter")
            segments = page.locator(".segmented label")
            assert segments.all_inner_texts() == [
                "Only my topics",
                "Plus the top 3 trending",
                "Trending only",
            ]
            heights = [segments.nth(i).bounding_box()["height"] for i in range(3)]
            assert min(heights) >= 44, heights
            page.get_by_text("Plus the top 3 trending").click()
            assert page.locator("input[name=trending][value=few]").is_checked()
            for control in ("#id_send_hour", "#id_send_weekday", "#id_time_zone"):
                assert page.locator(control).bounding_box()["height"] >= 44
            assert not scrolls_sideways(page)
            shoot(page, f"page-home-weekly-{width}")
            page.locator(".signup form").screenshot(
                path=str(ARTIFACTS / f"form-signup-{width}.png")
            )
            context.close()

        context = browser.new_context(
            viewport={"width": PHONE, "height": 900}, timezone_id="America/New_York"
        )
        page = context.new_page()
        page.goto(live_server.url + "/")
        page.fill("#id_email", "una@example.org")
        page.get_by_text("Weekly", exact=True).click()
        page.select_option("#id_send_weekday", "5")
        page.select_option("#id_send_hour", "18")
        page.get_by_role("button", name="Subscribe").click()
        page.wait_for_url("**/signup/check-inbox")
        [message] = wait_for_mail(smtp_server, 1)
        link = re.search(r"(http://\S+/confirm/\S+)", text_of(message))
        assert link
        page.goto(link.group(1))
        main = page.inner_text("main")
        assert "None: the day’s trending papers, most upvoted first" in main
        assert "Weekly, on Fridays, at 18:00 America/New York" in main
        page.get_by_role("button", name="Confirm my subscription").click()
        page.wait_for_load_state()
        assert "Your weekly digest comes on Fridays, around 18:00 America/New York" in (
            page.inner_text("main")
        )
        context.close()

    una = Subscriber.objects.get(email="una@example.org")
    assert (una.status, una.topics, una.trending) == ("active", [], "none")
    assert (una.frequency, una.send_weekday, una.send_hour) == ("weekly", 5, 18)
    assert una.time_zone == "America/New_York"
