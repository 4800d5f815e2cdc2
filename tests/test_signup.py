"""Signing up on the home page, and confirming from the email (double opt-in).

dave signs up for the first time; alice already gets the digest; erin left last month;
mallory's address bounced and is suppressed. Whatever the address, the person at the form
sees the same "check your inbox" page: what differs happens in the owner's inbox only.

The tests run transactional: signup emails go out when the transaction commits.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any
from unittest import mock

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from digest.models import Paper
from pages.signup import Outcome, confirmation_send, signup_email_send
from subscriptions.forms import SignupForm, form_stamp
from subscriptions.links import manage_url
from subscriptions.models import Subscriber
from subscriptions.tokens import Purpose, make_token
from tests.conftest import EDITION_DATE
from tests.mail import html_of, text_of
from tests.smtp_server import Mailbox

pytestmark = pytest.mark.django_db(transaction=True)

SITE = "https://paperboy.example"
DAVE = "dave@example.org"
ALICE = "alice@example.org"
DAVES_TOPICS = "diffusion\nspeech recognition, -survey"
LINK = re.compile(r"https://paperboy\.example(/confirm/[^\s\"<]+)")


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    """Rate-limit counters live in the cache; every test starts with none."""
    cache.clear()
    yield
    cache.clear()


def form_data(**changes: str) -> dict[str, str]:
    """What a person's browser posts: the form was shown a minute ago."""
    data = {
        "email": DAVE,
        "topics": DAVES_TOPICS,
        "frequency": "weekly",
        "max_papers": "7",
        "website": "",
        "started": form_stamp(now=time.time() - 60),
    }
    data.update(changes)
    return data


def errors_of(**changes: str) -> dict[str, list[str]]:
    form = SignupForm(form_data(**changes))
    assert not form.is_valid()
    return {name: [str(m) for m in messages] for name, messages in form.errors.items()}


def sign_up(client: Client, *, ip: str = "203.0.113.7", **changes: str) -> Any:
    return client.post("/", form_data(**changes), REMOTE_ADDR=ip)


def path_of(url: str) -> str:
    assert url.startswith(SITE), url
    return url.removeprefix(SITE)


def confirm_path(message: EmailMessage) -> str:
    found = LINK.search(text_of(message))
    assert found, text_of(message)
    return found.group(1)


def refreshed(subscriber: Subscriber) -> Subscriber:
    subscriber.refresh_from_db()
    return subscriber


def without_tokens(page: str) -> str:
    """A page with its CSRF token blanked: it differs on every render."""
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", page)


# --- The form ---------------------------------------------------------------------------


def test_a_good_form_is_tidied() -> None:
    form = SignupForm(form_data(email="  Dave@Example.ORG ", topics="diffusion,\n, LLM agents\n"))
    assert form.is_valid(), form.errors
    assert form.cleaned_data["email"] == "dave@example.org"
    assert form.cleaned_data["topics"] == ["diffusion", "LLM agents"]
    assert form.cleaned_data["frequency"] == "weekly"
    assert form.cleaned_data["max_papers"] == 7
    assert not form.looks_automated()


def test_an_international_domain_is_stored_as_punycode() -> None:
    form = SignupForm(form_data(email="Jürgen@Bücher.example"))
    assert not form.is_valid()  # a non-ASCII local part: most mail servers refuse it
    form = SignupForm(form_data(email="juergen@Bücher.example"))
    assert form.is_valid(), form.errors
    assert form.cleaned_data["email"] == "juergen@xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("", "Enter your email address."),
        ("dave", "Enter an email address like name@example.org."),
        ("dave@", "Enter an email address like name@example.org."),
        ("dave@example", "Enter an email address like name@example.org."),
        ("dave@exa mple.org", "Enter an email address like name@example.org."),
        ("dave@example.org\r\nBcc: everyone@example.org", "cannot contain line breaks"),
        ("dave@example.org\n", "cannot contain line breaks"),
        ("d" * 243 + "@example.org", "at most 254 characters"),
        ("d" * 400 + "@example.org", "at most 254 characters"),
    ],
)
def test_bad_addresses_are_refused_with_a_message(email: str, message: str) -> None:
    assert message in " ".join(errors_of(email=email)["email"])


def test_an_address_of_254_characters_is_fine() -> None:
    address = "d" * 64 + "@" + ("e" * 60 + ".") * 3 + "e" * 2 + ".org"
    assert len(address) == 254
    assert SignupForm(form_data(email=address)).is_valid()


@pytest.mark.parametrize(
    ("topics", "message"),
    [
        ("-survey\n-benchmark", "a topic starting with “-” only leaves papers out"),
        (",".join(f"topic {n}" for n in range(21)), "At most 20 topics, please."),
        ("diffusion\nx" + "y" * 90, "is longer than 80 characters"),
        ("diff\x07usion", "Topics cannot contain control characters."),
        ("diffusion\x1b[31m", "Topics cannot contain control characters."),
        ("diffusion\u202egnp.exe", "text-direction control characters"),
        ("x" * 5000, "more text than 20 topics can hold"),
    ],
)
def test_bad_topics_are_refused_with_a_message(topics: str, message: str) -> None:
    assert message in " ".join(errors_of(topics=topics)["topics"])


def test_no_topics_is_a_trending_reader_at_the_hour_and_zone_they_chose(
    client: Client, mailbox: Mailbox
) -> None:
    home = client.get("/").content.decode()
    assert "Leave it empty for the day’s trending papers" in home
    response = client.post(
        "/",
        form_data(topics="  \n , ", send_hour="18", time_zone="America/New_York", trending="few"),
    )
    assert response.status_code == 302
    dave = Subscriber.objects.get(email=DAVE)
    assert dave.topics == []
    assert dave.effective_trending == Subscriber.Trending.ONLY  # whatever the mix said
    assert (dave.send_hour, dave.time_zone) == (18, "America/New_York")


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"time_zone": "Mars/Olympus"}, "time_zone", "like Europe/Berlin"),
        ({"time_zone": "x" * 65}, "time_zone", "like Europe/Berlin"),
        ({"send_hour": "24"}, "send_hour", "from 00:00 to 23:00"),
        ({"send_hour": "-1"}, "send_hour", "from 00:00 to 23:00"),
        ({"send_weekday": "8"}, "send_weekday", "a day of the week"),
        ({"trending": "lots"}, "trending", "how much of the trending list"),
    ],
)
def test_a_bad_hour_zone_or_mix_is_refused_next_to_its_field(
    changes: dict[str, str], field: str, message: str
) -> None:
    assert message in " ".join(errors_of(**changes)[field])


def test_a_weekly_reader_with_topics_keeps_the_mix_day_and_hour_they_chose(
    client: Client, mailbox: Mailbox
) -> None:
    sign_up(client, trending="few", send_hour="6", send_weekday="5", time_zone="Asia/Tokyo")
    dave = Subscriber.objects.get(email=DAVE)
    assert (dave.frequency, dave.send_weekday, dave.send_hour) == ("weekly", 5, 6)
    assert (dave.trending, dave.effective_trending, dave.time_zone) == ("few", "few", "Asia/Tokyo")
    assert dave.next_due_at is None  # worked out by the first run after they confirm


def test_the_defaults_when_a_form_leaves_the_new_fields_out(
    client: Client, mailbox: Mailbox
) -> None:
    sign_up(client)  # an older page, or a form without JavaScript that sent nothing for them
    dave = Subscriber.objects.get(email=DAVE)
    assert (dave.trending, dave.send_hour, dave.send_weekday, dave.time_zone) == (
        "none",
        7,
        1,
        "UTC",
    )


def test_no_topics_ignores_the_mix_sent_by_a_page_without_javascript(
    client: Client, mailbox: Mailbox
) -> None:
    sign_up(client, topics="", trending="only")
    dave = Subscriber.objects.get(email=DAVE)
    # Stored as the default, so that topics added later start from "only my topics".
    assert (dave.topics, dave.trending, dave.effective_trending) == ([], "none", "only")


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("  Europe/Berlin ", "Europe/Berlin"),
        ("europe/berlin", "Europe/Berlin"),
        ("America/New York", "America/New_York"),
        ("Tokyo", "Asia/Tokyo"),
        ("", "UTC"),  # nothing guessed or typed: the operator's default
    ],
)
def test_a_time_zone_is_read_as_a_person_types_it(typed: str, stored: str) -> None:
    form = SignupForm(form_data(time_zone=typed))
    assert form.is_valid(), form.errors
    assert form.cleaned_data["time_zone"] == stored


def test_a_bad_time_zone_is_shown_next_to_its_field_and_nothing_is_stored(client: Client) -> None:
    response = sign_up(client, time_zone="Mars/Olympus", send_hour="18")
    assert response.status_code == 200
    page = response.content.decode()
    assert re.search(
        r'<p class="error" id="zone-error">“Mars/Olympus” is not a time zone we know\. '
        r"Choose a time zone by its name, like Europe/Berlin or UTC\.</p>",
        page,
    )
    assert 'aria-describedby="zone-error"' in page and 'value="Mars/Olympus"' in page
    assert '<option value="18" selected>18:00</option>' in page  # what they chose stays
    assert not Subscriber.objects.exists()


def test_the_home_page_offers_the_hour_zone_weekday_and_mix(client: Client) -> None:
    page = client.get("/").content.decode()
    assert "at the hour you pick" in page
    assert "around 07:00" not in page  # the hour is theirs now, not one for everybody
    assert '<option value="7" selected>07:00</option>' in page
    assert '<option value="1" selected>Monday</option>' in page
    assert '<option value="Europe/Berlin"></option>' in page  # the zones to pick from
    assert 'value="UTC" data-guess-zone' in page  # until the browser's guess replaces it
    for label in ("Only my topics", "Plus the top 3 trending", "Trending only"):
        assert f"<span>{label}</span>" in page


def test_a_trending_reader_sees_what_they_get_on_the_confirm_pages(
    client: Client, mailbox: Mailbox
) -> None:
    sign_up(client, topics="", frequency="daily", send_hour="19", time_zone="Europe/Berlin")
    path = confirm_path(mailbox.messages[0].message)
    page = client.get(path).content.decode()
    assert "None: the day’s trending papers, most upvoted first" in page
    assert "Daily, at 19:00 Europe/Berlin" in page
    page = client.post(path).content.decode()
    assert "Your digest comes every evening, around 19:00 Europe/Berlin" in page
    assert "A day with no new papers brings no email." in page


@pytest.mark.parametrize(
    ("max_papers", "message"),
    [
        ("0", "Choose a number from 1 to 20."),
        ("21", "At most 20 papers an email."),
        ("ten", "Choose a number from 1 to 20."),
        ("", "Choose a number from 1 to 20."),
    ],
)
def test_papers_per_email_is_one_to_twenty(max_papers: str, message: str) -> None:
    assert errors_of(max_papers=max_papers)["max_papers"] == [message]


def test_frequency_is_daily_or_weekly() -> None:
    assert errors_of(frequency="hourly")["frequency"] == ["Choose daily or weekly."]


def test_a_filled_honeypot_looks_automated() -> None:
    form = SignupForm(form_data(website="https://spam.example"))
    assert form.is_valid()  # nothing for a bot to fix…
    assert form.looks_automated()  # …but the view will quietly do nothing


def test_a_form_sent_back_too_fast_looks_automated(settings: Any) -> None:
    settings.PAPERBOY_SIGNUP_MIN_SECONDS = 2
    assert SignupForm(form_data(started=form_stamp())).looks_automated()
    assert SignupForm(form_data(started=form_stamp(now=time.time() - 1))).looks_automated()
    assert not SignupForm(form_data(started=form_stamp(now=time.time() - 3))).looks_automated()
    # No stamp, or one we did not sign, is a bot too.
    assert SignupForm(form_data(started="")).looks_automated()
    assert SignupForm(form_data(started="1700000000.000:forged")).looks_automated()
    settings.PAPERBOY_SIGNUP_MIN_SECONDS = 0
    assert not SignupForm(form_data(started=form_stamp())).looks_automated()


# --- The home page ----------------------------------------------------------------------


def test_home_shows_todays_top_papers_and_the_form(
    client: Client, make_paper: Callable[..., Paper]
) -> None:
    make_paper("Helios: Real-Time Long Video Generation", upvotes=214)
    make_paper("<script>alert('x')</script> Attention Is Still All You Need", upvotes=180)
    make_paper("A Quiet Paper", upvotes=2)
    make_paper("Yesterday's Hit", upvotes=999, batch_date=EDITION_DATE - dt.timedelta(days=1))

    response = client.get("/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Trending on Tuesday, 10 March" in page
    assert page.index("Helios") < page.index("Attention Is Still") < page.index("A Quiet Paper")
    assert "Yesterday" not in page  # only the latest day
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; Attention" in page
    assert '<input type="email" name="email" id="id_email" value=""' in page
    assert '<textarea name="topics" id="id_topics"' in page
    assert 'name="started" value="' in page
    # The honeypot is there for bots, hidden from people and from screen readers.
    assert '<div class="hp" aria-hidden="true">' in page
    assert 'name="website" id="id_website" value="" tabindex="-1"' in page
    assert 'value="daily" checked' in page
    assert 'name="max_papers" id="id_max_papers" value="10"' in page


def test_suggestions_are_the_fortnights_commonest_keywords(
    client: Client, make_paper: Callable[..., Paper]
) -> None:
    for n in range(3):
        make_paper(f"Agents {n}", ai_keywords=["LLM agents", "reinforcement learning"])
    make_paper("More", ai_keywords=["llm agents", "diffusion", "LLM agents"])
    make_paper("Odd", ai_keywords=["<b>bold</b>", 42, None, "-negative", "x" * 200])
    make_paper("Old", ai_keywords=["ancient"], batch_date=EDITION_DATE - dt.timedelta(days=14))
    make_paper("Broken", ai_keywords={"not": "a list"})

    page = client.get("/").content.decode()

    options = re.findall(r'<option value="([^"]*)">', page)
    assert options[:3] == ["LLM agents", "reinforcement learning", "&lt;b&gt;bold&lt;/b&gt;"]
    assert "diffusion" in options
    assert "ancient" not in options and "-negative" not in options
    assert '<span class="suggestion">LLM agents</span>' in page


def test_home_without_papers_still_explains_the_digest(client: Client) -> None:
    page = client.get("/").content.decode()
    assert "What you’ll get" in page
    assert "<datalist" in page


def test_errors_are_shown_next_to_the_field_and_the_typing_is_kept(
    client: Client, mailbox: Mailbox
) -> None:
    response = sign_up(client, email="dave@example", topics="diffusion\n-survey\nx\x07y")

    assert response.status_code == 200
    page = response.content.decode()
    assert "2 things to fix" in page
    assert (
        '<p class="error" id="email-error">Enter an email address like name@example.org.</p>'
        in page
    )
    assert '<p class="error" id="topics-error">Topics cannot contain control characters.</p>' in (
        page
    )
    assert 'value="dave@example"' in page
    assert "diffusion\n-survey\nx\x07y</textarea>" in page
    assert 'value="weekly" checked' in page
    assert 'id="id_max_papers" value="7"' in page
    assert 'aria-invalid="true" aria-describedby="email-error"' in page
    assert "autofocus" in page.split('id="id_email"')[1].split(">")[0]
    assert not Subscriber.objects.exists()
    assert mailbox.messages == []


def test_an_injected_header_is_only_a_form_error(client: Client, mailbox: Mailbox) -> None:
    response = sign_up(client, email="dave@example.org\r\nBcc: victim@example.org")
    assert response.status_code == 200
    assert "An email address cannot contain line breaks." in response.content.decode()
    assert not Subscriber.objects.exists()
    assert mailbox.messages == []


# --- Signing up and confirming ----------------------------------------------------------


@pytest.fixture
def mailbox(smtp_server: Mailbox) -> Mailbox:
    return smtp_server


def test_dave_signs_up_and_gets_one_confirmation_email(client: Client, mailbox: Mailbox) -> None:
    response = sign_up(client)

    assert response.status_code == 302
    assert response["Location"] == "/signup/check-inbox"
    assert DAVE not in response["Location"]
    page = client.get(response["Location"]).content.decode()
    assert "Check your inbox" in page
    assert f'<span class="address">{DAVE}</span>' in page

    dave = Subscriber.objects.get(email=DAVE)
    assert dave.status == Subscriber.Status.PENDING
    assert dave.topics == ["diffusion", "speech recognition", "-survey"]
    assert dave.frequency == "weekly" and dave.max_papers == 7
    assert dave.confirmation_sent_at is not None and dave.confirmed_at is None

    [received] = mailbox.messages
    assert received.rcpt_tos == [DAVE]
    message = received.message
    assert message["To"] == DAVE
    assert message["From"] == "Paperboy <paperboy@localhost>"
    assert message["Subject"] == "Confirm your Paperboy subscription"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"] and message["Date"]
    assert message.get_content_type() == "multipart/alternative"
    assert message["List-Unsubscribe"] is None  # not a list email
    text, html = text_of(message), html_of(message)
    assert "If you didn’t ask for this, ignore this email" in text
    assert "If you didn’t ask for this, ignore this email" in html
    assert DAVE in text and DAVE in html
    # Nothing else typed comes back: the form cannot carry words to a stranger's inbox.
    for typed in ("diffusion", "speech", "survey", "weekly", "Weekly"):
        assert typed not in text and typed not in html and typed not in message["Subject"]
    path = confirm_path(message)
    assert f'href="{SITE}{path}"' in html
    assert path.startswith(f"/confirm/{dave.key}:")


def test_opening_the_link_changes_nothing_and_the_button_confirms(
    client: Client, mailbox: Mailbox
) -> None:
    sign_up(client)
    path = confirm_path(mailbox.messages[0].message)
    browser = Client(enforce_csrf_checks=True)

    # Mail scanners follow every link: GET only shows the button.
    response = browser.get(path)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Confirm your subscription" in page
    assert '<button class="button" type="submit">Confirm my subscription</button>' in page
    assert "d•••@example.org" in page and DAVE not in page
    assert '<li class="chip">speech recognition</li>' in page
    assert '<li class="chip not">not “survey”</li>' in page
    dave = Subscriber.objects.get(email=DAVE)
    assert dave.status == Subscriber.Status.PENDING

    # Pressing it, with no CSRF cookie (the signed link is the credential).
    response = browser.post(path)
    assert response.status_code == 200
    page = response.content.decode()
    assert "You’re subscribed" in page
    assert f'href="{manage_url(dave)}"' in page
    assert "Your weekly digest comes on Mondays, around 07:00 UTC" in page  # the defaults
    dave = refreshed(dave)
    assert dave.status == Subscriber.Status.ACTIVE
    assert dave.confirmed_at is not None
    confirmed_at = dave.confirmed_at

    # Pressing it again (or opening the link later) is harmless.
    for again in (browser.post(path), browser.get(path)):
        assert again.status_code == 200
        assert "You’re already confirmed" in again.content.decode()
    assert refreshed(dave).confirmed_at == confirmed_at
    assert len(mailbox.messages) == 1  # confirming sends nothing


def test_an_expired_link_offers_a_new_one(
    client: Client, mailbox: Mailbox, make_subscriber: Callable[..., Subscriber]
) -> None:
    dave = make_subscriber(DAVE, ["diffusion"], status=Subscriber.Status.PENDING)
    four_days_ago = time.time() - 4 * 24 * 3600
    with mock.patch("django.core.signing.time.time", return_value=four_days_ago):
        old = f"/confirm/{make_token(dave, Purpose.CONFIRM)}"

    for response in (client.get(old), client.post(old)):
        assert response.status_code == 200
        page = response.content.decode()
        assert "This link has expired" in page
        assert "Email me a new link" in page
        assert f'action="{old}/resend"' in page
    assert refreshed(dave).status == Subscriber.Status.PENDING

    response = client.post(f"{old}/resend", REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 302
    assert response["Location"] == "/signup/check-inbox"
    [received] = mailbox.messages
    assert received.rcpt_tos == [DAVE]
    fresh = confirm_path(received.message)
    assert fresh != old
    assert "Confirm your subscription" in client.get(fresh).content.decode()
    client.post(fresh)
    assert refreshed(dave).status == Subscriber.Status.ACTIVE


def test_a_tampered_link_gets_the_bad_link_page(
    client: Client, make_subscriber: Callable[..., Subscriber]
) -> None:
    dave = make_subscriber(DAVE, ["diffusion"], status=Subscriber.Status.PENDING)
    token = make_token(dave, Purpose.CONFIRM)
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    # A link made for another page cannot confirm either.
    for path in (
        f"/confirm/{tampered}",
        f"/confirm/{make_token(dave, Purpose.MANAGE)}",
        "/confirm/not-a-token",
    ):
        for response in (client.get(path), client.post(path), client.post(f"{path}/resend")):
            assert response.status_code == 400
            assert "This link doesn’t work" in response.content.decode()
    assert refreshed(dave).status == Subscriber.Status.PENDING


def test_a_link_does_not_undo_an_unsubscribe(
    client: Client, make_subscriber: Callable[..., Subscriber]
) -> None:
    erin = make_subscriber("erin@example.org", ["agents"], status=Subscriber.Status.PENDING)
    path = f"/confirm/{make_token(erin, Purpose.CONFIRM)}"
    Subscriber.objects.filter(pk=erin.pk).update(status=Subscriber.Status.UNSUBSCRIBED)

    response = client.post(path)

    assert response.status_code == 200
    assert "This link no longer confirms anything" in response.content.decode()
    assert refreshed(erin).status == Subscriber.Status.UNSUBSCRIBED


# --- Signing up again -------------------------------------------------------------------


def test_signing_up_again_while_pending_updates_and_resends_at_most_every_ten_minutes(
    client: Client, mailbox: Mailbox
) -> None:
    sign_up(client)
    assert len(mailbox.messages) == 1

    sign_up(client, topics="world models", frequency="daily", max_papers="3")

    dave = Subscriber.objects.get(email=DAVE)
    assert dave.topics == ["world models"]
    assert dave.frequency == "daily" and dave.max_papers == 3
    assert len(mailbox.messages) == 1  # the first email is minutes old: not again yet

    Subscriber.objects.filter(pk=dave.pk).update(
        confirmation_sent_at=timezone.now() - dt.timedelta(minutes=11)
    )
    sign_up(client, ip="198.51.100.9")
    assert len(mailbox.messages) == 2
    assert refreshed(dave).status == Subscriber.Status.PENDING
    # Both links work.
    first, second = (confirm_path(r.message) for r in mailbox.messages)
    assert client.get(first).status_code == client.get(second).status_code == 200


def test_an_active_subscriber_gets_a_settings_link_and_nothing_changes(
    client: Client, mailbox: Mailbox, alice: Subscriber
) -> None:
    response = sign_up(client, email="ALICE@example.org", topics="cooking")

    assert response["Location"] == "/signup/check-inbox"
    alice = refreshed(alice)
    assert alice.topics == ["diffusion", "video generation", "-survey"]  # untouched
    assert alice.status == Subscriber.Status.ACTIVE
    [received] = mailbox.messages
    message = received.message
    assert message["Subject"] == "You’re already subscribed to Paperboy"
    assert message["Auto-Submitted"] == "auto-generated"
    assert manage_url(alice) in text_of(message)
    assert "/confirm/" not in text_of(message)
    assert "cooking" not in text_of(message) and "cooking" not in html_of(message)

    sign_up(client, email="alice@example.org", ip="198.51.100.9")
    assert len(mailbox.messages) == 1  # at most one such email every ten minutes


def test_a_suppressed_address_is_never_resubscribed_and_sent_nothing(
    client: Client, mailbox: Mailbox, make_subscriber: Callable[..., Subscriber]
) -> None:
    mallory = make_subscriber(
        "mallory@example.org",
        ["agents"],
        status=Subscriber.Status.SUPPRESSED,
        suppressed_reason="hard bounce",
    )

    response = sign_up(client, email="mallory@example.org")

    assert response["Location"] == "/signup/check-inbox"
    assert refreshed(mallory).status == Subscriber.Status.SUPPRESSED
    assert refreshed(mallory).topics == ["agents"]
    assert mailbox.messages == []
    # Nor does "send it again".
    client.post("/signup/resend")
    assert mailbox.messages == []


def test_an_unsubscribed_address_must_confirm_again(
    client: Client, mailbox: Mailbox, make_subscriber: Callable[..., Subscriber]
) -> None:
    erin = make_subscriber(
        "erin@example.org",
        ["agents"],
        status=Subscriber.Status.UNSUBSCRIBED,
        unsubscribed_at=timezone.now() - dt.timedelta(days=30),
    )

    sign_up(client, email="erin@example.org", topics="robotics")

    erin = refreshed(erin)
    assert erin.status == Subscriber.Status.PENDING
    assert erin.topics == ["robotics"]
    [received] = mailbox.messages
    assert received.message["Subject"] == "Confirm your Paperboy subscription"
    client.post(confirm_path(received.message))
    assert refreshed(erin).status == Subscriber.Status.ACTIVE


def test_the_page_after_the_form_is_the_same_whoever_the_address_is(
    make_subscriber: Callable[..., Subscriber], settings: Any, mailbox: Mailbox
) -> None:
    make_subscriber("active@example.org", ["a"])
    make_subscriber("paused@example.org", ["a"], status=Subscriber.Status.PAUSED)
    make_subscriber("pending@example.org", ["a"], status=Subscriber.Status.PENDING)
    make_subscriber("left@example.org", ["a"], status=Subscriber.Status.UNSUBSCRIBED)
    make_subscriber("bounced@example.org", ["a"], status=Subscriber.Status.SUPPRESSED)
    cases = {
        "new": form_data(email="new@example.org"),
        "active": form_data(email="active@example.org"),
        "paused": form_data(email="paused@example.org"),
        "pending": form_data(email="pending@example.org"),
        "unsubscribed": form_data(email="left@example.org"),
        "suppressed": form_data(email="bounced@example.org"),
        "honeypot": form_data(email="bot@example.org", website="x"),
        "too fast": form_data(email="fast@example.org", started=form_stamp()),
    }
    settings.PAPERBOY_SIGNUP_MIN_SECONDS = 2
    pages = {}
    for n, (case, data) in enumerate(cases.items()):
        browser = Client()
        response = browser.post("/", data, REMOTE_ADDR=f"192.0.2.{n}")
        assert response.status_code == 302, case
        assert response["Location"] == "/signup/check-inbox", case
        follow = browser.get(response["Location"])
        assert follow.status_code == 200
        pages[case] = without_tokens(follow.content.decode()).replace(data["email"], "ADDRESS")

    assert len(set(pages.values())) == 1, [case for case in pages if pages[case] != pages["new"]]
    sent_to = sorted(r.rcpt_tos[0] for r in mailbox.messages)
    assert sent_to == [
        "active@example.org",
        "left@example.org",
        "new@example.org",
        "paused@example.org",
        "pending@example.org",
    ]
    assert not Subscriber.objects.filter(email__in=["bot@example.org", "fast@example.org"])


def test_send_it_again_from_the_check_inbox_page(client: Client, mailbox: Mailbox) -> None:
    sign_up(client)
    dave = Subscriber.objects.get(email=DAVE)

    response = client.post("/signup/resend")
    assert response["Location"] == "/signup/check-inbox?again=1"
    assert "a new one is on its way" in client.get(response["Location"]).content.decode()
    assert len(mailbox.messages) == 1  # minutes after the first: silently not yet

    Subscriber.objects.filter(pk=dave.pk).update(
        confirmation_sent_at=timezone.now() - dt.timedelta(minutes=11)
    )
    client.post("/signup/resend")
    assert len(mailbox.messages) == 2
    assert refreshed(dave).topics == ["diffusion", "speech recognition", "-survey"]


def test_send_it_again_without_a_signup_goes_home(client: Client) -> None:
    response = client.post("/signup/resend")
    assert response["Location"] == "/"
    page = client.get("/signup/check-inbox").content.decode()
    assert "Check your inbox" in page and "Send it again" not in page


def test_a_failed_send_is_not_a_500_and_can_be_retried_at_once(
    client: Client, mailbox: Mailbox
) -> None:
    mailbox.refusals.append("554 5.7.1 not today")

    response = sign_up(client)

    assert response.status_code == 302
    dave = Subscriber.objects.get(email=DAVE)
    assert dave.status == Subscriber.Status.PENDING
    assert dave.confirmation_sent_at is None  # the slot is handed back
    client.post("/signup/resend")
    [received] = mailbox.messages
    assert received.rcpt_tos == [DAVE]


def test_the_task_says_what_it_sent(
    mailbox: Mailbox, alice: Subscriber, make_subscriber: Callable[..., Subscriber]
) -> None:
    dave = make_subscriber(DAVE, ["agents"], status=Subscriber.Status.PENDING)
    mallory = make_subscriber("mallory@example.org", ["x"], status=Subscriber.Status.SUPPRESSED)
    erin = make_subscriber("erin@example.org", ["x"], status=Subscriber.Status.UNSUBSCRIBED)

    def send(subscriber_id: int) -> Outcome:
        return signup_email_send(subscriber_id=subscriber_id)

    assert send(dave.pk) is Outcome.CONFIRMATION_SENT
    assert send(dave.pk) is Outcome.CONFIRMATION_SENT_RECENTLY  # a task run twice: one email
    assert send(alice.pk) is Outcome.ALREADY_SUBSCRIBED
    assert send(alice.pk) is Outcome.ALREADY_SUBSCRIBED_RECENTLY
    assert send(mallory.pk) is Outcome.NOTHING_SENT
    assert send(erin.pk) is Outcome.NOTHING_SENT  # only a signup makes her pending again
    assert send(dave.pk + 1000) is Outcome.NOTHING_SENT  # deleted since it was queued
    assert sorted(r.rcpt_tos[0] for r in mailbox.messages) == [ALICE, DAVE]


def test_an_operator_can_resend_the_confirmation(
    mailbox: Mailbox, make_subscriber: Callable[..., Subscriber]
) -> None:
    dave = make_subscriber(DAVE, ["diffusion"], status=Subscriber.Status.PENDING)

    assert confirmation_send(subscriber=dave)
    assert not confirmation_send(subscriber=dave)  # minutes later: not again yet
    assert not confirmation_send(subscriber=make_subscriber("bob@example.org", ["rl"]))

    [received] = mailbox.messages
    assert received.rcpt_tos == [DAVE]
    assert received.message["Subject"] == "Confirm your Paperboy subscription"
