"""Storage details matching relies on: the vectors' layout migration, and `__in_ints`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from digest.lookups import ints
from digest.matching.embedding import DIMENSIONS, from_bytes, to_bytes
from subscriptions.models import Subscriber

BEFORE = [("subscriptions", "0004_subscriber_embedding"), ("digest", "0004_paper_embedding")]
AFTER = [("subscriptions", "0005_intent_apart"), ("digest", "0005_covered_indexes")]


def rows(n: int, seed: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng(seed).random((n, DIMENSIONS), dtype=np.float32)


@pytest.mark.django_db(transaction=True)
def test_vectors_stored_before_are_split_into_the_sentence_s_and_the_phrases() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps.get_model("subscriptions", "Subscriber")
    with_sentence, without = rows(3, 1), rows(2, 2)
    old.objects.create(
        email="a@example.org",
        interests=["diffusion", "video"],  # the field's name then
        intent="Diffusion models for video.",
        embedding=to_bytes(with_sentence),  # the sentence's row led the phrases' rows
        embedding_key="k1",
    )
    old.objects.create(
        email="b@example.org", interests=["speech", "tts"], embedding=to_bytes(without)
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    executor = MigrationExecutor(connection)  # and on to today's models, to read them
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    a = Subscriber.objects.get(email="a@example.org")
    assert np.array_equal(from_bytes(a.intent_vector), with_sentence[:1])
    assert np.array_equal(from_bytes(a.embedding), with_sentence[1:])
    assert a.intent_words == "diffus model for video"
    assert a.embedding_key == "k1"  # still the same texts: nothing to embed again
    b = Subscriber.objects.get(email="b@example.org")
    assert np.array_equal(from_bytes(b.embedding), without)  # no sentence: untouched
    assert not b.intent_vector and b.intent_words == ""


@pytest.mark.django_db(transaction=True)
def test_topics_were_interests_and_stored_reasons_are_renamed_in_place() -> None:
    before = [
        ("subscriptions", "0006_schedule_trending_feed"),
        ("digest", "0010_delivery_write_costs"),
    ]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    state = executor.loader.project_state(before).apps
    subscriber = state.get_model("subscriptions", "Subscriber").objects.create(
        email="a@example.org", interests=["diffusion"]
    )
    edition = state.get_model("digest", "Edition").objects.create(date="2026-03-10")
    delivery = state.get_model("digest", "Delivery").objects.create(
        edition=edition, subscriber=subscriber, interests=["diffusion"]
    )
    paper = state.get_model("digest", "Paper").objects.create(
        arxiv_id="2603.00001", title="t", batch_date="2026-03-10"
    )
    # A snippet that quotes the old key must keep it: only keys are renamed.
    quoted = 'a config of {"interest": 1}'
    reasons = [{"interest": "diffusion", "field": "title", "before": quoted}]
    state.get_model("digest", "DeliveryPaper").objects.create(
        delivery=delivery, paper=paper, rank=1, score=1.0, reasons=reasons
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    from digest.models import Delivery, DeliveryPaper

    assert Subscriber.objects.get(email="a@example.org").topics == ["diffusion"]
    assert Delivery.objects.get().topics == ["diffusion"]
    assert DeliveryPaper.objects.get().reasons == [
        {"topic": "diffusion", "field": "title", "before": quoted}
    ]


@pytest.mark.django_db
def test_in_ints_filters_by_an_array_of_ids(make_subscriber: Callable[..., Subscriber]) -> None:
    a = make_subscriber("a@example.org", ["diffusion"])
    b = make_subscriber("b@example.org", ["speech"])
    make_subscriber("c@example.org", ["video"])
    found = Subscriber.objects.filter(id__in_ints=ints([a.id, b.id]))
    assert sorted(found.values_list("email", flat=True)) == ["a@example.org", "b@example.org"]
    assert not Subscriber.objects.filter(id__in_ints=ints([])).exists()
    with pytest.raises(TypeError, match="ints"):
        list(Subscriber.objects.filter(id__in_ints=[a.id]))


@pytest.mark.django_db(transaction=True)
def test_a_bulk_write_of_items_refreshes_the_planner_statistics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without statistics PostgreSQL read the whole item table for each sender's batch;
    matching refreshes them once its rows have doubled the table since the last count."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's planner statistics")
    from digest import statistics
    from digest.models import DeliveryPaper

    monkeypatch.setattr(statistics, "STATISTICS_AFTER_ROWS", 50)

    def write(first: int, n: int) -> None:
        DeliveryPaper.objects.bulk_create(
            DeliveryPaper(delivery_id=i, paper_id=1, rank=1, score=1.0, reasons=[])
            for i in range(first, first + n)
        )
        with connection.cursor() as cursor:
            # A backend reports its writes to the statistics when next idle, at most once
            # a second unless asked (PostgreSQL 15).
            cursor.execute("SELECT pg_stat_force_next_flush()")

    def refreshed(expected: bool) -> bool:
        deadline = time.monotonic() + (10 if expected else 1.5)
        while time.monotonic() < deadline:
            if statistics.statistics_refresh(DeliveryPaper):
                return True
            time.sleep(0.1)
        return False

    def counted() -> float:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples FROM pg_class WHERE oid = %s::regclass",
                [DeliveryPaper._meta.db_table],
            )
            return float(cursor.fetchone()[0])

    with connection.cursor() as cursor:  # counted afresh: earlier tests wrote here too
        cursor.execute(f"ANALYZE {DeliveryPaper._meta.db_table}")
    write(1, 40)  # fewer than the threshold: left to autovacuum
    assert not refreshed(False)
    write(1000, 200)  # never counted, and past the threshold
    assert refreshed(True)
    assert counted() == 240
    write(5000, 100)  # less than the 240 counted: not stale yet
    assert not refreshed(False)
    write(6000, 200)  # 300 new rows against 240 counted
    assert refreshed(True)
    assert counted() == 540
