"""Replay captured Hugging Face days through the digest's own matcher for a set of profiles."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from digest.evaluation import (
    Day,
    EvaluationInputError,
    evaluate,
    load_days,
    load_profiles,
    write_predictions,
)


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number >= 1")
    return number


class Command(BaseCommand):
    help = (
        "Run the daily matcher over profiles and captured Hugging Face days and write each "
        "profile's digest of each day as JSON. Nothing is kept in the database."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--profiles",
            type=Path,
            required=True,
            help='JSON list of {"id", "keywords", "intent"}.',
        )
        parser.add_argument(
            "--days",
            type=Path,
            required=True,
            help="Folder of YYYY-MM-DD.json files in the /api/daily_papers item format.",
        )
        parser.add_argument(
            "--out",
            type=Path,
            required=True,
            help='Where to write {"PROFILE_ID": {"YYYY-MM-DD": ["paper id", …]}}.',
        )
        parser.add_argument(
            "--cap", type=positive_int, default=10, help="Most papers in a digest (default 10)."
        )
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        out: Path = options["out"]
        if out.is_dir():
            raise CommandError(f"{out}: is a folder; --out takes a file name.")
        try:
            profiles = load_profiles(options["profiles"])
            days = load_days(options["days"])
        except EvaluationInputError as exc:
            raise CommandError(str(exc)) from None
        for day in days:
            if len(day.records) < day.items:
                self.stderr.write(
                    f"{day.date}: {day.items - len(day.records)} of {day.items} items "
                    "could not be read and were left out (see the log)."
                )

        with tqdm(
            total=len(days),
            desc="Matching",
            unit="day",
            disable=options["no_progress"],
            file=self.stderr._out,
        ) as bar:

            def progress(day: Day) -> None:
                bar.set_postfix_str(day.date.isoformat())
                bar.update(1)

            result = evaluate(profiles, days, cap=options["cap"], on_day=progress)

        try:
            write_predictions(result.predictions, out)
        except OSError as exc:
            raise CommandError(f"{out}: cannot write it ({exc})") from None
        self.stdout.write(
            f"{result.profiles} profiles × {result.days} days, {result.papers} papers: "
            f"{result.digests} digests, {result.sent} papers sent → {out}"
        )
