from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from digest.daily import default_sources
from digest.management.dates import iso_date
from digest.scraping import scrape_papers
from digest.sources.client import SourceError


class Command(BaseCommand):
    help = "Fetch the papers of one date and store them (upserting on the arXiv id)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", type=iso_date, required=True, help="YYYY-MM-DD")
        parser.add_argument(
            "--source", action="append", choices=["hf", "arxiv"], help="Repeatable; default hf."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = scrape_papers(
                date=options["date"], sources=options["source"] or default_sources()
            )
        except SourceError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"{result.fetched} papers fetched for {options['date']}: "
            f"{result.created} new, {result.updated} updated, {result.skipped} skipped, "
            f"{result.refreshed} earlier papers refreshed."
        )
