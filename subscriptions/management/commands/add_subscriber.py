from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email

from subscriptions.models import Subscriber
from subscriptions.services import subscriber_add
from subscriptions.topics import InvalidInterest


class Command(BaseCommand):
    help = "Add or update a subscriber, confirmed (an operator's add; no confirmation email)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument(
            "topics",
            nargs="+",
            help='Keyword phrases; "-word" excludes (put "--" before the topics to pass one).',
        )
        parser.add_argument("--frequency", choices=Subscriber.Frequency.values, default="daily")
        parser.add_argument(
            "--max-papers", type=int, default=10, choices=range(1, 21), metavar="1-20"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        email = options["email"].strip()
        try:
            validate_email(email)
        except ValidationError:
            raise CommandError(f"{options['email']!r} is not an email address.") from None
        try:
            subscriber, created = subscriber_add(
                email=email,
                interests=options["topics"],
                frequency=options["frequency"],
                max_papers=options["max_papers"],
            )
        except InvalidInterest as exc:
            raise CommandError(str(exc)) from None
        verb = "Added" if created else "Updated"
        self.stdout.write(f"{verb} {subscriber.email}: {', '.join(subscriber.interests)}")
