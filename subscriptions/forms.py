"""The public signup form.

Everything a stranger can type is checked here, with a message a person can act on,
shown next to the field: nothing typed into this form can raise a 500. Two quiet traps
catch simple bots (a honeypot field and a minimum time to fill the form in); a form that
falls into one is not an error to show, the view just says "check your inbox" and does
nothing (`looks_automated`).

The stamp (when the form was shown) also carries a random nonce and is good for one
signup: `claim_stamp` takes the nonce with an atomic `cache.add`, so a bot cannot fetch
the page once and post it a thousand times. A stamp older than STAMP_MAX_AGE is stale,
which bounds how long the cache must remember a nonce.
"""

from __future__ import annotations

import math
import secrets
import time
from typing import Any

from django import forms
from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.http import QueryDict

from .form_fields import (
    hour_field,
    intent_cleaned,
    intent_field,
    trending_field,
    weekday_field,
    zone_field,
    zone_from_text,
)
from .models import DEFAULT_PAPERS, MAX_PAPERS, MIN_PAPERS, Subscriber, normalise_email
from .ratelimit import cooldown
from .topics import MAX_TOPICS, MAX_TOPICS_TEXT, InvalidTopic, topics_from_text

MAX_EMAIL_LENGTH = 254  # RFC 5321's limit on a forward path, less the angle brackets

HONEYPOT_FIELD = "website"
STAMP_SALT = "paperboy.signup-form"
STAMP_MAX_AGE = 24 * 60 * 60  # seconds; a page left open longer is shown again, fresh
STAMP_USED = (
    "This form was already sent. We’ve refreshed it: check your details and press Subscribe again."
)
STAMP_STALE = (
    "This page was open for a long time. We’ve refreshed it: check your details and press "
    "Subscribe again."
)


def min_seconds_to_submit() -> float:
    """Humans take longer than this to fill the form in; tests set it lower."""
    return float(getattr(settings, "PAPERBOY_SIGNUP_MIN_SECONDS", 2))


def form_stamp(now: float | None = None) -> str:
    """A signed 'the form was shown at' time and a one-time nonce, for a hidden field."""
    shown_at = time.time() if now is None else now
    # Rounded down, not to nearest: a stamp must never be younger than the page, or a
    # form sent back at once would have a negative age.
    value = f"{math.floor(shown_at * 1000) / 1000:.3f}/{secrets.token_urlsafe(12)}"
    return signing.Signer(salt=STAMP_SALT).sign(value)


def _read_stamp(stamp: str) -> tuple[float, str] | None:
    try:
        shown_at, _, nonce = signing.Signer(salt=STAMP_SALT).unsign(stamp).partition("/")
        return float(shown_at), nonce
    except (signing.BadSignature, ValueError):
        return None


def stamp_age(stamp: str, now: float | None = None) -> float | None:
    """Seconds since the form carrying `stamp` was shown, or None if it is not ours."""
    read = _read_stamp(stamp)
    if read is None:
        return None
    return (time.time() if now is None else now) - read[0]


def stamp_claim(stamp: str) -> str:
    """Use up the stamp's nonce: "" the first time, else why the form must be sent again.

    Call it only for a form about to be acted on (valid, and not a trapped bot's), so
    that a person correcting a mistake can send the same page again.
    """
    read = _read_stamp(stamp)
    if read is None:
        return STAMP_STALE  # looks_automated() has already turned these away
    shown_at, nonce = read
    # No nonce: a page shown before stamps had one (left open across an upgrade).
    if not nonce or time.time() - shown_at > STAMP_MAX_AGE:
        return STAMP_STALE
    # A nonce is remembered as long as its stamp could still be sent.
    if not cooldown(name="signup-stamp", key=nonce, seconds=STAMP_MAX_AGE + 60):
        return STAMP_USED
    return ""


def address_from(raw: str) -> str:
    """The address typed into a form, normalised and checked; ValidationError if not one."""
    if "\r" in raw or "\n" in raw:
        # A line break in an address is a header-injection attempt, never a typo.
        raise ValidationError("An email address cannot contain line breaks.")
    address = normalise_email(raw)
    if not address:
        raise ValidationError("Enter your email address.")
    if len(address) > MAX_EMAIL_LENGTH:
        raise ValidationError(f"An email address has at most {MAX_EMAIL_LENGTH} characters.")
    EmailValidator(message="Enter an email address like name@example.org.")(address)
    return address


def email_field() -> forms.CharField:
    # A CharField rather than an EmailField: the address is normalised (IDN domains to
    # punycode) before it is validated, and CR/LF are refused before anything strips them.
    return forms.CharField(
        label="Email address",
        strip=False,
        max_length=MAX_EMAIL_LENGTH + 20,  # white space around a paste; checked exactly later
        error_messages={
            "required": "Enter your email address.",
            "max_length": f"An email address has at most {MAX_EMAIL_LENGTH} characters.",
        },
    )


class SignupForm(forms.Form):
    email = email_field()
    topics = forms.CharField(
        label="Topics",
        required=False,  # none: the day's trending papers
        strip=False,
        widget=forms.Textarea,
        max_length=MAX_TOPICS_TEXT,
        error_messages={"max_length": f"That is more text than {MAX_TOPICS} topics can hold."},
    )
    trending = trending_field("With your topics")
    send_hour = hour_field()
    send_weekday = weekday_field()  # weekly subscribers
    time_zone = zone_field()
    intent = intent_field()
    frequency = forms.ChoiceField(
        label="How often",
        choices=Subscriber.Frequency.choices,
        initial=Subscriber.Frequency.DAILY,
        widget=forms.RadioSelect,
        error_messages={
            "required": "Choose daily or weekly.",
            "invalid_choice": "Choose daily or weekly.",
        },
    )
    max_papers = forms.IntegerField(
        label="Papers per email",
        min_value=MIN_PAPERS,
        max_value=MAX_PAPERS,
        initial=DEFAULT_PAPERS,
        error_messages={
            "required": f"Choose a number from {MIN_PAPERS} to {MAX_PAPERS}.",
            "invalid": f"Choose a number from {MIN_PAPERS} to {MAX_PAPERS}.",
            "min_value": f"Choose a number from {MIN_PAPERS} to {MAX_PAPERS}.",
            "max_value": f"At most {MAX_PAPERS} papers an email.",
        },
    )
    # The traps. Rendered by hand in home.html: the honeypot is off-screen and hidden from
    # screen readers, the stamp is a hidden input. They are read from the raw data by
    # looks_automated(), never validated: a trapped bot must not see an error to fix.
    website = forms.CharField(required=False)
    started = forms.CharField(required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["trending"].initial = Subscriber.Trending.NONE
        self.fields["send_hour"].initial = settings.PAPERBOY_SEND_HOUR
        self.fields["send_weekday"].initial = settings.PAPERBOY_WEEKLY_WEEKDAY
        self.fields["time_zone"].initial = settings.PAPERBOY_DEFAULT_TIMEZONE
        if not self.is_bound:
            self.initial.setdefault("started", form_stamp())

    def clean_trending(self) -> str:
        return str(self.cleaned_data.get("trending") or Subscriber.Trending.NONE)

    def clean_send_hour(self) -> int:
        hour = self.cleaned_data.get("send_hour")
        return int(settings.PAPERBOY_SEND_HOUR if hour is None else hour)

    def clean_send_weekday(self) -> int:
        day = self.cleaned_data.get("send_weekday")
        return int(settings.PAPERBOY_WEEKLY_WEEKDAY if day is None else day)

    def clean_time_zone(self) -> str:
        return zone_from_text(self.cleaned_data.get("time_zone") or "") or str(
            settings.PAPERBOY_DEFAULT_TIMEZONE
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        # The mix only means something with topics (the page hides it without them, but
        # a page without JavaScript still sends it): a subscriber without any gets the
        # trending list whatever it says, and keeps the default should they add topics.
        if "topics" in data and not data["topics"]:
            data["trending"] = Subscriber.Trending.NONE
        return data

    def looks_automated(self) -> bool:
        """The honeypot is filled in, or the form came back too fast or without our stamp."""
        if not self.is_bound:
            return False
        if str(self.data.get(HONEYPOT_FIELD, "")).strip():
            return True
        age = stamp_age(str(self.data.get("started", "")))
        return age is None or age < min_seconds_to_submit()

    def claim_stamp(self) -> bool:
        """Use the form's stamp up; False (with a message on the form) if it was used or
        is stale. The form then carries a fresh stamp, so the page can be sent again."""
        problem = stamp_claim(str(self.data.get("started", "")))
        if not problem:
            return True
        # Every field of this form has one value, so a plain dict loses nothing. (Not
        # {**data}: a QueryDict would give up its lists of values.)
        data = self.data.dict() if isinstance(self.data, QueryDict) else dict(self.data)
        self.data = {**data, "started": form_stamp()}
        self.add_error(None, problem)
        return False

    def typed_email(self) -> str:
        """The address as typed, tidied, to show on the next page even when not valid."""
        raw = str(self.data.get("email", ""))
        return normalise_email(" ".join(raw.split()))[:MAX_EMAIL_LENGTH]

    def clean_email(self) -> str:
        return address_from(self.cleaned_data["email"])

    def clean_topics(self) -> list[str]:
        try:
            return topics_from_text(self.cleaned_data["topics"])
        except InvalidTopic as exc:
            raise ValidationError(str(exc)) from None

    def clean_intent(self) -> str:
        return intent_cleaned(self)

    def first_error_field(self) -> str | None:
        """The first field (in page order) with an error, to put the cursor there."""
        return next((name for name in self.fields if name in self.errors), None)
