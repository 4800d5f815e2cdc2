from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from subscriptions.services import subscriber_add

# A few subscribers with different tastes, so one demo run shows matches, highlights and a
# subscriber whose topics found nothing that day.
DEMO_SUBSCRIBERS: list[tuple[str, list[str], int]] = [
    ("alice@example.com", ["diffusion", "video generation", "image editing", "-survey"], 8),
    ("bob@example.com", ["reinforcement learning", "reward model", "reasoning"], 6),
    ("carol@example.com", ["speech", "audio", "text-to-speech"], 5),
    ("dave@example.com", ["agents", "tool use", "benchmark"], 10),
    ("erin@example.com", ["protein folding", "drug discovery", "molecular dynamics"], 5),
]


class Command(BaseCommand):
    help = "Create the demo subscribers (idempotent: a second run changes nothing new)."

    def handle(self, *args: Any, **options: Any) -> None:
        created = 0
        for email, topics, max_papers in DEMO_SUBSCRIBERS:
            _, was_created = subscriber_add(
                email=email, topics=topics, max_papers=max_papers, confirmed=True
            )
            created += was_created
        self.stdout.write(
            f"Demo subscribers: {len(DEMO_SUBSCRIBERS)} ({created} new), "
            + ", ".join(email for email, _, _ in DEMO_SUBSCRIBERS)
        )
