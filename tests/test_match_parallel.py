"""Matching outside a transaction: chunks scored in forked processes, written by a thread.

These tests commit for real (a transactional database), as a daily run does; elsewhere
matching runs inside the test's transaction, where everything stays on one connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import digest.matching.batching
from digest.matching import SKIP_NOTHING_MATCHED, edition_match, subscriber_preview
from digest.matching.batching import scoring_processes
from digest.matching.candidates import EditionPapers
from digest.matching.chunks import ReasonsEncoder, score_chunk, write_chunk
from digest.matching.embedding import text_key
from digest.matching.keywords import Topics
from digest.matching.vectors import subscriber_texts, subscribers_embed
from digest.models import Delivery, DeliveryPaper, Paper
from digest.planning import edition_plan
from subscriptions.models import Subscriber
from tests.conftest import EDITION_DATE

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def papers(make_paper: Callable[..., Paper]) -> list[Paper]:
    return [
        make_paper(
            "Consistent Video Generation with Diffusion Transformers",
            "We generate minute-long videos with a diffusion transformer.",
        ),
        make_paper(
            "Reward Model Ensembles Make RLHF Robust",
            "Reinforcement learning from human feedback with several reward models.",
        ),
        make_paper("Streaming Text-to-Speech", "A small text-to-speech model that streams."),
    ]


@pytest.fixture
def readers(
    make_subscriber: Callable[..., Subscriber], alice: Subscriber, bob: Subscriber
) -> list[Subscriber]:
    dora = make_subscriber("dora@example.org", ["text-to-speech"])
    erin = make_subscriber("erin@example.org", ["protein folding"])
    return [alice, bob, dora, erin]


def chosen() -> dict[int, list[int]]:
    rows = DeliveryPaper.objects.order_by("delivery__subscriber_id", "rank")
    found: dict[int, list[int]] = {}
    for subscriber_id, paper_id in rows.values_list("delivery__subscriber_id", "paper_id"):
        found.setdefault(subscriber_id, []).append(paper_id)
    return found


def test_forked_scorers_choose_what_each_reader_alone_would_get(
    settings: Any, monkeypatch: pytest.MonkeyPatch, papers: list[Paper], readers: list[Subscriber]
) -> None:
    settings.PAPERBOY_MATCH_PROCESSES = 2
    monkeypatch.setattr(digest.matching.batching, "MATCH_CHUNK", 1)  # a chunk per subscriber
    monkeypatch.setattr(digest.matching.batching, "MATCH_CHUNK_MIN", 1)
    assert scoring_processes() == 2  # no transaction open: forking is allowed
    # Three subscribers' vectors are made; the fourth edits her topics after: forked scorers
    # do not embed, so she is matched afterwards in this process.
    subscribers_embed(readers)
    dora = readers[2]
    dora.topics = ["text-to-speech", "speech synthesis"]
    dora.save(update_fields=["topics"])

    expected = {
        s.id: [item.paper.id for item in subscriber_preview(subscriber=s, date=EDITION_DATE)[0]]
        for s in readers
    }
    edition = edition_plan(date=EDITION_DATE)
    summary = edition_match(edition=edition)

    assert chosen() == {k: v for k, v in expected.items() if v}
    dora.refresh_from_db()
    intent, phrases = subscriber_texts(dora)  # embedded by the matching's own process
    assert dora.embedding_key == text_key(intent, *phrases)
    assert summary.matched == 3 and dict(summary.skipped) == {SKIP_NOTHING_MATCHED: 1}
    statuses = dict(Delivery.objects.values_list("subscriber__email", "status"))
    assert statuses["erin@example.org"] == Delivery.Status.SKIPPED
    assert Delivery.objects.filter(matched_at__isnull=True).count() == 0
    # A second run finds nothing left to match, and writes nothing twice.
    again = edition_match(edition=edition)
    assert (again.matched, again.skipped_total) == (0, 0)
    assert DeliveryPaper.objects.count() == sum(len(v) for v in expected.values())


def test_a_chunk_writes_only_the_deliveries_still_unmatched(
    papers: list[Paper], readers: list[Subscriber]
) -> None:
    """Another matcher got to one delivery between scoring and writing: it is left alone."""
    edition = edition_plan(date=EDITION_DATE)
    queued = Delivery.objects.filter(edition=edition, matched_at__isnull=True)
    ids = list(queued.order_by("id").values_list("id", flat=True))
    scored = score_chunk(ids, queued, EditionPapers(edition), ReasonsEncoder())
    taken = Delivery.objects.get(edition=edition, subscriber=readers[0])
    Delivery.objects.filter(id=taken.id).update(status=Delivery.Status.SENDING)

    written = write_chunk(scored)

    assert written.matched == 2  # bob and dora; alice's was taken, erin's skipped
    assert not DeliveryPaper.objects.filter(delivery=taken).exists()
    assert DeliveryPaper.objects.filter(delivery__subscriber=readers[1]).exists()
    # Nothing is left half-done: every delivery written has its papers and its time.
    left = Delivery.objects.filter(edition=edition, matched_at__isnull=True)
    assert list(left.values_list("id", flat=True)) == [taken.id]


def test_phrases_worked_out_in_forked_processes_serve_the_next_run(
    settings: Any, monkeypatch: pytest.MonkeyPatch, papers: list[Paper], readers: list[Subscriber]
) -> None:
    """The day's hourly runs share the papers' work: what the forked scorers worked out
    comes back to the run's own scorer, which the next run (forked from it) starts from,
    even after the hour's scrape moved every paper's upvotes."""
    settings.PAPERBOY_MATCH_PROCESSES = 2
    monkeypatch.setattr(digest.matching.batching, "MATCH_CHUNK", 1)
    monkeypatch.setattr(digest.matching.batching, "MATCH_CHUNK_MIN", 1)
    subscribers_embed(readers)
    edition = edition_plan(date=EDITION_DATE)
    scorer = EditionPapers(edition).scorer(Subscriber.Frequency.DAILY)
    assert scorer.phrases.count == 0

    edition_match(edition=edition)

    typed = {phrase for reader in readers for phrase in Topics.parse(reader.topics).texts}
    assert scorer.phrases.knows_all(sorted(typed))  # learned from the children, not scored here
    assert scorer.phrases.count == len(typed)
    Paper.objects.filter(pk=papers[0].pk).update(upvotes=papers[0].upvotes + 40)
    again = EditionPapers(edition).scorer(Subscriber.Frequency.DAILY)
    assert again is scorer and scorer.phrases.knows_all(sorted(typed))
    assert scorer.upvotes[scorer.paper_ids.index(papers[0].pk)] == papers[0].upvotes + 40
    # A changed text is another scorer: its phrases' signals would be out of date.
    Paper.objects.filter(pk=papers[0].pk).update(abstract="A different abstract.")
    assert EditionPapers(edition).scorer(Subscriber.Frequency.DAILY) is not scorer
