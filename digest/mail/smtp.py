"""Django's SMTP backend, with the envelope pipelined (RFC 2920) where the server offers it.

smtplib waits for the server's answer to each command: MAIL FROM, RCPT TO, DATA, then the
message: four round trips a message, each a wake-up of the connection's thread and a turn
of the GIL against the renderer. A server that advertises PIPELINING takes MAIL, RCPT and
DATA in one write, so a message costs two round trips: the envelope, then the content.
Everything else (connecting, TLS, login, the answers to errors) is Django's and smtplib's;
a server without PIPELINING gets smtplib's own exchange.
"""

from __future__ import annotations

import contextlib
import smtplib
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends import smtp
from django.core.mail.message import sanitize_address

from .mime import header_address, is_plain_address

CRLF = b"\r\n"


class EmailBackend(smtp.EmailBackend):
    """Use as EMAIL_BACKEND (settings pick it for an smtp:// EMAIL_URL)."""

    def _send(self, email_message: EmailMessage) -> bool:
        connection = self.connection
        if connection is None or not email_message.recipients():
            return False
        connection.ehlo_or_helo_if_needed()
        if not connection.has_extn("pipelining"):
            return bool(super()._send(email_message))  # type: ignore[misc]  # not in the stubs
        encoding = email_message.encoding or settings.DEFAULT_CHARSET
        address = header_address if encoding.lower() == "utf-8" else _sanitizer(encoding)
        sender = address(email_message.from_email)
        recipients = [address(a) for a in email_message.recipients()]
        # Django's MIME classes take linesep, as its own backend passes it.
        mime: Any = email_message.message()
        data: bytes = mime.as_bytes(linesep="\r\n")
        try:
            send_pipelined(connection, sender, recipients, data)
        except smtplib.SMTPException:
            if not self.fail_silently:
                raise
            return False
        return True


def send_pipelined(
    connection: smtplib.SMTP, sender: str, recipients: Sequence[str], data: bytes
) -> None:
    """One message in two round trips; raises what smtplib.SMTP.sendmail raises, and
    leaves the connection as it would (reset after a refusal, closed after a 421)."""
    size = f" SIZE={len(data)}" if connection.has_extn("size") else ""
    envelope = [f"MAIL FROM:{_quoted(sender)}{size}"]
    envelope += [f"RCPT TO:{_quoted(r)}" for r in recipients]
    envelope.append("DATA")
    connection.send(("\r\n".join(envelope) + "\r\n").encode("ascii"))

    # One answer per command, in order; a 421 means the server is closing, so nothing
    # more will come.
    answers: list[tuple[int, bytes]] = []
    while len(answers) < len(envelope):
        answers.append(connection.getreply())
        if answers[-1][0] == 421:
            break
    mail, rcpts, started = answers[0], answers[1 : len(recipients) + 1], answers[-1]
    if mail[0] != 250:
        _end_data(connection, started)
        _give_up(connection, mail[0])
        raise smtplib.SMTPSenderRefused(mail[0], mail[1], sender)
    refused = {r: a for r, a in zip(recipients, rcpts, strict=False) if a[0] not in (250, 251)}
    if len(rcpts) < len(recipients) or len(refused) == len(recipients):
        _end_data(connection, started)
        _give_up(connection, max(code for code, _ in refused.values()))
        raise smtplib.SMTPRecipientsRefused(refused)
    if started[0] != 354:
        _give_up(connection, started[0])
        raise smtplib.SMTPDataError(*started)

    connection.send(_content(data))
    done = connection.getreply()
    if done[0] != 250:
        _give_up(connection, done[0])
        raise smtplib.SMTPDataError(*done)


def _quoted(address: str) -> str:
    # smtplib.quoteaddr parses the address again; a plain one is its own answer.
    return f"<{address}>" if is_plain_address(address) else smtplib.quoteaddr(address)


def _sanitizer(encoding: str) -> Callable[[str], str]:
    return lambda address: sanitize_address(address, encoding)


def _content(data: bytes) -> bytes:
    """The message as DATA sends it: dots doubled, CRLF-ended, then the lone dot."""
    # Every line but the first follows a LF. (Not rare: an HTML part's CSS has lines
    # that start with ".".)
    data = data.replace(b"\n.", b"\n..")
    if data.startswith(b"."):
        data = b"." + data
    if not data.endswith(CRLF):
        data += CRLF
    return data + b"." + CRLF


def _end_data(connection: smtplib.SMTP, started: tuple[int, bytes]) -> None:
    """After a refused envelope the server should refuse DATA too; one that let it
    through is given an empty message, which it must refuse for want of a sender or of
    recipients."""
    if started[0] == 354:
        connection.send(b"." + CRLF)
        connection.getreply()


def _give_up(connection: smtplib.SMTP, code: int) -> None:
    # As sendmail: a 421 means the server is closing the connection; anything else is
    # reset so that the connection can take the next message.
    if code == 421:
        connection.close()
    else:
        with contextlib.suppress(smtplib.SMTPServerDisconnected):
            connection.rset()
