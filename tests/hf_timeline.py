"""A Hugging Face on loopback that lists each paper from the moment it was submitted.

Real Daily Papers grow all day: a paper appears at its `submittedOnDailyAt` (35–45% of a
day's papers come after 07:00 UTC), sometimes on an earlier day's list, and its upvotes
grow for days. `HFTimeline` answers `GET /api/daily_papers?date=D&p=N&limit=L` with the
papers of day D listed by the current time (the test's clock, moved by time-machine,
which the server's thread sees too), upvotes grown in proportion to their age, sorted by
upvotes as HF does.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from tests.hf_wire import hf_item
from tests.loopback_http import LoopbackServer, RecordedRequest, Reply

SAMPLES = Path(__file__).resolve().parent.parent.parent / "shared" / "samples"
UPVOTES_GROW_HOURS = 36.0  # a paper reaches its final upvotes after about a day and a half


def listed_at(item: dict[str, Any]) -> dt.datetime:
    raw = item["paper"]["submittedOnDailyAt"].replace("Z", "+00:00")
    return dt.datetime.fromisoformat(raw)


class HFTimeline:
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for item in items:
            self.by_day[item["paper"]["submittedOnDailyAt"][:10]].append(item)

    @property
    def items(self) -> list[dict[str, Any]]:
        return [item for day in self.by_day.values() for item in day]

    def add(self, item: dict[str, Any], *, day: dt.date) -> None:
        """List `item` under `day` (an earlier day's list, for a late addition)."""
        self.by_day[day.isoformat()].append(item)

    def install(self, server: LoopbackServer) -> None:
        server.route("/api/daily_papers", handler=self.answer)

    def visible(self, day: str, now: dt.datetime) -> list[dict[str, Any]]:
        shown = []
        for item in self.by_day.get(day, []):
            age_h = (now - listed_at(item)).total_seconds() / 3600
            if age_h < 0:
                continue
            grown = copy.deepcopy(item)
            final = item["paper"]["upvotes"]
            grown["paper"]["upvotes"] = max(1, round(final * min(1.0, age_h / UPVOTES_GROW_HOURS)))
            shown.append(grown)
        return sorted(shown, key=lambda i: -i["paper"]["upvotes"])

    def answer(self, request: RecordedRequest) -> Reply:
        now = dt.datetime.now(dt.UTC)
        day = request.query.get("date", "")
        page, limit = int(request.query.get("p", "0")), int(request.query.get("limit", "100"))
        shown = self.visible(day, now)
        return Reply.json(shown[page * limit : (page + 1) * limit])


# Distinct subjects, one per synthetic paper: a subscriber follows one paper by its subject.
SUBJECTS = [
    ("protein folding", "structure prediction for proteins from sequence"),
    ("speech recognition", "transcribing spoken audio into text"),
    ("weather forecasting", "predicting global weather with learned models"),
    ("code generation", "writing programs from natural-language requests"),
    ("robot grasping", "picking up unknown objects with a robot hand"),
    ("music generation", "composing music audio from text prompts"),
    ("medical image segmentation", "outlining organs in CT and MRI scans"),
    ("machine translation", "translating text between low-resource languages"),
    ("graph neural networks", "message passing over molecular graphs"),
    ("autonomous driving", "planning trajectories for self-driving cars"),
    ("mathematical reasoning", "solving olympiad problems step by step"),
    ("recommender systems", "ranking items for users from their history"),
    ("satellite imagery", "mapping land use from satellite images"),
    ("sign language", "recognising sign language from video"),
    ("table question answering", "answering questions over spreadsheets"),
    ("chip design", "placing circuit blocks on a chip floorplan"),
    ("drug discovery", "generating candidate molecules that bind a target"),
    ("legal documents", "summarising court rulings and contracts"),
    ("3D reconstruction", "rebuilding 3D scenes from a few photographs"),
    ("time series anomaly detection", "finding faults in sensor readings"),
]
# Hours (UTC) at which a synthetic day's papers are listed: half before 07:00, half after.
LISTING_HOURS = [0.5, 2.2, 4.1, 6.4, 7.3, 9.8, 13.5, 21.9]


def synthetic_days(first: dt.date, days: int) -> list[dict[str, Any]]:
    """Weekdays from `first` on, each with len(LISTING_HOURS) papers on distinct subjects
    (cycling through SUBJECTS), listed through the day."""
    items: list[dict[str, Any]] = []
    day, n = first, 0
    while day < first + dt.timedelta(days=days):
        if day.isoweekday() <= 5:
            for hour in LISTING_HOURS:
                subject, what = SUBJECTS[n % len(SUBJECTS)]
                arxiv_id = f"2604.{n + 1:05d}"
                item = hf_item(
                    arxiv_id,
                    f"{subject.capitalize()}: a study numbered {n + 1}",
                    f"This paper is about {subject}: {what}. We report results on "
                    f"standard benchmarks of {subject}.",
                    date=day,
                    upvotes=10 + (n * 37) % 200,
                    ai_keywords=[subject],
                )
                at = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) + dt.timedelta(hours=hour)
                item["paper"]["submittedOnDailyAt"] = at.isoformat().replace("+00:00", "Z")
                items.append(item)
                n += 1
        day += dt.timedelta(days=1)
    return items


def sample_days() -> list[dict[str, Any]]:
    """The real captured days of ../shared/samples (each paper at its real listing time)."""
    items: list[dict[str, Any]] = []
    for path in sorted(SAMPLES.glob("hf_daily_papers_props_*.json")):
        items.extend(json.loads(path.read_text())["dailyPapers"])
    return items
