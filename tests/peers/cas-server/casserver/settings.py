"""A throwaway CAS server (django-mama-cas) for authchain's tests. Never deploy it.

Each instance keeps its database in $CAS_DATA_DIR (one directory per started
server), so tests running in parallel do not share tickets.
"""
import os
from pathlib import Path

DATA_DIR = Path(os.environ.get("CAS_DATA_DIR", Path(__file__).resolve().parent.parent))

SECRET_KEY = "authchain-tests-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "mama_cas",
    "casserver",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "casserver.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "cas.sqlite3",
    }
}

# Fast hashing: these are test users on a loopback server.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

# Services on 127.0.0.1 (any port, any path) may use this server; the attributes
# below are released to them.
MAMA_CAS_SERVICES = [
    {
        "SERVICE": r"^http://127\.0\.0\.1(:\d+)?/.*",
        "CALLBACKS": [
            "mama_cas.callbacks.user_name_attributes",
            "casserver.callbacks.profile_and_groups",
        ],
        "LOGOUT_ALLOW": False,
    },
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"mama_cas": {"handlers": ["console"], "level": "INFO"}},
}
