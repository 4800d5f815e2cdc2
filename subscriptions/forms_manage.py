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
            }
        )

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
