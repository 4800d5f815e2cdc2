"""eval_matching: the daily matcher replayed over profiles and captured days, leaving no trace."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from digest.matching import edition_match
from digest.models import Delivery, DeliveryPaper, Edition, Paper
from digest.planning import edition_plan
from subscriptions.models import Subscriber
from tests.conftest import FIXTURES
from tests.hf_wire import hf_item

pytestmark = pytest.mark.django_db

EVAL = FIXTURES / "eval"
DEV_SET = Path(__file__).resolve().parent.parent.parent / "shared" / "matching-dev"

# What the fixtures obviously call for: the survey is excluded by "-survey", the kernels
# and tokenizer papers are nobody's, and the RLHF paper listed again on the 10th is not
# sent twice. The speech subscriber's quiet day is there, as an empty digest.
EXPECTED = {
    "video-gen": {"2026-03-09": ["2603.08001"], "2026-03-10": ["2603.09001", "2603.09002"]},
    "rlhf": {"2026-03-09": ["2603.08011"], "2026-03-10": ["2603.09003"]},
    "speech": {"2026-03-09": ["2603.08005"], "2026-03-10": []},
}


def run(*args: str, **options: Any) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("eval_matching", *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def run_eval(
    out: Path, *extra: str, profiles: Path = EVAL / "profiles.json", days: Path = EVAL / "days"
) -> tuple[str, str]:
    return run("--profiles", str(profiles), "--days", str(days), "--out", str(out), *extra)


def counts() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Paper, Subscriber, Edition, Delivery, DeliveryPaper)
    }


def test_writes_every_profiles_digest_of_every_day_and_keeps_nothing(tmp_path: Path) -> None:
    out = tmp_path / "results" / "predictions.json"
    stdout, stderr = run_eval(out)

    predictions = json.loads(out.read_text())
    assert predictions == EXPECTED
    assert list(predictions) == ["video-gen", "rlhf", "speech"]  # the profiles' order
    assert stdout.strip() == (f"3 profiles × 2 days, 9 papers: 5 digests, 6 papers sent → {out}")
    assert "Matching" in stderr and "2/2" in stderr  # progress, per day
    assert set(counts().values()) == {0}


def test_cap_is_each_digests_max_papers(tmp_path: Path) -> None:
    out = tmp_path / "predictions.json"
    run_eval(out, "--cap", "1", "--no-progress")
    predictions = json.loads(out.read_text())
    assert predictions["video-gen"]["2026-03-10"] == ["2603.09001"]
    assert all(len(papers) <= 1 for days in predictions.values() for papers in days.values())


@pytest.mark.django_db(transaction=True)
def test_leaves_existing_subscribers_papers_and_editions_as_they_were(
    tmp_path: Path,
    make_subscriber: Callable[..., Subscriber],
    make_paper: Callable[..., Paper],
) -> None:
    """A database with a subscriber and an edition on one of the replayed dates: the run commits
    nothing, and the papers stored for that date are not among the evaluation's candidates."""
    alice = make_subscriber("alice@example.org", ["video generation", "-survey"])
    make_subscriber("bob@example.org", ["RLHF", "reward model"])
    make_paper(
        "Video Generation for Everyone",
        "A video generation model anyone can run.",
        arxiv_id="2603.07777",
        batch_date=dt.date(2026, 3, 10),
        upvotes=500,
    )
    known = make_paper(
        "Camera Control (old title)", arxiv_id="2603.09001", batch_date=dt.date(2026, 3, 2)
    )
    edition = edition_plan(date=dt.date(2026, 3, 10))
    edition_match(edition=edition)
    delivery = Delivery.objects.get(subscriber=alice)
    assert list(delivery.items.values_list("paper__arxiv_id", flat=True)) == ["2603.07777"]

    def snapshot() -> Any:
        return (
            counts(),
            list(Delivery.objects.values().order_by("id")),
            list(DeliveryPaper.objects.values().order_by("id")),
            list(Edition.objects.values().order_by("id")),
            list(Subscriber.objects.values().order_by("id")),
            list(Paper.objects.values("arxiv_id", "title", "batch_date").order_by("id")),
        )

    before = snapshot()
    out = tmp_path / "predictions.json"
    run_eval(out)
    assert snapshot() == before
    known.refresh_from_db()
    assert (known.title, known.batch_date) == ("Camera Control (old title)", dt.date(2026, 3, 2))
    assert json.loads(out.read_text()) == EXPECTED


def test_reads_both_day_formats_through_the_scrapers_parser(tmp_path: Path) -> None:
    """Items go through parse_daily_papers: a broken one is left out and said so; a paper
    HF dated another day counts for the day of the file it was captured in."""
    days = tmp_path / "days"
    days.mkdir()
    date = dt.date(2026, 3, 12)
    item = hf_item(
        "2603.12001v2",
        "Reward Model Distillation for RLHF",
        "We distil a reward model for RLHF into a smaller one.",
        date=date - dt.timedelta(days=1),
        ai_keywords=["reward model", "RLHF"],
    )
    broken = {"paper": {"title": "No id at all"}}
    (days / "2026-03-12.json").write_text(json.dumps({"dailyPapers": [broken, item]}))
    out = tmp_path / "predictions.json"
    stdout, stderr = run_eval(out, "--no-progress", days=days)
    assert "2026-03-12: 1 of 2 items could not be read" in stderr
    assert json.loads(out.read_text())["rlhf"] == {"2026-03-12": ["2603.12001"]}
    assert "3 profiles × 1 days, 1 papers: 1 digests, 1 papers sent" in stdout


def _copy_fixtures(tmp_path: Path) -> tuple[Path, Path]:
    profiles, days = tmp_path / "profiles.json", tmp_path / "days"
    shutil.copy(EVAL / "profiles.json", profiles)
    shutil.copytree(EVAL / "days", days)
    return profiles, days


def _profiles(path: Path, edit: Callable[[list[dict[str, Any]]], object]) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _empty(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink()


BROKEN: dict[str, tuple[Callable[[Path, Path], object], str]] = {
    "no profiles file": (lambda p, d: p.unlink(), r"profiles\.json: no such file"),
    "profiles not JSON": (lambda p, d: p.write_text("[{"), r"profiles\.json: not valid JSON"),
    "profiles not a list": (
        lambda p, d: p.write_text('{"id": "x"}'),
        "expected a non-empty JSON list of profiles",
    ),
    "profile without id": (
        lambda p, d: _profiles(p, lambda data: data[1].pop("id")),
        r'profile #2 has no "id"',
    ),
    "profile without keywords": (
        lambda p, d: _profiles(p, lambda data: data[2].pop("keywords")),
        r"""profile 'speech' has no "keywords\"""",
    ),
    "keywords not strings": (
        lambda p, d: _profiles(p, lambda data: data[0].update(keywords="video generation")),
        r"""profile 'video-gen' has no "keywords\"""",
    ),
    "duplicate ids": (
        lambda p, d: _profiles(p, lambda data: data[2].update(id="rlhf")),
        "profile 'rlhf' appears twice",
    ),
    "no days folder": (lambda p, d: shutil.rmtree(d), r"days: no such folder"),
    "empty days folder": (
        lambda p, d: _empty(d),
        r"no day files \(YYYY-MM-DD\.json\)",
    ),
    "day file misnamed": (
        lambda p, d: (d / "2026-03-10.json").rename(d / "march-10.json"),
        r"march-10\.json: a day file must be named YYYY-MM-DD\.json",
    ),
    "day file not .json": (
        lambda p, d: (d / "2026-03-10.json").rename(d / "2026-03-10.txt"),
        r"2026-03-10\.txt: a day file must be named YYYY-MM-DD\.json",
    ),
    "day file not a date": (
        lambda p, d: (d / "2026-03-10.json").rename(d / "2026-02-30.json"),
        "2026-02-30 is not a date",
    ),
    "day not JSON": (
        lambda p, d: (d / "2026-03-10.json").write_text("<html>"),
        r"2026-03-10\.json: not valid JSON",
    ),
    "day of another shape": (
        lambda p, d: (d / "2026-03-09.json").write_text('{"papers": []}'),
        r'2026-03-09\.json: expected a JSON array .* "dailyPapers" array',
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_refuses_unusable_input_before_touching_anything(tmp_path: Path, case: str) -> None:
    profiles, days = _copy_fixtures(tmp_path)
    breaks, message = BROKEN[case]
    breaks(profiles, days)
    out = tmp_path / "predictions.json"
    with pytest.raises(CommandError, match=message):
        run_eval(out, profiles=profiles, days=days)
    assert not out.exists()
    assert set(counts().values()) == {0}


def test_refuses_a_cap_below_one_and_an_output_folder(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="--cap: '0' is not a whole number >= 1"):
        run_eval(tmp_path / "p.json", "--cap", "0")
    with pytest.raises(CommandError, match="is a folder"):
        run_eval(tmp_path)


@pytest.mark.skipif(not DEV_SET.is_dir(), reason=f"no development set at {DEV_SET}")
# It embeds 233 papers and matches 15 profiles over 6 days: minutes, more on busy cores.
@pytest.mark.timeout(900)
def test_runs_on_the_development_set_and_scores(tmp_path: Path) -> None:
    out = tmp_path / "predictions.json"
    stdout, _ = run_eval(
        out, "--no-progress", profiles=DEV_SET / "topics.json", days=DEV_SET / "days"
    )
    assert stdout.startswith("15 profiles × 6 days, 233 papers:")
    predictions = json.loads(out.read_text())
    assert len(predictions) == 15
    assert all(len(days) == 6 for days in predictions.values())

    scored = subprocess.run(
        ["python3", str(DEV_SET / "score.py"), str(out), "--cap", "10"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    summary = scored.stdout.strip().splitlines()[-1]
    figures = re.match(r"precision=(\d\.\d+) .*recall10=(\d\.\d+) ", summary)
    assert figures is not None, scored.stdout
    precision, recall = float(figures.group(1)), float(figures.group(2))
    # The goal, which matching meets at 0.81 precision and 0.71 recall (see the README):
    # one paper more or less moves precision by about 0.01 on this set.
    assert precision >= 0.80, summary
    assert recall >= 0.70, summary
