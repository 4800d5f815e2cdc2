from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from digest.sending import stale_sends_recover


class Command(BaseCommand):
    help = (
        "Settle deliveries a crash left in 'sending': they are marked failed, not resent, "
        "since the message may have gone out (requeue them from the admin after checking)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"{stale_sends_recover()} interrupted deliveries marked failed.")
