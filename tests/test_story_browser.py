"""Dana's whole story as a subscriber, in a real browser, with real email on loopback.

She signs up on the home page, the confirmation email arrives, she opens its link and
confirms, she changes her topic on the manage page and watches the preview follow, a
digest comes, and she unsubscribes from the link in it. Eli, who got the same morning's
digest, unsubscribes the RFC 8058 way: his mail provider POSTs to the List-Unsubscribe URL
with no cookies. The next day's edition reaches neither of them, only Frank, who stayed.

Headless Debian Chromium (driven by Playwright; never `playwright install`) against the
live server; every email is read back from an SMTP server on 127.0.0.1. Screenshots of
each step land in test-artifacts/story-*.png at 390 px (a phone) and 1280 px (a laptop).
The test process does no database work while the browser runs (see `chromium`), so the
story has two browser sessions with the morning's send in between, as in life.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
import time
import urllib.request
import uuid
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from digest.daily import edition_prepare, edition_send
from digest.mail import Outcome
from digest.models import Delivery, Paper
from subscriptions.models import Subscriber
from tests.conftest import EDITION_DATE
from tests.mail import html_of, text_of
from tests.smtp_server import Mailbox
from tests.test_email_screenshots import (
    ARTIFACTS,
    DESKTOP,
    PHONE,
    chromium,
    requires_chromium,
    scrolls_sideways,
)

pytestmark = [pytest.mark.browser, requires_chromium]

TUESDAY = EDITION_DATE  # 10 March 2026: the papers Dana previews and gets
WEDNESDAY = EDITION_DATE + dt.timedelta(days=1)

DIFFUSION_PAPER = "Consistent Video Generation with Diffusion Transformers"
SPEECH_PAPER = "Whisper-Turbo: Streaming Speech Recognition on the Edge"
RLHF_PAPER = "Reward Model Ensembles Make RLHF Robust"


@pytest.fixture(autouse=True)
def _site(live_server: Any, settings: Any) -> None:
    """Links in emails point at the live server; Dana types faster than a bot check expects.

    A cache key prefix of this test's own keeps its rate limits and cached topic
    suggestions apart from anything else on a shared Redis, without flushing it.
    """
    settings.SITE_URL = live_server.url
    settings.PAPERBOY_SIGNUP_MIN_SECONDS = 0
    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["KEY_PREFIX"] = f"story-{uuid.uuid4().hex}"
    settings.CACHES = caches


@pytest.fixture
def tuesdays_papers(transactional_db: None, make_paper: Callable[..., Paper]) -> list[Paper]:
    return [
        make_paper(
            DIFFUSION_PAPER,
            "We generate minute-long videos with a diffusion transformer that keeps "
            "characters consistent across shots.",
            authors=["Lvmin Zhang", "Maneesh Agrawala"],
            ai_keywords=["video generation", "diffusion transformer"],
            upvotes=120,
        ),
        make_paper(
            SPEECH_PAPER,
            "We distil a large speech recognition model into a streaming one that runs on "
            "a phone, at a third of the word error rate of earlier on-device models.",
            authors=["Sanchit Gandhi", "Patrick von Platen"],
            ai_keywords=["speech recognition", "distillation", "on-device"],
            upvotes=88,
        ),
        make_paper(
            RLHF_PAPER,
            "Reinforcement learning from human feedback overfits a single reward model. "
            "We train an ensemble and optimise its lower bound.",
            authors=["Nathan Lambert"],
            ai_keywords=["reinforcement learning", "reward model"],
            upvotes=64,
        ),
    ]


# --- What a person does and sees ---------------------------------------------------------


def shoot(page: Any, name: str) -> None:
    """The page as it is, full length, on a phone and on a laptop; nothing scrolls sideways."""
    ARTIFACTS.mkdir(exist_ok=True)
    for width in (PHONE, DESKTOP):
        page.set_viewport_size({"width": width, "height": 900})
        assert not scrolls_sideways(page), f"{name} scrolls sideways at {width} px"
        page.screenshot(path=str(ARTIFACTS / f"story-{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": PHONE, "height": 900})


def sees(page: Any, selector: str, text: str) -> None:
    expect = pytest.importorskip("playwright.sync_api").expect
    expect(page.locator(selector)).to_contain_text(text, timeout=5000)


def show_email(page: Any, message: EmailMessage, folder: Path, name: str) -> None:
    """Open the HTML part as a mail client would show it, and photograph it."""
    html_file = folder / f"{name}.html"
    html_file.write_text(html_of(message), encoding="utf-8")
    page.goto(html_file.as_uri())
    shoot(page, name)


# --- Mail, as the SMTP server received it -------------------------------------------------


def wait_for_mail(mailbox: Mailbox, count: int, timeout: float = 10) -> list[EmailMessage]:
    deadline = time.monotonic() + timeout
    while len(mailbox.messages) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(mailbox.messages) == count, [r.message["Subject"] for r in mailbox.messages]
    return [r.message for r in mailbox.messages]


def digests_to(mailbox: Mailbox, address: str) -> list[EmailMessage]:
    """The digests among an address's mail: list emails, unlike the confirmation."""
    return [m for m in mailbox.to(address) if m["List-Id"]]


def list_unsubscribe_url(message: EmailMessage) -> str:
    found = re.fullmatch(r"<(https?://[^>\s]+)>", str(message["List-Unsubscribe"]).strip())
    assert found, message["List-Unsubscribe"]
    return found.group(1)


class NoRedirects(urllib.request.HTTPRedirectHandler):
    """Mail providers do not follow a redirect from a one-click unsubscribe; neither do we."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def one_click_unsubscribe(url: str) -> tuple[int, str, str]:
    """The RFC 8058 POST a mail provider makes: no cookies, no CSRF token, no redirects."""
    request = urllib.request.Request(
        url,
        data=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        method="POST",
    )
    opener = urllib.request.build_opener(NoRedirects)
    with opener.open(request, timeout=10) as response:
        return response.status, response.geturl(), response.read().decode()


# --- The story ----------------------------------------------------------------------------


def test_dana_signs_up_confirms_changes_topics_and_unsubscribes_from_a_digest(
    live_server: Any,
    smtp_server: Mailbox,
    tuesdays_papers: list[Paper],
    make_subscriber: Callable[..., Subscriber],
    make_paper: Callable[..., Paper],
    tmp_path: Path,
) -> None:
    # Two subscribers are already subscribed: Eli (diffusion) and Frank (speech).
    make_subscriber("eli@example.org", ["diffusion"])
    make_subscriber("frank@example.org", ["speech"])

    with chromium() as browser:
        page = browser.new_page(viewport={"width": PHONE, "height": 900})

        # 1. Dana opens Paperboy and signs up for "diffusion".
        page.goto(live_server.url + "/")
        sees(page, "h1", "Trending AI papers, picked for your topics")
        page.fill("#id_email", "dana@example.org")
        topics = page.get_by_role("combobox", name="Topics", exact=True)
        topics.fill("diffusion")
        topics.press("Enter")
        assert [
            re.sub(r"\s*×$", "", c) for c in page.locator(".chipbox .chip").all_inner_texts()
        ] == ["diffusion"]
        shoot(page, "01-home-filled")
        page.get_by_role("button", name="Subscribe").click()

        # 2. Paperboy asks her to check her inbox.
        page.wait_for_url("**/signup/check-inbox")
        sees(page, "h1", "Check your inbox")
        sees(page, "main", "We’ve sent an email to dana@example.org")
        shoot(page, "02-check-inbox")

        # 3. The confirmation email arrives, with a button that links back to the site.
        [confirmation] = wait_for_mail(smtp_server, 1)
        assert confirmation["To"] == "dana@example.org"
        assert confirmation["Subject"] == "Confirm your Paperboy subscription"
        found = re.search(rf"{re.escape(live_server.url)}/confirm/\S+", text_of(confirmation))
        assert found, text_of(confirmation)
        confirm_link = found.group(0)
        assert f'href="{confirm_link}"' in html_of(confirmation)
        show_email(page, confirmation, tmp_path, "03-email-confirm")

        # 4. She opens the link: a page with a button (opening it alone confirms nothing).
        page.goto(confirm_link)
        sees(page, "h1", "Confirm your subscription")
        shoot(page, "04-confirm")
        page.get_by_role("button", name="Confirm my subscription").click()

        # 5. She's subscribed, and the page links to her settings.
        sees(page, "h1", "You’re subscribed")
        sees(page, "main", "Your digest comes every morning")
        shoot(page, "05-confirmed")
        page.get_by_role("link", name="Manage your settings").click()

        # 6. The manage page previews her next digest: the diffusion paper.
        page.wait_for_url("**/manage/*")
        manage_link = page.url
        sees(page, "#preview", DIFFUSION_PAPER)
        assert SPEECH_PAPER not in page.inner_text("#preview")
        shoot(page, "06-manage")

        # 7. She switches her topic to "speech"; the preview follows before she saves.
        page.fill("#id_topics", "speech")
        sees(page, "#preview", SPEECH_PAPER)
        preview = page.inner_text("#preview")
        assert DIFFUSION_PAPER not in preview and RLHF_PAPER not in preview
        assert "1 paper of the 3 from Tuesday, 10 March 2026" in preview
        assert page.locator("#unsaved").is_visible()
        shoot(page, "07-manage-preview-speech")

        # 8. She saves.
        page.get_by_role("button", name="Save changes").click()
        sees(page, "main", "Saved. Your next digest uses these settings.")
        assert page.url == manage_link
        assert page.input_value("#id_topics") == "speech"
        assert not page.locator("#unsaved").is_visible()
        sees(page, "#preview", SPEECH_PAPER)
        shoot(page, "08-manage-saved")

    dana = Subscriber.objects.get(email="dana@example.org")
    assert dana.status == Subscriber.Status.ACTIVE
    assert dana.topics == ["speech"]

    # 9. Tuesday morning: the daily run sends everyone their digest.
    prepared = edition_prepare(date=TUESDAY, scrape=False)
    assert prepared.matching.matched == 3
    assert edition_send(edition=prepared.edition).count(Outcome.SENT) == 3
    wait_for_mail(smtp_server, 1 + 3)
    [digest] = digests_to(smtp_server, "dana@example.org")
    # (A long header is folded right after its colon; mail clients strip the white space.)
    assert str(digest["Subject"]).strip() == (
        "Paperboy · 10 Mar: Whisper-Turbo: Streaming Speech Recognition on the Edge"
    )
    text = text_of(digest)
    assert SPEECH_PAPER in text
    assert DIFFUSION_PAPER not in text and RLHF_PAPER not in text
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe_link = list_unsubscribe_url(digest)
    assert unsubscribe_link.startswith(f"{live_server.url}/unsubscribe/")
    # The link a person sees in the email is the header's own.
    assert re.search(rf"^Unsubscribe: +{re.escape(unsubscribe_link)}\r?$", text, re.MULTILINE)
    assert re.search(
        rf'<a href="{re.escape(unsubscribe_link)}"[^>]*>Unsubscribe</a>', html_of(digest)
    )
    [elis_digest] = digests_to(smtp_server, "eli@example.org")
    assert DIFFUSION_PAPER in text_of(elis_digest)

    with chromium() as browser:
        page = browser.new_page(viewport={"width": PHONE, "height": 900})

        # 10. Dana reads her digest and presses its Unsubscribe link.
        show_email(page, digest, tmp_path, "10-email-digest")
        sees(page, "body", SPEECH_PAPER)
        page.get_by_role("link", name="Unsubscribe", exact=True).click()

        # 11. The page asks first; nothing changes until she presses the button.
        page.wait_for_url(unsubscribe_link)
        sees(page, "h1", "Unsubscribe from Paperboy?")
        shoot(page, "11-unsubscribe")
        page.get_by_role("button", name="Unsubscribe").click()

        # 12. She's unsubscribed, and told so.
        sees(page, "h1", "You’re unsubscribed")
        sees(page, "main", "will get no further Paperboy emails")
        shoot(page, "12-unsubscribed")

    # 13. Eli's mail provider unsubscribes him in one click (RFC 8058).
    elis_link = list_unsubscribe_url(elis_digest)
    assert elis_link != unsubscribe_link
    status, landed_on, body = one_click_unsubscribe(elis_link)
    assert (status, landed_on) == (200, elis_link)
    assert "You’re unsubscribed" in body

    for address in ("dana@example.org", "eli@example.org"):
        assert Subscriber.objects.get(email=address).status == Subscriber.Status.UNSUBSCRIBED

    # 14. Wednesday's papers: something for all three, but only Frank hears from us.
    make_paper(
        "Speech Diffusion: Text-to-Speech with Latent Diffusion in Real Time",
        "A latent diffusion model for speech synthesis that runs faster than real time.",
        batch_date=WEDNESDAY,
        ai_keywords=["speech synthesis", "diffusion"],
        upvotes=150,
    )
    prepared = edition_prepare(date=WEDNESDAY, scrape=False)
    assert edition_send(edition=prepared.edition).count(Outcome.SENT) == 1
    wait_for_mail(smtp_server, 1 + 3 + 1)
    _, franks_wednesday = digests_to(smtp_server, "frank@example.org")
    assert "Speech Diffusion: Text-to-Speech" in text_of(franks_wednesday)
    assert len(digests_to(smtp_server, "dana@example.org")) == 1  # Tuesday's, no more
    assert len(digests_to(smtp_server, "eli@example.org")) == 1
    assert not Delivery.objects.filter(
        edition=prepared.edition, subscriber__email__in=["dana@example.org", "eli@example.org"]
    ).exists()
