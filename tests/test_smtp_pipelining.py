"""The SMTP backend pipelines the envelope (RFC 2920) with a server that offers it, and
answers every refusal as smtplib's own exchange would: real SMTP over loopback."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from django.core.mail import EmailMessage

from digest.mail.smtp import EmailBackend
from tests.smtp_server import _free_port


@dataclass
class Scripted:
    """An SMTP server that accepts everything unless told otherwise, per stage."""

    pipelining: bool = True
    mail: list[str] = field(default_factory=list)  # answers to give MAIL, in turn
    rcpt: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)  # answers after the content
    received: list[bytes] = field(default_factory=list)
    sessions: int = 0

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: Any
    ) -> list[str]:
        self.sessions += 1
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return list(responses)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.mail:
            return self.mail.pop(0)
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.rcpt:
            return self.rcpt.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data:
            return self.data.pop(0)
        content = envelope.original_content
        assert isinstance(content, bytes)
        self.received.append(content)
        return "250 OK"


@pytest.fixture
def server() -> Iterator[Scripted]:
    handler = Scripted()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    handler.port = controller.port  # type: ignore[attr-defined]
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every write the client makes: one per round trip it waits on."""
    written: list[bytes] = []
    original = smtplib.SMTP.send

    def send(self: smtplib.SMTP, data: Any) -> None:
        written.append(data if isinstance(data, bytes) else str(data).encode())
        original(self, data)

    monkeypatch.setattr(smtplib.SMTP, "send", send)
    return written


def backend(server: Scripted) -> EmailBackend:
    connection = EmailBackend(host="127.0.0.1", port=server.port, timeout=5)  # type: ignore[attr-defined]
    connection.open()
    return connection


def message(n: int, body: str = "Hello.\n") -> EmailMessage:
    return EmailMessage(f"Digest {n}", body, "paperboy@example.org", [f"reader{n}@example.org"])


def test_a_message_takes_two_writes_and_arrives_whole(server: Scripted, sends: list[bytes]) -> None:
    connection = backend(server)
    body = ".A line that starts with a dot\n..and two\nÜnïcode ✓\n"
    for n in range(20):
        assert connection.send_messages([message(n, body)]) == 1
    connection.close()
    # EHLO, then the envelope and the content of each message, then QUIT.
    assert len(sends) == 1 + 2 * 20 + 1
    sends.pop(0)
    assert sends[0].startswith(b"MAIL FROM:<paperboy@example.org> SIZE=")
    assert sends[0].endswith(b"\r\nRCPT TO:<reader0@example.org>\r\nDATA\r\n")
    assert len(server.received) == 20 and server.sessions == 1
    # The dots the client doubled are single again: the body is as written.
    assert server.received[0].split(b"\r\n\r\n", 1)[1] == body.replace("\n", "\r\n").encode()


def test_without_pipelining_it_is_smtplibs_exchange(server: Scripted, sends: list[bytes]) -> None:
    server.pipelining = False
    connection = backend(server)
    assert connection.send_messages([message(1)]) == 1
    commands = [s.split(b" ")[0].split(b":")[0].strip().lower() for s in sends[:4]]
    assert commands == [b"ehlo", b"mail", b"rcpt", b"data"]
    assert len(server.received) == 1


@pytest.mark.parametrize(
    ("stage", "answer", "error"),
    [
        ("mail", "451 4.3.0 try later", smtplib.SMTPSenderRefused),
        ("rcpt", "550 5.1.1 no such user", smtplib.SMTPRecipientsRefused),
        ("data", "554 5.7.1 refused", smtplib.SMTPDataError),
    ],
)
def test_a_refusal_raises_as_smtplib_does_and_the_connection_goes_on(
    server: Scripted, stage: str, answer: str, error: type[Exception]
) -> None:
    getattr(server, stage).append(answer)
    connection = backend(server)
    with pytest.raises(error) as raised:
        connection.send_messages([message(1)])
    assert str(int(answer[:3])) in str(raised.value)
    assert connection.send_messages([message(2)]) == 1  # same connection, reset
    assert server.sessions == 1 and len(server.received) == 1


@pytest.mark.parametrize("stage", ["mail", "rcpt"])
def test_a_421_closes_the_connection(server: Scripted, stage: str) -> None:
    getattr(server, stage).append("421 4.3.2 shutting down")
    connection = backend(server)
    with pytest.raises((smtplib.SMTPSenderRefused, smtplib.SMTPRecipientsRefused)) as raised:
        connection.send_messages([message(1)])
    assert "421" in str(raised.value)
    assert connection.connection is not None and connection.connection.sock is None
