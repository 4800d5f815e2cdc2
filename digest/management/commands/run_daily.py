"""The whole daily cycle in this process: scrape → plan → match → send, with progress."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from tqdm import tqdm

from digest.daily import (
    HourlyRun,
    Listeners,
    Prepared,
    edition_counts,
    edition_prepare,
    edition_send,
    latest_listing_date,
    next_due_time,
    run_prepare,
)
from digest.mail import Outcome, SendResult
from digest.management.dates import iso_date
from digest.models import Delivery
from digest.scraping import ScrapeResult
from digest.sources.client import SourceError


def date_or_latest(value: str) -> dt.date | str:
    return "latest" if value == "latest" else iso_date(value)


class Command(BaseCommand):
    help = (
        "Do whatever is owed now: scrape the last listing days, then plan, match and send "
        "every digest whose subscriber's hour has come. --date replays one listing day for "
        "every subscriber instead (the demo)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--date",
            type=date_or_latest,
            help="Replay this listing day (YYYY-MM-DD, or 'latest': the latest day with "
            "papers) for every active subscriber, whatever their hour.",
        )
        parser.add_argument(
            "--source",
            action="append",
            choices=["hf", "arxiv"],
            help="Source to scrape (repeatable; default: hf, plus arxiv if enabled).",
        )
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self._run(options)
        except SourceError as exc:
            raise CommandError(str(exc)) from None

    def _run(self, options: dict[str, Any]) -> None:
        date: dt.date | str | None = options["date"]
        if date == "latest":
            self.stdout.write("Looking for the latest day with papers on Hugging Face…")
            date = latest_listing_date()
            if date is None:
                raise CommandError(
                    f"No papers on {settings.PAPERBOY_HF_URL} in the last week; "
                    "pass a date: --date YYYY-MM-DD (make demo DATE=YYYY-MM-DD)."
                )
        if date is None:
            now = timezone.now()
            heading = f"Paperboy run of {now:%A %d %B %Y, %H:%M} UTC: the digests owed now"
        else:
            assert isinstance(date, dt.date)
            heading = f"Paperboy edition of {date:%A %d %B %Y} (a replay for every subscriber)"
        self.stdout.write(self.style.MIGRATE_HEADING(heading))
        self.stdout.write(f"  Scraping papers from {settings.PAPERBOY_HF_URL} …")

        def scraped(scrape: ScrapeResult) -> None:
            self.stdout.write(f"  {scrape.summary()}")
            for where, why in scrape.errors.items():
                self.stderr.write(f"  {where} could not be read: {why}")

        show = {"disable": options["no_progress"], "file": self.stderr._out}
        # Each paper is read once (sentence vectors, about a third of a second each).
        reading = _Progress("  Reading papers", "paper", **show)
        matching = _Progress("  Matching", "subscriber", **show)
        listeners = Listeners(scraped=scraped, embedding=reading, matching=matching)
        prepared: HourlyRun | Prepared
        if date is None:
            prepared = run_prepare(sources=options["source"], listeners=listeners)
        else:
            prepared = edition_prepare(date=date, sources=options["source"], listeners=listeners)
        reading.close()
        matching.close()
        if prepared.scrape_error:
            self.stderr.write(
                self.style.WARNING(
                    f"  No papers could be fetched ({prepared.scrape_error}); the digests "
                    "owed now are made from the papers already stored."
                )
            )
        fetched = prepared.scrape.fetched if prepared.scrape is not None else 0
        if prepared.edition is None:
            upcoming = next_due_time()
            when = f"; the next is due {upcoming:%a %d %b %H:%M} UTC" if upcoming else ""
            self.stdout.write(f"  No digest is owed now{when}.")
            return

        bar: tqdm[Any] | None = None

        def start(total: int) -> None:
            nonlocal bar
            bar = tqdm(
                total=total,
                desc="  Sending",
                unit="digest",
                disable=options["no_progress"] or total == 0,
                file=self.stderr._out,
            )

        def progress(_: SendResult) -> None:
            if bar is not None:
                bar.update(1)

        batch = edition_send(edition=prepared.edition, on_start=start, on_progress=progress)
        if bar is not None:
            bar.close()
        self._summary(prepared.edition, fetched, prepared.matching.skipped, batch.count)

    def _summary(
        self,
        edition: Any,
        fetched: int,
        skipped_now: dict[str, int],
        count: Any,
    ) -> None:
        counts = edition_counts(edition)
        outbox = settings.EMAIL_BACKEND == "digest.mail.outbox.OutboxBackend"
        verb = "written" if outbox else "sent"
        self.stdout.write(self.style.MIGRATE_HEADING("Summary"))
        rows = [
            ("papers fetched", str(fetched)),
            ("subscribers due", str(sum(counts.values()))),
            (f"digests {verb} now", str(count(Outcome.SENT))),
        ]
        earlier = counts[Delivery.Status.SENT] - count(Outcome.SENT)
        if earlier:
            rows.append((f"already {verb}", f"{earlier} (by an earlier run; not resent)"))
        if counts[Delivery.Status.FEED]:
            rows.append(("to feeds only", str(counts[Delivery.Status.FEED])))
        reasons = self._skip_reasons(edition)
        rows.append(("skipped", f"{counts[Delivery.Status.SKIPPED]}{reasons}"))
        if count(Outcome.RETRY) or counts[Delivery.Status.QUEUED]:
            rows.append(("to retry", f"{counts[Delivery.Status.QUEUED]} (run send_digests later)"))
        if counts[Delivery.Status.FAILED]:
            rows.append(("failed", f"{counts[Delivery.Status.FAILED]} (see the admin)"))
        if outbox:
            rows.append(("outbox", str(settings.PAPERBOY_OUTBOX_DIR)))
        upcoming = next_due_time()
        if upcoming is not None:
            rows.append(("next digest due", f"{upcoming:%a %d %b %H:%M} UTC"))
        width = max(len(label) for label, _ in rows)
        for label, value in rows:
            self.stdout.write(f"  {label:<{width}}  {value}")
        if counts[Delivery.Status.FAILED]:
            raise CommandError(f"{counts[Delivery.Status.FAILED]} digests failed to send.")

    @staticmethod
    def _skip_reasons(edition: Any) -> str:
        by_reason: dict[str, int] = {}
        for reason in edition.deliveries.filter(status=Delivery.Status.SKIPPED).values_list(
            "skip_reason", flat=True
        ):
            by_reason[reason] = by_reason.get(reason, 0) + 1
        if not by_reason:
            return ""
        return " (" + "; ".join(f"{n}: {reason}" for reason, n in by_reason.items()) + ")"


class _Progress:
    """A progress bar made at the first report of (done, total), if one ever comes."""

    def __init__(self, desc: str, unit: str, *, disable: bool, file: Any) -> None:
        self.options = {"desc": desc, "unit": unit, "disable": disable, "file": file}
        self.bar: tqdm[Any] | None = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = tqdm(total=total, **self.options)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
