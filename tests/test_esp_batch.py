"""ESP batch sending (digest/mail/esp_batch.py) over real HTTP to a loopback Mailgun or Brevo.

Subscribers whose digests differ only in their links share one API call. Each call is taken
apart here as the ESP would: its merge fields filled with each recipient's values by a
small substitution in the ESP's own syntax, and the result compared byte for byte with
that delivery's digest rendered the plain way, one by one (digest/mail/digest_email.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any
from urllib.parse import parse_qs

import pytest
import time_machine
from anymail.backends.mailgun import EmailBackend as MailgunBackend
from anymail.message import AnymailRecipientStatus
from django.core import mail

from digest.daily import edition_prepare, edition_send
from digest.mail import esp_batch, owed_send, render_digest
from digest.mail.message import stable_message_id
from digest.models import Delivery, Paper
from subscriptions.links import LinkMaker, unsubscribe_url
from subscriptions.models import Subscriber
from tests.conftest import EDITION_DATE
from tests.loopback_http import LoopbackServer, RecordedRequest, Reply

pytestmark = pytest.mark.django_db

MAILGUN_PATH = "/v3/paperboy.example/messages"
BREVO_PATH = "/v3/smtp/email"
HOSTILE = "Free %Recipient.unsubscribe% and {{params.manage}} for {% raw %} all"


@dataclass(frozen=True)
class Copy:
    """One recipient's message as the ESP would make it from a call."""

    subject: str
    text: str
    html: str
    headers: dict[str, str]  # names lower-cased
    batched: bool  # from a call with merge data


# --- Taking calls apart as each ESP would ----------------------------------------------------


def mailgun_copies(request: RecordedRequest) -> dict[str, Copy]:
    form = parse_qs(request.body.decode(), keep_blank_values=True)
    one = {name: values[0] for name, values in form.items()}
    variables = json.loads(one.get("recipient-variables", "{}"))
    copies = {}
    for to in form["to"]:
        email = parseaddr(to)[1]
        mine = variables.get(email, {})

        def fill(text: str, mine: dict[str, str] = mine) -> str:
            # Mailgun: %recipient.KEY% anywhere, from this recipient's variables (if any).
            if not variables:
                return text
            return re.sub(r"%recipient\.([^%]+)%", lambda m: mine[m.group(1)], text)

        headers = {name[2:].lower(): fill(v) for name, v in one.items() if name.startswith("h:")}
        copies[email] = Copy(
            fill(one["subject"]), fill(one["text"]), fill(one["html"]), headers, bool(variables)
        )
    return copies


def brevo_copies(request: RecordedRequest) -> dict[str, Copy]:
    data = json.loads(request.body)
    versions = data.get("messageVersions") or [{"to": data["to"]}]
    copies = {}
    for version in versions:
        params = version.get("params", {})

        def fill(text: str, params: dict[str, str] = params) -> str:
            # Brevo: {{params.KEY}} (spaces allowed inside the braces), in a batch.
            if "messageVersions" not in data:
                return text
            return re.sub(r"\{\{\s*params\.(\w+)\s*\}\}", lambda m: params[m.group(1)], text)

        headers = {**data.get("headers", {}), **version.get("headers", {})}
        for to in version["to"]:
            copies[to["email"]] = Copy(
                fill(data["subject"]),
                fill(data["textContent"]),
                fill(data["htmlContent"]),
                {k.lower(): fill(v) for k, v in headers.items()},
                "messageVersions" in data,
            )
    return copies


@dataclass
class FakeEsp:
    """A loopback ESP API: records each call with its answer, answers as the ESP does,
    or with `fail_next` (for calls to several subscribers only)."""

    path: str
    copies_of: Callable[[RecordedRequest], dict[str, Copy]]
    answer: Callable[[RecordedRequest, int], Reply]
    fail_next: list[Reply] = dataclasses.field(default_factory=list)
    log: list[tuple[RecordedRequest, int]] = dataclasses.field(default_factory=list)

    def handle(self, request: RecordedRequest) -> Reply:
        with self._lock:
            if self.fail_next and len(self.copies_of(request)) > 1:
                reply = self.fail_next.pop(0)
            else:
                reply = self.answer(request, len(self.log) + 1)
            self.log.append((request, reply.status))
        return reply

    @property
    def requests(self) -> list[RecordedRequest]:
        return [request for request, _ in self.log]

    def answered(self, status: int = 200) -> list[dict[str, Copy]]:
        """Each call's copies, for the calls answered with `status`."""
        return [self.copies_of(request) for request, got in self.log if got == status]

    def __post_init__(self) -> None:
        self._lock = threading.Lock()


def mailgun_answer(request: RecordedRequest, n: int) -> Reply:
    copies = mailgun_copies(request)
    if any(email.startswith("bad@") for email in copies):
        # Mailgun refuses a call with any invalid address in it, whole.
        return Reply.json({"message": "'to' parameter is not a valid address."}, status=400)
    body: dict[str, Any] = {"id": f"<call-{n}@paperboy.example>", "message": "Queued. Thank you."}
    rejected = [email for email in copies if email.startswith("rejectme")]
    if rejected:
        body["rejected"] = rejected  # read by RejectingMailgun below
    return Reply.json(body)


def brevo_answer(request: RecordedRequest, n: int) -> Reply:
    data = json.loads(request.body)
    if "messageVersions" in data:
        ids = [f"<{n}.{i}@smtp-relay.brevo>" for i in range(len(data["messageVersions"]))]
        return Reply.json({"messageIds": ids}, status=201)
    return Reply.json({"messageId": f"<{n}@smtp-relay.brevo>"}, status=201)


@pytest.fixture(autouse=True)
def frozen() -> Iterator[Any]:
    # Manage links carry the second they were made: the one-by-one render for comparison
    # must be made in the same second as the send.
    # (Autouse: subscribers and papers are made in that time too.)
    with time_machine.travel(dt.datetime(2026, 3, 10, 8, tzinfo=dt.UTC), tick=False) as clock:
        yield clock


@pytest.fixture
def mailgun(loopback: LoopbackServer, settings: Any) -> FakeEsp:
    settings.EMAIL_BACKEND = "anymail.backends.mailgun.EmailBackend"
    settings.ANYMAIL = {
        "MAILGUN_API_KEY": "key-test",
        "MAILGUN_API_URL": loopback.url("/v3"),
        "MAILGUN_SENDER_DOMAIN": "paperboy.example",
    }
    settings.PAPERBOY_FROM_EMAIL = "Paperboy <paperboy@paperboy.example>"
    esp = FakeEsp(MAILGUN_PATH, mailgun_copies, mailgun_answer)
    loopback.route(MAILGUN_PATH, handler=esp.handle)
    return esp


@pytest.fixture
def brevo(loopback: LoopbackServer, settings: Any) -> FakeEsp:
    settings.EMAIL_BACKEND = "anymail.backends.brevo.EmailBackend"
    settings.ANYMAIL = {"BREVO_API_KEY": "key-test", "BREVO_API_URL": loopback.url("/v3/")}
    settings.PAPERBOY_FROM_EMAIL = "Paperboy <paperboy@paperboy.example>"
    esp = FakeEsp(BREVO_PATH, brevo_copies, brevo_answer)
    loopback.route(BREVO_PATH, handler=esp.handle)
    return esp


@pytest.fixture
def readers(make_subscriber: Callable[..., Subscriber]) -> dict[str, list[Subscriber]]:
    """Three trending-only subscribers, two with the same topics, one with topics of her own."""
    return {
        "trending": [make_subscriber(f"t{n}@example.org", []) for n in range(3)],
        "diffusion": [make_subscriber(f"d{n}@example.org", ["diffusion"]) for n in range(2)],
        "alone": [make_subscriber("bob@example.org", ["RLHF"])],
    }


@pytest.fixture
def papers(make_paper: Callable[..., Paper]) -> list[Paper]:
    return [
        make_paper("Video Diffusion at Scale", "A diffusion model for video.", upvotes=50),
        make_paper("RLHF without Tears", "Reward models, simply.", upvotes=30),
        make_paper("Speech at Scale", "Recognition for all.", upvotes=10),
    ]


def send_edition() -> None:
    edition_send(edition=edition_prepare(date=EDITION_DATE, scrape=False).edition)


def plain(delivery: Delivery) -> tuple[str, str, str]:
    rendered = render_digest(delivery=delivery)
    return rendered.subject, rendered.text, rendered.html


def deliveries() -> dict[str, Delivery]:
    rows = Delivery.objects.select_related("subscriber", "edition")
    return {d.subscriber.email: d for d in rows}


def assert_each_gets_exactly_their_digest(copies: dict[str, Copy]) -> None:
    for email, delivery in deliveries().items():
        if delivery.status != Delivery.Status.SENT:
            continue
        copy = copies[email]
        assert (copy.subject, copy.text, copy.html) == plain(delivery), email
        assert copy.headers["list-unsubscribe"] == f"<{unsubscribe_url(delivery.subscriber)}>"
        assert copy.headers["list-unsubscribe-post"] == "List-Unsubscribe=One-Click"
        assert copy.headers["message-id"] == stable_message_id(delivery.id)


def all_copies(calls: list[dict[str, Copy]]) -> dict[str, Copy]:
    merged: dict[str, Copy] = {}
    for call in calls:
        assert not set(call) & set(merged), "a subscriber in two calls"
        merged.update(call)
    return merged


# --- Tests -----------------------------------------------------------------------------------


def test_mailgun_one_call_per_group_each_reader_their_own_links(
    mailgun: FakeEsp, readers: dict, papers: list[Paper]
) -> None:
    send_edition()

    calls = mailgun.answered()
    # Trending subscribers share one call, the two diffusion subscribers another; bob's own digest
    # goes the normal way, one call for one subscriber (no merge data).
    assert sorted(len(c) for c in calls) == [1, 2, 3]
    assert sorted(sorted(c) for c in calls if len(c) > 1) == [
        ["d0@example.org", "d1@example.org"],
        ["t0@example.org", "t1@example.org", "t2@example.org"],
    ]
    assert [c["bob@example.org"].batched for c in calls if "bob@example.org" in c] == [False]
    copies = all_copies(calls)
    assert set(copies) == set(deliveries())
    assert_each_gets_exactly_their_digest(copies)
    # Their links differ (each subscriber's own), the rest is one template.
    t0, t1 = copies["t0@example.org"], copies["t1@example.org"]
    assert t0.text != t1.text and t0.subject == t1.subject
    # The ESP's id, recorded per delivery: Mailgun gives one per call.
    for email, delivery in deliveries().items():
        assert delivery.status == Delivery.Status.SENT
        call = next(n for n, c in enumerate(mailgun.requests) if email in mailgun_copies(c))
        assert delivery.message_id == f"<call-{call + 1}@paperboy.example>"


def test_brevo_message_versions_with_params_and_an_id_per_reader(
    brevo: FakeEsp, readers: dict, papers: list[Paper]
) -> None:
    send_edition()

    calls = brevo.answered(201)
    assert sorted(len(c) for c in calls) == [1, 2, 3]
    copies = all_copies(calls)
    assert_each_gets_exactly_their_digest(copies)
    # Brevo answers one id per message version, in order: each delivery keeps its own.
    for request in brevo.requests:
        data = json.loads(request.body)
        for i, version in enumerate(data.get("messageVersions", [])):
            delivery = deliveries()[version["to"][0]["email"]]
            assert delivery.message_id.endswith(f".{i}@smtp-relay.brevo>")
    assert len({d.message_id for d in deliveries().values()}) == len(deliveries())


def test_a_batch_answered_5xx_is_retried_later_with_nothing_lost(
    mailgun: FakeEsp, readers: dict, papers: list[Paper], frozen: Any
) -> None:
    mailgun.fail_next = [Reply.json({"message": "Internal error"}, status=503)]
    send_edition()

    [failed_call] = mailgun.answered(503)
    by_email = deliveries()
    for email in failed_call:
        assert by_email[email].status == Delivery.Status.QUEUED
        assert "503" in by_email[email].last_error
        assert by_email[email].next_attempt_at is not None
    assert sum(d.status == Delivery.Status.SENT for d in by_email.values()) == 6 - len(failed_call)

    frozen.shift(3600)  # the retry's time has come
    result = owed_send()

    assert result.total == len(failed_call)
    assert {d.status for d in deliveries().values()} == {Delivery.Status.SENT}
    copies = all_copies(mailgun.answered())  # every subscriber in exactly one accepted call
    assert set(copies) == set(deliveries())
    retried = [c for c in mailgun.answered() if set(c) == set(failed_call)]
    assert len(retried) == 1  # the group went again as one call


def test_a_call_refused_whole_goes_one_by_one_and_only_the_bad_address_fails(
    mailgun: FakeEsp, make_subscriber: Callable[..., Subscriber], papers: list[Paper]
) -> None:
    for email in ("t0@example.org", "bad@example.org", "t2@example.org"):
        make_subscriber(email, [])
    send_edition()

    statuses = [status for _, status in mailgun.log]
    assert statuses[0] == 400  # the call for three, refused whole
    assert sorted(statuses[1:]) == [200, 200, 400]  # then each digest on its own
    by_email = deliveries()
    assert by_email["bad@example.org"].status == Delivery.Status.FAILED
    assert "not a valid address" in by_email["bad@example.org"].last_error
    for email in ("t0@example.org", "t2@example.org"):
        assert by_email[email].status == Delivery.Status.SENT


class RejectingMailgun(MailgunBackend):
    """Mailgun's backend, reading per-recipient refusals from the answer (Mailgun itself
    reports them only by webhook; ESPs like Postmark and SES answer them at once)."""

    def parse_recipient_status(self, response: Any, payload: Any, message: Any) -> Any:
        statuses = super().parse_recipient_status(response, payload, message)
        for email in response.json().get("rejected", []):
            statuses[email] = AnymailRecipientStatus(message_id=None, status="rejected")
        return statuses


def test_per_recipient_refusals_fail_only_those_readers(
    mailgun: FakeEsp,
    make_subscriber: Callable[..., Subscriber],
    papers: list[Paper],
    settings: Any,
) -> None:
    settings.EMAIL_BACKEND = f"{__name__}.RejectingMailgun"
    for email in ("t0@example.org", "rejectme@example.org", "t2@example.org"):
        make_subscriber(email, [])
    send_edition()

    assert len(mailgun.requests) == 1
    by_email = deliveries()
    assert by_email["rejectme@example.org"].status == Delivery.Status.FAILED
    assert "'rejected'" in by_email["rejectme@example.org"].last_error
    for email in ("t0@example.org", "t2@example.org"):
        assert by_email[email].status == Delivery.Status.SENT
        assert by_email[email].message_id == "<call-1@paperboy.example>"


@pytest.mark.parametrize("esp_name", ["mailgun", "brevo"])
def test_paper_text_holding_merge_syntax_is_never_batched(
    esp_name: str,
    request: pytest.FixtureRequest,
    make_subscriber: Callable[..., Subscriber],
    make_paper: Callable[..., Paper],
) -> None:
    esp: FakeEsp = request.getfixturevalue(esp_name)
    make_paper(HOSTILE, "Trending, so every trending subscriber gets it.", upvotes=99)
    for n in range(3):
        make_subscriber(f"t{n}@example.org", [])
    send_edition()

    calls = esp.answered(201 if esp_name == "brevo" else 200)
    assert [len(c) for c in calls] == [1, 1, 1]
    for copy in all_copies(calls).values():
        assert not copy.batched
        assert HOSTILE in copy.html  # as written: no merge data to fill it with


def test_readers_whose_frame_differs_do_not_share_a_call(
    mailgun: FakeEsp, make_subscriber: Callable[..., Subscriber], papers: list[Paper]
) -> None:
    # Same papers, but the footer names each subscriber's paper limit and frequency.
    make_subscriber("t0@example.org", [])
    make_subscriber("t1@example.org", [])
    make_subscriber("few@example.org", [], max_papers=3)
    make_subscriber("few2@example.org", [], max_papers=3)
    make_subscriber("t2@example.org", [])
    send_edition()

    calls = mailgun.answered()
    assert sorted(sorted(c) for c in calls) == [
        ["few2@example.org", "few@example.org"],
        ["t0@example.org", "t1@example.org", "t2@example.org"],
    ]
    assert_each_gets_exactly_their_digest(all_copies(calls))


def test_a_link_without_a_merge_field_sends_the_group_one_by_one(
    mailgun: FakeEsp, readers: dict, papers: list[Paper], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Were a link kind not stood in for, the first subscriber's own link would be in the
    # template: two subscribers' templates then differ, and nothing is batched.
    monkeypatch.setattr(esp_batch.MergeLinks, "manage", LinkMaker.manage)
    send_edition()

    assert [len(c) for c in mailgun.answered()] == [1] * 6
    assert_each_gets_exactly_their_digest(all_copies(mailgun.answered()))


def test_calls_respect_the_esp_batch_size(
    mailgun: FakeEsp,
    make_subscriber: Callable[..., Subscriber],
    papers: list[Paper],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    small = dataclasses.replace(esp_batch.MAILGUN, recipients=2)
    monkeypatch.setattr(esp_batch, "BATCHING", (small, esp_batch.BREVO))
    for n in range(5):
        make_subscriber(f"t{n}@example.org", [])
    send_edition()

    # Two calls of two; the fifth subscriber alone goes the normal way.
    assert sorted(len(c) for c in mailgun.answered()) == [1, 2, 2]
    assert_each_gets_exactly_their_digest(all_copies(mailgun.answered()))


def test_postmark_and_switched_off_batching_send_one_call_per_digest(
    loopback: LoopbackServer,
    settings: Any,
    mailgun: FakeEsp,
    readers: dict,
    papers: list[Paper],
) -> None:
    settings.PAPERBOY_ESP_BATCH = False
    send_edition()
    assert [len(c) for c in mailgun.answered()] == [1] * 6
    assert not any(c.batched for c in all_copies(mailgun.answered()).values())

    # Postmark has no batch anymail can fill from an inline body: one call per digest.
    settings.PAPERBOY_ESP_BATCH = True
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "t", "POSTMARK_API_URL": loopback.url("/pm/")}

    def postmark(request: RecordedRequest) -> Reply:
        data = json.loads(request.body)
        return Reply.json({"ErrorCode": 0, "Message": "OK", "MessageID": "x", "To": data["To"]})

    loopback.route("/pm/email", handler=postmark)
    Delivery.objects.update(status=Delivery.Status.QUEUED, next_attempt_at=None)
    owed_send()
    assert len(loopback.requests_to("/pm/email")) == 6
    assert esp_batch.esp_syntax(type(mail.get_connection())) is None


def test_merge_links_stand_in_for_every_link_a_digest_can_ask_for() -> None:
    # A link kind added to LinkMaker but not here would carry the first subscriber's link to
    # the whole group; the two-reader check would catch it, this says where to look.
    public = {name for name in vars(LinkMaker) if not name.startswith("_")}
    assert public <= set(vars(esp_batch.MergeLinks))
