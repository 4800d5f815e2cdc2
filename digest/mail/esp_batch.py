"""ESP batch sending: digests alike apart from the subscriber's own links go as one API call.

Subscribers of the trending list, and subscribers with the same topics, get the same digest: the
same subject, papers, reasons and wording. Only their links differ (view in browser,
manage, feed, unsubscribe, and "more / less like this" for each paper; a diff of two
such subscribers' renders shows nothing else) and two headers (List-Unsubscribe, and the
delivery's stable Message-ID). Within a claimed batch such deliveries are grouped; each
group's digest is rendered once with the ESP's merge fields where the links go, and sent
in one anymail message to every subscriber of the group (`to=[…]`), with each subscriber's links
in `merge_data` and their headers in `merge_headers`. The ESP makes one message per
reader.

Which ESPs (checked in anymail 15.2's backends, each for merge_data substituted into an
inline body, without a template stored at the ESP):

- **Mailgun**: yes. Anymail maps merge_data to Mailgun's recipient-variables, which
  Mailgun substitutes for `%recipient.KEY%` anywhere in the message, and merge_headers
  to `h:` recipient variables. One id for the whole call comes back.
- **Brevo**: yes. Anymail makes a `messageVersions` entry per subscriber with `params`,
  which Brevo substitutes for `{{params.KEY}}` in the HTML (Brevo's batch-send guide;
  anymail's own Brevo page still says content is not personalised without a stored
  template, so the text part's substitution is Brevo's word, not verified against a live
  account: PAPERBOY_ESP_BATCH=false turns batching off). One id per subscriber comes back.
- **Postmark**: no. Its /email/batch (500 messages) sends the same content to everyone;
  anymail refuses merge_data without a template_id there. Its /email/bulk API does fill
  `{{var}}` in inline content, but needs Postmark's approval of the account, goes out
  through a broadcast stream and reports nothing per recipient when called.
- **Amazon SES**: no. SendBulkEmail (50 destinations a call) only works from a stored
  template through anymail (merge_data and merge_headers without template_id are
  unsupported features).

The others keep one API call per digest (sending.py), as do groups of one.

Safety. Groups are keyed by the papers (cards never depend on the subscriber) and by what
the frame's own context builder shows of the subscriber, so a subscriber value added to the
frame later splits groups by itself. Two subscribers' templates must then come out the same,
so a link the merge fields do not stand in for sends the group one by one. Paper text is
scraped: a title containing the ESP's merge syntax would be filled in by the ESP, so a
group whose shared text contains it is not batched either (there is no escape for it).
Failures: a transient error (5xx, 429, network) puts the whole group back in the queue
with a backoff, as for one digest; a per-recipient refusal in anymail_status fails that
subscriber only; any other error (a 4xx: one bad address refuses Mailgun's whole call) sends
the group's digests again one by one, so only the subscriber at fault fails.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from anymail.exceptions import AnymailRecipientsRefused
from anymail.message import AnymailMessage
from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.utils.module_loading import import_string
from markupsafe import escape

from subscriptions.links import LinkMaker
from subscriptions.models import Subscriber

from . import leases
from .connections import Handed
from .digest_email import ReaderLinks, frame_context
from .fast_render import CardItem, DigestRenderer
from .message import RenderedEmail, list_headers, stable_message_id

logger = logging.getLogger(__name__)

# Mailgun: "The maximum number of recipients allowed for Batch Sending is 1,000" (its
# batch-sending guide).
MAILGUN_RECIPIENTS = 1000
# Mailgun takes messages up to 25 MB; whether recipient-variables count is not written
# down, so a call's variables stay well under it (a subscriber's are about 5 kB).
MAILGUN_MERGE_BYTES = 20_000_000
# Brevo: up to 1000 message versions in one call (its batch-send guide; its API
# reference also caps a call at 2000 recipients: we put one in each version) …
BREVO_VERSIONS = 1000
# … "individual params objects must not exceed 100 KB; cumulative params across all
# versions must not exceed 1000 KB". With 20 papers a subscriber's links are about 6 kB, so
# the sum, not the count, usually ends a Brevo call (about 150 subscribers); kept a tenth
# under Brevo's figures for the JSON's own spacing.
BREVO_PARAMS_EACH_BYTES = 90_000
BREVO_PARAMS_BYTES = 900_000
# How often the sender looks for its batch calls' answers while it waits for them.
WAIT_POLL_S = 0.02
# What anymail_status calls a recipient the ESP did not take.
REFUSED_STATUSES = frozenset({"rejected", "invalid", "failed"})


@dataclass(frozen=True)
class EspSyntax:
    """What batching needs to know of one ESP."""

    name: str
    backend: str  # anymail's backend class; subclasses batch too
    field: Callable[[str], str]  # the merge field for a key, in the ESP's syntax
    unsafe: tuple[str, ...]  # text the ESP would read as its syntax (compared lower-case)
    recipients: int  # subscribers in one call
    merge_bytes: int  # all subscribers' merge data in one call (JSON)
    merge_bytes_each: int  # one subscriber's


MAILGUN = EspSyntax(
    name="Mailgun",
    backend="anymail.backends.mailgun.EmailBackend",
    field=lambda key: f"%recipient.{key}%",
    # No escape exists for it; Mailgun's other %…% variables are not merge data.
    unsafe=("%recipient",),
    recipients=MAILGUN_RECIPIENTS,
    merge_bytes=MAILGUN_MERGE_BYTES,
    merge_bytes_each=MAILGUN_MERGE_BYTES,
)
BREVO = EspSyntax(
    name="Brevo",
    backend="anymail.backends.brevo.EmailBackend",
    field=lambda key: "{{params." + key + "}}",
    # The Brevo Template Language (Django-like): variables, tags and comments.
    unsafe=("{{", "{%", "{#"),
    recipients=BREVO_VERSIONS,
    merge_bytes=BREVO_PARAMS_BYTES,
    merge_bytes_each=BREVO_PARAMS_EACH_BYTES,
)
# Postmark and Amazon SES are not here (see above): one API call per digest, as before.
BATCHING = (MAILGUN, BREVO)


class Owed(Protocol):
    """What batching reads of a claimed delivery (sending._Owed)."""

    id: int
    edition_date: dt.date
    subscriber: Subscriber
    topics: list[str]
    attempts: int
    items: list[CardItem]


class Recorder(Protocol):
    """Where outcomes go (sending._Recorder)."""

    def sent(self, delivery_id: int, esp_id: str | None) -> None: ...

    def failed(self, delivery: Any, exc: BaseException, *, transient: bool) -> None: ...

    def flush(self) -> None: ...


class Wire(Protocol):
    def hand(self, tag: Any, message: Any) -> None: ...

    def drop_queued(self) -> list[Any]: ...


class Limiter(Protocol):
    def acquire(self, n: int = 1) -> float: ...

    def penalise(self, seconds: float) -> None: ...


T = TypeVar("T", bound=Owed)


class RecipientRefused(Exception):
    """The ESP took the call but refused this subscriber (anymail_status says so)."""


# --- Which ESP -----------------------------------------------------------------------------


def esp_syntax(backend: type[BaseEmailBackend]) -> EspSyntax | None:
    for syntax in BATCHING:
        if issubclass(backend, import_string(syntax.backend)):
            return syntax
    return None


def batcher(
    connection: BaseEmailBackend | None,
    *,
    wire: Wire,
    renderer: DigestRenderer,
    limiter: Limiter,
) -> EspBatcher | None:
    """A batcher for the backend in use (the caller's connection, or EMAIL_BACKEND), or
    None where batching is off or the ESP cannot substitute into an inline body."""
    if not settings.PAPERBOY_ESP_BATCH:
        return None
    backend = type(connection) if connection is not None else import_string(settings.EMAIL_BACKEND)
    syntax = esp_syntax(backend)
    return EspBatcher(syntax, wire=wire, renderer=renderer, limiter=limiter) if syntax else None


# --- Grouping ------------------------------------------------------------------------------


def group_key(delivery: Owed) -> tuple[Any, ...]:
    """Everything a digest's rendering reads except the subscriber's links: its date, its
    papers, ranks and reasons as the renderer's card cache names them (cards never depend
    on the subscriber: the renderer shares them between subscribers), and what the frame around
    them shows of the reader."""
    items = tuple(
        sorted(
            (i.rank, i.paper.pk, i.paper.updated_at, i.paper.upvotes, i.reasons_key)
            for i in delivery.items
        )
    )
    return (delivery.edition_date, items, reader_view(delivery))


# Links are the merge fields; the frame's other values are compared.
_NO_LINKS = ReaderLinks(unsubscribe="", manage="", feed="", view_in_browser="")


def reader_view(delivery: Owed) -> str:
    """The frame's values that come from the subscriber (their topics, frequency and paper
    limit today), read from the frame's own context builder, so that a value added to the
    frame later splits groups too. Papers are left out: the key compares them."""
    context = frame_context(
        subscriber=delivery.subscriber,
        edition_date=delivery.edition_date,
        items=(),
        first_title="",
        topics=delivery.topics or None,
        links=_NO_LINKS,
    )
    return json.dumps(context, sort_keys=True, default=str)


def groups(owed: Iterable[T]) -> list[list[T]]:
    by_key: dict[tuple[Any, ...], list[T]] = {}
    for delivery in owed:
        by_key.setdefault(group_key(delivery), []).append(delivery)
    return list(by_key.values())


class MergeLinks(LinkMaker):
    """The renderer's links, as merge fields: each link asked for gets a key (the same
    key for the same link), and `values` gives a subscriber's real links for those keys."""

    def __init__(self, field: Callable[[str], str]) -> None:
        super().__init__()
        self.field = field
        self.keys: dict[tuple[str, tuple[Any, ...]], str] = {}  # (method, args) → key

    def _ask(self, method: str, *args: Any) -> str:
        key = self.keys.get((method, args))
        if key is None:
            # Keys as the ESP needs them (letters, digits, _); numbered in asking order.
            key = method if not args else f"{method}_{len(self.keys)}"
            self.keys[(method, args)] = key
        return self.field(key)

    def unsubscribe(self, subscriber: Subscriber) -> str:
        return self._ask("unsubscribe")

    def manage(self, subscriber: Subscriber) -> str:
        return self._ask("manage")

    def digest(self, subscriber: Subscriber, edition_date: dt.date) -> str:
        return self._ask("digest", edition_date)

    def feedback(self, subscriber: Subscriber, arxiv_id: str, value: int) -> str:
        return self._ask("more" if value > 0 else "less", arxiv_id, value)

    def feed(self, subscriber: Subscriber) -> str:
        return self._ask("feed")

    def values(self, links: LinkMaker, subscriber: Subscriber) -> dict[str, str]:
        real: dict[str, Callable[..., str]] = {
            "unsubscribe": links.unsubscribe,
            "manage": links.manage,
            "digest": links.digest,
            "more": links.feedback,
            "less": links.feedback,
            "feed": links.feed,
        }
        return {key: real[method](subscriber, *args) for (method, args), key in self.keys.items()}


# --- One group's message -------------------------------------------------------------------


@dataclass(eq=False)
class Chunk:
    """One API call: subscribers of one group, and the message sent to them."""

    members: list[Any]  # Owed
    message: AnymailMessage


@dataclass
class _Template:
    rendered: RenderedEmail
    links: MergeLinks


class EspCalls:
    """A group's digest rendered once with merge fields, cut into API calls: within the
    ESP's limits, never twice the same address, never a link the ESP could misread."""

    def __init__(self, syntax: EspSyntax, renderer: DigestRenderer) -> None:
        self.syntax, self.renderer = syntax, renderer
        self.links = LinkMaker()

    def chunks(self, group: list[T], date: str) -> Iterator[Chunk | T]:
        """The group's API calls, and the deliveries that go one by one."""
        template = self._template(group) if len(group) > 1 else None
        if template is None:
            yield from group
            return
        calls: list[list[tuple[T, dict[str, str]]]] = [[]]
        seen: set[str] = set()
        size = 0
        for delivery in group:
            values = template.links.values(self.links, delivery.subscriber)
            each = len(json.dumps(values))
            email = delivery.subscriber.email
            if email in seen or each > self.syntax.merge_bytes_each or not self._links_ok(values):
                yield delivery  # the same subscriber twice, or links the ESP would misread
                continue
            if len(calls[-1]) >= self.syntax.recipients or size + each > self.syntax.merge_bytes:
                calls.append([])
                seen, size = set(), 0
            calls[-1].append((delivery, values))
            seen.add(email)
            size += each
        for call in calls:
            if len(call) == 1:
                yield call[0][0]  # a call of one: the normal path is the same message
            elif call:
                yield Chunk([d for d, _ in call], self._message(template, call, date))

    def _template(self, group: Sequence[Owed]) -> _Template | None:
        """The group's digest with merge fields for links, or None when it must not be
        batched: another subscriber's render differs, or paper text holds the ESP's syntax."""
        first, second = self._render(group[0]), self._render(group[1])
        if first.rendered != second.rendered or first.links.keys != second.links.keys:
            logger.warning(
                "deliveries %s and %s differ beyond their links; their group goes one by one",
                group[0].id,
                group[1].id,
            )
            return None
        shared = first.rendered
        parts = [shared.subject, shared.text, shared.html]
        for key in first.links.keys.values():  # our own fields are not the trouble
            parts = [part.replace(self.syntax.field(key), "") for part in parts]
        if not self._safe(dict(enumerate(parts))):
            logger.info(
                "delivery %s: its text holds %s's merge syntax; its group goes one by one",
                group[0].id,
                self.syntax.name,
            )
            return None
        return first

    def _render(self, delivery: Owed) -> _Template:
        links = MergeLinks(self.syntax.field)
        with _links_of(self.renderer, links):
            rendered = self.renderer.render(
                subscriber=delivery.subscriber,
                edition_date=delivery.edition_date,
                items=delivery.items,
                topics=delivery.topics or None,
            )
        return _Template(rendered, links)

    def _safe(self, texts: dict[Any, str]) -> bool:
        """No text the ESP would read as its merge syntax."""
        for text in texts.values():
            lowered = text.lower()
            if any(mark in lowered for mark in self.syntax.unsafe):
                return False
        return True

    def _links_ok(self, values: dict[str, str]) -> bool:
        # The HTML shows a link escaped, the ESP inserts it as it is (or, Brevo, maybe
        # escaped): only a link that escaping leaves alone is right either way. Signed
        # links always are; this guards a SITE_URL with "&" in it.
        return self._safe(values) and all(str(escape(v)) == v for v in values.values())

    def _message(
        self, template: _Template, call: list[tuple[Any, dict[str, str]]], date: str
    ) -> AnymailMessage:
        rendered = template.rendered
        shared = list_headers(unsubscribe="")
        del shared["List-Unsubscribe"]  # per subscriber, below
        merge_data: dict[str, dict[str, str]] = {}
        merge_headers: dict[str, dict[str, str]] = {}
        for delivery, values in call:
            email = delivery.subscriber.email
            merge_data[email] = values
            unsubscribe = values.get("unsubscribe") or self.links.unsubscribe(delivery.subscriber)
            merge_headers[email] = {
                "List-Unsubscribe": f"<{unsubscribe}>",
                "Message-ID": stable_message_id(delivery.id),
            }
        message = AnymailMessage(
            subject=rendered.subject,
            body=rendered.text,
            from_email=settings.PAPERBOY_FROM_EMAIL,
            to=list(merge_data),
            headers={"Date": date, **shared},
            merge_data=merge_data,
            merge_headers=merge_headers,
        )
        message.attach_alternative(rendered.html, "text/html")
        return message


class EspBatcher:
    """Groups a sender's deliveries, hands each group's calls to its wire, and records
    their outcomes subscriber by subscriber. One per BatchSender; it keeps the sender's
    renderer (and its card cache)."""

    def __init__(
        self, syntax: EspSyntax, *, wire: Wire, renderer: DigestRenderer, limiter: Limiter
    ) -> None:
        self.syntax, self.wire, self.limiter = syntax, wire, limiter
        self.calls = EspCalls(syntax, renderer)
        self._in_flight = 0  # chunks handed and not yet settled
        self._refused: list[Any] = []  # Owed: members of chunks the ESP refused whole
        self._renewed = time.monotonic()

    def route(
        self,
        owed: Sequence[T],
        *,
        lease: leases.Lease,
        recorder: Recorder,
        date: str,
        settle_ready: Callable[[], None],
    ) -> Iterator[T]:
        """Hand every batchable group to the wire; yield the deliveries left to send one
        by one: first those never batched, then (once every call has answered) those of
        calls the ESP refused as a whole. `settle_ready` records the outcomes to hand."""
        singles: list[T] = []
        for group in groups(owed):
            for chunk_or_single in self.calls.chunks(group, date):
                if isinstance(chunk_or_single, Chunk):
                    self._keep_lease(lease, recorder)
                    self.limiter.acquire(len(chunk_or_single.members))
                    self._in_flight += 1
                    self.wire.hand(chunk_or_single, chunk_or_single.message)
                else:
                    singles.append(chunk_or_single)
        yield from singles
        while self._in_flight > 0:
            settle_ready()
            if self._in_flight > 0:
                self._keep_lease(lease, recorder)
                time.sleep(WAIT_POLL_S)
        refused, self._refused = self._refused, []
        yield from refused

    def _keep_lease(self, lease: leases.Lease, recorder: Recorder) -> None:
        # As the sender's own loop does: calls for big groups can take a while to answer.
        if time.monotonic() - self._renewed > settings.PAPERBOY_SEND_LEASE_SECONDS / 3:
            recorder.flush()
            leases.renew(lease.owner)
            self._renewed = time.monotonic()

    # --- Outcomes ----------------------------------------------------------------------

    def forget(self, dropped: Iterable[Any]) -> None:
        """Calls taken back from the wire before they were made (the sender stopped): no
        outcome will come for them; their subscribers go back to the queue unsent."""
        self._in_flight = max(0, self._in_flight - sum(isinstance(t, Chunk) for t in dropped))

    def settle(self, outcome: Handed, recorder: Recorder) -> bool:
        """Record a batch call's outcome subscriber by subscriber; False if `outcome` is not one."""
        from .sending import THROTTLE_PAUSE_S, is_transient, throttled  # (imports us)

        chunk = outcome.tag
        if not isinstance(chunk, Chunk):
            return False
        self._in_flight = max(0, self._in_flight - 1)
        error = outcome.error
        if error is None or isinstance(error, AnymailRecipientsRefused):
            # Refused: every subscriber refused, each one's status in anymail_status.
            self._record(chunk, outcome.message, recorder, error)
        elif is_transient(error):
            if throttled(error):
                self.limiter.penalise(THROTTLE_PAUSE_S)
            for delivery in chunk.members:
                recorder.failed(delivery, error, transient=True)
        else:
            # A 4xx for the call (one bad address fails Mailgun's whole call): each digest
            # again on its own, so only the one at fault fails.
            logger.warning(
                "%s refused a batch of %s digests (%s); sending them one by one",
                self.syntax.name,
                len(chunk.members),
                error,
            )
            self._refused.extend(chunk.members)
        recorder.flush()  # a crash now must not resend a whole call's digests
        return True

    def _record(
        self,
        chunk: Chunk,
        message: Any,
        recorder: Recorder,
        error: BaseException | None,
    ) -> None:
        recipients = getattr(getattr(message, "anymail_status", None), "recipients", {})
        for delivery in chunk.members:
            status = recipients.get(delivery.subscriber.email)
            if status is not None and status.status in REFUSED_STATUSES:
                refusal = RecipientRefused(
                    f"{self.syntax.name} answered {status.status!r} for this recipient"
                    " of a batch send"
                )
                recorder.failed(delivery, refusal, transient=False)
            elif error is not None:  # refused, with no status for this subscriber
                recorder.failed(delivery, error, transient=False)
            else:
                recorder.sent(
                    delivery.id, leases.stored_message_id(getattr(status, "message_id", None))
                )


@contextmanager
def _links_of(renderer: DigestRenderer, links: LinkMaker) -> Iterator[None]:
    # The renderer's cards hold stand-ins for links, not links, so lending it other links
    # for one render leaves its cache right for the next.
    kept = renderer.links
    renderer.links = links
    try:
        yield
    finally:
        renderer.links = kept
