"""The embedded email backend: one .eml file per message under var/outbox/.

Beside each .eml goes the HTML part as a .html file, to open in a browser. Unlike
Django's file backend (one log file per connection), every message is its own file, so a
newcomer can open each digest on its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class OutboxBackend(BaseEmailBackend):
    def __init__(self, fail_silently: bool = False, **kwargs: Any) -> None:
        super().__init__(fail_silently=fail_silently)
        self.directory = Path(kwargs.get("file_path") or settings.PAPERBOY_OUTBOX_DIR)

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        self.directory.mkdir(parents=True, exist_ok=True)
        sent = 0
        for message in email_messages:
            stem = self._file_stem(message)
            (self.directory / f"{stem}.eml").write_bytes(message.message().as_bytes())
            html = _html_part(message)
            if html is not None:
                (self.directory / f"{stem}.html").write_text(html, encoding="utf-8")
            sent += 1
        return sent

    def _file_stem(self, message: EmailMessage) -> str:
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        recipient = _UNSAFE.sub("_", (message.to or ["unknown"])[0].replace("@", "_at_"))
        stem = f"{stamp}-{recipient}"
        n = 1
        candidate = stem
        while (self.directory / f"{candidate}.eml").exists():
            n += 1
            candidate = f"{stem}-{n}"
        return candidate


def _html_part(message: EmailMessage) -> str | None:
    if isinstance(message, EmailMultiAlternatives):
        for content, mimetype in message.alternatives:
            if mimetype == "text/html":
                return str(content)
    return None
