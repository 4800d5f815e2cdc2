"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives.

It can be told to answer the next messages with an error (at RCPT or after DATA), to be
unavailable (421 to every MAIL, RCPT and DATA) for a while, or to refuse some recipients
for good (550), to test retries and failures. It counts what it accepted by Message-ID,
and the sessions (connections) that sent it mail.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import socket
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    at: float = 0.0  # time.monotonic() when it was accepted

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


UNAVAILABLE = "421 4.3.2 Service not available, closing transmission channel"
NO_SUCH_USER = "550 5.1.1 Recipient address rejected: User unknown in virtual mailbox table"


@dataclass
class Mailbox:
    messages: list[Received] = field(default_factory=list)
    # Replies to give instead of accepting, one per incoming message, e.g. "451 4.3.0 busy".
    refusals: list[str] = field(default_factory=list)
    # The same at RCPT, one per recipient, e.g. `UNAVAILABLE` (then the DATA never comes).
    rcpt_refusals: list[str] = field(default_factory=list)
    # Seconds each message takes to be accepted (a slow server; other sessions go on).
    delay_s: float = 0.0
    # Until this time.monotonic(), every MAIL, RCPT and DATA is answered `UNAVAILABLE`
    # (open sessions included): a server down for a while. `unavailable_for` sets it.
    unavailable_until: float = 0.0
    unavailable_answers: int = 0
    # Recipients whose address matches are refused for good at RCPT (`NO_SUCH_USER`);
    # `refused` lists each address every time it was refused.
    refuse_rcpt: re.Pattern[str] | None = None
    refused: list[str] = field(default_factory=list)
    # The client end (host, port) of every session that sent a MAIL: one per connection.
    sessions: set[Any] = field(default_factory=set)

    def unavailable_for(self, seconds: float) -> None:
        self.unavailable_until = time.monotonic() + seconds

    def _unavailable(self) -> bool:
        if time.monotonic() < self.unavailable_until:
            self.unavailable_answers += 1
            return True
        return False

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: Any
    ) -> list[str]:
        # Like Postfix, offer PIPELINING (aiosmtpd reads pipelined commands in turn):
        # senders then take the path production takes.
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.sessions.add(session.peer)
        if self._unavailable():
            return UNAVAILABLE
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self._unavailable():
            return UNAVAILABLE
        if self.rcpt_refusals:
            return self.rcpt_refusals.pop(0)
        if self.refuse_rcpt is not None and self.refuse_rcpt.search(address):
            self.refused.append(address)
            return NO_SUCH_USER
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self._unavailable():
            return UNAVAILABLE
        if self.refusals:
            return self.refusals.pop(0)
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        received = Received(
            str(envelope.mail_from), list(envelope.rcpt_tos), parsed, at=time.monotonic()
        )
        self.messages.append(received)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [r.message for r in self.messages if address in r.rcpt_tos]

    def by_message_id(self) -> Counter[str]:
        """How many times each Message-ID was accepted."""
        return Counter(r.message_id for r in list(self.messages))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_server(settings: Any) -> Iterator[Mailbox]:
    """Start an SMTP server on 127.0.0.1 and point Django's SMTP backend at it."""
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    settings.EMAIL_BACKEND = "digest.mail.smtp.EmailBackend"  # what an smtp:// EMAIL_URL picks
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 10
    try:
        yield mailbox
    finally:
        controller.stop()
