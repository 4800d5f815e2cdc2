""" "What are you looking for?": one sentence, typed at signup and edited on the manage page.

dave signs up with a sentence; alice, who already subscribes, changes hers. It is
optional, tidied to one line, at most 300 characters, and refused with a message when
it carries control or text-direction characters, as topics are.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from unittest import mock

import pytest
from django.test import Client

from pages.manage import subscriber_settings_update
from pages.signup import subscriber_signup
from subscriptions.forms import SignupForm, form_stamp
from subscriptions.intent import InvalidIntent, clean_intent
from subscriptions.links import manage_url
from subscriptions.models import Subscriber
from subscriptions.tokens import Purpose, make_token
from tests.conftest import EDITION_DATE

SITE = "https://paperboy.example"
DAVE = "dave@example.org"
DAVES_INTENT = "using reinforcement learning to make LLMs reason better in maths and code"
PLACEHOLDER = "e.g. using reinforcement learning to make LLMs reason better in maths and code"


def signup_data(**changes: str) -> dict[str, str]:
    data = {
        "email": DAVE,
        "topics": "reinforcement learning\nreasoning",
        "intent": DAVES_INTENT,
        "frequency": "daily",
        "max_papers": "10",
        "website": "",
        "started": form_stamp(now=time.time() - 60),
    }
    data.update(changes)
    return data


def settings_data(**changes: str) -> dict[str, str]:
    data = {
        "topics": "diffusion\nvideo generation\n-survey",
        "intent": "long video generation that stays consistent over minutes",
        "frequency": "daily",
        "max_papers": "10",
    }
    data.update(changes)
    return data


def page_of(subscriber: Subscriber) -> str:
    return manage_url(subscriber).removeprefix(SITE)


def text(response: Any) -> str:
    return str(response.content.decode())


BAD_SENTENCES = [
    ("x" * 301, "Keep it to one sentence of at most 300 characters (this has 301)."),
    ("x" * 700, "Keep it to one sentence of at most 300 characters."),
    ("diffusion\x07 for video", "The sentence cannot contain control characters."),
    ("diffusion\x1b[31m", "The sentence cannot contain control characters."),
    ("video \u202egnp.exe", "The sentence cannot contain text-direction control characters."),
    ("video \u2066isolate\u2069", "The sentence cannot contain text-direction control characters."),
]


# --- The sentence -----------------------------------------------------------------------


def test_the_sentence_is_tidied_to_one_line() -> None:
    assert (
        clean_intent("  agents that\n  use tools\r\n\tsafely  ") == "agents that use tools safely"
    )
    assert clean_intent("") == ""
    # 300 characters once tidied: the spaces a paste brings do not count against it.
    assert clean_intent("  " + "x" * 300 + "\n") == "x" * 300


@pytest.mark.parametrize(("sentence", "message"), BAD_SENTENCES)
def test_a_bad_sentence_is_refused_with_a_message(sentence: str, message: str) -> None:
    form = SignupForm(signup_data(intent=sentence))
    assert not form.is_valid()
    assert form.errors["intent"] == [message]


def test_the_sentence_is_optional() -> None:
    form = SignupForm(signup_data(intent=""))
    assert form.is_valid(), form.errors
    assert form.cleaned_data["intent"] == ""
    without = signup_data()
    del without["intent"]
    assert SignupForm(without).is_valid()


# --- At signup --------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_home_page_asks_what_you_are_looking_for(client: Client) -> None:
    page = text(client.get("/"))
    assert '<label for="id_intent">What are you looking for?</label>' in page
    assert f'placeholder="{PLACEHOLDER}"' in page
    assert "Optional: one sentence in your own words, up to 300 characters." in page
    # Between the topics and how often.
    assert page.index('id="id_topics"') < page.index('id="id_intent"') < page.index("How often")


@pytest.mark.django_db
def test_dave_signs_up_with_a_sentence_and_it_is_saved(client: Client) -> None:
    response = client.post("/", signup_data(intent=f"  {DAVES_INTENT}\n"))

    assert response.status_code == 302
    dave = Subscriber.objects.get(email=DAVE)
    assert dave.intent == DAVES_INTENT
    assert dave.status == Subscriber.Status.PENDING


@pytest.mark.django_db
def test_errors_are_shown_next_to_the_sentence_and_the_typing_is_kept(client: Client) -> None:
    typed = "agents\x07 " + "y" * 20

    response = client.post("/", signup_data(intent=typed, max_papers="7"))

    assert response.status_code == 200
    page = text(response)
    assert "One thing to fix" in page
    assert (
        '<p class="error" id="intent-error">The sentence cannot contain control characters.</p>'
        in page
    )
    assert f"{typed}</textarea>" in page
    assert 'aria-describedby="intent-hint intent-error"' in page
    assert "autofocus" in page.split('id="id_intent"')[1].split(">")[0]
    # Everything else they typed is still there.
    assert f'value="{DAVE}"' in page
    assert "reinforcement learning\nreasoning</textarea>" in page
    assert 'id="id_max_papers" value="7"' in page
    assert not Subscriber.objects.exists()


@pytest.mark.django_db
def test_a_sentence_with_markup_comes_back_as_text(client: Client) -> None:
    page = text(client.post("/", signup_data(intent="<script>alert(1)</script>" + "x" * 300)))
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.django_db
def test_signing_up_again_while_pending_updates_the_sentence(client: Client) -> None:
    client.post("/", signup_data())
    client.post("/", signup_data(intent="world models for robots"), REMOTE_ADDR="198.51.100.9")
    assert Subscriber.objects.get(email=DAVE).intent == "world models for robots"

    # Leaving it empty the next time empties it, as for every other setting.
    client.post("/", signup_data(intent=""), REMOTE_ADDR="198.51.100.10")
    assert Subscriber.objects.get(email=DAVE).intent == ""


def test_a_stranger_cannot_change_a_subscribers_sentence(alice: Subscriber, client: Client) -> None:
    Subscriber.objects.filter(pk=alice.pk).update(intent="video diffusion that runs on a phone")

    client.post("/", signup_data(email="alice@example.org", intent="cooking"))

    alice.refresh_from_db()
    assert alice.intent == "video diffusion that runs on a phone"


@pytest.mark.django_db
def test_the_service_cleans_what_it_is_given() -> None:
    subscriber_signup(
        email=DAVE,
        topics=["agents"],
        frequency="daily",
        max_papers=5,
        ip="203.0.113.7",
        intent=" tool-using\nagents ",
    )
    assert Subscriber.objects.get(email=DAVE).intent == "tool-using agents"
    with pytest.raises(InvalidIntent):
        subscriber_signup(
            email="erin@example.org",
            topics=["agents"],
            frequency="daily",
            max_papers=5,
            ip="203.0.113.7",
            intent="agents \u202e",
        )


# --- On the manage page -----------------------------------------------------------------


def test_alice_sees_her_sentence_and_changes_it(alice: Subscriber, client: Client) -> None:
    Subscriber.objects.filter(pk=alice.pk).update(intent="video diffusion that runs on a phone")

    page = text(client.get(page_of(alice)))
    assert re.search(
        r'<textarea name="intent"[^>]*>\nvideo diffusion that runs on a phone</textarea>', page
    )
    assert f'placeholder="{PLACEHOLDER}"' in page
    assert "Looking for: “video diffusion that runs on a phone”" in page

    response = client.post(page_of(alice), settings_data(intent=" long video\ngeneration "))

    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.intent == "long video generation"
    page = text(client.get(page_of(alice)))
    assert "Saved. Your next digest uses these settings." in page
    assert "Looking for: “long video generation”" in page

    # Emptied, it is gone, and the page no longer quotes it.
    client.post(page_of(alice), settings_data(intent=""))
    alice.refresh_from_db()
    assert alice.intent == ""
    assert "Looking for:" not in text(client.get(page_of(alice)))


@pytest.mark.parametrize(("sentence", "message"), BAD_SENTENCES)
def test_a_bad_sentence_on_the_manage_page_is_shown_and_kept_not_saved(
    alice: Subscriber, client: Client, sentence: str, message: str
) -> None:
    response = client.post(page_of(alice), settings_data(intent=sentence, max_papers="7"))

    assert response.status_code == 200
    page = text(response)
    field = page[page.index('<label for="id_intent">') : page.index("How often")]
    assert message in field
    assert '<div class="field invalid">' in page.split('<label for="id_intent">')[0][-60:]
    assert f">\n{sentence}</textarea>" in field
    assert 'id="unsaved"' in page and 'id="unsaved" hidden' not in page
    assert re.search(r'name="max_papers" value="7"', page)
    alice.refresh_from_db()
    assert alice.intent == "" and alice.max_papers == 10


def test_the_preview_reads_the_sentence_being_typed(alice: Subscriber, client: Client) -> None:
    # The matcher decides what the sentence does; the preview must hand it the typed one.
    with (
        mock.patch("pages.manage.subscriber_preview", return_value=([], "")) as preview,
        mock.patch("pages.manage.latest_stored_date", return_value=EDITION_DATE),
    ):
        client.post(page_of(alice) + "/preview", settings_data(intent="speech on a phone"))
    draft = preview.call_args.kwargs["subscriber"]
    assert draft.intent == "speech on a phone"
    assert draft.pk == alice.pk
    alice.refresh_from_db()
    assert alice.intent == ""  # a preview saves nothing


def test_the_service_refuses_what_the_form_would(alice: Subscriber) -> None:
    with pytest.raises(InvalidIntent):
        subscriber_settings_update(
            subscriber=alice,
            topics=["diffusion"],
            intent="x" * 301,
            frequency="daily",
            max_papers=10,
        )


def test_her_data_download_includes_the_sentence(alice: Subscriber, client: Client) -> None:
    Subscriber.objects.filter(pk=alice.pk).update(intent="video diffusion that runs on a phone")
    link = "/your-data/" + make_token(alice, Purpose.ACTION, extra="export")
    data = json.loads(client.post(link).content)
    assert data["subscriber"]["intent"] == "video diffusion that runs on a phone"
    assert data["feedback"] == []
