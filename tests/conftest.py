"""Shared fixtures: the people of our stories (alice, bob, carol) and papers to read."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from digest.models import Paper
from subscriptions.models import Subscriber
from tests.own_cache import KEY_PREFIX, clear_test_cache

pytest_plugins = ["tests.smtp_server", "tests.loopback_http"]

SAMPLES = Path(__file__).resolve().parent.parent.parent / "shared" / "samples"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

EDITION_DATE = dt.date(2026, 3, 10)


@pytest.fixture(autouse=True)
def _isolated_outbox(settings: Any, tmp_path: Path) -> None:
    """Every test writes email files to its own folder, never the developer's var/."""
    settings.PAPERBOY_OUTBOX_DIR = tmp_path / "outbox"
    settings.EMAIL_FILE_PATH = str(tmp_path / "outbox")
    settings.SITE_URL = "https://paperboy.example"
    settings.PAPERBOY_HF_URL = "https://huggingface.co"
    # The admin tests log in a user; a slow password hash buys nothing in tests.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True, scope="session")
def _own_cache_keys() -> Iterator[None]:
    """The run's cache keys get a prefix of their own (see tests/own_cache.py)."""
    from django.conf import settings
    from django.test import override_settings

    default = {**settings.CACHES["default"], "KEY_PREFIX": KEY_PREFIX}
    with override_settings(CACHES={**settings.CACHES, "default": default}):
        yield
        clear_test_cache()


@pytest.fixture(autouse=True)
def _fresh_cache(_own_cache_keys: None) -> None:
    """Each test starts with an empty cache: rate limits and cooldowns of an address one
    test used must not hold back the next test's email to the same address."""
    clear_test_cache()


@pytest.fixture(autouse=True)
def _fresh_scorers() -> Iterator[None]:
    """Each test's papers are its own: a scorer kept from another test's must not serve."""
    from digest.matching import forget_scorers

    forget_scorers()
    yield
    forget_scorers()


@pytest.fixture(autouse=True)
def _tasks_run_inline() -> Iterator[None]:
    """Queued tasks run in the test's process, even when REDIS_URL configures a broker (CI).

    The test about the queue itself starts a real worker with an app of its own.
    """
    from paperboy.celery import app

    saved = (app.conf.task_always_eager, app.conf.task_eager_propagates)
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved


@pytest.fixture
def make_subscriber(db: None) -> Callable[..., Subscriber]:
    def make(email: str, topics: list[str], **fields: Any) -> Subscriber:
        fields.setdefault("status", Subscriber.Status.ACTIVE)
        return Subscriber.objects.create(email=email, topics=topics, **fields)

    return make


@pytest.fixture
def alice(make_subscriber: Callable[..., Subscriber]) -> Subscriber:
    return make_subscriber("alice@example.org", ["diffusion", "video generation", "-survey"])


@pytest.fixture
def bob(make_subscriber: Callable[..., Subscriber]) -> Subscriber:
    return make_subscriber("bob@example.org", ["reinforcement learning", "RLHF", "reward model"])


@pytest.fixture
def carol(make_subscriber: Callable[..., Subscriber]) -> Subscriber:
    return make_subscriber("carol@example.org", ["speech recognition", "text-to-speech"])


@pytest.fixture
def make_paper(db: None) -> Callable[..., Paper]:
    counter = iter(range(1, 10_000))

    def make(title: str, abstract: str = "", **fields: Any) -> Paper:
        fields.setdefault("arxiv_id", f"2603.{next(counter):05d}")
        fields.setdefault("batch_date", EDITION_DATE)
        fields.setdefault("authors", ["Ada Lovelace", "Alan Turing"])
        fields.setdefault("published_at", dt.datetime(2026, 3, 9, 17, 0, tzinfo=dt.UTC))
        return Paper.objects.create(title=title, abstract=abstract, **fields)

    return make
