"""Settings of the peer: django-newsletter 1.2.1 as its README sets it up, and no more.

Read by bench/peer_newsletter/peer_send.py in the peer's own virtualenv (never Paperboy's,
which lacks `newsletter`). The database and the SMTP server come from the environment
that bench/bench_smtp.py gives the script.
"""

import os

SECRET_KEY = "paperboy-bench-peer-not-secret"
DEBUG = False  # DEBUG would keep every query in memory and slow the peer down unfairly
ALLOWED_HOSTS = ["localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sites",
    # django-newsletter's image field needs a thumbnailer; sorl-thumbnail is its default.
    "sorl.thumbnail",
    "newsletter",
]
SITE_ID = 1
ROOT_URLCONF = "peer_urls"  # the unsubscribe link in every message is reversed from it
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {},
    }
]
STATIC_URL = "/static/"
MEDIA_URL = "/media/"

# Set explicitly: left unset, django-newsletter warns on every message it renders.
NEWSLETTER_THUMBNAIL = "sorl-thumbnail"
NEWSLETTER_USE_HTTPS = True
NEWSLETTER_CONFIRM_EMAIL = False
# No NEWSLETTER_EMAIL_DELAY or NEWSLETTER_BATCH_SIZE: the peer sends as fast as it can.

# Its own PostgreSQL database, made and dropped by bench/bench_smtp.py, on the same
# server as Paperboy's: the fairer comparison.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ["PEER_DB_NAME"],
        "HOST": os.environ.get("PEER_DB_HOST", "127.0.0.1"),
        "PORT": os.environ.get("PEER_DB_PORT", "5432"),
        "USER": os.environ.get("PEER_DB_USER", "postgres"),
        "PASSWORD": os.environ.get("PEER_DB_PASSWORD", ""),
        # The persistent connection Paperboy's settings give its workers too.
        "CONN_MAX_AGE": 60,
    }
}

# Django's own SMTP backend, as a django-newsletter deployment uses it.
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = os.environ.get("PEER_EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = int(os.environ.get("PEER_EMAIL_PORT", "25"))
EMAIL_TIMEOUT = 30
DEFAULT_FROM_EMAIL = "Peer <peer@localhost>"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"newsletter": {"handlers": ["console"], "level": "WARNING"}},
}
