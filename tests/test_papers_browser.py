"""The public daily pages and the private feed's section, in a real browser.

Headless Debian Chromium against the live server, on a phone (390 px) and a laptop
(1280 px); screenshots land in test-artifacts/ for a person to look at. All database work
happens before the browser starts (see `chromium`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from digest.models import Paper
from subscriptions.links import manage_url
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


@pytest.fixture
def listing_days(transactional_db: None, make_paper: Callable[..., Paper]) -> None:
    """The captured day's papers, a long hostile title, and the listing day before."""
    for entry in SAMPLE_PAPERS:
        fields, _ = sample_paper(entry)
        make_paper(**fields)
    make_paper(
        "<script>alert(1)</script> " + "Supercalifragilistic" * 6 + " & a very long title",
        authors=[f"Author {n}" for n in range(12)],
        upvotes=1,
    )
    make_paper("Monday's paper", upvotes=7, batch_date=EDITION_DATE - dt.timedelta(days=1))


def looks_right(page: Any, name: str) -> None:
    assert not scrolls_sideways(page), f"{name} scrolls sideways"
    assert page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)") >= 16
    assert page.locator("main script").count() == 0  # a title's <script> is text


def test_the_daily_pages_read_well_on_a_phone_and_a_desktop(
    live_server: Any, listing_days: None
) -> None:
    day = f"{live_server.url}/papers/{EDITION_DATE.isoformat()}/"
    with chromium() as browser:
        for width in (PHONE, DESKTOP):
            page = open_page(browser, day, width)
            looks_right(page, f"the day's page at {width} px")
            cards = page.locator("ol.cards > li")
            assert cards.count() == len(SAMPLE_PAPERS) + 1
            assert cards.first.is_visible()
            assert "Helios" in cards.first.locator("h2").inner_text()
            # Every link is a tap target of at least 44 px.
            for selector in ("ol.cards .links a", ".day-nav a"):
                box = page.locator(selector).first.bounding_box()
                assert box is not None and box["height"] >= 44, selector
            # The long title wraps inside its card.
            last = cards.last.bounding_box()
            main = page.locator("main").bounding_box()
            assert last and main and last["x"] + last["width"] <= main["x"] + main["width"]
            shoot(page, f"papers-day-{width}")

            page.get_by_role("link", name="← Mon 9 Mar").first.click()
            page.wait_for_load_state()
            assert page.locator("h1").inner_text() == "Trending on Monday, 9 March 2026"
            page.get_by_role("link", name="All days").first.click()
            page.wait_for_load_state()
            looks_right(page, f"the index at {width} px")
            assert page.locator("ol.cards > li").count() == 2
            shoot(page, f"papers-index-{width}")

        dark = open_page(browser, day, PHONE, dark=True)
        shoot(dark, f"papers-day-{PHONE}-dark")

        missing = open_page(browser, f"{live_server.url}/papers/2026-03-08/", PHONE)
        looks_right(missing, "the 404 page")
        assert "No papers on Sunday, 8 March 2026" in missing.locator("h1").inner_text()
        shoot(missing, f"papers-missing-{PHONE}")

        home = open_page(browser, live_server.url + "/", DESKTOP)
        sample = home.locator("aside.sample")
        assert "this is what you’d get" in sample.inner_text().lower()
        assert sample.locator("ol.papers > li").count() == 5
        sample.screenshot(path=str(ARTIFACTS / f"papers-home-{DESKTOP}.png"))


def test_the_private_feed_section_on_the_manage_page(
    live_server: Any, transactional_db: None, alice: Subscriber
) -> None:
    manage = live_server.url + manage_url(alice).removeprefix(SITE)
    with chromium() as browser:
        for width in (PHONE, DESKTOP):
            page = open_page(browser, manage, width)
            assert not scrolls_sideways(page), width
            section = page.locator("#feed")
            section.scroll_into_view_if_needed()
            field = page.locator("#feed-atom")
            assert field.input_value().startswith(f"{SITE}/feed/")
            box, outer = field.bounding_box(), section.bounding_box()
            assert box and outer and box["x"] + box["width"] <= outer["x"] + outer["width"]
            section.screenshot(path=str(ARTIFACTS / f"page-manage-feed-{width}.png"))

        old = field.input_value()
        page.get_by_role("button", name="Make a new feed address").click()
        page.wait_for_load_state()
        assert page.url.endswith("#feed")
        assert "Your feed has a new address" in page.inner_text("body")
        assert page.locator("#feed-atom").input_value() not in ("", old)
