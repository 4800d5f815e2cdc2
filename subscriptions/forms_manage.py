"""The manage page's settings form: topics, what they are looking for, how often, how many."""

from __future__ import annotations

from typing import Any

from django import forms

from .intent import (
    INTENT_HELP,
    INTENT_LABEL,
    INTENT_PLACEHOLDER,
    MAX_INTENT_TEXT,
    TOO_LONG,
    InvalidIntent,
    clean_intent,
)
from .manage import MAX_PAPERS, MIN_PAPERS, weekly_day_name
from .models import Subscriber
from .schedule import is_timezone
from .topics import MAX_INTERESTS, MAX_TOPICS_TEXT, InvalidInterest, topics_from_text


class DigestSettingsForm(forms.Form):
    topics = forms.CharField(
        label="Topics",
        required=False,  # an empty box gets our own message, not "This field is required."
        strip=False,
        max_length=MAX_TOPICS_TEXT,
        error_messages={"max_length": f"That is more text than {MAX_INTERESTS} topics can hold."},
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false", "autocapitalize": "none"}),
        help_text="One per line. Start a line with “-” to leave out papers that "
        "mention it, e.g. -survey.",
    )
    # Optional; tidied, then held to MAX_INTENT_LENGTH in clean_intent.
    intent = forms.CharField(
        label=INTENT_LABEL,
        required=False,
        strip=False,
        max_length=MAX_INTENT_TEXT,
        error_messages={"max_length": f"{TOO_LONG}."},
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": INTENT_PLACEHOLDER}),
        help_text=INTENT_HELP,
    )
    frequency = forms.ChoiceField(
        label="How often", choices=Subscriber.Frequency.choices, widget=forms.RadioSelect
    )
    max_papers = forms.IntegerField(
        label="Papers per email",
        min_value=MIN_PAPERS,
        max_value=MAX_PAPERS,
        help_text=f"{MIN_PAPERS} to {MAX_PAPERS}; the best matches come first.",
        error_messages={
            "required": f"Choose a number from {MIN_PAPERS} to {MAX_PAPERS}.",
            "invalid": f"Choose a number from {MIN_PAPERS} to {MAX_PAPERS}.",
            "min_value": f"Choose a number from {MIN_PAPERS} to {MAX_PAPERS}.",
            "max_value": f"Choose a number from {MIN_PAPERS} to {MAX_PAPERS}.",
        },
    )

    trending = forms.ChoiceField(
        label="With your topics",
        choices=Subscriber.Trending.choices,
        required=False,
        widget=forms.RadioSelect,
        help_text="Without topics you get the trending papers, most upvoted first.",
    )
    send_hour = forms.TypedChoiceField(
        label="Arrives at",
        choices=[(h, f"{h:02d}:00") for h in range(24)],
        coerce=int,
        required=False,
        empty_value=None,
    )
    time_zone = forms.CharField(label="Time zone", required=False, max_length=64)
    channel = forms.ChoiceField(
        label="Delivered by",
        choices=Subscriber.Channel.choices,
        required=False,
        widget=forms.RadioSelect,
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Say which day a weekly digest comes: a setting, so not known at import time.
        field = self.fields["frequency"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [
            (Subscriber.Frequency.DAILY.value, "Daily"),
            (Subscriber.Frequency.WEEKLY.value, f"Weekly, on {weekly_day_name()}s"),
        ]

    @classmethod
    def for_subscriber(cls, subscriber: Subscriber) -> DigestSettingsForm:
        return cls(
            initial={
                "topics": "\n".join(subscriber.interests),
                "intent": subscriber.intent,
                "frequency": subscriber.frequency,
                "max_papers": subscriber.max_papers,
                "trending": subscriber.trending,
                "send_hour": subscriber.send_hour,
                "time_zone": subscriber.time_zone,
                "channel": subscriber.channel,
            }
        )

    def choices(self) -> dict[str, Any]:
        """The schedule and delivery fields that were given (a field left out keeps its
        saved value)."""
        names = ("trending", "send_hour", "time_zone", "channel")
        return {
            n: self.cleaned_data[n] for n in names if self.cleaned_data.get(n) not in ("", None)
        }

    def clean_time_zone(self) -> str:
        zone = str(self.cleaned_data.get("time_zone") or "").strip()
        if zone and not is_timezone(zone):
            raise forms.ValidationError(
                "Choose a time zone by its name, like Europe/Berlin or UTC."
            )
        return zone

    def clean_topics(self) -> list[str]:
        try:
            return topics_from_text(self.cleaned_data["topics"])
        except InvalidInterest as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_intent(self) -> str:
        try:
            return clean_intent(self.cleaned_data["intent"])
        except InvalidIntent as exc:
            raise forms.ValidationError(str(exc)) from None

    def first_error(self) -> str:
        """One line for the preview, which sits away from the fields."""
        for errors in self.errors.values():
            return str(errors[0])
        return ""
