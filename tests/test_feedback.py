"""Alice tells Paperboy "more like this" or "less like this" from under a paper in her digest.

Each link carries a signed token naming her (by her random key) and the paper (by its
public arXiv id). Opening it only shows a button, since mail scanners open every link;
pressing the button records it; her settings page lists what she said, each with Undo.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from digest.feedback import feedback_record, feedback_undo, subscriber_feedback
from digest.mail import render_digest
from digest.models import Delivery, DeliveryPaper, Edition, Feedback, Paper
from subscriptions.links import digest_url, feedback_url, manage_url
from subscriptions.models import Subscriber
from subscriptions.tokens import Purpose, make_token, read_token
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

SITE = "https://paperboy.example"
MORE, LESS = Feedback.Value.MORE, Feedback.Value.LESS
HELIOS = "Helios: Real-Time Long Video Generation with Autoregressive Diffusion"


def path_of(url: str) -> str:
    assert url.startswith(SITE), url
    return url.removeprefix(SITE)


def page_text(response: Any) -> str:
    return str(response.content.decode())


def what_she_said(subscriber: Subscriber) -> dict[str, int]:
    return {f.paper.arxiv_id: f.value for f in subscriber_feedback(subscriber=subscriber)}


@pytest.fixture
def helios(make_paper: Callable[..., Paper]) -> Paper:
    return make_paper(HELIOS, "An autoregressive video diffusion model.", arxiv_id="2603.04567")


@pytest.fixture
def mail_app() -> Client:
    """A mail app's browser: no session cookie, and CSRF checks on, as in production."""
    return Client(enforce_csrf_checks=True)


# --- The functions ----------------------------------------------------------------------


def test_a_second_click_changes_the_value_and_undo_forgets_it(
    alice: Subscriber, helios: Paper
) -> None:
    first = feedback_record(subscriber=alice, paper=helios, value=MORE)
    second = feedback_record(subscriber=alice, paper=helios, value=LESS)

    assert second.pk == first.pk
    assert Feedback.objects.get().value == LESS
    assert feedback_undo(subscriber=alice, paper=helios) is True
    assert feedback_undo(subscriber=alice, paper=helios) is False  # twice is harmless
    assert subscriber_feedback(subscriber=alice) == []


def test_her_feedback_is_listed_newest_first(
    alice: Subscriber, bob: Subscriber, helios: Paper, make_paper: Callable[..., Paper]
) -> None:
    survey = make_paper("A Survey of Diffusion Models for Video")
    feedback_record(subscriber=alice, paper=survey, value=LESS)
    feedback_record(subscriber=alice, paper=helios, value=MORE)
    feedback_record(subscriber=bob, paper=helios, value=LESS)

    assert [(f.paper.title, f.value) for f in subscriber_feedback(subscriber=alice)] == [
        (HELIOS, MORE),
        ("A Survey of Diffusion Models for Video", LESS),
    ]


def test_only_plus_or_minus_one(alice: Subscriber, helios: Paper) -> None:
    with pytest.raises(ValueError, match=r"\+1 or -1"):
        feedback_record(subscriber=alice, paper=helios, value=5)


# --- The link and its pages -------------------------------------------------------------


def test_the_token_names_her_key_and_the_arxiv_id_only(alice: Subscriber, helios: Paper) -> None:
    url = feedback_url(alice, helios, MORE)
    token = path_of(url).removeprefix("/feedback/")

    assert read_token(token, Purpose.FEEDBACK) == (alice.key, "2603.04567:more")
    assert token == make_token(alice, Purpose.FEEDBACK, extra="2603.04567:more")
    less = path_of(feedback_url(alice, helios, LESS)).removeprefix("/feedback/")
    assert read_token(less, Purpose.FEEDBACK) == (alice.key, "2603.04567:less")
    assert "@" not in url and "alice" not in url


def test_opening_the_link_shows_one_button_and_changes_nothing(
    alice: Subscriber, helios: Paper, mail_app: Client
) -> None:
    # Mail scanners and link previewers open every link: a GET must not record anything.
    response = mail_app.get(path_of(feedback_url(alice, helios, MORE)))

    assert response.status_code == 200
    page = page_text(response)
    assert "<h1>More papers like this?</h1>" in page
    assert f'<a href="https://huggingface.co/papers/2603.04567">{HELIOS}</a>' in page
    assert page.count("<button") == 1
    assert '<button class="button" type="submit">More papers like this</button>' in page
    assert '<form method="post" action="">' in page
    assert "csrfmiddlewaretoken" not in page
    assert "alice@example.org" not in page
    assert response["Cache-Control"].startswith("max-age=0")
    assert not Feedback.objects.exists()

    less = page_text(mail_app.get(path_of(feedback_url(alice, helios, LESS))))
    assert "<h1>Fewer papers like this?</h1>" in less
    assert '<button class="button" type="submit">Fewer papers like this</button>' in less
    assert mail_app.head(path_of(feedback_url(alice, helios, LESS))).status_code == 200
    assert not Feedback.objects.exists()


def test_pressing_the_button_records_it_and_the_other_link_flips_it(
    alice: Subscriber, helios: Paper, mail_app: Client
) -> None:
    response = mail_app.post(path_of(feedback_url(alice, helios, MORE)))

    assert response.status_code == 200
    page = page_text(response)
    assert "<h1>Thanks, noted</h1>" in page
    assert "Your next digests will rank papers like this one higher." in page
    assert f'href="{path_of(manage_url(alice))}#feedback"' in page
    assert what_she_said(alice) == {"2603.04567": MORE}

    # A double click is one row.
    mail_app.post(path_of(feedback_url(alice, helios, MORE)))
    assert Feedback.objects.count() == 1

    # Coming back to the link says so, without a button.
    again = page_text(mail_app.get(path_of(feedback_url(alice, helios, MORE))))
    assert "You asked for more like this" in again and "<button" not in again

    # The other link offers to change it, and changes it.
    other = page_text(mail_app.get(path_of(feedback_url(alice, helios, LESS))))
    assert "you asked for more papers like this; pressing the button changes that" in other
    flipped = page_text(mail_app.post(path_of(feedback_url(alice, helios, LESS))))
    assert "Your next digests will rank papers like this one lower." in flipped
    assert what_she_said(alice) == {"2603.04567": LESS}
    assert Feedback.objects.count() == 1


def test_the_paper_title_is_shown_as_text(
    alice: Subscriber, make_paper: Callable[..., Paper], mail_app: Client
) -> None:
    hostile = make_paper('Diffusion <script>alert(1)</script> "quoted" & more')

    for response in (
        mail_app.get(path_of(feedback_url(alice, hostile, MORE))),
        mail_app.post(path_of(feedback_url(alice, hostile, MORE))),
    ):
        page = page_text(response)
        assert "<script>alert(1)" not in page
        assert "Diffusion &lt;script&gt;alert(1)&lt;/script&gt; &quot;quoted&quot; &amp; more" in (
            page
        )


@pytest.mark.parametrize(
    "spoil",
    [
        lambda token: token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB"),
        # Her key and the paper, with the word swapped: the signature no longer fits.
        lambda token: token.replace(":more:", ":less:"),
        lambda token: token[: len(token) // 2],
        lambda token: "not-a-token",
    ],
)
def test_a_tampered_link_gets_the_friendly_page(
    alice: Subscriber, helios: Paper, mail_app: Client, spoil: Callable[[str], str]
) -> None:
    token = path_of(feedback_url(alice, helios, MORE)).removeprefix("/feedback/")
    bad = f"/feedback/{spoil(token)}"

    for response in (mail_app.get(bad), mail_app.post(bad)):
        assert response.status_code == 400
        assert "This link doesn’t work" in page_text(response)
    assert not Feedback.objects.exists()


def test_a_token_made_for_another_page_does_not_work_here(
    alice: Subscriber, helios: Paper, mail_app: Client
) -> None:
    for purpose in (Purpose.MANAGE, Purpose.UNSUBSCRIBE, Purpose.DIGEST):
        token = make_token(alice, purpose, extra="2603.04567:more")
        assert mail_app.post(f"/feedback/{token}").status_code == 400
    # A feedback token that names no value is ours, but not a feedback link.
    plain = make_token(alice, Purpose.FEEDBACK, extra="2603.04567")
    assert mail_app.post(f"/feedback/{plain}").status_code == 400
    assert not Feedback.objects.exists()


def test_bobs_link_cannot_touch_alices_feedback(
    alice: Subscriber, bob: Subscriber, helios: Paper, mail_app: Client
) -> None:
    feedback_record(subscriber=alice, paper=helios, value=MORE)

    mail_app.post(path_of(feedback_url(bob, helios, LESS)))

    assert what_she_said(alice) == {"2603.04567": MORE}
    assert what_she_said(bob) == {"2603.04567": LESS}
    # Nor can his settings page undo hers.
    Client().post(path_of(manage_url(bob)) + "/feedback/undo", {"paper": "2603.04567"})
    assert what_she_said(alice) == {"2603.04567": MORE}
    assert what_she_said(bob) == {}


def test_a_paper_no_longer_here_gets_a_friendly_404(
    alice: Subscriber, helios: Paper, mail_app: Client
) -> None:
    url = path_of(feedback_url(alice, helios, MORE))
    helios.delete()

    for response in (mail_app.get(url), mail_app.post(url)):
        assert response.status_code == 404
        page = page_text(response)
        assert "This paper isn’t here any more" in page
        assert f'href="{path_of(manage_url(alice))}"' in page
    assert not Feedback.objects.exists()


def test_an_old_style_arxiv_id_makes_a_working_link(
    alice: Subscriber, make_paper: Callable[..., Paper], mail_app: Client
) -> None:
    old = make_paper(
        "Gradient-Based Learning Applied to Document Recognition", arxiv_id="cs/9812001"
    )

    response = mail_app.post(path_of(feedback_url(alice, old, LESS)))

    assert response.status_code == 200
    assert what_she_said(alice) == {"cs/9812001": LESS}


# --- In the digest ----------------------------------------------------------------------


@pytest.fixture
def alices_digest(alice: Subscriber, make_paper: Callable[..., Paper]) -> Delivery:
    edition = Edition.objects.create(date=EDITION_DATE)
    delivery = Delivery.objects.create(edition=edition, subscriber=alice)
    for rank, entry in enumerate(SAMPLE_PAPERS, start=1):
        fields, reasons = sample_paper(entry)
        paper = make_paper(**fields)
        DeliveryPaper.objects.create(delivery=delivery, paper=paper, rank=rank, reasons=reasons)
    return delivery


def test_every_paper_in_both_parts_ends_with_the_two_links(
    alice: Subscriber, alices_digest: Delivery
) -> None:
    rendered = render_digest(delivery=alices_digest)
    papers = [item.paper for item in alices_digest.items.order_by("rank")]
    html_rows = re.findall(r'<p class="pb-l">.*?</p>', rendered.html)
    text_papers = rendered.text.split("-" * 72)

    assert len(papers) == len(html_rows) == len(text_papers) == 8
    for paper, row, text in zip(papers, html_rows, text_papers, strict=True):
        more, less = feedback_url(alice, paper, MORE), feedback_url(alice, paper, LESS)
        # At the end of the paper's link row, after arXiv / PDF / code.
        assert row.endswith(
            f'<span class="pb-f"><a href="{more}">More like this</a> '
            f'<a href="{less}">Less like this</a></span></p>'
        )
        assert row.index("arXiv") < row.index("More like this")
        assert f"    More like this: {more}\n    Less like this: {less}\n" in text
        assert rendered.html.count(more) == rendered.text.count(more) == 1


def test_the_links_carry_no_address_and_no_database_id(
    alice: Subscriber, alices_digest: Delivery
) -> None:
    rendered = render_digest(delivery=alices_digest)
    urls = re.findall(r'href="([^"]*/feedback/[^"]*)"', rendered.html)
    urls += re.findall(r"https://\S+/feedback/\S+", rendered.text)

    assert len(urls) == 8 * 2 * 2
    arxiv_ids = {item.paper.arxiv_id for item in alices_digest.items.all()}
    for url in urls:
        assert "@" not in url and "%40" not in url.upper() and "alice" not in url
        # All the token says: her random key, a public arXiv id, and which way.
        key, extra = read_token(url.rsplit("/feedback/", 1)[1], Purpose.FEEDBACK)
        arxiv_id, word = extra.rsplit(":", 1)
        assert key == alice.key and arxiv_id in arxiv_ids and word in ("more", "less")


def test_the_browser_copy_has_the_links_too(
    alice: Subscriber, alices_digest: Delivery, client: Client
) -> None:
    alices_digest.status = Delivery.Status.SENT
    alices_digest.save()
    page = page_text(client.get(path_of(digest_url(alice, EDITION_DATE))))
    assert page.count("More like this</a>") == page.count("Less like this</a>") == 8


# --- On her settings page ---------------------------------------------------------------


def test_her_settings_page_lists_what_she_said_and_undo_forgets_it(
    alice: Subscriber, helios: Paper, make_paper: Callable[..., Paper], mail_app: Client
) -> None:
    survey = make_paper("A Survey of Diffusion <Models>", arxiv_id="2603.01111")
    mail_app.post(path_of(feedback_url(alice, helios, MORE)))
    mail_app.post(path_of(feedback_url(alice, survey, LESS)))
    Feedback.objects.filter(paper=helios).update(
        created_at=dt.datetime(2026, 3, 8, 9, tzinfo=dt.UTC)
    )
    browser = Client(enforce_csrf_checks=True)
    manage = path_of(manage_url(alice))

    section = feedback_section(page_text(browser.get(manage)))
    assert f'<a class="fb-title" href="https://huggingface.co/papers/2603.04567">{HELIOS}</a>' in (
        section
    )
    assert "A Survey of Diffusion &lt;Models&gt;" in section
    assert section.index("A Survey of Diffusion") < section.index("Helios")  # newest first
    assert "▲ More like this" in section and "▼ Less like this" in section
    assert '<span class="fb-date">8 March 2026</span>' in section
    assert section.count("csrfmiddlewaretoken") == 2
    assert section.count('<input type="hidden" name="paper" value="2603.04567">') == 1

    # Undo is a POST with the page's CSRF token.
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', section)
    assert csrf
    undone = browser.post(
        manage + "/feedback/undo",
        {"paper": "2603.04567", "csrfmiddlewaretoken": csrf.group(1)},
    )
    assert undone.status_code == 302
    assert undone["Location"] == manage + "#feedback"
    assert what_she_said(alice) == {"2603.01111": LESS}
    # The note sits by the list, not at the top of the page.
    after = feedback_section(page_text(browser.get(manage)))
    assert f"Undone: “{HELIOS}” no longer counts." in after
    assert after.count('class="fb-title"') == 1 and "2603.04567" not in after

    # Without the CSRF token, nothing happens; a second Undo is harmless.
    assert browser.post(manage + "/feedback/undo", {"paper": "2603.01111"}).status_code == 403
    assert Client().post(manage + "/feedback/undo", {"paper": "2603.04567"}).status_code == 302
    assert Client().get(manage + "/feedback/undo").status_code == 405
    assert what_she_said(alice) == {"2603.01111": LESS}


def feedback_section(page: str) -> str:
    start = page.index('id="feedback"')
    return page[start : page.index("</section>", start)]


def test_with_no_feedback_the_page_says_how_to_give_some(alice: Subscriber, client: Client) -> None:
    page = page_text(client.get(path_of(manage_url(alice))))
    assert "Papers you rated" in page
    assert "Nothing yet. Each paper in a digest ends with “More like this”" in page


def your_data(subscriber: Subscriber, action: str) -> str:
    """The export or delete link the subscriber is emailed from the manage page."""
    return "/your-data/" + make_token(subscriber, Purpose.ACTION, extra=action)


def test_her_data_download_includes_her_feedback(
    alice: Subscriber, helios: Paper, client: Client
) -> None:
    feedback_record(subscriber=alice, paper=helios, value=LESS)

    # The download comes by the link emailed on request (see test_abuse).
    data = json.loads(client.post(your_data(alice, "export")).content)

    [given] = data["feedback"]
    assert given == {
        "arxiv_id": "2603.04567",
        "title": HELIOS,
        "url": "https://arxiv.org/abs/2603.04567",
        "value": "less",
        "created_at": Feedback.objects.get().created_at.isoformat(),
    }


def test_deleting_her_data_deletes_her_feedback(
    alice: Subscriber, bob: Subscriber, helios: Paper, client: Client
) -> None:
    feedback_record(subscriber=alice, paper=helios, value=MORE)
    feedback_record(subscriber=bob, paper=helios, value=MORE)

    client.post(your_data(alice, "delete"))

    assert list(Feedback.objects.values_list("subscriber__email", flat=True)) == ["bob@example.org"]


def test_the_operator_sees_feedback_read_only(
    alice: Subscriber, helios: Paper, admin_client: Client, admin_user: User
) -> None:
    feedback = feedback_record(subscriber=alice, paper=helios, value=MORE)

    listing = admin_client.get(reverse("admin:digest_feedback_changelist"))
    assert listing.status_code == 200
    assert "alice@example.org" in page_text(listing) and "2603.04567" in page_text(listing)
    page = admin_client.get(reverse("admin:digest_feedback_change", args=[feedback.pk]))
    assert page.status_code == 200
    assert 'name="value"' not in page_text(page)  # shown, not editable
    assert admin_client.get(reverse("admin:digest_feedback_add")).status_code == 403


# --- In a browser -----------------------------------------------------------------------


@pytest.fixture
def alice_after_a_digest(
    transactional_db: None, alice: Subscriber, make_paper: Callable[..., Paper]
) -> tuple[Subscriber, list[Paper]]:
    """Alice and the digest she got this morning (sent, so she can view it on the site)."""
    edition = Edition.objects.create(date=EDITION_DATE)
    delivery = Delivery.objects.create(
        edition=edition, subscriber=alice, status=Delivery.Status.SENT
    )
    papers = []
    for rank, entry in enumerate(SAMPLE_PAPERS[:4], start=1):
        fields, reasons = sample_paper(entry)
        paper = make_paper(**fields)
        papers.append(paper)
        DeliveryPaper.objects.create(delivery=delivery, paper=paper, rank=rank, reasons=reasons)
    return alice, papers


def check_page(page: Any, name: str) -> None:
    assert not scrolls_sideways(page), f"{name} scrolls sideways"
    heights = page.eval_on_selector_all(
        "main button, main .button", "els => els.map(e => e.getBoundingClientRect().height)"
    )
    assert min(heights, default=44) >= 44, heights


@pytest.mark.browser
@requires_chromium
def test_alice_asks_for_more_from_her_digest_and_undoes_it(
    live_server: Any, alice_after_a_digest: tuple[Subscriber, list[Paper]]
) -> None:
    alice, papers = alice_after_a_digest
    on_site = lambda url: live_server.url + path_of(url)  # noqa: E731
    digest = on_site(digest_url(alice, EDITION_DATE))
    more = on_site(feedback_url(alice, papers[0], MORE))
    less = on_site(feedback_url(alice, papers[1], LESS))

    with chromium() as browser:
        # The digest, with the two links at the end of each paper's link row.
        for width in (PHONE, DESKTOP):
            page = open_page(browser, digest, width)
            assert not scrolls_sideways(page)
            links = page.locator(".pb-f a")
            assert links.count() == 8
            heights = links.evaluate_all("els => els.map(e => e.getBoundingClientRect().height)")
            assert min(heights) >= 44, heights
            shoot(page, f"feedback-digest-{width}")

        # She opens "More like this" under Helios: a page with one button.
        for width in (PHONE, DESKTOP):
            page = open_page(browser, more, width)
            check_page(page, f"confirm at {width}")
            assert page.inner_text("h1") == "More papers like this?"
            shoot(page, f"feedback-confirm-{width}")
        shoot(open_page(browser, more, PHONE, dark=True), f"feedback-confirm-{PHONE}-dark")
        shoot(open_page(browser, digest, PHONE, dark=True), f"feedback-digest-{PHONE}-dark")
        page.get_by_role("button", name="More papers like this").click()
        page.wait_for_load_state()
        assert page.inner_text("h1") == "Thanks, noted"
        for width in (PHONE, DESKTOP):
            page.set_viewport_size({"width": width, "height": 900})
            check_page(page, f"thank-you at {width}")
            shoot(page, f"feedback-thanks-{width}")

        # "Less like this" under the second paper, on her phone.
        page = open_page(browser, less, PHONE)
        assert page.inner_text("h1") == "Fewer papers like this?"
        shoot(page, f"feedback-confirm-less-{PHONE}")
        page.get_by_role("button", name="Fewer papers like this").click()
        page.wait_for_load_state()

        # The thank-you page leads to her settings, where both are listed.
        page.get_by_role("link", name="See or undo your feedback").click()
        page.wait_for_load_state()
        feedback = page.locator("#feedback")
        assert feedback.locator("li").count() == 2
        for width in (PHONE, DESKTOP):
            page.set_viewport_size({"width": width, "height": 900})
            assert not scrolls_sideways(page)
            heights = feedback.locator("button").evaluate_all(
                "els => els.map(e => e.getBoundingClientRect().height)"
            )
            assert min(heights) >= 44, heights
            shoot(page, f"feedback-manage-page-{width}")
            feedback.screenshot(path=str(ARTIFACTS / f"feedback-manage-{width}.png"))
        page.get_by_role("button", name=f"Undo “{papers[0].title}”").click()
        page.wait_for_load_state()
        assert page.locator("#feedback li").count() == 1
        assert "no longer counts" in page.inner_text("#feedback")
        feedback.screenshot(path=str(ARTIFACTS / f"feedback-manage-undone-{DESKTOP}.png"))

    assert what_she_said(alice) == {papers[1].arxiv_id: LESS}
