"""Settings for the example project, read from the environment (reference.md: Settings).

Production defaults are safe: DEBUG off, and neither SECRET_KEY nor the storage key
ring has a fallback unless DEBUG is on.
"""

import os
from pathlib import Path

import django
import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# Variables already in the environment win over the file. ENV_FILE names another file
# (one per deployment, or a test's); it must exist when given.
_env_file = os.environ.get("ENV_FILE")
if _env_file:
    if not Path(_env_file).is_file():
        raise ImproperlyConfigured(f"ENV_FILE={_env_file} does not exist")
    environ.Env.read_env(_env_file)
elif (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DJANGO_DEBUG", default=False)

# Dev-only values: public in this repository, so usable only with DEBUG on.
_DEV_SECRET_KEY = "dev-only-insecure-secret-key-do-not-use-in-production-0123456789"
_DEV_ENCRYPTION_KEY = "ZGV2LW9ubHkta2V5LWRvLW5vdC11c2UtaW4tcHJvZCE="

if DEBUG:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=_DEV_SECRET_KEY)
else:
    SECRET_KEY = env.str("DJANGO_SECRET_KEY")

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "integrations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"

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

WSGI_APPLICATION = "project.wsgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite for a server with several threads or processes writing: WAL lets readers
    # and the writer overlap, synchronous=NORMAL drops the fsync per commit (durable at
    # checkpoints; a power cut can lose the last commits, never corrupt), IMMEDIATE
    # takes the write lock at BEGIN so transactions queue instead of failing with
    # "database is locked", and the timeout is how long they queue.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

# Health alerts are mailed through Django's default mailer. Django 6.1 names it in
# MAILERS (EMAIL_BACKEND is deprecated there, and sending without MAILERS warns);
# EMAIL_BACKEND, SMTP by default, keeps working on 5.2 and 6.0.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
if django.VERSION >= (6, 1):
    MAILERS = {"default": {"BACKEND": EMAIL_BACKEND}}
    del EMAIL_BACKEND

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "static"

if DEBUG:
    INTEGRATIONS_ENCRYPTION_KEYS = env.list(
        "INTEGRATIONS_ENCRYPTION_KEYS", default=[_DEV_ENCRYPTION_KEY]
    )
else:
    INTEGRATIONS_ENCRYPTION_KEYS = env.list("INTEGRATIONS_ENCRYPTION_KEYS", default=[])
INTEGRATIONS_ALLOW_PRIVATE_NETWORKS = env.bool(
    "INTEGRATIONS_ALLOW_PRIVATE_NETWORKS", default=DEBUG
)
# Days of call logs integrations_prune_logs keeps when --older-than is not given.
INTEGRATIONS_LOG_RETENTION_DAYS = env.int("INTEGRATIONS_LOG_RETENTION_DAYS", default=30)

# Background work (docs/operations.md). Without RQ_URL, tasks run at once in the process
# that enqueues them; with it, they go to Redis for `manage.py rqworker` processes.
RQ_URL = env.str("RQ_URL", default="")
if RQ_URL:
    INSTALLED_APPS += ["django_rq"]
    RQ_QUEUES = {"default": {"URL": RQ_URL}}
    TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        # urllib3 logs full request lines, query strings included (security.md #26).
        "urllib3": {"level": "WARNING", "propagate": True},
    },
}
