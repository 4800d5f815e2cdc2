from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from digest.daily import edition_counts, edition_send
from digest.mail import Outcome
from digest.management.dates import iso_date
from digest.matching import edition_match, subscriber_preview
from digest.models import Edition
from digest.planning import edition_plan
from subscriptions.models import Subscriber


class Command(BaseCommand):
    help = (
        "Plan, match and send the digests of one date from papers already stored. "
        "Safe to run again: nothing is sent twice, and owed retries go out."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", type=iso_date, required=True, help="YYYY-MM-DD")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Show who would get which papers; write and send nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        date = options["date"]
        if options["dry_run"]:
            self._dry_run(date)
            return
        edition = edition_plan(date=date)
        edition_match(edition=edition)
        batch = edition_send(edition=edition)
        counts = edition_counts(edition)
        self.stdout.write(
            f"{date}: {batch.count(Outcome.SENT)} sent now, {counts['sent']} sent in all, "
            f"{counts['skipped']} skipped, {counts['queued']} to retry, {counts['failed']} failed."
        )

    def _dry_run(self, date: Any) -> None:
        from digest.planning import due_frequencies

        already = set(
            Edition.objects.filter(date=date).values_list("deliveries__subscriber_id", flat=True)
        )
        subscribers = Subscriber.objects.filter(
            status=Subscriber.Status.ACTIVE, frequency__in=due_frequencies(date)
        )
        for subscriber in subscribers:
            if subscriber.id in already:
                self.stdout.write(f"{subscriber.email}: already planned for {date}")
                continue
            items, reason = subscriber_preview(subscriber=subscriber, date=date)
            if reason:
                self.stdout.write(f"{subscriber.email}: skipped ({reason})")
                continue
            self.stdout.write(f"{subscriber.email}: {len(items)} papers")
            for item in items:
                why = ", ".join(sorted({r["topic"] for r in item.reasons}))
                self.stdout.write(f"  {item.rank:2d}. {item.paper.title[:90]}  [{why}]")
