from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from subscriptions.suppression import email_events_process_pending


class Command(BaseCommand):
    help = (
        "Apply stored ESP tracking events (bounces, complaints, unsubscribes) whose task "
        "never ran. Safe to repeat: each event is applied once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than-minutes",
            type=int,
            default=10,
            help="Leave younger events to their queued task (default 10).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        age = dt.timedelta(minutes=options["older_than_minutes"])
        done = email_events_process_pending(older_than=age)
        self.stdout.write(f"{done} pending email events applied.")
