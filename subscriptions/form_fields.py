"""The fields the signup form and the manage page share: the trending mix, the hour, the
weekday and the time zone, with the words and checks a subscriber sees on both."""

from __future__ import annotations

import calendar
from functools import lru_cache

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from .intent import (
    INTENT_HELP,
    INTENT_LABEL,
    INTENT_PLACEHOLDER,
    MAX_INTENT_TEXT,
    TOO_LONG,
    InvalidIntent,
    clean_intent,
)
from .models import Subscriber
from .schedule import is_timezone, timezone_names

HOUR_CHOICES = [(hour, f"{hour:02d}:00") for hour in range(24)]
WEEKDAY_CHOICES = [(day, calendar.day_name[day - 1]) for day in range(1, 8)]  # ISO: 1 = Monday
BAD_ZONE = "Choose a time zone by its name, like Europe/Berlin or UTC."


def trending_choices() -> list[tuple[str, str]]:
    """The mix as a segmented control shows it: short, and saying how many "few" is."""
    extra = int(settings.PAPERBOY_TRENDING_EXTRA)
    return [
        (Subscriber.Trending.NONE.value, "Only my topics"),
        (Subscriber.Trending.FEW.value, f"Plus the top {extra} trending"),
        (Subscriber.Trending.ONLY.value, "Trending only"),
    ]


def trending_field(label: str) -> forms.ChoiceField:
    return forms.ChoiceField(
        label=label,
        choices=trending_choices,
        required=False,  # not given: the default, or (manage) what is saved
        widget=forms.RadioSelect,
        error_messages={"invalid_choice": "Choose how much of the trending list to add."},
    )


def hour_field() -> forms.TypedChoiceField:
    return forms.TypedChoiceField(
        label="Arrives at",
        choices=HOUR_CHOICES,
        coerce=int,
        required=False,
        empty_value=None,
        error_messages={"invalid_choice": "Choose an hour from 00:00 to 23:00."},
    )


def weekday_field() -> forms.TypedChoiceField:
    return forms.TypedChoiceField(
        label="On",
        choices=WEEKDAY_CHOICES,
        coerce=int,
        required=False,
        empty_value=None,
        error_messages={"invalid_choice": "Choose a day of the week."},
    )


def zone_field() -> forms.CharField:
    return forms.CharField(
        label="Time zone",
        required=False,
        max_length=64,
        error_messages={"max_length": BAD_ZONE},
        widget=forms.TextInput(
            attrs={
                "list": "time-zones",
                "autocomplete": "off",
                "autocapitalize": "none",
                "spellcheck": "false",
            }
        ),
    )


@lru_cache(maxsize=1)
def _zones_by_key() -> tuple[dict[str, str], dict[str, list[str]]]:
    """Every zone name by its lower-cased self, and by its lower-cased last part (the city)."""
    names: dict[str, str] = {}
    cities: dict[str, list[str]] = {}
    for name in timezone_names():
        names[name.lower()] = name
        if "/" in name and not name.startswith(("Etc/", "SystemV/")):
            cities.setdefault(name.rpartition("/")[2].lower(), []).append(name)
    return names, cities


def zone_from_text(text: str) -> str:
    """The IANA name a person meant ("europe/berlin", "New York", "Berlin" are fine), or
    "" for nothing typed; ValidationError, with a suggestion when there is one, otherwise."""
    typed = " ".join(text.split())
    if not typed:
        return ""
    if is_timezone(typed):
        return typed
    key = typed.replace(" ", "_").lower()
    names, cities = _zones_by_key()
    if key in names:
        return names[key]
    found = cities.get(key, [])
    if len(found) == 1:
        return found[0]
    if found:
        raise ValidationError(f"“{typed[:40]}” could be {' or '.join(found)}: choose one.")
    raise ValidationError(f"“{typed[:40]}” is not a time zone we know. {BAD_ZONE}")


def intent_field(rows: int | None = None) -> forms.CharField:
    """The subscriber's own sentence: optional; tidied, then held to MAX_INTENT_LENGTH by
    `intent_cleaned` (a form's `clean_intent`)."""
    attrs = {"rows": str(rows)} if rows else {}
    return forms.CharField(
        label=INTENT_LABEL,
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={**attrs, "placeholder": INTENT_PLACEHOLDER}),
        help_text=INTENT_HELP,
        max_length=MAX_INTENT_TEXT,
        error_messages={"max_length": f"{TOO_LONG}."},
    )


def intent_cleaned(form: forms.Form) -> str:
    try:
        return clean_intent(form.cleaned_data["intent"])
    except InvalidIntent as exc:
        raise ValidationError(str(exc)) from None
