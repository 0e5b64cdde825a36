"""The configuration file (reference.md: Configuration file): atomic import, secret-free export.

Import is an upsert by slug inside one transaction: the first bad entry raises
``InvalidConfiguration`` naming the entry and the field, and nothing is written. Secret
values are a string, ``{"env": "NAME"}`` or ``{"file": "path"}``, read at import; a
secret that is ``null`` or absent keeps the stored value.
"""

from __future__ import annotations

import copy
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction
from django.views.decorators.debug import sensitive_variables

from .account_import import plan_accounts, save_accounts
from .certificates import CLIENT_CERTIFICATE
from .destinations import credential_destination_errors
from .discovery_cache import prepare_for_save
from .exceptions import InvalidConfiguration, SecretDecryptionError, SecretUnavailable
from .models import Integration, LogCalls
from .settings import app_settings
from .tokens import provider_class
from .tokens.custody import SIGNER_FIELD, drop_moot_secrets, exported_auth, move_signer_pin
from .tokens.sender import INTEGRATION_SECRETS
from .validation import option_names, validate_integration

# A key file, certificate chain or shared secret is a few KiB; anything far larger is
# not a secret file (and a device would never end).
MAX_SECRET_FILE_BYTES = 1024 * 1024

# Entry keys and the model fields they set, besides slug and auth.
PLAIN_FIELDS: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "base_url": str,
    "enabled": bool,
    "headers": dict,
    "timeout": (int, float),
    "log_calls": str,
    "test_request": dict,
    "follow_redirects": bool,
    "ca_bundle": str,
    "idempotency_header": str,
}

TYPE_NAMES: dict[type | tuple[type, ...], str] = {
    str: "a string",
    bool: "true or false",
    dict: "a JSON object",
    (int, float): "a number",
}


@dataclass
class ImportResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    accounts_created: int = 0
    accounts_updated: int = 0


def read_file(path: str | Path) -> dict[str, Any]:
    """The parsed configuration file; InvalidConfiguration if unreadable or malformed."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidConfiguration(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InvalidConfiguration(f"{path} is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidConfiguration(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except RecursionError:
        raise InvalidConfiguration(f"{path} is nested too deeply") from None
    if not isinstance(data, dict) or not isinstance(data.get("integrations"), list):
        raise InvalidConfiguration(f'{path} must hold {{"integrations": [...]}}')
    return data


@sensitive_variables("value", "text")
def resolve_secret(value: Any, *, entry: str, field: str, base_dir: Path) -> str | None:
    """A secret's plaintext from its configured form; None keeps the stored value.

    A file's trailing line break is dropped (``echo secret > file`` adds one). An empty
    value is refused rather than read as "keep": only null means keep.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text, source = value, "the value"
    elif isinstance(value, dict) and set(value) == {"env"} and isinstance(value["env"], str):
        name = value["env"]
        env_text = os.environ.get(name)
        if env_text is None:
            raise SecretUnavailable(
                f"environment variable {name} is not set", entry=entry, field=field
            )
        text, source = env_text, f"environment variable {name}"
    elif isinstance(value, dict) and set(value) == {"file"} and isinstance(value["file"], str):
        text = read_secret_file(value["file"], base_dir, entry=entry, field=field)
        text = text.removesuffix("\n").removesuffix("\r")
        source = f"secret file {value['file']}"
    else:
        raise InvalidConfiguration(
            'a secret is a string, {"env": "NAME"}, {"file": "path"} or null (keep the '
            "stored value)",
            entry=entry,
            field=field,
        )
    if not text:
        raise InvalidConfiguration(
            f"{source} is empty (use null to keep the stored secret)", entry=entry, field=field
        )
    try:
        text.encode("utf-8")  # a JSON "\\ud800", or an environment holding non-UTF-8 bytes
    except UnicodeEncodeError:
        raise InvalidConfiguration(
            f"{source} is not valid Unicode text", entry=entry, field=field
        ) from None
    return text


@sensitive_variables("data")
def read_secret_file(name: str, base_dir: Path, *, entry: str, field: str) -> str:
    """The text of secret file ``name``, confined to the configuration file's directory
    or ``INTEGRATIONS_SECRETS_DIR`` (security.md #38).

    The path is resolved with symlinks followed and must stay inside one of those
    directories; whether a path outside exists is never told, so an import cannot probe
    the filesystem. Only a regular file is read (a FIFO or device would hang the import
    or never end), opened without blocking and read up to MAX_SECRET_FILE_BYTES.
    """
    unusable = SecretUnavailable(
        "must name a regular file inside the configuration file's directory"
        + (" or INTEGRATIONS_SECRETS_DIR" if app_settings.SECRETS_DIR else ""),
        entry=entry,
        field=field,
    )
    if "\x00" in name:
        raise unusable
    for root in secret_roots(base_dir):
        path = (root / name).resolve()
        if not path.is_relative_to(root):
            continue
        try:
            handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise SecretUnavailable(
                f"secret file {name} does not exist", entry=entry, field=field
            ) from None
        except OSError:
            raise unusable from None
        try:
            if not stat.S_ISREG(os.fstat(handle).st_mode):
                raise unusable
            data = os.read(handle, MAX_SECRET_FILE_BYTES + 1)
        finally:
            os.close(handle)
        if len(data) > MAX_SECRET_FILE_BYTES:
            raise SecretUnavailable(
                f"secret file {name} is larger than {MAX_SECRET_FILE_BYTES} bytes",
                entry=entry,
                field=field,
            )
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretUnavailable(
                f"secret file {name} is not UTF-8 text", entry=entry, field=field
            ) from None
    raise unusable


def secret_roots(base_dir: Path) -> list[Path]:
    """Where secret files may be read from, resolved (symlinks followed)."""
    roots = [base_dir.resolve()]
    if app_settings.SECRETS_DIR:
        roots.append(Path(app_settings.SECRETS_DIR).resolve())
    return roots


def entry_slug(raw: Any, position: int) -> str:
    """The entry's slug, or InvalidConfiguration naming the entry by position."""
    if not isinstance(raw, dict):
        raise InvalidConfiguration("must be a JSON object", entry=f"entry #{position}")
    slug = raw.get("slug")
    if not isinstance(slug, str) or not slug:
        raise InvalidConfiguration("is required", entry=f"entry #{position}", field="slug")
    try:
        validate_slug(slug)  # before the slug reaches a query: PostgreSQL refuses NUL
    except ValidationError as exc:
        name = slug if slug.isprintable() else f"entry #{position}"
        raise InvalidConfiguration(" ".join(exc.messages), entry=name, field="slug") from None
    return slug


@sensitive_variables("raw", "auth", "pem")
def apply_entry(raw: Any, position: int, base_dir: Path) -> tuple[Integration, bool]:
    """Build (unsaved) the integration an entry describes; raises InvalidConfiguration."""
    slug = entry_slug(raw, position)
    entry_keys = {"slug", "auth", "accounts", CLIENT_CERTIFICATE}
    unknown = sorted(set(raw) - set(PLAIN_FIELDS) - entry_keys)
    if unknown:
        raise InvalidConfiguration(f"unknown field(s) {', '.join(unknown)}", entry=slug)

    # Locked until the import commits: a concurrent import or admin save of this row
    # waits instead of being silently overwritten (a no-op on SQLite, which locks the
    # whole database for the write anyway).
    integration = Integration.objects.select_for_update().filter(slug=slug).first()
    created = integration is None
    if integration is None:
        integration = Integration(slug=slug, name=slug)
    stored = None if created else copy.copy(integration)  # where its secrets go today
    for name, kind in PLAIN_FIELDS.items():
        if name in raw:
            value = raw[name]
            if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
                raise InvalidConfiguration(
                    f"must be {TYPE_NAMES[kind]}, not {json.dumps(value)[:40]}",
                    entry=slug,
                    field=name,
                )
            setattr(integration, name, value)
    if integration.log_calls not in LogCalls.values:
        raise InvalidConfiguration(
            f"must be one of {', '.join(LogCalls.values)}", entry=slug, field="log_calls"
        )

    auth = raw.get("auth")
    if auth is None and created:
        raise InvalidConfiguration("is required", entry=slug, field="auth")
    entered: list[str] = []
    if auth is not None:
        if not isinstance(auth, dict):
            raise InvalidConfiguration("must be a JSON object", entry=slug, field="auth")
        entered = apply_auth(integration, auth, slug, base_dir)
    # security.md #30: a kept secret sent to a new server must be given again; checked
    # before anything is fetched from the new addresses (an issuer's metadata).
    new = {name: getattr(integration, name) for name in ("base_url", "auth_type", "auth_config")}
    try:
        moved = credential_destination_errors(stored, new, entered)
    except ValueError:  # an unparsable URL, which validation refuses naming its field
        moved = {}
    for name, message in moved.items():
        raise InvalidConfiguration(message, entry=slug, field=name)

    # Its own secret (null keeps it); the DPoP key, the issuer's metadata (on import).
    pem = resolve_secret(raw.get(CLIENT_CERTIFICATE), entry=slug, field=CLIENT_CERTIFICATE,
                         base_dir=base_dir)
    integration.update_secrets({CLIENT_CERTIFICATE: pem})
    for name, message in prepare_for_save(integration).items():
        raise InvalidConfiguration(message, entry=slug, field=name)

    try:
        # Model field rules the JSON types above do not cover: slug format, lengths.
        integration.clean_fields(exclude=["encrypted_secrets", "auth_config"])
    except ValidationError as exc:
        name, messages = next(iter(exc.message_dict.items()))
        raise InvalidConfiguration(" ".join(messages), entry=slug, field=name) from None
    errors = validate_integration(integration)
    if errors:
        name, messages = next(iter(errors.items()))
        raise InvalidConfiguration(messages[0], entry=slug, field=name)
    return integration, created


@sensitive_variables("auth", "changes")
def apply_auth(
    integration: Integration, auth: dict[str, Any], slug: str, base_dir: Path
) -> list[str]:
    """Set the entry's auth type, options and secrets; returns the secret names the
    entry gave (every one after a type change, which keeps no stored secret)."""
    auth_type = auth.get("type", integration.auth_type if integration.pk else None)
    if not isinstance(auth_type, str):
        raise InvalidConfiguration("is required", entry=slug, field="auth.type")
    try:
        cls = provider_class(auth_type)
    except InvalidConfiguration as exc:
        raise InvalidConfiguration(exc.message, entry=slug, field="auth.type") from None
    auth = move_signer_pin(auth, slug)  # signer.pin is the signer_pin secret
    changes = {
        name: resolve_secret(auth.get(name), entry=slug, field=f"auth.{name}", base_dir=base_dir)
        for name in cls.secret_fields
    }
    options = {k: v for k, v in auth.items() if k != "type" and k not in cls.secret_fields}
    unknown = sorted(set(options) - option_names(cls))
    if unknown:
        raise InvalidConfiguration(
            f"unknown option(s) {', '.join(unknown)} for {auth_type}", entry=slug, field="auth"
        )
    entered = [name for name, value in changes.items() if value]
    if SIGNER_FIELD in auth:  # a signer stated again may be sent to a new server
        entered.append(SIGNER_FIELD)
    try:
        if auth_type != integration.auth_type and integration.pk:
            # Another auth type's secrets mean nothing here: start from none, but only
            # after proving the stored ones are readable, so a wrong key ring fails the
            # import instead of silently discarding what it could not read.
            kept = integration.get_secrets()  # its own secrets (certificate, DPoP key) stay
            integration.set_secrets({n: v for n, v in kept.items() if n in INTEGRATION_SECRETS})
            entered = list(cls.secret_fields)
        integration.update_secrets(changes)
    except SecretDecryptionError as exc:
        raise InvalidConfiguration(
            f"{exc}; nothing was changed (fix INTEGRATIONS_ENCRYPTION_KEYS first)",
            entry=slug,
            field="auth",
        ) from None
    integration.auth_type = auth_type
    integration.auth_config = options
    drop_moot_secrets(integration, cls.generated_key_field, entered)  # a key a signer holds
    return entered


@sensitive_variables("data", "entries", "raw")
def import_config(
    data: dict[str, Any], *, base_dir: Path | None = None, dry_run: bool = False
) -> ImportResult:
    """Upsert every entry, or nothing at all. ``dry_run`` validates everything (secrets
    read, keys parsed) and reports what would change, writing nothing."""
    base_dir = base_dir or Path.cwd()
    entries = data.get("integrations")
    if not isinstance(entries, list):
        raise InvalidConfiguration('the file must hold {"integrations": [...]}')
    unknown = sorted(set(data) - {"integrations"})
    if unknown:
        raise InvalidConfiguration(f"unknown top-level field(s) {', '.join(unknown)}")
    seen: set[str] = set()
    for position, raw in enumerate(entries, start=1):
        slug = entry_slug(raw, position)
        if slug in seen:
            raise InvalidConfiguration(f"appears twice in the file (entry #{position})", entry=slug)
        seen.add(slug)
    result = ImportResult()
    with transaction.atomic():
        for position, raw in enumerate(entries, start=1):
            previous = ""
            if raw.get("slug"):
                stored = Integration.objects.filter(slug=raw["slug"]).first()
                previous = stored.auth_fingerprint if stored else ""
            integration, created = apply_entry(raw, position, base_dir)
            (result.created if created else result.updated).append(integration.slug)
            accounts = plan_accounts(
                integration,
                raw.get("accounts"),
                auth_changed=previous != integration.auth_fingerprint,
            )
            if dry_run:
                continue
            try:
                with transaction.atomic():
                    integration.save()
            except IntegrityError:
                raise InvalidConfiguration(
                    "was created by someone else during this import; run the import again",
                    entry=integration.slug,
                ) from None
            added, changed = save_accounts(integration, accounts)
            result.accounts_created += added
            result.accounts_updated += changed
    return result


def export_entry(integration: Integration) -> dict[str, Any]:
    """One configuration-file entry; every secret field is null."""
    secret_fields = provider_class(integration.auth_type).secret_fields
    auth = exported_auth(secret_fields, {"type": integration.auth_type, **integration.auth_config})
    entry: dict[str, Any] = {"slug": integration.slug}
    entry.update({name: getattr(integration, name) for name in PLAIN_FIELDS})
    entry["auth"] = auth
    # Prefetched by export_config; a file states accounts only where there are some.
    accounts = [
        {"key": a.key, "name": a.name, "enabled": a.enabled, "options": a.options}
        for a in integration.accounts.all()
    ]
    if accounts:
        entry["accounts"] = accounts
    return entry


def export_config(slugs: list[str] | None = None) -> dict[str, Any]:
    """The configuration file for ``slugs`` (all when empty), every secret as null."""
    queryset = Integration.objects.order_by("slug").prefetch_related("accounts")
    if slugs:
        queryset = queryset.filter(slug__in=slugs)
        missing = sorted(set(slugs) - set(queryset.values_list("slug", flat=True)))
        if missing:
            raise InvalidConfiguration(f"no integration with slug {', '.join(missing)}")
    return {"integrations": [export_entry(integration) for integration in queryset]}
