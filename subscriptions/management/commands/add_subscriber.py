from __future__ import annotations

import argparse
import calendar
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email

from subscriptions.models import DEFAULT_PAPERS, MAX_PAPERS, MIN_PAPERS, Subscriber
from subscriptions.schedule import is_timezone
from subscriptions.services import subscriber_add
from subscriptions.topics import InvalidTopic

DAY_NAMES = {
    **{name.lower(): i for i, name in enumerate(calendar.day_abbr, start=1)},
    **{name.lower(): i for i, name in enumerate(calendar.day_name, start=1)},
}


def hour(value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) <= 23:
        raise argparse.ArgumentTypeError(f"{value!r} is not an hour from 0 to 23")
    return int(value)


def weekday(value: str) -> int:
    day = DAY_NAMES.get(value.strip().lower()) or (int(value) if value.isdigit() else 0)
    if not 1 <= day <= 7:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a weekday (1–7 for Monday–Sunday, or a day's name)"
        )
    return day


def time_zone(value: str) -> str:
    if not is_timezone(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an IANA time zone (like Europe/Berlin or America/New_York)"
        )
    return value


class Command(BaseCommand):
    help = (
        "Add or update a subscriber, confirmed (an operator's add; no confirmation email). "
        "Without topics, the subscriber gets the day's trending papers."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument(
            "topics",
            nargs="*",
            help='Keyword phrases; "-word" excludes (put "--" before the topics to pass one). '
            "None: the trending papers, most upvoted first.",
        )
        parser.add_argument("--frequency", choices=Subscriber.Frequency.values, default="daily")
        parser.add_argument(
            "--max-papers",
            type=int,
            default=DEFAULT_PAPERS,
            choices=range(MIN_PAPERS, MAX_PAPERS + 1),
            metavar=f"{MIN_PAPERS}-{MAX_PAPERS}",
        )
        parser.add_argument("--timezone", type=time_zone, help="IANA zone of --hour")
        parser.add_argument("--hour", type=hour, help="local hour the digest arrives, 0–23")
        parser.add_argument("--weekday", type=weekday, help="weekly subscribers: 1–7 or a day name")
        parser.add_argument(
            "--trending",
            choices=Subscriber.Trending.values,
            help="with topics: none (only them), few (plus the top few trending), only",
        )
        parser.add_argument(
            "--feed-only", action="store_true", help="no email: the private feed only"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        email = options["email"].strip()
        try:
            validate_email(email)
        except ValidationError:
            raise CommandError(f"{options['email']!r} is not an email address.") from None
        chosen = {
            "time_zone": options["timezone"],
            "send_hour": options["hour"],
            "send_weekday": options["weekday"],
            "trending": options["trending"],
            "channel": Subscriber.Channel.FEED if options["feed_only"] else None,
        }
        try:
            subscriber, created = subscriber_add(
                email=email,
                topics=options["topics"],
                frequency=options["frequency"],
                max_papers=options["max_papers"],
                **{k: v for k, v in chosen.items() if v is not None},
            )
        except InvalidTopic as exc:
            raise CommandError(str(exc)) from None
        verb = "Added" if created else "Updated"
        if not subscriber.has_topics:
            what = "no topics: the trending papers, most upvoted first"
        elif subscriber.trending == Subscriber.Trending.FEW:
            extra = settings.PAPERBOY_TRENDING_EXTRA
            what = f"{', '.join(subscriber.topics)}, plus the top {extra} trending"
        elif subscriber.trending == Subscriber.Trending.ONLY:
            what = f"the trending papers only (topics kept: {', '.join(subscriber.topics)})"
        else:
            what = ", ".join(subscriber.topics)
        schedule = subscriber.schedule
        day = (
            f"{calendar.day_name[schedule.weekday - 1]}s" if schedule.frequency == "weekly" else ""
        )
        when = f"{day or 'daily'} at {schedule.hour:02d}:00 {schedule.timezone}"
        how = "; feed only, no email" if subscriber.channel == Subscriber.Channel.FEED else ""
        self.stdout.write(f"{verb} {subscriber.email}: {what}; {when}{how}")
