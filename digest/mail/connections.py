"""Several open connections to the email server, each on a thread of its own.

An SMTP exchange is a few round trips per message; one connection spends most of its time
waiting for the server. Rendering is Python (one thread at a time), talking to the server
is not, so a sender renders on its own thread and hands each message to one of
PAPERBOY_SEND_CONNECTIONS threads, each keeping one connection open across every message
it sends. Outcomes come back on a queue to the sender's thread, which alone touches the
database.

Backends that do not talk to a server (the outbox files, the test backends) are given
one connection used inline: threads would only add overhead and reorder their files.

A sender that stops early (the server gone, or an exception of its own) takes back the
messages still waiting for a connection (`drop_queued`): they are never sent, and their
deliveries go back to the queue. Only the few a connection is sending at that moment
still go out.
"""

from __future__ import annotations

import logging
import queue
import smtplib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend

from paperboy.closing import close_quietly

logger = logging.getLogger(__name__)

# Backends whose messages leave the process over a network connection.
NETWORK_BACKENDS = ("django.core.mail.backends.smtp.", "digest.mail.smtp.", "anymail.backends.")
# Messages waiting for a connection, per connection: enough to keep each busy while the
# renderer runs ahead, few enough that a crash finds little rendered and unsent.
QUEUED_PER_CONNECTION = 8
# "Service not available, closing transmission channel" (RFC 5321 §3.8): the server's
# answer at any stage when it is going away, not a verdict on the message.
SMTP_CLOSING = 421


@dataclass(frozen=True)
class Handed:
    """One message's outcome: `error` is None when the server took it."""

    tag: Any  # the caller's (the delivery)
    message: EmailMessage
    error: BaseException | None


def connection_count() -> int:
    backend = settings.EMAIL_BACKEND
    if any(backend.startswith(prefix) for prefix in NETWORK_BACKENDS):
        return int(settings.PAPERBOY_SEND_CONNECTIONS)
    return 1


def _send_one(connection: BaseEmailBackend, message: EmailMessage) -> None:
    if connection.send_messages([message]) != 1:
        raise smtplib.SMTPException("the email backend accepted no message")


def session_still_good(connection: BaseEmailBackend, exc: BaseException) -> bool:
    """After the server refused the message's recipient alone (RCPT answered 5xx, or 4xx
    other than 421), smtplib has reset the session (RSET) and it serves the next message:
    no need to log in again. Anything else may have left the connection broken."""
    if not isinstance(exc, smtplib.SMTPRecipientsRefused):
        return False
    codes = [code for code, _ in exc.recipients.values()]
    if not codes or SMTP_CLOSING in codes:
        return False
    # smtplib closes its socket if the server hung up meanwhile (during the RSET).
    smtp = getattr(connection, "connection", None)
    return getattr(smtp, "sock", None) is not None


class InlineConnections:
    """One connection, used on the caller's thread."""

    def __init__(self, factory: Callable[[], BaseEmailBackend]) -> None:
        self.connection = factory()
        self._opened = False
        self._done: list[Handed] = []

    def hand(self, tag: Any, message: EmailMessage) -> None:
        try:
            if not self._opened:
                self.connection.open()
                self._opened = True
            _send_one(self.connection, message)
        except Exception as exc:
            self._done.append(Handed(tag, message, exc))
            return
        self._done.append(Handed(tag, message, None))

    def finished(self, *, wait: bool = False) -> Iterator[Handed]:
        done, self._done = self._done, []
        yield from done

    def drop_queued(self) -> list[Any]:
        return []  # each message is sent as it is handed: none waits

    def close(self) -> None:
        _close(self.connection)


class ThreadedConnections:
    """`count` connections, each on its own thread, fed from one bounded queue."""

    def __init__(self, factory: Callable[[], BaseEmailBackend], count: int) -> None:
        self._todo: queue.Queue[tuple[Any, EmailMessage] | None] = queue.Queue(
            count * QUEUED_PER_CONNECTION
        )
        self._done: queue.Queue[Handed] = queue.Queue()
        self.outstanding = 0
        self._threads = [
            threading.Thread(target=self._run, args=(factory,), daemon=True, name=f"smtp-{n}")
            for n in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, factory: Callable[[], BaseEmailBackend]) -> None:
        connection = factory()
        opened = False
        try:
            while (job := self._todo.get()) is not None:
                tag, message = job
                try:
                    if not opened:
                        connection.open()
                        opened = True
                    _send_one(connection, message)
                except Exception as exc:
                    if not session_still_good(connection, exc):
                        # The connection may be broken: the next message opens a fresh one.
                        _close(connection)
                        opened = False
                    self._done.put(Handed(tag, message, exc))
                    continue
                self._done.put(Handed(tag, message, None))
        finally:
            _close(connection)

    def hand(self, tag: Any, message: EmailMessage) -> None:
        self.outstanding += 1
        self._todo.put((tag, message))  # waits while every connection is busy

    def finished(self, *, wait: bool = False) -> Iterator[Handed]:
        """Outcomes so far; with `wait`, every outcome still to come."""
        while self.outstanding:
            try:
                handed = self._done.get(block=wait)
            except queue.Empty:
                return
            self.outstanding -= 1
            yield handed

    def drop_queued(self) -> list[Any]:
        """Take back the messages no connection has started on: they will not be sent,
        and no outcome comes for them. Returns their tags. Those being sent finish."""
        dropped: list[Any] = []
        while True:
            try:
                job = self._todo.get_nowait()
            except queue.Empty:
                return dropped
            if job is not None:
                self.outstanding -= 1
                dropped.append(job[0])

    def close(self) -> None:
        self.drop_queued()  # (none after a send that ran to its end)
        for _ in self._threads:
            self._todo.put(None)
        for thread in self._threads:
            thread.join(timeout=settings.EMAIL_TIMEOUT or 30)


def _close(connection: BaseEmailBackend) -> None:
    close_quietly(connection, "the email connection")


Connections = InlineConnections | ThreadedConnections


def open_connections(connection: BaseEmailBackend | None = None) -> Connections:
    """Inline when given a connection (a caller's own) or when the backend is local."""
    count = connection_count()
    if connection is not None or count <= 1:
        return InlineConnections(lambda: connection or get_connection())
    return ThreadedConnections(get_connection, count)
