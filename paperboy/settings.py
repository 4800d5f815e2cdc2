"""Paperboy settings: one file, driven by environment variables.

With no environment set, Paperboy runs on embedded defaults: SQLite under var/, no broker
(Celery tasks run in-process), and every email written as an .eml file under var/outbox/.
Production sets DATABASE_URL, REDIS_URL and EMAIL_URL (or PAPERBOY_ESP).

The env helpers are strict on purpose: a typo in a boolean, URL or number is an error at
start-up, never a silent fallback to a default.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
import dj_email_url
import django_stubs_ext
from celery.schedules import crontab
from csp.constants import NONCE
from django.core.exceptions import ImproperlyConfigured

from paperboy.secret_key import secret_key_problem

# Lets admin.ModelAdmin[Model] and friends be subscripted at run time, for typing.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PAPERBOY_VAR_DIR", BASE_DIR / "var"))

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use one of 1/0, true/false).")


def env_int(name: str, default: int, *, low: int, high: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    if not low <= value <= high:
        raise ImproperlyConfigured(f"{name}={value} is outside {low}..{high}.")
    return value


def env_url(name: str, default: str, *, schemes: tuple[str, ...]) -> str:
    raw = os.environ.get(name)
    value = default if raw is None or raw.strip() == "" else raw.strip()
    if not value:
        return value
    parts = urlsplit(value)
    if parts.scheme not in schemes or not (parts.netloc or parts.path):
        raise ImproperlyConfigured(f"{name}={value!r} is not a URL of scheme {'/'.join(schemes)}.")
    return value.rstrip("/")


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", default=False)
# A deployment (the Docker image sets it): real secrets required, HTTPS only. Without it
# Paperboy runs embedded (the demo, the tests) on a development key over plain HTTP.
PAPERBOY_PRODUCTION = env_bool("PAPERBOY_PRODUCTION", default=False)
DEVELOPMENT_SECRET_KEY = "paperboy-development-key-not-for-production"
SECRET_KEY = env_str("SECRET_KEY") or env_str("DJANGO_SECRET_KEY")
# Keys used before the current one: links in emails already sent (signed with an old key)
# keep working while it is listed here, so a key can be rotated without breaking them.
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", [])
if PAPERBOY_PRODUCTION:
    _problem = secret_key_problem(SECRET_KEY, development=DEVELOPMENT_SECRET_KEY)
    if _problem:
        raise ImproperlyConfigured(
            f"SECRET_KEY {_problem}. Production (PAPERBOY_PRODUCTION=1) needs a long random "
            "key of its own, e.g. from: "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
elif not SECRET_KEY:
    # Embedded mode only. Tokens in already-sent emails stay valid while the key stays.
    SECRET_KEY = DEVELOPMENT_SECRET_KEY
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])

# The reverse proxies in front of the site (addresses or networks, comma-separated), e.g.
# "127.0.0.1,10.0.0.0/8". Their X-Forwarded-For names the client for rate limits, and
# their X-Forwarded-Proto says whether the client came over HTTPS. Empty: no proxy, both
# headers are ignored.
PAPERBOY_TRUSTED_PROXIES = env_list("PAPERBOY_TRUSTED_PROXIES", [])
for _proxy in PAPERBOY_TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"PAPERBOY_TRUSTED_PROXIES: {_proxy!r} is not an address or network."
        ) from None

# The absolute base of every link in an email (the site as subscribers reach it).
SITE_URL = env_url("PAPERBOY_SITE_URL", "http://localhost:8000", schemes=("http", "https"))
CSRF_TRUSTED_ORIGINS = [SITE_URL] if SITE_URL.startswith("https://") else []

# --- HTTPS, cookies, headers: on in production, each can be turned off by env --------------
# Behind a trusted proxy, its X-Forwarded-Proto says whether the client came over HTTPS
# (paperboy.middleware drops the header from anyone else, so it cannot be forged).
if PAPERBOY_TRUSTED_PROXIES:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("PAPERBOY_SSL_REDIRECT", default=PAPERBOY_PRODUCTION)
# A load balancer's health probe may come over plain HTTP and not follow a redirect.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = env_bool("PAPERBOY_SECURE_COOKIES", default=PAPERBOY_PRODUCTION)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# A year once proved; lower it (e.g. 3600) while trying HTTPS out on a new domain.
SECURE_HSTS_SECONDS = env_int(
    "PAPERBOY_HSTS_SECONDS", 31_536_000 if PAPERBOY_PRODUCTION else 0, low=0, high=63_072_000
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("PAPERBOY_HSTS_SUBDOMAINS", default=True)
# Only consent to the browsers' preload list; the domain is listed when its owner asks.
SECURE_HSTS_PRELOAD = env_bool("PAPERBOY_HSTS_PRELOAD", default=True)
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "anymail",
    "axes",
    "csp",
    # Lowest first: digest reads subscriptions; pages use both (pages/__init__.py).
    "subscriptions",
    "digest",
    "pages",
]

MIDDLEWARE = [
    # First: forwarded headers from anyone but our proxies are dropped before anything
    # (the HTTPS redirect, rate limits) reads them; a body no one can decode is refused.
    "paperboy.middleware.UntrustedForwardingMiddleware",
    "paperboy.middleware.RejectUndecodableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves the admin's static files from gunicorn: no separate web server needed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it counts failed admin logins.
    "axes.middleware.AxesMiddleware",
]

# --- Admin login throttle (django-axes) --------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Five wrong passwords from one client lock that client out of the admin login for an
# hour; a right one resets the count. The client is who our proxies say it is.
AXES_FAILURE_LIMIT = env_int("PAPERBOY_ADMIN_LOGIN_FAILURES", 5, low=1, high=100)
AXES_COOLOFF_TIME = env_int("PAPERBOY_ADMIN_LOCKOUT_HOURS", 1, low=1, high=720)
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
AXES_CLIENT_IP_CALLABLE = "paperboy.client_ip.client_address"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False

# --- Content-Security-Policy (django-csp) on every page ----------------------------------
# Scripts only from us or inline with the page's nonce; scraped text is escaped anyway, and
# this is the second wall. Inline styles stay allowed: the pages carry their CSS inline.
# The digest's browser view sets a stricter policy of its own (no scripts at all).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", NONCE],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "https:", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

ROOT_URLCONF = "paperboy.urls"
WSGI_APPLICATION = "paperboy.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
# SQLite: waiting on a lock beats failing, as the demo and a worker may write at once. WAL
# lets the site read while a run writes, and with synchronous=NORMAL a commit does not
# wait for the disk: sending is about a third faster. A transaction takes the write lock
# when it begins (IMMEDIATE): one that read first and wrote later could not wait for
# another writer, only fail with "database is locked" (two processes matching at once).
SQLITE_OPTIONS = {
    "timeout": 20,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "transaction_mode": "IMMEDIATE",
}
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    try:
        DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
        if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
            # No JIT: our queries are short, but a run's INSERT … SELECT over thousands of
            # subscribers is estimated dear enough to be compiled, which took 200 ms of 250.
            _options = DATABASES["default"].setdefault("OPTIONS", {})
            _options["options"] = f"{_options.get('options', '')} -c jit=off".strip()
        elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
            DATABASES["default"].setdefault("OPTIONS", {}).update(SQLITE_OPTIONS)
    except Exception as exc:  # dj-database-url raises plain ValueError/KeyError
        raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from None
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "paperboy.sqlite3"),
            "OPTIONS": dict(SQLITE_OPTIONS),
            # A file, not memory, so a Celery worker process started by a test shares it;
            # one per test run, so two runs at once do not share it.
            "TEST": {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: Celery broker and Django cache ----------------------------------------------
REDIS_URL = env_url("REDIS_URL", "", schemes=("redis", "rediss", "unix"))
# Put before every key Paperboy writes (queues and cache), so that two deployments, or a
# test run, can share one Redis database and each clean up only its own keys.
PAPERBOY_REDIS_PREFIX = env_str("PAPERBOY_REDIS_PREFIX")
if REDIS_URL:
    CACHES: dict[str, dict[str, Any]] = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": PAPERBOY_REDIS_PREFIX,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
# Without a broker every task runs in the calling process, so the embedded mode needs no
# worker; with Redis they go to the queue.
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Redis redelivers a task that stays unacknowledged this long; sends take seconds, so an
# hour is long enough not to redeliver a task that is merely slow. Tasks are idempotent
# anyway: the database rows say what is owed.
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {"visibility_timeout": 3600}
if PAPERBOY_REDIS_PREFIX:
    CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = PAPERBOY_REDIS_PREFIX
CELERY_TIMEZONE = "UTC"

# --- The runs ---------------------------------------------------------------------------
# Beat runs the cycle every hour at this minute past.
PAPERBOY_RUN_MINUTE = env_int("PAPERBOY_RUN_MINUTE", 0, low=0, high=59)


def env_timezone(name: str, default: str) -> str:
    import zoneinfo

    value = env_str(name, default).strip() or default
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(f"{name}={value!r} is not an IANA time zone.") from None
    return value


# A subscriber who chose nothing gets the digest at this hour in this time zone; each subscriber
# may pick their own on the signup form or the manage page.
PAPERBOY_SEND_HOUR = env_int("PAPERBOY_SEND_HOUR", 7, low=0, high=23)
PAPERBOY_DEFAULT_TIMEZONE = env_timezone("PAPERBOY_DEFAULT_TIMEZONE", "UTC")
# Weekly subscribers who chose no weekday get their digest on this ISO weekday (1 = Monday).
PAPERBOY_WEEKLY_WEEKDAY = env_int("PAPERBOY_WEEKLY_WEEKDAY", 1, low=1, high=7)
# Each run scrapes this many listing days back (today included): Hugging Face keeps
# adding papers to a day for hours, and upvotes grow for days.
PAPERBOY_SCRAPE_DAYS = env_int("PAPERBOY_SCRAPE_DAYS", 3, low=1, high=30)
# A replay of one day (`run_daily --date`) also refreshes the upvotes of this many days
# before it.
PAPERBOY_REFRESH_DAYS = env_int("PAPERBOY_REFRESH_DAYS", 3, low=0, high=30)
# The oldest paper a digest may carry, however long the subscriber was away (paused, a long
# outage): a returning subscriber gets the best of the last fortnight, not of a year.
PAPERBOY_MAX_WINDOW_DAYS = env_int("PAPERBOY_MAX_WINDOW_DAYS", 14, low=1, high=90)
# "My topics plus the top few trending": how many trending papers join the topics' ones.
PAPERBOY_TRENDING_EXTRA = env_int("PAPERBOY_TRENDING_EXTRA", 3, low=1, high=10)
# Processes that score subscribers in parallel while matching (forked from the run; 1 = in
# the run's own process). Matching is CPU-bound: up to one per core.
PAPERBOY_MATCH_PROCESSES = env_int(
    "PAPERBOY_MATCH_PROCESSES", min(os.cpu_count() or 1, 4), low=1, high=64
)
# Celery matches a run in chunks: enough of them (two each) for this many worker processes
# to share the work; set it to your workers' processes in all (compose runs one worker of
# two). More chunks than that only add each chunk's fixed queries.
PAPERBOY_MATCH_TASK_PROCESSES = env_int("PAPERBOY_MATCH_TASK_PROCESSES", 2, low=1, high=1024)
# A run's deliveries still unmatched this long after planning lost their matching task
# (its worker died): the sweep queues them again. Above a large run's matching time.
PAPERBOY_MATCH_LOST_SECONDS = env_int("PAPERBOY_MATCH_LOST_SECONDS", 900, low=60, high=86400)
PAPERBOY_MAX_SEND_ATTEMPTS = env_int("PAPERBOY_MAX_SEND_ATTEMPTS", 5, low=1, high=20)
# A transient failure is retried after this long, doubled at each attempt: a minute lets a
# greylisting server (usually 1–5 minutes) accept the second try.
PAPERBOY_RETRY_FIRST_SECONDS = env_int("PAPERBOY_RETRY_FIRST_SECONDS", 60, low=1, high=3600)
# … and never waits longer than this, so five attempts fit in about an hour of trouble.
PAPERBOY_RETRY_MAX_SECONDS = env_int("PAPERBOY_RETRY_MAX_SECONDS", 1800, low=1, high=86400)

# --- Sending (digest/mail/sending.py, digest/mail/leases.py) -----------------------------
# Deliveries a sender claims at once: a few queries serve the whole batch, and it is small
# enough that the batch's lease is renewed often.
PAPERBOY_SEND_BATCH = env_int("PAPERBOY_SEND_BATCH", 500, low=1, high=10_000)
# Outcomes are written every this many messages: a crash resends at most these.
PAPERBOY_SEND_RECORD_EVERY = env_int("PAPERBOY_SEND_RECORD_EVERY", 100, low=1, high=10_000)
# A claim lapses this long after its sender last renewed it (every third of it): long
# enough for a slow SMTP answer, short enough that a dead worker's digests go out again
# within lease + sweep < 2 minutes.
PAPERBOY_SEND_LEASE_SECONDS = env_int("PAPERBOY_SEND_LEASE_SECONDS", 60, low=10, high=3600)
# How often the beat frees lapsed leases and starts senders for what is owed.
PAPERBOY_SEND_SWEEP_SECONDS = env_int("PAPERBOY_SEND_SWEEP_SECONDS", 30, low=5, high=3600)
# Drains a run starts: one per worker process is enough to keep every process busy.
PAPERBOY_SEND_TASKS = env_int("PAPERBOY_SEND_TASKS", 4, low=1, high=256)
# A drain hands over to a fresh task after this long, so no task runs for an hour (and
# Redis's visibility timeout never re-delivers a live one).
PAPERBOY_SEND_TASK_SECONDS = env_int("PAPERBOY_SEND_TASK_SECONDS", 300, low=10, high=3000)
# Connections each sender keeps open to the email server, each on its own thread: SMTP
# waits on round trips, so several keep one renderer busy (digest/mail/connections.py).
# On make bench-smtp 8 sent about a tenth more than 4, and 16 no more than 8.
PAPERBOY_SEND_CONNECTIONS = env_int("PAPERBOY_SEND_CONNECTIONS", 8, low=1, high=64)
# With Mailgun or Brevo, digests alike apart from the subscriber's links go as one API call
# (digest/mail/esp_batch.py); false: one call per digest, as with the other ESPs.
PAPERBOY_ESP_BATCH = env_bool("PAPERBOY_ESP_BATCH", True)
# Messages per second to the email provider, all workers together (digest/mail/rate.py);
# 0 = no limit, the default: only the account's ESP knows its cap (SES sandbox: 1).
PAPERBOY_SEND_RATE = env_int("PAPERBOY_SEND_RATE", 0, low=0, high=100_000)
# The bucket: sends that may go at once after a quiet spell; 50 lets a small run out at
# once, yet is no spike an ESP throttles.
PAPERBOY_SEND_BURST = env_int("PAPERBOY_SEND_BURST", 50, low=1, high=100_000)

CELERY_BEAT_SCHEDULE = {
    # Every hour: scrape the last listing days, then plan, match and send every digest
    # owed by now (each subscriber has their own hour; a run missed catches up at the next).
    "hourly-run": {
        "task": "digest.tasks.run_daily_task",
        "schedule": crontab(minute=PAPERBOY_RUN_MINUTE),
    },
    # Frees the leases of dead senders and starts senders for whatever is owed.
    "sweep-sends": {
        "task": "digest.tasks.sweep_sends_task",
        "schedule": float(PAPERBOY_SEND_SWEEP_SECONDS),
    },
    # ESP events whose task was lost (a broker outage) are applied by this sweep.
    "process-pending-email-events": {
        "task": "subscriptions.tasks.process_pending_email_events_task",
        "schedule": crontab(minute="*/15"),
    },
}

# Soft bounces in a row (no delivery between) that suppress an address.
PAPERBOY_SOFT_BOUNCE_LIMIT = env_int("PAPERBOY_SOFT_BOUNCE_LIMIT", 3, low=1, high=20)
# A signup form submitted faster than this is a bot's.
PAPERBOY_SIGNUP_MIN_SECONDS = env_int("PAPERBOY_SIGNUP_MIN_SECONDS", 2, low=0, high=60)

# --- Sources ----------------------------------------------------------------------------
PAPERBOY_HF_URL = env_url("PAPERBOY_HF_URL", "https://huggingface.co", schemes=("http", "https"))
PAPERBOY_ARXIV_URL = env_url(
    "PAPERBOY_ARXIV_URL", "http://export.arxiv.org", schemes=("http", "https")
)
PAPERBOY_ARXIV_ENABLED = env_bool("PAPERBOY_ARXIV_ENABLED", default=False)
PAPERBOY_ARXIV_CATEGORIES = env_list(
    "PAPERBOY_ARXIV_CATEGORIES", ["cs.CL", "cs.LG", "cs.CV", "cs.AI"]
)
# arXiv asks for at most one request every 3 seconds.
PAPERBOY_ARXIV_DELAY_S = float(env_int("PAPERBOY_ARXIV_DELAY_MS", 3000, low=0, high=60_000)) / 1000
PAPERBOY_HTTP_TIMEOUT_S = float(env_int("PAPERBOY_HTTP_TIMEOUT_S", 20, low=1, high=300))
PAPERBOY_HTTP_RETRIES = env_int("PAPERBOY_HTTP_RETRIES", 2, low=0, high=10)
PAPERBOY_HTTP_BACKOFF_S = float(env_int("PAPERBOY_HTTP_BACKOFF_MS", 500, low=0, high=60_000)) / 1000
# Each request's overall deadline (retries included) and body cap, per source: the timeout
# above bounds each read only, so a server sending a byte a second could hold a run for
# ever. HF's day page is ~1 MB and its API pages much less; an arXiv page of 200 entries
# is ~0.5 MB, and its API is slow.
PAPERBOY_HF_DEADLINE_S = float(env_int("PAPERBOY_HF_DEADLINE_S", 60, low=1, high=3600))
PAPERBOY_HF_MAX_BYTES = env_int("PAPERBOY_HF_MAX_BYTES", 20_000_000, low=10_000, high=10**9)
PAPERBOY_ARXIV_DEADLINE_S = float(env_int("PAPERBOY_ARXIV_DEADLINE_S", 120, low=1, high=3600))
PAPERBOY_ARXIV_MAX_BYTES = env_int("PAPERBOY_ARXIV_MAX_BYTES", 20_000_000, low=10_000, high=10**9)

# --- Email ------------------------------------------------------------------------------
PAPERBOY_FROM_EMAIL = env_str("PAPERBOY_FROM_EMAIL", "Paperboy <paperboy@localhost>")
DEFAULT_FROM_EMAIL = PAPERBOY_FROM_EMAIL
SERVER_EMAIL = PAPERBOY_FROM_EMAIL
PAPERBOY_LIST_ID = env_str("PAPERBOY_LIST_ID", "Paperboy daily papers <daily.paperboy.localhost>")
PAPERBOY_OUTBOX_DIR = VAR_DIR / "outbox"

ANYMAIL: dict[str, Any] = {}
_ESP_BACKENDS = {
    "ses": "anymail.backends.amazon_ses.EmailBackend",
    "postmark": "anymail.backends.postmark.EmailBackend",
    "mailgun": "anymail.backends.mailgun.EmailBackend",
    "brevo": "anymail.backends.brevo.EmailBackend",
}
PAPERBOY_ESP = env_str("PAPERBOY_ESP").strip().lower()
EMAIL_URL = env_str("EMAIL_URL")
if PAPERBOY_ESP:
    if PAPERBOY_ESP not in _ESP_BACKENDS:
        raise ImproperlyConfigured(
            f"PAPERBOY_ESP={PAPERBOY_ESP!r} is not one of {', '.join(sorted(_ESP_BACKENDS))}."
        )
    EMAIL_BACKEND = _ESP_BACKENDS[PAPERBOY_ESP]
    # Each ESP's credentials, read from env under the names its own docs use.
    _esp_env = {
        "postmark": {"POSTMARK_SERVER_TOKEN": "POSTMARK_SERVER_TOKEN"},
        "mailgun": {
            "MAILGUN_API_KEY": "MAILGUN_API_KEY",
            "MAILGUN_SENDER_DOMAIN": "MAILGUN_SENDER_DOMAIN",
            "MAILGUN_API_URL": "MAILGUN_API_URL",
            "MAILGUN_WEBHOOK_SIGNING_KEY": "MAILGUN_WEBHOOK_SIGNING_KEY",
        },
        "brevo": {"BREVO_API_KEY": "BREVO_API_KEY"},
        # Amazon SES takes AWS credentials from boto3's usual env (AWS_ACCESS_KEY_ID, ...).
        "ses": {"AMAZON_SES_CONFIGURATION_SET_NAME": "AMAZON_SES_CONFIGURATION_SET_NAME"},
    }[PAPERBOY_ESP]
    for setting, var in _esp_env.items():
        if os.environ.get(var):
            ANYMAIL[setting] = os.environ[var]
elif EMAIL_URL:
    try:
        _email = dj_email_url.parse(EMAIL_URL)
    except Exception as exc:
        raise ImproperlyConfigured(f"EMAIL_URL={EMAIL_URL!r} is not an email URL: {exc}") from None
    EMAIL_BACKEND = _email["EMAIL_BACKEND"]
    if EMAIL_BACKEND == "django.core.mail.backends.smtp.EmailBackend":
        # Django's, with the envelope pipelined where the server offers it (RFC 2920):
        # two round trips a message instead of four (digest/mail/smtp.py).
        EMAIL_BACKEND = "digest.mail.smtp.EmailBackend"
    EMAIL_HOST = _email["EMAIL_HOST"]
    EMAIL_PORT = _email["EMAIL_PORT"]
    EMAIL_HOST_USER = _email["EMAIL_HOST_USER"]
    EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_PASSWORD"]
    EMAIL_USE_TLS = _email["EMAIL_USE_TLS"]
    EMAIL_USE_SSL = _email["EMAIL_USE_SSL"]
    EMAIL_TIMEOUT = 30
else:
    EMAIL_BACKEND = "digest.mail.outbox.OutboxBackend"
    EMAIL_FILE_PATH = str(PAPERBOY_OUTBOX_DIR)

# The ESP's tracking webhook (subscriptions/webhooks.py) must tell the ESP from a forger,
# who could otherwise suppress any address with one POST. Anymail's ways, per ESP: Mailgun
# signs every post (MAILGUN_WEBHOOK_SIGNING_KEY); Postmark, Brevo and Amazon SNS can only
# send the basic auth ANYMAIL_WEBHOOK_SECRET ("user:password") written into the webhook
# URL. Without it only development (DEBUG, not PAPERBOY_PRODUCTION) starts, and the
# webhook then refuses everything.
ANYMAIL_WEBHOOK_SECRET = env_str("ANYMAIL_WEBHOOK_SECRET").strip()
_ESP_WEBHOOK_PATHS = {
    "ses": "amazon_ses/tracking/",
    "postmark": "postmark/tracking/",
    "mailgun": "mailgun/tracking/",
    "brevo": "brevo/tracking/",
}
if ANYMAIL_WEBHOOK_SECRET:
    _user, _colon, _password = ANYMAIL_WEBHOOK_SECRET.partition(":")
    if not (_user and _colon and _password):
        raise ImproperlyConfigured(
            "ANYMAIL_WEBHOOK_SECRET is not of the form 'user:password' (two random strings "
            "joined by a colon), the basic auth the ESP sends to its webhook."
        )
    ANYMAIL["WEBHOOK_SECRET"] = ANYMAIL_WEBHOOK_SECRET
if PAPERBOY_ESP and (PAPERBOY_PRODUCTION or not DEBUG):
    if PAPERBOY_ESP == "mailgun" and not ANYMAIL.get("MAILGUN_WEBHOOK_SIGNING_KEY"):
        raise ImproperlyConfigured(
            "PAPERBOY_ESP='mailgun' needs MAILGUN_WEBHOOK_SIGNING_KEY (the 'HTTP webhook "
            "signing key' in Mailgun's dashboard) so that its tracking webhook can tell "
            "Mailgun from a forger. Set it (only development, DJANGO_DEBUG=1, starts without)."
        )
    if PAPERBOY_ESP != "mailgun" and not ANYMAIL_WEBHOOK_SECRET:
        _webhook_path = _ESP_WEBHOOK_PATHS[PAPERBOY_ESP]
        raise ImproperlyConfigured(
            f"PAPERBOY_ESP={PAPERBOY_ESP!r} needs ANYMAIL_WEBHOOK_SECRET set to "
            "'user:password' (two long random strings) so that its tracking webhook can "
            "tell the ESP from a forger; give the ESP the webhook URL "
            f"https://user:password@<your site>/anymail/{_webhook_path} "
            "(only development, DJANGO_DEBUG=1, starts without)."
        )

# --- The rest ---------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# var/ holds the SQLite database, the outbox, previews and collected static files; a fresh
# clone has none of it yet.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        # A 500 is a bug: its traceback goes to the log (Django logs it here, and without
        # a handler for this logger production would print nothing at all).
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        "django.security": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        "digest": {"handlers": ["console"], "level": env_str("PAPERBOY_LOG_LEVEL", "WARNING")},
        "subscriptions": {
            "handlers": ["console"],
            "level": env_str("PAPERBOY_LOG_LEVEL", "WARNING"),
        },
    },
}

# --- Abuse limits -----------------------------------------------------------------------
# A manage link (in every digest, so fresh with each one) opens the subscriber's settings for
# this many days; an older one leads to a page that emails a fresh link to the address.
PAPERBOY_MANAGE_LINK_MAX_AGE_DAYS = env_int(
    "PAPERBOY_MANAGE_LINK_MAX_AGE_DAYS", 60, low=1, high=3650
)
# Downloading or deleting someone's data takes a link emailed to their address on request,
# which works for this many minutes.
PAPERBOY_ACTION_LINK_MAX_AGE_MINUTES = env_int(
    "PAPERBOY_ACTION_LINK_MAX_AGE_MINUTES", 60, low=5, high=7 * 24 * 60
)
