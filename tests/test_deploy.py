"""The deployment's guards: secrets, HTTPS behind a proxy, client addresses, bad bodies,
error pages, the admin login throttle and the Content-Security-Policy."""

from __future__ import annotations

import logging
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from django.urls import path

from paperboy.client_ip import client_address
from paperboy.middleware import charset_problem
from paperboy.secret_key import secret_key_problem
from paperboy.settings import DEVELOPMENT_SECRET_KEY
from paperboy.urls import urlpatterns as site_urls

ROOT = Path(__file__).resolve().parent.parent
GOOD_KEY = secrets.token_urlsafe(50)
PRODUCTION = {
    "PAPERBOY_PRODUCTION": "1",
    "ALLOWED_HOSTS": "papers.example.org",
    "PAPERBOY_SITE_URL": "https://papers.example.org",
    "PAPERBOY_TRUSTED_PROXIES": "10.0.0.0/8",
}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """manage.py in a process of its own, under these settings (embedded database)."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL"}
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("", "is not set"),
        (DEVELOPMENT_SECRET_KEY, "is the development key"),
        ("change-me-to-a-long-random-string", "is a placeholder"),
        ("django-insecure-" + "x7" * 30, "is a placeholder"),
        ("short-but-random-Q9x", "is too short"),
    ],
)
def test_production_refuses_to_start_without_a_real_secret_key(key: str, why: str) -> None:
    done = manage("check", env=PRODUCTION | {"SECRET_KEY": key})
    assert done.returncode != 0
    assert f"SECRET_KEY {why}" in done.stderr
    assert "secrets.token_urlsafe" in done.stderr  # says how to make one


def test_check_deploy_is_clean_under_production_settings() -> None:
    done = manage(
        "check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION | {"SECRET_KEY": GOOD_KEY}
    )
    assert done.returncode == 0, done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout


def test_the_key_can_be_rotated_without_breaking_links_already_sent() -> None:
    """A token signed with the old key still opens once the old key is a fallback."""
    old = secrets.token_urlsafe(50)
    script = (
        "from django.core import signing;"
        "import sys;"
        "print(signing.dumps('reader-42', salt='t') if sys.argv[1] == 'make' else "
        "signing.loads(sys.argv[2], salt='t'))"
    )
    made = subprocess.run(
        [sys.executable, "-c", f"import django;django.setup();{script}", "make"],
        cwd=ROOT,
        env=os.environ
        | PRODUCTION
        | {"SECRET_KEY": old, "DJANGO_SETTINGS_MODULE": "paperboy.settings"},
        capture_output=True,
        text=True,
        check=True,
    )
    token = made.stdout.strip()
    rotated = os.environ | PRODUCTION | {"DJANGO_SETTINGS_MODULE": "paperboy.settings"}
    read = [sys.executable, "-c", f"import django;django.setup();{script}", "read", token]
    with_fallback = subprocess.run(
        read,
        cwd=ROOT,
        env=rotated | {"SECRET_KEY": GOOD_KEY, "SECRET_KEY_FALLBACKS": old},
        capture_output=True,
        text=True,
    )
    assert with_fallback.stdout.strip() == "reader-42", with_fallback.stderr
    without = subprocess.run(
        read, cwd=ROOT, env=rotated | {"SECRET_KEY": GOOD_KEY}, capture_output=True, text=True
    )
    assert without.returncode != 0 and "BadSignature" in without.stderr


def test_secret_key_problems() -> None:
    assert secret_key_problem(GOOD_KEY, development=DEVELOPMENT_SECRET_KEY) == ""
    assert secret_key_problem("a" * 60, development=DEVELOPMENT_SECRET_KEY).startswith(
        "is too short"
    )


# --- Behind a proxy ---------------------------------------------------------------------


def request(remote: str, forwarded: str = "") -> HttpRequest:
    extra: dict[str, Any] = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    return RequestFactory().get("/", REMOTE_ADDR=remote, **extra)


def test_the_client_address_is_what_a_trusted_proxy_says(settings: Any) -> None:
    settings.PAPERBOY_TRUSTED_PROXIES = ["10.0.0.0/8", "::1"]
    # Two clients behind the proxy are two clients, not one bucket.
    assert client_address(request("10.0.0.2", "198.51.100.7")) == "198.51.100.7"
    assert client_address(request("10.0.0.2", "198.51.100.8")) == "198.51.100.8"
    # A client cannot pick its address by sending the header itself: only the hop the
    # proxy appended is believed (and the proxies' own hops are peeled off).
    assert client_address(request("10.0.0.2", "203.0.113.1, 198.51.100.7")) == "198.51.100.7"
    assert client_address(request("10.0.0.2", "198.51.100.7, 10.0.0.9")) == "198.51.100.7"
    assert client_address(request("10.0.0.2", "garbage")) == "10.0.0.2"
    # Not from a proxy: the header is the client's own word, ignored.
    assert client_address(request("198.51.100.9", "203.0.113.1")) == "198.51.100.9"


def test_without_trusted_proxies_forwarded_headers_are_ignored(settings: Any) -> None:
    settings.PAPERBOY_TRUSTED_PROXIES = []
    assert client_address(request("10.0.0.2", "198.51.100.7")) == "10.0.0.2"


def _scheme(request: HttpRequest) -> HttpResponse:
    return HttpResponse("https" if request.is_secure() else "http")


urlpatterns = [path("scheme", _scheme), *site_urls]


@pytest.mark.urls("tests.test_deploy")
def test_only_a_trusted_proxy_can_say_the_request_was_https(settings: Any, client: Client) -> None:
    settings.PAPERBOY_TRUSTED_PROXIES = ["10.0.0.0/8"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    proto: dict[str, Any] = {"HTTP_X_FORWARDED_PROTO": "https"}
    assert client.get("/scheme", REMOTE_ADDR="10.0.0.2", **proto).content == b"https"
    assert client.get("/scheme", REMOTE_ADDR="198.51.100.9", **proto).content == b"http"


# --- Bodies nobody can read, and errors -----------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("charset", ["utf-16", "utf-32", "no-such-charset"])
def test_a_form_in_an_unreadable_charset_gets_400_not_500(client: Client, charset: str) -> None:
    body = "email=a%40example.org".encode("utf-16" if charset == "utf-16" else "ascii")
    response = client.generic(
        "POST", "/", body, content_type=f"application/x-www-form-urlencoded; charset={charset}"
    )
    assert response.status_code == 400
    assert "UTF-8" in response.content.decode()


def test_charsets_we_can_read() -> None:
    assert charset_problem("application/x-www-form-urlencoded") == ""
    assert charset_problem("text/plain; charset=UTF-8") == ""
    assert charset_problem('multipart/form-data; boundary=x; charset="latin1"') == ""


def _broken(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug in a view")


urlpatterns.append(path("broken", _broken))


@pytest.mark.django_db
@pytest.mark.urls("tests.test_deploy")
def test_a_500_says_sorry_and_logs_the_traceback(caplog: pytest.LogCaptureFixture) -> None:
    client = Client(raise_request_exception=False)
    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = client.get("/broken")
    assert response.status_code == 500
    page = response.content.decode()
    assert "something went wrong on our side" in page and "a bug in Paperboy" in page
    assert "RuntimeError" not in page  # no internals shown
    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert record.exc_info is not None and "a bug in a view" in str(record.exc_info[1])


def test_the_log_has_a_handler_for_request_errors(settings: Any) -> None:
    assert settings.LOGGING["loggers"]["django.request"]["handlers"] == ["console"]


@pytest.mark.django_db
def test_an_unknown_page_is_a_friendly_404(client: Client) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "There’s nothing here" in response.content.decode()


# --- Admin login throttle, CSP ------------------------------------------------------------


@pytest.mark.django_db
def test_admin_login_is_throttled_per_client(client: Client, django_user_model: Any) -> None:
    django_user_model.objects.create_superuser("op", "op@example.org", "right-password-123")
    wrong = {"username": "op", "password": "wrong"}
    for _ in range(4):
        response = client.post("/admin/login/", wrong, REMOTE_ADDR="198.51.100.20")
        assert response.status_code == 200  # the form again, with its error
    fifth = client.post("/admin/login/", wrong, REMOTE_ADDR="198.51.100.20")
    assert fifth.status_code == 429  # the fifth wrong password locks the client out
    right = {"username": "op", "password": "right-password-123"}
    locked = client.post("/admin/login/", right, REMOTE_ADDR="198.51.100.20")
    assert locked.status_code == 429  # even the right password waits out the lockout
    # Someone else (the operator, from elsewhere) is not locked out by that stranger.
    elsewhere = Client().post("/admin/login/", right, REMOTE_ADDR="198.51.100.21")
    assert elsewhere.status_code == 302


@pytest.mark.django_db
def test_every_page_has_a_content_security_policy(client: Client) -> None:
    response = client.get("/")
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce is not None
    scripts = re.findall(r"<script([^>]*)>", response.content.decode())
    assert scripts and all(f'nonce="{nonce.group(1)}"' in attrs for attrs in scripts)
    assert "Content-Security-Policy" in client.get("/papers/")
