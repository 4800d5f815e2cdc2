"""A property-based fuzz of every endpoint a stranger can reach.

Hypothesis generates requests: paths with forged, truncated, re-purposed or garbage
tokens, form bodies of any field with hostile text (NUL, control characters, very long
values, wrong types), JSON of any shape, odd content types. Two properties hold for every
one of them:

- no 500: malformed input gets a 4xx (or the page again, with its error);
- no change a stranger is not entitled to: the two subscribers whose links the fuzzer does
  not hold (owner, bystander) are exactly as they were. Signing up new addresses is
  anyone's right; changing an existing subscriber takes a valid link of theirs.

At least FUZZ_INPUTS requests are sent (settings, below); with PAPERBOY_FUZZ_RANDOM=1 the
inputs are new each run, otherwise they are the same each run (CI stays repeatable).
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from subscriptions.models import Subscriber
from subscriptions.tokens import Purpose, make_token
from tests.own_cache import clear_test_cache

FUZZ_INPUTS = 1000

# What a subscriber row is: every field a request could change.
WATCHED = [
    f.attname
    for f in Subscriber._meta.concrete_fields
    if f.attname not in {"id"}  # the primary key cannot change
]

FORM_FIELDS = [
    "email",
    "topics",
    "topics",
    "intent",
    "max_papers",
    "frequency",
    "send_hour",
    "send_weekday",
    "time_zone",
    "trending",
    "channel",
    "stamp",
    "website",
    "action",
    "confirm",
    "paper",
    "value",
    "csrfmiddlewaretoken",
    "List-Unsubscribe",
]

# Text a hostile client sends: anything encodable (surrogates cannot travel as UTF-8),
# with the nasty ones made likely.
hostile_text = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=60),
    st.sampled_from(
        [
            "",
            "\x00",
            "a\x00b",
            "\r\nBcc: victim@example.org",
            "<script>alert(1)</script>",
            "' OR 1=1 --",
            "../../etc/passwd",
            "%00",
            "9" * 40,
            "-1",
            "1e309",
            "NaN",
            "Europe/../../etc",
            "x" * 5000,
            "owner@example.org",
            "bystander@example.org",
            "OWNER@EXAMPLE.ORG ",
        ]
    ),
)
form = st.dictionaries(st.sampled_from(FORM_FIELDS), hostile_text, max_size=8)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(hostile_text, children, max_size=4)
    ),
    max_leaves=12,
)


def mutate(token: str, how: int, noise: str) -> str:
    """A valid token made invalid in one of the ways links break or get forged."""
    cut = len(token) // 2
    mutations = [
        token[:cut],  # cut short by a mail client
        token[:-1] + ("A" if token[-1] != "A" else "B"),  # one character off
        token + noise,
        noise,
        token.swapcase(),
        token[::-1],
    ]
    broken = mutations[how % len(mutations)] or "x"
    return broken if broken != token else token + "x"  # empty noise, or a palindrome


def snapshot(*readers: Subscriber) -> list[dict[str, Any]]:
    return [Subscriber.objects.filter(pk=reader.pk).values(*WATCHED).get() for reader in readers]


@pytest.fixture
def people(make_subscriber: Callable[..., Subscriber]) -> dict[str, Subscriber]:
    owner = make_subscriber("owner@example.org", ["diffusion"])
    bystander = make_subscriber("bystander@example.org", ["speech"])
    fuzzer = make_subscriber("fuzzer@example.org", ["RLHF"])  # the fuzzer's own links
    return {"owner": owner, "bystander": bystander, "fuzzer": fuzzer}


# Where each purpose's link is the key that opens a subscriber's data.
ROUTE_OF_PURPOSE: dict[Purpose, set[str]] = {
    Purpose.MANAGE: {"manage"},
    Purpose.CONFIRM: {"confirm"},
    Purpose.UNSUBSCRIBE: {"unsubscribe"},
    Purpose.FEEDBACK: {"feedback"},
    Purpose.DIGEST: {"digest"},
    Purpose.ACTION: {"your-data"},
}

ROUTES = [
    "/",
    "/signup/resend",
    "/signup/check-inbox",
    "/confirm/{token}",
    "/confirm/{token}/resend",
    "/manage/{token}",
    "/manage/{token}/preview",
    "/manage/{token}/pause",
    "/manage/{token}/resume",
    "/manage/{token}/export",
    "/manage/{token}/feed/new",
    "/manage/{token}/delete",
    "/manage/{token}/feedback/undo",
    "/manage-link",
    "/your-data/{token}",
    "/unsubscribe/{token}",
    "/feedback/{token}",
    "/digest/{token}",
    "/feed/{token}.atom",
    "/feed/{token}.json",
    "/papers/{noise}/",
    "/anymail/{noise}/tracking/",
    "/anymail/postmark/tracking/",  # the configured ESP's webhook (see the test)
    "/anymail/postmark/tracking/",
    "/anymail/mailgun/tracking/",
    "/anymail/amazon_ses/tracking/",
    "/anymail/brevo/tracking/",
]
WEBHOOK_SECRET = "paperboy-esp:fuzz-secret-not-real"

request_parts = st.fixed_dictionaries(
    {
        "route": st.sampled_from(ROUTES),
        "method": st.sampled_from(["GET", "POST", "POST", "PUT", "HEAD"]),
        "purpose": st.sampled_from(list(Purpose)),
        "whose": st.sampled_from(["owner", "bystander"]),
        "mutation": st.integers(0, 11),
        "noise": hostile_text,
        "body": st.one_of(
            form.map(lambda data: ("form", data)),
            json_value.map(lambda value: ("json", value)),
            st.binary(max_size=200).map(lambda raw: ("raw", raw)),
        ),
        "content_type": st.sampled_from(
            [
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=BoUnDaRy",
                "application/json",
                "text/plain",
                "application/x-www-form-urlencoded; charset=utf-16",
                "application/x-www-form-urlencoded; charset=nope",
                "",
            ]
        ),
        "forwarded_for": st.one_of(st.none(), hostile_text),
        # The webhook's basic auth: none, the right one (the body must still be sound),
        # or a near miss.
        "credentials": st.sampled_from(
            [None, WEBHOOK_SECRET, WEBHOOK_SECRET + "x", "paperboy-esp:", ":"]
        ),
    }
)


def link_for(parts: dict[str, Any], people: dict[str, Subscriber]) -> str:
    """The token the fuzzer puts in the path: never a working link of the owner's or the
    bystander's for that route (that link would entitle it to change them).

    0-5: one of theirs, broken (`mutate`); 6-8: one of theirs, valid but made for another
    purpose than the route's; 9-11: the fuzzer's own valid link (it may change itself).
    """
    reader, purpose, how = people[parts["whose"]], parts["purpose"], parts["mutation"]
    own_route = parts["route"].split("/")[1] in ROUTE_OF_PURPOSE[purpose]
    if how >= 9:
        return make_token(people["fuzzer"], purpose)
    if how >= 6 and not own_route:
        return make_token(reader, purpose)
    return mutate(make_token(reader, purpose), how, parts["noise"])


def send(client: Client, parts: dict[str, Any], token: str) -> int:
    path = parts["route"].format(token=token, noise=parts["noise"].replace("/", "") or "x")
    kind, body = parts["body"]
    if kind == "form":
        data: bytes = "&".join(f"{k}={v}" for k, v in body.items()).encode("utf-8")
    elif kind == "json":
        data = json.dumps(body).encode("utf-8")
    else:
        data = body
    extra: dict[str, Any] = {"REMOTE_ADDR": "198.51.100.77"}
    if parts["credentials"] is not None:
        encoded = base64.b64encode(parts["credentials"].encode()).decode()
        extra["HTTP_AUTHORIZATION"] = f"Basic {encoded}"
    if parts["forwarded_for"] is not None:
        extra["HTTP_X_FORWARDED_FOR"] = (
            parts["forwarded_for"].encode("utf-8", "replace")[:200].decode("latin-1")
        )
    method = parts["method"]
    if method == "GET":
        response = client.get(path, **extra)
    else:
        response = client.generic(
            method, path, data, content_type=parts["content_type"] or "", **extra
        )
    return response.status_code


@pytest.mark.django_db
def test_no_input_gets_a_500_or_changes_a_reader_it_may_not(
    people: dict[str, Subscriber], settings: Any
) -> None:
    settings.PAPERBOY_ESP = "postmark"  # mounts its webhook (subscriptions.webhooks)
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "pm-token", "WEBHOOK_SECRET": WEBHOOK_SECRET}
    client = Client(raise_request_exception=False)
    watched = (people["owner"], people["bystander"])
    at_start = snapshot(*watched)
    sent: list[tuple[str, int]] = []
    started = time.monotonic()

    @hypothesis_settings(
        max_examples=FUZZ_INPUTS,
        deadline=None,
        database=None,
        derandomize=os.environ.get("PAPERBOY_FUZZ_RANDOM") != "1",
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(parts=request_parts)
    def one_request(parts: dict[str, Any]) -> None:
        clear_test_cache()  # rate limits would turn most later requests into quick 429s
        token = link_for(parts, people)
        before = snapshot(*watched)
        status = send(client, parts, token)
        sent.append((parts["route"], status))
        assert status < 500, f"{parts['method']} {parts['route']} -> {status}: {parts}"
        after = snapshot(*watched)
        changed = [
            (i, k, was[k], now[k])
            for i, (was, now) in enumerate(zip(before, after, strict=True))
            for k in was
            if was[k] != now[k]
        ]
        assert not changed, f"{changed} changed by {parts}"

    one_request()
    took = time.monotonic() - started
    print(f"fuzz: {len(sent)} requests in {took:.1f}s, statuses {sorted({s for _, s in sent})}")
    assert len(sent) >= FUZZ_INPUTS
    assert snapshot(*watched) == at_start
