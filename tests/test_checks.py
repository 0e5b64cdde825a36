"""System checks on the storage key ring and network settings (security.md #6, #11)."""

from __future__ import annotations

import base64

import pytest
from cryptography.fernet import Fernet
from django.core.checks import Error, Warning
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from integrations.checks import check_encryption_keys
from integrations.crypto import key_id, keyring, parse_key

KEY = Fernet.generate_key().decode()
OTHER = Fernet.generate_key().decode()


def ids(**settings: object) -> list[str]:
    """The check ids raised under ``settings`` (private networks off unless given)."""
    settings.setdefault("INTEGRATIONS_ALLOW_PRIVATE_NETWORKS", False)
    with override_settings(**settings):
        return [message.id for message in check_encryption_keys()]


def test_valid_configuration_passes():
    """A well-formed key ring with private networks off raises nothing."""
    assert ids(DEBUG=False, INTEGRATIONS_ENCRYPTION_KEYS=[KEY, OTHER]) == []


def test_e001_no_keys_outside_debug():
    """security.md #6: no storage key outside DEBUG is an error; in DEBUG only a warning."""
    assert ids(DEBUG=False, INTEGRATIONS_ENCRYPTION_KEYS=[]) == ["integrations.E001"]
    assert ids(DEBUG=False, INTEGRATIONS_ENCRYPTION_KEYS=["", "  "]) == ["integrations.E001"]
    assert ids(DEBUG=True, INTEGRATIONS_ENCRYPTION_KEYS=[]) == ["integrations.W001"]


@pytest.mark.parametrize(
    "bad",
    ["not-a-key", base64.urlsafe_b64encode(b"sixteen-byte-key").decode(), KEY[:-2] + "!="],
)
def test_e002_malformed_key_names_position_not_key(bad):
    """security.md #6: a key that is not 32 bytes of URL-safe base64 is an error naming its
    position in the list, never the key itself."""
    with override_settings(
        DEBUG=False,
        INTEGRATIONS_ENCRYPTION_KEYS=[KEY, bad],
        INTEGRATIONS_ALLOW_PRIVATE_NETWORKS=False,
    ):
        messages = check_encryption_keys()
    assert [m.id for m in messages] == ["integrations.E002"]
    assert isinstance(messages[0], Error)
    assert "key #2" in messages[0].msg and bad not in messages[0].msg + str(messages[0].hint)


def test_e003_key_equal_to_secret_key():
    """security.md #6: a storage key equal to SECRET_KEY (or a fallback, or encoding the
    same bytes) is an error: it must be independent of SECRET_KEY."""
    raw_text = "0123456789abcdef0123456789abcdef"
    encoded = base64.urlsafe_b64encode(raw_text.encode()).decode()
    assert ids(SECRET_KEY=KEY, INTEGRATIONS_ENCRYPTION_KEYS=[KEY]) == ["integrations.E003"]
    assert ids(
        SECRET_KEY="s" * 50, SECRET_KEY_FALLBACKS=[OTHER], INTEGRATIONS_ENCRYPTION_KEYS=[KEY, OTHER]
    ) == ["integrations.E003"]
    assert ids(SECRET_KEY=raw_text, INTEGRATIONS_ENCRYPTION_KEYS=[encoded]) == ["integrations.E003"]


def test_w002_private_networks_outside_debug():
    """security.md #11: allowing private networks outside DEBUG is warned about."""
    on = {"INTEGRATIONS_ENCRYPTION_KEYS": [KEY], "INTEGRATIONS_ALLOW_PRIVATE_NETWORKS": True}
    messages_ids = ids(DEBUG=False, **on)
    assert messages_ids == ["integrations.W002"]
    with override_settings(DEBUG=False, **on):
        assert isinstance(check_encryption_keys()[0], Warning)
    assert ids(DEBUG=True, **on) == []
    assert (
        ids(
            DEBUG=False,
            INTEGRATIONS_ENCRYPTION_KEYS=[KEY],
            INTEGRATIONS_ALLOW_PRIVATE_NETWORKS=False,
        )
        == []
    )


def test_manage_check_fails_on_error():
    """security.md #6: `manage.py check` refuses to pass with an empty key ring outside DEBUG."""
    with override_settings(DEBUG=False, INTEGRATIONS_ENCRYPTION_KEYS=[]):
        with pytest.raises(SystemCheckError, match="integrations.E001"):
            call_command("check")


def test_key_ring_follows_override_settings():
    """override_settings reloads the app settings and the cached key ring, in and out."""
    outside = keyring().ids
    with override_settings(INTEGRATIONS_ENCRYPTION_KEYS=[OTHER, KEY]):
        assert keyring().ids == (key_id(parse_key(OTHER)), key_id(parse_key(KEY)))
    assert keyring().ids == outside


def setting_errors(**settings: object) -> list[str]:
    from integrations.checks import check_settings

    with override_settings(**settings):
        return [message.msg for message in check_settings()]


def test_default_settings_pass_the_settings_check():
    assert setting_errors() == []


def test_a_log_writer_typo_is_an_error_naming_the_setting():
    """A typo in INTEGRATIONS_LOG_WRITER is an error, not silently the sync writer."""
    (message,) = setting_errors(INTEGRATIONS_LOG_WRITER="backgroud")
    assert message.startswith("INTEGRATIONS_LOG_WRITER must be one of sync, background")


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("INTEGRATIONS_CONNECT_TIMEOUT", 0, "above 0"),
        ("INTEGRATIONS_CONNECT_TIMEOUT", "5", "must be a number"),
        ("INTEGRATIONS_POOL_MAXSIZE", 2.5, "must be a whole number"),
        ("INTEGRATIONS_RETRY_TOTAL", -1, "0 or more"),
        ("INTEGRATIONS_DEADLINE_FACTOR", float("nan"), "above 0"),
        ("INTEGRATIONS_LOG_RETENTION_DAYS", True, "whole number"),
        ("INTEGRATIONS_TASK_QUEUE", "", "non-empty string"),
        ("INTEGRATIONS_HEALTH_FAILURES", "2", "whole number"),
        ("INTEGRATIONS_HEALTH_FAILURES", 0, "above 0"),
        ("INTEGRATIONS_CHART_CACHE", "charts", "CACHES' aliases"),
        ("INTEGRATIONS_SECRETS_DIR", "/nonexistent/secrets", "existing directory"),
        ("INTEGRATIONS_ALERT_WEBHOOK", "ftp://alerts.example.com/", "http or https"),
        ("INTEGRATIONS_ALERT_WEBHOOK", "https://u:p@alerts.example.com/", "user:password@"),
    ],
)
def test_unusable_numbers_and_names_are_errors(setting, value, says):
    (message,) = setting_errors(**{setting: value})
    assert message.startswith(setting) and says in message


def test_zero_is_fine_where_it_turns_something_off():
    assert setting_errors(INTEGRATIONS_CIRCUIT_FAILURES=0, INTEGRATIONS_RETRY_TOTAL=0) == []


def test_places_that_exist_pass(tmp_path):
    """An existing secrets directory, a configured cache alias, an https webhook."""
    assert setting_errors(
        INTEGRATIONS_SECRETS_DIR=str(tmp_path),
        INTEGRATIONS_CHART_CACHE="default",
        INTEGRATIONS_ALERT_WEBHOOK="https://alerts.example.com/hook",
    ) == []
