"""Configuration from the environment: embedded defaults, production URLs, loud typos."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROBE = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'email': s.EMAIL_BACKEND, 'db': s.DATABASES['default']['ENGINE'], "
    "'eager': s.CELERY_TASK_ALWAYS_EAGER, 'broker': s.CELERY_BROKER_URL, "
    "'cache': s.CACHES['default']['BACKEND'], 'anymail': s.ANYMAIL, "
    "'host': getattr(s, 'EMAIL_HOST', None), 'port': getattr(s, 'EMAIL_PORT', None)}))"
)
CLEAN = ("DATABASE_URL", "REDIS_URL", "EMAIL_URL", "PAPERBOY_ESP", "DJANGO_DEBUG")


def load(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in CLEAN}
    base.update(DJANGO_SETTINGS_MODULE="paperboy.settings", PAPERBOY_VAR_DIR=str(tmp_path))
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**base, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def settings_with(tmp_path: Path, **env: str) -> dict[str, Any]:
    import json

    result = load(tmp_path, **env)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_no_environment_means_embedded_defaults(tmp_path: Path) -> None:
    s = settings_with(tmp_path)
    assert s["db"] == "django.db.backends.sqlite3"
    assert s["email"] == "digest.mail.outbox.OutboxBackend"
    assert s["eager"] is True and s["broker"] == "memory://"
    assert s["cache"].endswith("LocMemCache")


def test_production_urls(tmp_path: Path) -> None:
    s = settings_with(
        tmp_path,
        DATABASE_URL="postgres://paperboy:secret@db.internal:5432/paperboy",
        REDIS_URL="redis://cache.internal:6379/1",
        EMAIL_URL="smtp://mailer.internal:1025",
    )
    assert s["db"] == "django.db.backends.postgresql"
    assert s["broker"] == "redis://cache.internal:6379/1" and s["eager"] is False
    assert s["cache"].endswith("RedisCache")
    assert s["email"] == "digest.mail.smtp.EmailBackend"  # Django's, pipelined
    assert (s["host"], s["port"]) == ("mailer.internal", 1025)


@pytest.mark.parametrize(
    ("esp", "backend", "env", "setting"),
    [
        ("ses", "anymail.backends.amazon_ses.EmailBackend", {}, None),
        ("postmark", "anymail.backends.postmark.EmailBackend",
         {"POSTMARK_SERVER_TOKEN": "pm-token"}, ("POSTMARK_SERVER_TOKEN", "pm-token")),
        ("mailgun", "anymail.backends.mailgun.EmailBackend",
         {"MAILGUN_API_KEY": "mg-key"}, ("MAILGUN_API_KEY", "mg-key")),
        ("brevo", "anymail.backends.brevo.EmailBackend",
         {"BREVO_API_KEY": "bv-key"}, ("BREVO_API_KEY", "bv-key")),
    ],
)  # fmt: skip
def test_an_esp_is_chosen_by_env(
    tmp_path: Path, esp: str, backend: str, env: dict[str, str], setting: tuple[str, str] | None
) -> None:
    # The webhook's authentication, without which an ESP is refused (test_webhook_security).
    webhook = {"ANYMAIL_WEBHOOK_SECRET": "paperboy:test-secret"}
    if esp == "mailgun":
        webhook["MAILGUN_WEBHOOK_SIGNING_KEY"] = "key-test"
    s = settings_with(tmp_path, PAPERBOY_ESP=esp, **env, **webhook)
    assert s["email"] == backend
    if setting:
        assert s["anymail"][setting[0]] == setting[1]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DJANGO_DEBUG", "ture"),
        ("PAPERBOY_ARXIV_ENABLED", "yes please"),
        ("REDIS_URL", "127.0.0.1:6379"),
        ("PAPERBOY_HF_URL", "huggingface.co"),
        ("PAPERBOY_SITE_URL", "ftp://example.org"),
        ("PAPERBOY_SEND_HOUR", "25"),
        ("PAPERBOY_DEFAULT_TIMEZONE", "Mars/Olympus"),
        ("PAPERBOY_WEEKLY_WEEKDAY", "8"),
        ("PAPERBOY_ESP", "sendgird"),
    ],
)
def test_a_typo_is_an_error_at_start_up_naming_the_variable(
    tmp_path: Path, name: str, value: str
) -> None:
    result = load(tmp_path, **{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr
