from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from digest.mail import lapsed_release


class Command(BaseCommand):
    help = (
        "Free deliveries whose sender died mid-send (their lease ran out): they are queued "
        "again with the same Message-ID, or failed after PAPERBOY_MAX_SEND_ATTEMPTS claims. "
        "The beat does this every PAPERBOY_SEND_SWEEP_SECONDS; this is the same by hand."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        queued, failed = lapsed_release()
        self.stdout.write(
            f"{queued} interrupted deliveries queued again, {failed} given up (failed)."
        )
