"""An email backend that builds every message, as a real backend would, and drops it.

Django's dummy backend skips the MIME serialisation, and the locmem one keeps every
message in memory; this one does the serialisation work and keeps only counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend


@dataclass
class NullStats:
    messages: int = 0
    bytes: int = 0


STATS = NullStats()


class NullBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        for message in email_messages:
            # As Django's SMTP backend asks for them: CRLF line ends, as on the wire.
            STATS.bytes += len(message.message().as_bytes(linesep="\r\n"))  # type: ignore[call-arg]
            STATS.messages += 1
        return len(email_messages)
