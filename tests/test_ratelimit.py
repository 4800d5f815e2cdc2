"""Rate limits on the signup form: the counter itself, what a person over it sees, and
who counts as one client behind a reverse proxy.

Limits are per client IP only. An address is never refused: strangers typing it can only
use up the ten minutes between two emails to it (see tests/test_abuse.py for its owner's
side of the story)."""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any
from unittest import mock

import pytest
import time_machine
from django.core.cache import cache
from django.test import Client

from pages.signup import RESEND_PER_IP, SIGNUP_PER_IP
from subscriptions import ratelimit
from subscriptions.forms import form_stamp
from subscriptions.models import Subscriber
from subscriptions.ratelimit import Limit, RateLimited, check, client_key, cooldown, hit
from tests.own_cache import clear_test_cache
from tests.smtp_server import Mailbox

# The Redis the run was given (CI sets REDIS_URL); keys under a prefix of the test's own.
REDIS_TEST_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
TEN_MINUTES = Limit("test", count=3, seconds=600)
WINDOW_START = 1_773_100_200.0  # 2026-03-09 23:50 UTC, where a ten-minute window starts


# --- The counter ------------------------------------------------------------------------


def test_hits_are_counted_per_window() -> None:
    assert [hit(limit=TEN_MINUTES, key="k", now=WINDOW_START + s) for s in (0, 10, 599)] == [
        1,
        2,
        3,
    ]
    # The next window starts again from one.
    assert hit(limit=TEN_MINUTES, key="k", now=WINDOW_START + 600) == 1
    assert hit(limit=TEN_MINUTES, key="k", now=WINDOW_START + 1199) == 2


def test_check_raises_over_the_limit_until_the_window_ends() -> None:
    for _ in range(3):
        check(limit=TEN_MINUTES, key="k", now=WINDOW_START + 100)

    with pytest.raises(RateLimited) as over:
        check(limit=TEN_MINUTES, key="k", now=WINDOW_START + 100)
    assert over.value.limit == TEN_MINUTES
    assert over.value.retry_after == 500
    # Trying again and again does not help, nor reopen the window early.
    with pytest.raises(RateLimited):
        check(limit=TEN_MINUTES, key="k", now=WINDOW_START + 599)
    check(limit=TEN_MINUTES, key="k", now=WINDOW_START + 600)


def test_keys_and_limits_are_counted_apart() -> None:
    other = Limit("other", count=3, seconds=600)
    for _ in range(3):
        check(limit=TEN_MINUTES, key="alice", now=WINDOW_START)
    check(limit=TEN_MINUTES, key="bob", now=WINDOW_START)
    check(limit=other, key="alice", now=WINDOW_START)
    with pytest.raises(RateLimited):
        check(limit=TEN_MINUTES, key="alice", now=WINDOW_START)


def test_an_evicted_counter_starts_again() -> None:
    with mock.patch.object(ratelimit.cache, "incr", side_effect=ValueError("gone")):
        assert hit(limit=TEN_MINUTES, key="k", now=WINDOW_START) == 1


@pytest.fixture
def locmem_cache(settings: Any) -> None:
    """These tests look inside, or move the clock of, Django's in-memory cache."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


@pytest.mark.usefixtures("locmem_cache")
def test_cache_keys_hold_no_address() -> None:
    hit(limit=TEN_MINUTES, key="alice@example.org")
    keys = list(cache._cache.keys())  # type: ignore[attr-defined]  # LocMem's own dict
    assert keys and not any("alice" in key for key in keys)


@pytest.mark.usefixtures("locmem_cache")
def test_a_cooldown_lets_one_through_per_period() -> None:
    assert cooldown(name="notice", key="alice@example.org", seconds=600)
    assert not cooldown(name="notice", key="alice@example.org", seconds=600)
    assert cooldown(name="notice", key="bob@example.org", seconds=600)
    # LocMem expires by the wall clock: eleven minutes later, one more.
    later = time.time() + 660
    with mock.patch("django.core.cache.backends.locmem.time.time", return_value=later):
        assert cooldown(name="notice", key="alice@example.org", seconds=600)


@pytest.mark.parametrize(
    ("remote_addr", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),  # the same household
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("", "unknown"),
        ("not an ip", "not an ip"),
    ],
)
def test_clients_are_counted_by_address_or_ipv6_network(remote_addr: str, key: str) -> None:
    assert client_key(remote_addr) == key


def test_the_counter_is_atomic_on_redis(settings: Any) -> None:
    """Twenty threads at once on the production cache: every hit counted exactly once."""
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {REDIS_TEST_URL}: {exc}")
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_TEST_URL,
            "KEY_PREFIX": f"test-{uuid.uuid4().hex}",
        }
    }
    limit = Limit("race", count=10, seconds=600)
    counts: list[int] = []
    start = threading.Barrier(20)

    def worker() -> None:
        start.wait()
        counts.append(hit(limit=limit, key="203.0.113.7", now=WINDOW_START))

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(counts) == list(range(1, 21))
    assert cooldown(name="race", key="x", seconds=5)
    assert not cooldown(name="race", key="x", seconds=5)
    clear_test_cache()


# --- Over the limit on the site ---------------------------------------------------------


def signup_data(email: str) -> dict[str, str]:
    return {
        "email": email,
        "topics": "diffusion",
        "frequency": "daily",
        "max_papers": "10",
        "started": form_stamp(now=time.time() - 60),
    }


@pytest.mark.django_db(transaction=True)
# Just after a window starts: counted in fixed ten-minute windows, six posts straddling a
# window's end would be counted in two.
@time_machine.travel(WINDOW_START + 1, tick=True)
def test_five_signups_per_ip_then_a_friendly_429(client: Client, smtp_server: Mailbox) -> None:
    assert SIGNUP_PER_IP.count == 5 and SIGNUP_PER_IP.seconds == 600
    for n in range(5):
        response = client.post("/", signup_data(f"reader{n}@example.org"), REMOTE_ADDR="192.0.2.1")
        assert response.status_code == 302

    response = client.post("/", signup_data("reader5@example.org"), REMOTE_ADDR="192.0.2.1")

    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 600
    page = response.content.decode()
    assert "Let’s take a short break" in page
    assert "a lot of requests from your network" in page
    assert "Please try again in" in page
    assert not Subscriber.objects.filter(email="reader5@example.org").exists()
    assert len(smtp_server.messages) == 5
    # Someone else, elsewhere, is not held up.
    other = client.post("/", signup_data("reader5@example.org"), REMOTE_ADDR="192.0.2.2")
    assert other.status_code == 302


@pytest.mark.django_db(transaction=True)
def test_an_address_is_never_refused_only_mailed_less_often(
    client: Client, smtp_server: Mailbox
) -> None:
    """Ten requests for dave's address from ten networks: ten "check your inbox" pages,
    one email. The address is not locked: "send it again" is not refused either."""
    for n in range(10):
        response = client.post("/", signup_data(" DAVE@example.org"), REMOTE_ADDR=f"192.0.2.{n}")
        assert response.status_code == 302
        assert response["Location"] == "/signup/check-inbox"
    assert client.post("/signup/resend", REMOTE_ADDR="198.51.100.2").status_code == 302
    assert [r.rcpt_tos for r in smtp_server.messages] == [["dave@example.org"]]


@pytest.mark.django_db(transaction=True)
def test_the_answer_says_nothing_about_the_address(client: Client, make_subscriber: Any) -> None:
    """Whatever the address's state, every try gets the same answer."""
    make_subscriber("active@example.org", ["a"])
    make_subscriber("bounced@example.org", ["a"], status=Subscriber.Status.SUPPRESSED)
    for n, email in enumerate(["new@example.org", "active@example.org", "bounced@example.org"]):
        codes = [
            client.post("/", signup_data(email), REMOTE_ADDR=f"10.{n}.0.{i}").status_code
            for i in range(6)
        ]
        assert codes == [302] * 6, email


@pytest.mark.django_db(transaction=True)
def test_send_it_again_is_limited_per_network(client: Client, smtp_server: Mailbox) -> None:
    assert RESEND_PER_IP.count == 5 and RESEND_PER_IP.seconds == 600
    client.post("/", signup_data("dave@example.org"), REMOTE_ADDR="192.0.2.1")
    codes = [client.post("/signup/resend", REMOTE_ADDR="192.0.2.1").status_code for _ in range(6)]
    assert codes == [302] * 5 + [429]
    # Another network is not held up.
    assert client.post("/signup/resend", REMOTE_ADDR="192.0.2.2").status_code == 302


@pytest.mark.django_db(transaction=True)
def test_bots_and_bad_forms_do_not_use_up_a_persons_tries(client: Client) -> None:
    for _ in range(10):
        client.post(
            "/", {**signup_data("dave@example.org"), "website": "x"}, REMOTE_ADDR="192.0.2.1"
        )
        client.post("/", signup_data("not an address"), REMOTE_ADDR="192.0.2.1")

    response = client.post("/", signup_data("dave@example.org"), REMOTE_ADDR="192.0.2.1")

    assert response.status_code == 302
    assert Subscriber.objects.filter(email="dave@example.org").exists()


# --- Behind a reverse proxy -------------------------------------------------------------

PROXY = "10.0.0.2"


def signups_from(client: Client, *, remote: str, forwarded: str, start: int) -> list[int]:
    """Six signups (one over the limit) of new addresses, as `remote` hands them on."""
    return [
        client.post(
            "/",
            signup_data(f"reader{start + n}@example.org"),
            REMOTE_ADDR=remote,
            HTTP_X_FORWARDED_FOR=forwarded,
        ).status_code
        for n in range(SIGNUP_PER_IP.count + 1)
    ]


@pytest.mark.django_db(transaction=True)
def test_two_clients_behind_a_trusted_proxy_are_counted_apart(
    client: Client, settings: Any, smtp_server: Mailbox
) -> None:
    settings.PAPERBOY_TRUSTED_PROXIES = ["10.0.0.0/24"]
    # What nginx sends on: whatever the client claimed, then the address it saw.
    alice = signups_from(client, remote=PROXY, forwarded="198.51.100.7", start=0)
    bob = signups_from(client, remote=PROXY, forwarded="203.0.113.9, 198.51.100.8", start=10)

    assert alice == [302] * SIGNUP_PER_IP.count + [429]
    assert bob == [302] * SIGNUP_PER_IP.count + [429]  # his own bucket, not alice's


@pytest.mark.django_db(transaction=True)
def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(
    client: Client, settings: Any, smtp_server: Mailbox
) -> None:
    settings.PAPERBOY_TRUSTED_PROXIES = ["10.0.0.0/24"]
    # A client that is not our proxy writes a new X-Forwarded-For on every request, hoping
    # for a fresh bucket each time: it is counted by its own address.
    codes = [
        client.post(
            "/",
            signup_data(f"reader{n}@example.org"),
            REMOTE_ADDR="192.0.2.50",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{n}",
        ).status_code
        for n in range(SIGNUP_PER_IP.count + 1)
    ]
    assert codes == [302] * SIGNUP_PER_IP.count + [429]

    # With no trusted proxy at all, the header is ignored even from the proxy's address.
    settings.PAPERBOY_TRUSTED_PROXIES = []
    clear_test_cache()
    assert signups_from(client, remote=PROXY, forwarded="198.51.100.1", start=20)[-1] == 429
