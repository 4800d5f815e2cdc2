from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from digest.mail import render_digest_for
from digest.management.dates import iso_date
from digest.matching import subscriber_preview
from subscriptions.models import Subscriber, normalise_email


class Command(BaseCommand):
    help = (
        "Render the digest one subscriber would get on a date; write the HTML and print its path."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--date", type=iso_date, required=True, help="YYYY-MM-DD")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            subscriber = Subscriber.objects.get(email=normalise_email(options["email"]))
        except Subscriber.DoesNotExist:
            raise CommandError(f"No subscriber {options['email']!r}.") from None
        date = options["date"]
        items, reason = subscriber_preview(subscriber=subscriber, date=date)
        if reason:
            raise CommandError(f"{subscriber.email} would get no digest on {date}: {reason}.")
        rendered = render_digest_for(subscriber=subscriber, edition_date=date, items=items)
        folder = settings.VAR_DIR / "previews"
        folder.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", subscriber.email.replace("@", "_at_"))
        path = folder / f"{date.isoformat()}-{name}.html"
        path.write_text(rendered.html, encoding="utf-8")
        self.stdout.write(f"Subject: {rendered.subject}")
        self.stdout.write(str(path))
