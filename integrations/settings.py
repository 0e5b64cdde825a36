"""The app's settings: one object with DEFAULTS, read lazily and reloaded on change."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.dispatch import receiver


def package_user_agent() -> str:
    """``django-integrations/<version>`` from the installed package's metadata
    (pyproject.toml's version); ``/dev`` when run from a source checkout."""
    try:
        return f"django-integrations/{version('django-integrations')}"
    except PackageNotFoundError:
        return "django-integrations/dev"


DEFAULTS: dict[str, Any] = {
    "ENCRYPTION_KEYS": [],
    "ALLOW_PRIVATE_NETWORKS": False,
    # Seconds before expiry at which a cached token is replaced: covers clock skew plus
    # the longest call (google-auth uses 225 s; security.md #21).
    "TOKEN_REFRESH_MARGIN": 60,
    "TOKEN_LOCK_TIMEOUT": 30,
    # Tokens each process keeps in memory, least recently used evicted first (one app
    # acting for 10,000 accounts holds one per account: about 5 MB at this default).
    "TOKEN_CACHE_SIZE": 10000,
    "MAX_RESPONSE_BYTES": 10 * 1024 * 1024,
    "CONNECT_TIMEOUT": 5.0,
    "DEADLINE_FACTOR": 3.0,
    "RETRY_TOTAL": 3,
    "RETRY_BACKOFF": 0.2,
    "RETRY_AFTER_CAP": 60,
    # Seconds a process reuses an integration's session before checking the row for
    # changes made by other processes (changes made in-process apply at once).
    "SESSION_RECHECK": 1.0,
    # "sync": each call writes its CallLog row before returning. "background": rows are
    # queued and written in batches by one thread (cheaper per call; rows appear within
    # a fraction of a second and queued rows are lost if the process is killed).
    "LOG_WRITER": "sync",
    # On PostgreSQL a row written in the call commits without waiting for its WAL flush
    # (a database crash can lose the last fraction of a second of rows; our process
    # dying loses none). True: wait for the flush, at a disk sync per logged call.
    "LOG_SYNCHRONOUS_COMMIT": False,
    "POOL_MAXSIZE": 32,
    # Circuit breaker (integrations.http.breaker): after this many failed calls in a row
    # an integration's calls fail fast for CIRCUIT_RESET seconds. 0 turns it off.
    "CIRCUIT_FAILURES": 0,
    "CIRCUIT_RESET": 30.0,
    "LOG_RETENTION_DAYS": 30,
    # The Django cache the admin charts keep settled buckets in (integrations.charts);
    # "" keeps none (every chart aggregates its whole window).
    "CHART_CACHE": "default",
    # A second directory `{"file": ...}` secrets of a configuration file may be read from
    # (besides the file's own directory); "" allows only that one (security.md #38).
    "SECRETS_DIR": "",
    "USER_AGENT": package_user_agent(),
    # The Tasks API queue that background test calls go to (integrations.tasks).
    "TASK_QUEUE": "default",
    # Health (integrations.health): this many failed test calls in a row make an
    # integration `failing`; one success makes it `ok` again.
    "HEALTH_FAILURES": 2,
    # The bearer token that lets a monitor read GET integrations/health ("" = staff only).
    "HEALTH_TOKEN": "",
    # Where health changes are sent, one digest per test run: a URL that gets a JSON
    # POST, and e-mail addresses (a comma list or a list). "" sends nothing.
    "ALERT_WEBHOOK": "",
    "ALERT_EMAILS": "",
}


class IntegrationSettings:
    """``INTEGRATIONS_<NAME>`` Django settings with DEFAULTS, cached until they change.

    A value read once is kept as an instance attribute, so later reads (several per
    outbound call) are plain attribute lookups that never reach ``__getattr__``.
    """

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Invalid integrations setting: {name!r}")
        value = getattr(django_settings, f"INTEGRATIONS_{name}", DEFAULTS[name])
        setattr(self, name, value)
        return value

    def reload(self) -> None:
        self.__dict__.clear()


app_settings = IntegrationSettings()


@receiver(setting_changed)
def _reload_settings(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("INTEGRATIONS_"):
        app_settings.reload()
