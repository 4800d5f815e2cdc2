"""Send digests: claim owed deliveries in batches, render them, hand them to the email
backend over one open connection, record the outcomes.

The database says what is owed. A sender claims a batch under a lease (leases.py), so
two senders never hold the same delivery, and a dead sender's batch goes back to the
queue when its lease runs out. Per batch the work is a handful of queries — claim, the
deliveries, their subscribers, their papers, the outcomes — not several per digest; cards
are rendered once and reused (fast_render.py); the MIME bytes are written in one pass
(mime.py) with a Message-ID that is the same at every attempt (message.py).

Errors are sorted into transient (the server may accept it later: connection trouble,
timeouts, SMTP 4xx, an ESP's 5xx or 429) and permanent (SMTP 5xx for the recipient, an
ESP rejecting the message, a template error). A transient error puts the delivery back in
the queue with a backoff, up to PAPERBOY_MAX_SEND_ATTEMPTS; a permanent one marks it
failed with the server's answer. When the server itself is unreachable (the connection
refused or lost, a 421 at any stage) the batch stops and its unsent deliveries go back
to the queue untouched, as they do when the sender fails partway: messages rendered and
still waiting for a connection are not sent. Nothing is dropped silently.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email.utils import format_datetime
from enum import StrEnum

from anymail.exceptions import AnymailAPIError, AnymailError, AnymailRecipientsRefused
from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.db.models import Case, CharField, F, TextField, Value, When
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from subscriptions.models import Subscriber

from ..lookups import ints
from ..models import Delivery, DeliveryPaper, Paper
from . import esp_batch, leases
from .connections import SMTP_CLOSING, Handed, open_connections
from .fast_render import CardItem, DigestRenderer
from .message import list_headers, sender_domain, stable_message_id
from .mime import PrebuiltEmail
from .rate import send_rate_limiter

logger = logging.getLogger(__name__)

SKIP_LEFT = "no longer active when it was due to send (paused, unsubscribed or suppressed)"
# What sending reads of a subscriber (not their vectors, which are large).
READER_FIELDS = (
    "email", "key", "feed_key", "status", "channel", "topics", "frequency", "max_papers"
)  # fmt: skip
# Papers a sender keeps loaded between batches (a day's candidates are a few hundred).
PAPERS_KEPT = 2000
# A run's report keeps the first few errors' texts; its counts say how many there were.
ERRORS_KEPT = 20
# A failure's text as stored (the server's answer, with the exception's name): long enough
# for any SMTP or ESP answer, short enough not to swamp the admin's list.
ERROR_TEXT_MAX = 2000
# A 429 without a Retry-After: how long every sender holds back.
THROTTLE_PAUSE_S = 10.0


class Outcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"  # transient failure: queued again for later
    FAILED = "failed"
    NOT_CLAIMED = "not claimed"  # another sender has it, or it is no longer queued
    FEED = "feed"  # a feed-only subscriber's: published to their feed, no email
    SKIPPED = "skipped"  # the subscriber left before it was sent


@dataclass(frozen=True)
class SendResult:
    delivery_id: int
    outcome: Outcome
    retry_in: float = 0.0
    error: str = ""


@dataclass
class BatchResult:
    """Counts of what happened (not a list: a run may send a million)."""

    counts: Counter[Outcome] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)  # the first few, for a summary
    cards_rendered: int = 0  # paper cards rendered, and reused from other digests
    cards_reused: int = 0

    def count(self, outcome: Outcome) -> int:
        return self.counts[outcome]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def add(self, result: SendResult) -> None:
        self.counts[result.outcome] += 1
        if result.error and len(self.errors) < ERRORS_KEPT:
            self.errors.append(f"delivery {result.delivery_id}: {result.error}")


def retry_delay(attempts: int) -> float:
    """Exponential backoff: 1, 2, 4, 8 … minutes (PAPERBOY_RETRY_FIRST_SECONDS doubled at
    each attempt), capped at PAPERBOY_RETRY_MAX_SECONDS."""
    first, most = settings.PAPERBOY_RETRY_FIRST_SECONDS, settings.PAPERBOY_RETRY_MAX_SECONDS
    return float(min(first * 2 ** max(0, attempts - 1), most))


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return bool(codes) and all(400 <= code < 500 for code in codes)
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPServerDisconnected | TimeoutError | ConnectionError):
        return True
    if isinstance(exc, AnymailRecipientsRefused):
        return False
    if isinstance(exc, AnymailAPIError):
        status = getattr(exc, "status_code", None)
        return status is None or status >= 500 or status == 429
    if isinstance(exc, AnymailError):
        return False
    return isinstance(exc, OSError)


def server_unreachable(exc: BaseException) -> bool:
    """The server, not this message, is the trouble: the rest of the batch would fail too.
    A 421 says so at any stage: on connecting, to MAIL, to RCPT or after DATA."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return any(code == SMTP_CLOSING for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code == SMTP_CLOSING:
        return True
    return isinstance(exc, smtplib.SMTPServerDisconnected | ConnectionError | TimeoutError)


def throttled(exc: BaseException) -> bool:
    return isinstance(exc, AnymailAPIError) and getattr(exc, "status_code", None) == 429


# --- One batch ---------------------------------------------------------------------------


@dataclass
class _Owed:
    """A claimed delivery, loaded for rendering."""

    id: int
    edition_date: dt.date
    subscriber: Subscriber
    topics: list[str]
    attempts: int
    items: list[CardItem] = field(default_factory=list)


class PaperCache:
    """The papers digests carry, loaded once per sender and reloaded when they change
    (a refresh updates upvotes between runs)."""

    def __init__(self) -> None:
        self._papers: dict[int, Paper] = {}

    def get(self, ids: Iterable[int]) -> dict[int, Paper]:
        wanted = set(ids)
        stamps = dict(
            Paper.objects.filter(id__in_ints=ints(wanted))
            .order_by()
            .values_list("id", "updated_at")
        )
        stale = [
            i
            for i, at in stamps.items()
            if i not in self._papers or self._papers[i].updated_at != at
        ]
        if stale:
            self._papers.update(Paper.objects.defer("embedding").in_bulk(stale))
        wanted_now = {i: self._papers[i] for i in stamps}
        if len(self._papers) > PAPERS_KEPT:  # a worker lives for days: keep it flat
            self._papers = dict(wanted_now)
        return wanted_now


def _load(lease: leases.Lease, papers: PaperCache) -> list[_Owed]:
    rows = list(
        leases.held(lease.owner, lease.ids)
        .order_by("id")
        .values_list("id", "edition__date", "subscriber_id", "topics", "attempts")
    )
    readers = Subscriber.objects.only(*READER_FIELDS).in_bulk([row[2] for row in rows])
    owed = {
        i: _Owed(i, day, readers[sub], topics or [], attempts)
        for i, day, sub, topics, attempts in rows
    }
    items = list(
        # No order: the model's would join subscribers and editions to sort by their fields.
        DeliveryPaper.objects.filter(delivery_id__in_ints=ints(owed))
        .order_by()
        .annotate(reasons_text=Cast("reasons", TextField()))
        .values_list("delivery_id", "paper_id", "rank", "reasons_text")
    )
    by_id = papers.get(row[1] for row in items)
    for delivery_id, paper_id, rank, reasons in items:
        owed[delivery_id].items.append(CardItem(by_id[paper_id], rank, reasons or "[]"))
    return list(owed.values())


class BatchSender:
    """Sends claimed batches over one backend connection, keeping renderer and paper
    caches from batch to batch. One per worker task (or command run)."""

    def __init__(
        self,
        connection: BaseEmailBackend | None = None,
        on_progress: Callable[[SendResult], None] | None = None,
    ) -> None:
        self.wire = open_connections(connection)
        self.renderer = DigestRenderer()
        self.papers = PaperCache()
        self.limiter = send_rate_limiter()
        self.on_progress = on_progress
        self.result = BatchResult()
        self.server_down = False
        self._settled: set[int] = set()  # the lease's deliveries whose outcome is written
        # Mailgun, Brevo: like digests as one API call (esp_batch.py); else None.
        self.batches = esp_batch.batcher(
            connection, wire=self.wire, renderer=self.renderer, limiter=self.limiter
        )

    def send(self, lease: leases.Lease) -> None:
        """Send every delivery of the lease; whatever is left held (a crash of this code,
        the server gone) goes back to the queue before returning."""
        self._settled = set()
        try:
            self._send(lease)
        except BaseException:
            # Aborted partway: messages waiting for a connection must not go out with
            # nobody to record them (their deliveries go back to the queue just below).
            self._stop_handing()
            _release_unsent(lease)
            raise
        if not self._settled.issuperset(lease.ids):  # some were never handed over
            _release_unsent(lease)

    def _send(self, lease: leases.Lease) -> None:
        owed = _load(lease, papers=self.papers)
        recorder = _Recorder(lease.owner, self._report)
        renewed = time.monotonic()
        date = format_datetime(timezone.now())
        mailable: Iterable[_Owed] = self._route(lease, owed)
        if self.batches is not None:  # groups go as they are handed; the rest one by one
            mailable = self.batches.route(
                list(mailable),
                lease=lease,
                recorder=recorder,
                date=date,
                settle_ready=lambda: self._settle(recorder, self.wire.finished()),
            )
        for delivery in mailable:
            if self.server_down:
                break
            if time.monotonic() - renewed > settings.PAPERBOY_SEND_LEASE_SECONDS / 3:
                recorder.flush()
                leases.renew(lease.owner)
                renewed = time.monotonic()
            try:
                message = self._message(delivery, date)
            except Exception as exc:  # a template error: this message, not the batch
                logger.exception("delivery %s could not be rendered", delivery.id)
                recorder.failed(delivery, exc, transient=False)
                continue
            self.limiter.acquire(1)
            self.wire.hand(delivery, message)
            self._settle(recorder, self.wire.finished())
        self._settle(recorder, self.wire.finished(wait=True))
        recorder.flush()

    def _settle(self, recorder: _Recorder, handed: Iterable[Handed]) -> None:
        for outcome in handed:
            if self.batches is not None and self.batches.settle(outcome, recorder):
                continue  # a group's call: recorded subscriber by subscriber there
            if outcome.error is None:
                recorder.sent(outcome.tag.id, _esp_id(outcome.message))
                continue
            exc = outcome.error
            if throttled(exc):
                self.limiter.penalise(THROTTLE_PAUSE_S)
            recorder.failed(outcome.tag, exc, transient=is_transient(exc))
            if server_unreachable(exc) and not self.server_down:
                self.server_down = True
                logger.warning("email server unreachable, sending stopped: %s", exc)
                # What waits for a connection would meet the same server: it goes back
                # to the queue untouched, with the rest of the batch.
                self._stop_handing()

    def _stop_handing(self) -> None:
        """Take back the messages no connection has started on; their deliveries, still
        held, are released with the rest of the batch (`_release_unsent`)."""
        dropped = self.wire.drop_queued()
        if self.batches is not None:
            self.batches.forget(dropped)

    def _route(self, lease: leases.Lease, owed: list[_Owed]) -> Iterator[_Owed]:
        """Subscribers who left are skipped, feed-only subscribers' digests go to their feed; the
        rest are mailed. Both checks are made now, at send time."""
        left = [d.id for d in owed if d.subscriber.status != Subscriber.Status.ACTIVE]
        feed = [
            d.id
            for d in owed
            if d.subscriber.status == Subscriber.Status.ACTIVE
            and d.subscriber.channel == Subscriber.Channel.FEED
        ]
        now = timezone.now()
        if left:
            leases.held(lease.owner, left).update(
                status=Delivery.Status.SKIPPED,
                skip_reason=SKIP_LEFT,
                lease_owner="",
                lease_until=None,
            )
        if feed:
            leases.held(lease.owner, feed).update(
                status=Delivery.Status.FEED, sent_at=now, lease_owner="", lease_until=None
            )
        for ids, outcome in ((left, Outcome.SKIPPED), (feed, Outcome.FEED)):
            for delivery_id in ids:
                self._report(SendResult(delivery_id, outcome))
        done = set(left) | set(feed)
        return (d for d in owed if d.id not in done)

    def _message(self, delivery: _Owed, date: str) -> PrebuiltEmail:
        subscriber = delivery.subscriber
        rendered = self.renderer.render(
            subscriber=subscriber,
            edition_date=delivery.edition_date,
            items=delivery.items,
            topics=delivery.topics or None,
        )
        headers = {
            "Date": date,
            "Message-ID": stable_message_id(delivery.id),
            **list_headers(unsubscribe=self.renderer.links.unsubscribe(subscriber)),
        }
        return PrebuiltEmail(
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            to=subscriber.email,
            headers=headers,
        )

    def close(self) -> None:
        self.wire.close()

    def _report(self, result: SendResult) -> None:
        """A delivery's outcome, once it is written."""
        self._settled.add(result.delivery_id)
        self.result.add(result)
        if self.on_progress:
            self.on_progress(result)


def _esp_id(message: EmailMessage) -> str | None:
    # An ESP's own id is what its webhooks will name; SMTP has only our Message-ID.
    status = getattr(message, "anymail_status", None)
    esp_id = getattr(status, "message_id", None) if status is not None else None
    return leases.stored_message_id(esp_id)


class _Recorder:
    """Outcomes, written a few dozen at a time: a crash between two writes resends at
    most the messages sent since the last one (PAPERBOY_SEND_RECORD_EVERY)."""

    def __init__(self, owner: str, report: Callable[[SendResult], None]) -> None:
        self.owner, self.report = owner, report
        self._sent: list[int] = []
        self._esp_ids: dict[int, str] = {}

    def sent(self, delivery_id: int, esp_id: str | None) -> None:
        self._sent.append(delivery_id)
        if esp_id is not None:
            self._esp_ids[delivery_id] = esp_id
        if len(self._sent) >= settings.PAPERBOY_SEND_RECORD_EVERY:
            self.flush()

    @leases.reconnecting  # a lost connection must not lose the record of what was sent
    def flush(self) -> None:
        if not self._sent:
            return
        ours = [i for i in self._sent if i not in self._esp_ids]
        common = {
            "status": Delivery.Status.SENT,
            "sent_at": timezone.now(),
            "last_error": "",
            "next_attempt_at": None,
            "lease_owner": "",
            "lease_until": None,
        }
        if ours:
            # The stable Message-ID, spelled in SQL: one statement for the whole group.
            message_id = Concat(
                Value("<digest-"),
                Cast(F("id"), CharField()),
                Value(f"@{sender_domain()}>"),
                output_field=CharField(),
            )
            leases.held(self.owner, ours).update(message_id=message_id, **common)
        if self._esp_ids:
            # Each its ESP's id, in one statement too (a batch call's hundreds at once).
            esp_id = Case(
                *(When(id=i, then=Value(e)) for i, e in self._esp_ids.items()),
                output_field=CharField(),
            )
            leases.held(self.owner, list(self._esp_ids)).update(message_id=esp_id, **common)
        for delivery_id in self._sent:
            self.report(SendResult(delivery_id, Outcome.SENT))
        self._sent, self._esp_ids = [], {}

    @leases.reconnecting
    def failed(self, delivery: _Owed, exc: BaseException, *, transient: bool) -> None:
        self.flush()
        error = f"{type(exc).__name__}: {exc}"[:ERROR_TEXT_MAX]
        held = leases.held(self.owner, [delivery.id])
        release = {"lease_owner": "", "lease_until": None}
        if transient and delivery.attempts < settings.PAPERBOY_MAX_SEND_ATTEMPTS:
            delay = retry_delay(delivery.attempts)
            held.update(
                status=Delivery.Status.QUEUED,
                last_error=error,
                next_attempt_at=timezone.now() + dt.timedelta(seconds=delay),
                **release,
            )
            logger.warning(
                "delivery %s: transient error, retry in %ss: %s", delivery.id, delay, error
            )
            self.report(SendResult(delivery.id, Outcome.RETRY, retry_in=delay, error=error))
            return
        if transient:
            error = f"gave up after {delivery.attempts} attempts: {error}"
        held.update(
            status=Delivery.Status.FAILED, last_error=error, next_attempt_at=None, **release
        )
        logger.error("delivery %s failed: %s", delivery.id, error)
        self.report(SendResult(delivery.id, Outcome.FAILED, error=error))


@leases.reconnecting
def _release_unsent(lease: leases.Lease) -> None:
    """Deliveries still held were never handed to the server: back to the queue as they
    were, their claim not counted as an attempt."""
    leases.held(lease.owner, lease.ids).update(
        status=Delivery.Status.QUEUED,
        lease_owner="",
        lease_until=None,
        attempts=F("attempts") - 1,
    )


# --- Draining what is owed ---------------------------------------------------------------


def owed_send(
    *,
    edition_id: int | None = None,
    until: float | None = None,
    connection: BaseEmailBackend | None = None,
    on_progress: Callable[[SendResult], None] | None = None,
) -> BatchResult:
    """Send owed deliveries (of one edition, or all) batch by batch until none is left,
    the server is unreachable, or `until` (a time.monotonic() value) has passed."""
    sender = BatchSender(connection, on_progress=on_progress)
    after = 0  # the last batch's highest id: the next claim starts above it
    try:
        while until is None or time.monotonic() < until:
            size = settings.PAPERBOY_SEND_BATCH
            lease = leases.claim(size, edition_id=edition_id, after=after)
            if not lease.ids and after:
                # Nothing above: once more from the start, for rows another sender
                # released or whose retry time came below the line.
                after = 0
                continue
            if not lease.ids:
                break
            after = lease.ids[-1]
            sender.send(lease)
            if sender.server_down:
                break
    finally:
        sender.close()
    sender.result.cards_rendered = sender.renderer.card_misses
    sender.result.cards_reused = sender.renderer.card_hits
    return sender.result


def deliveries_requeue(*, delivery_ids: Iterable[int]) -> int:
    """An operator's decision: send failed deliveries again (from the admin)."""
    return Delivery.objects.filter(id__in=list(delivery_ids), status=Delivery.Status.FAILED).update(
        status=Delivery.Status.QUEUED, next_attempt_at=None, attempts=0
    )
