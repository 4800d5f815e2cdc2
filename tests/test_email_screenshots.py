"""How the digest and the subscriber pages look, in headless Chromium.

Screenshots land in test-artifacts/ (at the project root) for a person to look at; the
assertions check what a subscriber on a phone would notice first: the papers are there, the
text is big enough, the links are big enough to tap, and nothing scrolls sideways.

Debian's chromium, driven by Playwright; never `playwright install`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from digest.mail import DigestItem, render_digest_for
from digest.models import Paper
from subscriptions.links import manage_url, unsubscribe_url
from subscriptions.models import Subscriber
from tests.conftest import EDITION_DATE
from tests.test_emails import SAMPLE_PAPERS, sample_paper

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
PHONE, DESKTOP = 390, 1280
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

requires_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless browser. Do no database work while it runs: Playwright's sync API runs
    an event loop in this thread, and Django refuses ORM calls from async contexts."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser: Any, url: str, width: int, *, dark: bool = False) -> Any:
    page = browser.new_page(
        viewport={"width": width, "height": 900}, color_scheme="dark" if dark else "light"
    )
    page.goto(url)
    return page


def shoot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def scrolls_sideways(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth > window.innerWidth"))


def eight_paper_digest(subscriber: Subscriber) -> str:
    items = []
    for rank, entry in enumerate(SAMPLE_PAPERS, start=1):
        fields, reasons = sample_paper(entry)
        paper = Paper(arxiv_id=f"2603.{rank:05d}", batch_date=EDITION_DATE, **fields)
        items.append(DigestItem(paper=paper, reasons=reasons, rank=rank))
    return render_digest_for(subscriber=subscriber, edition_date=EDITION_DATE, items=items).html


@requires_chromium
def test_digest_looks_right_on_a_phone_and_a_desktop(alice: Subscriber, tmp_path: Path) -> None:
    html_file = tmp_path / "digest.html"
    html_file.write_text(eight_paper_digest(alice), encoding="utf-8")
    titles = [entry["title"] for entry in SAMPLE_PAPERS]

    with chromium() as browser:
        for width in (PHONE, DESKTOP):
            page = open_page(browser, html_file.as_uri(), width)
            shoot(page, f"email-digest-{width}")
            text = page.inner_text("body")
            for title in titles:
                assert title in text
            assert "Unsubscribe" in text and "Manage preferences" in text
            assert not scrolls_sideways(page), f"scrolls sideways at {width} px"
            if width == PHONE:
                # Body text: the summary, why it matched, the authors, the links.
                sizes = page.eval_on_selector_all(
                    ".pb-p p:not(:first-child)",
                    "els => els.map(e => parseFloat(getComputedStyle(e).fontSize))",
                )
                assert len(sizes) >= 8 * 3
                assert min(sizes) >= 14, sizes
                # Every link below a title is at least 44 px tall: an easy tap.
                heights = page.eval_on_selector_all(
                    ".pb-p p:last-child a, a[href*='/unsubscribe/'], a[href*='/manage/']",
                    "els => els.map(e => e.getBoundingClientRect().height)",
                )
                assert len(heights) >= 8 * 2 + 2
                assert min(heights) >= 44, heights
        # Apple Mail and iOS follow prefers-color-scheme; the dark palette must hold up.
        page = open_page(browser, html_file.as_uri(), PHONE, dark=True)
        shoot(page, f"email-digest-{PHONE}-dark")


@requires_chromium
def test_subscriber_pages_look_right(
    live_server: Any, transactional_db: None, make_subscriber: Callable[..., Subscriber]
) -> None:
    alice = make_subscriber(
        "alice@example.org",
        ["diffusion", "video generation", "world models", "-survey"],
        max_papers=12,
    )
    pages = {
        "unsubscribe": live_server.url
        + unsubscribe_url(alice).removeprefix("https://paperboy.example"),
        "manage": live_server.url + manage_url(alice).removeprefix("https://paperboy.example"),
        "bad-link": live_server.url + "/unsubscribe/not-a-real-token",
    }

    with chromium() as browser:
        for width in (PHONE, DESKTOP):
            for name, url in pages.items():
                page = open_page(browser, url, width)
                shoot(page, f"page-{name}-{width}")
                assert not scrolls_sideways(page), f"{name} scrolls sideways at {width} px"
                body_size = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
                assert body_size >= 16
                if name == "manage":
                    assert "video generation" in page.inner_text("main")
        # Press the button, as alice would.
        page = open_page(browser, pages["unsubscribe"], PHONE)
        button = page.get_by_role("button", name="Unsubscribe")
        assert button.bounding_box()["height"] >= 44
        button.click()
        page.wait_for_load_state()
        assert "You’re unsubscribed" in page.inner_text("main")
        shoot(page, f"page-unsubscribed-{PHONE}")
        page.set_viewport_size({"width": DESKTOP, "height": 900})
        shoot(page, f"page-unsubscribed-{DESKTOP}")
        # Following the link again later.
        page = open_page(browser, pages["unsubscribe"], PHONE)
        assert "already unsubscribed" in page.inner_text("main")
        shoot(page, f"page-already-unsubscribed-{PHONE}")

    alice.refresh_from_db()
    assert alice.status == Subscriber.Status.UNSUBSCRIBED
