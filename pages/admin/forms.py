"""The admin's forms for subscribers: the change form and the CSV upload."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from subscriptions.form_fields import HOUR_CHOICES, WEEKDAY_CHOICES
from subscriptions.models import MAX_PAPERS, MIN_PAPERS, Subscriber
from subscriptions.schedule import timezone_names
from subscriptions.topics import InvalidTopic, clean_topic_list

from ..csv_import import MAX_IMPORT_BYTES, ImportMode


class SubscriberForm(forms.ModelForm[Subscriber]):
    """The change form checks what the public forms check: tidy topics (none is a trending
    subscriber), 1–20 papers, an hour, a weekday and a time zone that exist."""

    send_hour = forms.TypedChoiceField(label="Hour", choices=HOUR_CHOICES, coerce=int)
    send_weekday = forms.TypedChoiceField(
        label="Weekday", choices=WEEKDAY_CHOICES, coerce=int, help_text="Weekly subscribers only."
    )
    time_zone = forms.ChoiceField(
        choices=lambda: [(name, name) for name in timezone_names()],
        help_text="The hour is in this zone.",
    )

    class Meta:
        model = Subscriber
        fields = (
            "email",
            "status",
            "topics",
            "intent",
            "trending",
            "frequency",
            "max_papers",
            "channel",
            "send_hour",
            "send_weekday",
            "time_zone",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Without topics the subscriber gets the trending list whatever the mix says.
        self.fields["trending"].help_text = "Subscribers without topics get trending only."

    def clean_topics(self) -> list[str]:
        raw = self.cleaned_data["topics"]
        if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
            raise ValidationError('Write the topics as a JSON list, e.g. ["diffusion", "-survey"].')
        try:
            return clean_topic_list(raw)
        except InvalidTopic as exc:
            raise ValidationError(str(exc)) from None

    def clean_max_papers(self) -> int:
        value: int = self.cleaned_data["max_papers"]
        if not MIN_PAPERS <= value <= MAX_PAPERS:
            raise ValidationError(f"Choose a number from {MIN_PAPERS} to {MAX_PAPERS}.")
        return value


class ImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="Columns: email, topics (separated by “;”; empty for the day’s trending "
        "papers), frequency (daily or weekly, optional), max_papers "
        f"({MIN_PAPERS}–{MAX_PAPERS}, optional). A header "
        "row is optional. UTF-8, "
        f"at most {MAX_IMPORT_BYTES // (1024 * 1024)} MB.",
    )
    mode = forms.ChoiceField(
        label="The addresses are",
        choices=[
            (ImportMode.SEND_CONFIRMATION.value, "Sent a confirmation email (double opt-in)"),
            (ImportMode.PRE_CONFIRMED.value, "Pre-confirmed: I vouch that they asked for it"),
        ],
        initial=ImportMode.SEND_CONFIRMATION.value,
        widget=forms.RadioSelect,
    )

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        # Checked before reading: an upload larger than this never reaches memory.
        if upload.size > MAX_IMPORT_BYTES:
            raise ValidationError(
                f"The file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB; "
                "split it in parts."
            )
        return upload
