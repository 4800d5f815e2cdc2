"""The manage page's settings form: topics (optional), what they are looking for, the
trending mix, how often and when, how many, and email or feed only. And the one-field form
that asks for a fresh link to it."""

from __future__ import annotations

from typing import Any

from django import forms

from . import form_fields
from .forms import address_from, email_field
from .models import MAX_PAPERS, MIN_PAPERS, Subscriber
from .topics import MAX_TOPICS, MAX_TOPICS_TEXT, InvalidTopic, topics_from_text


class DigestSettingsForm(forms.Form):
    topics = forms.CharField(
        label="Topics",
        required=False,  # none: the day's trending papers
        strip=False,
        max_length=MAX_TOPICS_TEXT,
        error_messages={"max_length": f"That is more text than {MAX_TOPICS} topics can hold."},
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false", "autocapitalize": "none"}),
        help_text="Optional: leave it empty for the day’s trending papers. One per line; "
        "start a line with “-” to leave out papers that mention it, e.g. -survey.",
    )
    intent = form_fields.intent_field(rows=3)
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

    trending = form_fields.trending_field("With your topics")
    send_hour = form_fields.hour_field()
    send_weekday = form_fields.weekday_field()
    time_zone = form_fields.zone_field()
    channel = forms.ChoiceField(
        label="Delivered by",
        choices=[
            (Subscriber.Channel.EMAIL.value, "Email"),
            (Subscriber.Channel.FEED.value, "Feed only, no email"),
        ],
        required=False,
        widget=forms.RadioSelect,
        error_messages={"invalid_choice": "Choose email or the feed only."},
    )

    @classmethod
    def for_subscriber(cls, subscriber: Subscriber) -> DigestSettingsForm:
        return cls(
            initial={
                "topics": "\n".join(subscriber.topics),
                "intent": subscriber.intent,
                "frequency": subscriber.frequency,
                "max_papers": subscriber.max_papers,
                "trending": subscriber.trending,
                "send_hour": subscriber.send_hour,
                "send_weekday": subscriber.send_weekday,
                "time_zone": subscriber.time_zone,
                "channel": subscriber.channel,
            }
        )

    def choices(self) -> dict[str, Any]:
        """The mix, schedule and delivery fields that were given: a field left out keeps
        its saved value, and so does the mix of a subscriber without topics (the page hides
        it then; it means nothing until they add one)."""
        names = ["send_hour", "send_weekday", "time_zone", "channel"]
        if self.cleaned_data.get("topics"):
            names.append("trending")
        return {
            n: self.cleaned_data[n] for n in names if self.cleaned_data.get(n) not in ("", None)
        }

    def clean_time_zone(self) -> str:
        return form_fields.zone_from_text(self.cleaned_data.get("time_zone") or "")

    def clean_topics(self) -> list[str]:
        try:
            return topics_from_text(self.cleaned_data["topics"])
        except InvalidTopic as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_intent(self) -> str:
        return form_fields.intent_cleaned(self)

    def first_error(self) -> str:
        """One line for the preview, which sits away from the fields."""
        for errors in self.errors.values():
            return str(errors[0])
        return ""


class ManageLinkForm(forms.Form):
    """ "Email me a link to my settings": the address only."""

    email = email_field()

    def clean_email(self) -> str:
        return address_from(self.cleaned_data["email"])
