"""Run the product's own matcher over captured Hugging Face days and a set of profiles.

The evaluation goes through the daily digest's code path: each profile becomes an active
daily subscriber, and the days are replayed in date order as the daily run would see
them: the day's papers stored by the scraper's upsert, then the edition planned and
matched with `edition_plan` / `edition_match`. A digest's papers are its delivery's items
in rank order. Everything happens in one transaction that is rolled back at the end
(including setting the database's own papers aside), so nothing persists and nobody
else's digest is touched.

Because the transaction is held for the whole run, point it at a development database
rather than a live one: while it runs it holds locks on the papers and editions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from subscriptions.models import Subscriber
from subscriptions.topics import InvalidTopic, clean_topic_list

from .matching import edition_match
from .models import Delivery, DeliveryPaper, Paper
from .planning import edition_plan
from .scraping import _upsert
from .sources.huggingface import parse_daily_papers
from .sources.records import PaperRecord

DAY_FILE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.json$")
EMAIL_DOMAIN = "eval.invalid"
INTENT_MAX_LENGTH = 300  # Subscriber.intent's max_length
CLEAR_CHUNK = 500

# {"PROFILE_ID": {"YYYY-MM-DD": ["arXiv id", … in digest order]}}
Predictions = dict[str, dict[str, list[str]]]


class EvaluationInputError(ValueError):
    """A profiles file or day file cannot be used; the message names the file and why."""


@dataclass(frozen=True)
class Profile:
    id: str
    keywords: list[str]
    intent: str = ""


@dataclass(frozen=True)
class Day:
    date: dt.date
    records: list[PaperRecord]
    items: int  # items in the file; more than len(records) when some could not be parsed


@dataclass
class EvaluationResult:
    predictions: Predictions
    profiles: int = 0
    days: int = 0
    papers: int = 0  # distinct papers loaded from the day files
    digests: int = 0  # (profile, day) digests with at least one paper
    sent: int = 0  # papers across those digests


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvaluationInputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvaluationInputError(f"{path}: cannot read it ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise EvaluationInputError(f"{path}: not valid JSON ({exc})") from None


def load_profiles(path: Path) -> list[Profile]:
    """Profiles from a JSON list of {"id", "keywords", "intent"}; keywords may hold "-x"."""
    data = _read_json(path)
    if not isinstance(data, list) or not data:
        raise EvaluationInputError(f"{path}: expected a non-empty JSON list of profiles")
    profiles: list[Profile] = []
    seen: set[str] = set()
    for n, entry in enumerate(data, start=1):
        where = f"{path}: profile #{n}"
        if not isinstance(entry, dict):
            raise EvaluationInputError(f"{where} is {type(entry).__name__}, expected an object")
        profile_id = entry.get("id")
        if not isinstance(profile_id, str) or not profile_id.strip():
            raise EvaluationInputError(f'{where} has no "id" (a non-empty string)')
        where = f"{path}: profile {profile_id!r}"
        if profile_id in seen:
            raise EvaluationInputError(f"{where} appears twice; ids must be unique")
        seen.add(profile_id)
        keywords = entry.get("keywords")
        if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
            raise EvaluationInputError(f'{where} has no "keywords" (a list of strings)')
        try:
            # The cleaning a subscriber's typed topics get (white space, repeats, limits).
            keywords = clean_topic_list(keywords)
        except InvalidTopic as exc:
            raise EvaluationInputError(f"{where}: {exc}") from None
        intent = entry.get("intent") or ""
        if not isinstance(intent, str):
            raise EvaluationInputError(f'{where}: "intent" must be a string')
        if len(intent) > INTENT_MAX_LENGTH:
            raise EvaluationInputError(
                f'{where}: "intent" is longer than {INTENT_MAX_LENGTH} characters'
            )
        profiles.append(Profile(id=profile_id, keywords=keywords, intent=intent.strip()))
    return profiles


def load_day(path: Path) -> Day:
    """One captured day: a JSON array of /api/daily_papers items, or {"dailyPapers": [...]}.

    Items go through the scraper's own parser; every paper's batch date is the file's date.
    """
    match = DAY_FILE.match(path.name)
    if match is None:
        raise EvaluationInputError(f"{path}: a day file must be named YYYY-MM-DD.json")
    try:
        date = dt.date.fromisoformat(match.group(1))
    except ValueError:
        raise EvaluationInputError(f"{path}: {match.group(1)} is not a date") from None
    data = _read_json(path)
    items = data.get("dailyPapers") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise EvaluationInputError(
            f"{path}: expected a JSON array of daily-paper items or an object with a "
            '"dailyPapers" array'
        )
    # The scraper dates a paper by HF's submittedOnDailyAt; a captured day is that day's
    # list, and the judgments are of that day, so the file's date wins.
    records = [
        dataclasses.replace(record, batch_date=date)
        for record in parse_daily_papers(items, date=date)
    ]
    return Day(date=date, records=records, items=len(items))


def load_days(folder: Path) -> list[Day]:
    """Every YYYY-MM-DD.json in `folder`, in date order (dot-files and folders ignored)."""
    if not folder.is_dir():
        raise EvaluationInputError(f"{folder}: no such folder")
    paths = sorted(p for p in folder.iterdir() if not p.name.startswith(".") and not p.is_dir())
    if not paths:
        raise EvaluationInputError(f"{folder}: no day files (YYYY-MM-DD.json) in it")
    days = [load_day(p) for p in paths]
    return sorted(days, key=lambda d: d.date)


def evaluate(
    profiles: Sequence[Profile],
    days: Sequence[Day],
    *,
    cap: int = 10,
    on_day: Callable[[Day], None] | None = None,
) -> EvaluationResult:
    """Each profile's digest of each day, as the daily run would choose it; nothing is kept.

    Days are replayed in date order, each one stored and then planned and matched, as the
    daily run does, starting from no stored papers; so a paper a profile was given on one
    day is not given again later, and the recent papers the matcher compares against are
    the earlier days' files. A skipped digest is an empty list. `on_day` is called after
    each day is matched.
    """
    if cap < 1:
        raise ValueError("cap must be at least 1")
    ordered = sorted(days, key=lambda d: d.date)
    result = EvaluationResult(
        predictions={p.id: {} for p in profiles},
        profiles=len(profiles),
        days=len(ordered),
        papers=len({r.arxiv_id for d in ordered for r in d.records}),
    )
    with transaction.atomic():
        _clear_papers()
        subscribers = _create_subscribers(profiles, cap=cap)
        ids = [s.id for s in subscribers]
        for day in ordered:
            _upsert(day.records)
            edition = edition_plan(date=day.date, subscriber_ids=ids)
            edition_match(edition=edition, subscriber_ids=ids)
            chosen = _chosen_papers(edition.id, ids)
            for profile, subscriber in zip(profiles, subscribers, strict=True):
                papers = chosen.get(subscriber.id, [])
                result.predictions[profile.id][day.date.isoformat()] = papers
                if papers:
                    result.digests += 1
                    result.sent += len(papers)
            if on_day is not None:
                on_day(day)
        transaction.set_rollback(True)
    return result


def _clear_papers() -> None:
    """Remove every stored paper (rolled back with the rest).

    The matcher's candidates are the day's papers, and recent papers also tell it what is
    usual; starting from none makes the predictions a function of the files alone, not of
    whatever this database happens to hold. Days given as files are history enough.
    """
    ids = list(Paper.objects.order_by("id").values_list("id", flat=True))
    for start in range(0, len(ids), CLEAR_CHUNK):
        Paper.objects.filter(id__in=ids[start : start + CLEAR_CHUNK]).delete()


def _create_subscribers(profiles: Sequence[Profile], *, cap: int) -> list[Subscriber]:
    now = timezone.now()
    return [
        Subscriber.objects.create(
            email=f"eval-{n}@{EMAIL_DOMAIN}",
            status=Subscriber.Status.ACTIVE,
            frequency=Subscriber.Frequency.DAILY,
            topics=profile.keywords,
            intent=profile.intent,
            max_papers=cap,
            confirmed_at=now,
        )
        for n, profile in enumerate(profiles, start=1)
    ]


def _chosen_papers(edition_id: int, subscriber_ids: Sequence[int]) -> dict[int, list[str]]:
    """Each subscriber's papers in this edition, in digest order (none when skipped)."""
    rows = (
        DeliveryPaper.objects.filter(
            delivery__edition_id=edition_id, delivery__subscriber_id__in=subscriber_ids
        )
        .exclude(delivery__status=Delivery.Status.SKIPPED)
        .order_by("delivery__subscriber_id", "rank")
        .values_list("delivery__subscriber_id", "paper__arxiv_id")
    )
    chosen: dict[int, list[str]] = {}
    for subscriber_id, arxiv_id in rows:
        chosen.setdefault(subscriber_id, []).append(arxiv_id)
    return chosen


def write_predictions(predictions: Predictions, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(predictions, indent=1) + "\n", encoding="utf-8")
