"""Integrations (one remote API each) and the log of calls made to them."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import TYPE_CHECKING, Any, cast

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import OuterRef, Subquery
from django.utils.translation import gettext_lazy as _

from .accounts import KEY_PATTERN, KEY_RULE, account_errors
from .crypto import associated_data, keyring
from .exceptions import SecretDecryptionError
from .validation import validate_integration

if TYPE_CHECKING:
    from django.db.models.options import Options


class LogCalls(models.TextChoices):
    ALL = "all", _("All calls")
    ERRORS = "errors", _("Errors only")
    NONE = "none", _("None (test calls are still logged)")


# The last test call's columns that with_last_test() annotates, as last_test_<column>.
LAST_TEST_FIELDS = ("id", "ok", "status_code", "created_at", "error")


class IntegrationQuerySet(models.QuerySet["Integration"]):
    def with_last_test(self) -> IntegrationQuerySet:
        """Annotate each integration with its newest test call's ``last_test_id``,
        ``last_test_ok``, ``last_test_status_code``, ``last_test_created_at`` and
        ``last_test_error`` (all None when never tested), one correlated subquery
        each over the (integration, -created_at) index."""
        latest = CallLog.objects.filter(integration=OuterRef("pk"), is_test=True).order_by(
            "-created_at", "-id"
        )
        return self.annotate(**{
            f"last_test_{name}": Subquery(latest.values(name)[:1]) for name in LAST_TEST_FIELDS
        })


class EncryptedSecrets:
    """Secret options held in the row's ``encrypted_secrets`` as one AES-GCM ciphertext
    bound to this row (its model and ``uid``), for Integration and SigningKey."""

    if TYPE_CHECKING:
        encrypted_secrets: str
        uid: uuid.UUID
        _meta: Options[Any]

    def _secrets_owner(self) -> str:
        """Whose secrets these are, for error messages (never a secret)."""
        raise NotImplementedError

    def _aad(self) -> bytes:
        return associated_data(self._meta.label_lower, str(self.uid), "encrypted_secrets")

    def get_secrets(self) -> dict[str, str]:
        """The decrypted secret options; raises SecretDecryptionError, never guesses.

        Kept on the instance for as long as its ciphertext and the key ring stay the
        same: a run over 10,000 accounts of one integration decrypts once, not three
        times per account. What is kept never leaves the instance: not in a pickle or
        a copy (``__getstate__``), nor in ``repr``."""
        if not self.encrypted_secrets:
            return {}
        ring = keyring()
        memo = self.__dict__.get("_secrets_memo")
        if memo is not None and memo[0] is ring and memo[1] == self.encrypted_secrets:
            return dict(memo[2])
        try:
            plaintext = ring.decrypt(self.encrypted_secrets, self._aad())
        except SecretDecryptionError as exc:
            raise SecretDecryptionError(f"{self._secrets_owner()}: {exc}") from None
        values: dict[str, str] = json.loads(plaintext)
        self.__dict__["_secrets_memo"] = (ring, self.encrypted_secrets, values)
        return dict(values)

    def __getstate__(self) -> dict[str, Any]:
        # Model.__getstate__ (next in the MRO) returns a copy of the instance's dict.
        state = cast("dict[str, Any]", super().__getstate__())
        state.pop("_secrets_memo", None)
        state.pop("_fingerprint_memo", None)
        return state

    def set_secrets(self, values: dict[str, str]) -> None:
        """Store these secret options, replacing all others."""
        clean = {name: value for name, value in values.items() if value}
        self.encrypted_secrets = (
            keyring().encrypt(json.dumps(clean, sort_keys=True), self._aad()) if clean else ""
        )

    def rotate_secrets(self) -> bool:
        """Re-encrypt under the primary storage key; True when anything changed."""
        if not self.encrypted_secrets or not keyring().needs_rotation(self.encrypted_secrets):
            return False
        self.set_secrets(self.get_secrets())
        return True


class Integration(EncryptedSecrets, models.Model):
    """A remote API and how to authenticate to it.

    Auth settings are split by sensitivity: ``auth_config`` holds the auth type's plain
    options (algorithm, claims, URLs), ``encrypted_secrets`` its secret options (keys,
    shared secrets) as one AES-GCM ciphertext bound to this row. Adding an auth type is
    a module in ``integrations.tokens``, never a migration.
    """

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    base_url = models.CharField(
        max_length=500, help_text=_("http or https; request paths are appended to it.")
    )
    enabled = models.BooleanField(default=True)
    headers = models.JSONField(default=dict, blank=True, help_text=_("Sent with every call."))
    timeout = models.FloatField(default=10.0, help_text=_("Read timeout in seconds."))
    log_calls = models.CharField(max_length=10, choices=LogCalls.choices, default=LogCalls.ALL)
    test_request = models.JSONField(
        default=dict,
        blank=True,
        help_text=_('{"method": "GET", "path": "health", "expect_status": [200]}'),
    )
    follow_redirects = models.BooleanField(
        default=False,
        help_text=_("Follow redirects; credentials are dropped when the host changes."),
    )
    ca_bundle = models.CharField(
        max_length=500, blank=True, help_text=_("Path to a PEM CA bundle to trust.")
    )
    idempotency_header = models.CharField(
        max_length=100,
        blank=True,
        help_text=_("Header carrying an idempotency key; when set, POST calls are retried."),
    )
    auth_type = models.CharField(max_length=50, default="jwt_bearer")
    auth_config = models.JSONField(default=dict, blank=True)
    encrypted_secrets = models.TextField(blank=True, default="", editable=False)
    # The authorization server's metadata (RFC 8414) as read for ``auth.issuer`` on save,
    # import or integrations_discover, and when (discovery_cache.py); {} without issuer.
    server_metadata = models.JSONField(default=dict, blank=True, editable=False)
    metadata_read_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("run_test_call", "Can run test calls"),
            ("manage_signing_keys", "Can add, promote and drop signing keys"),
        ]

    objects = IntegrationQuerySet.as_manager()

    def __str__(self) -> str:
        return self.name or self.slug

    def __repr__(self) -> str:
        return f"<Integration {self.slug!r} auth_type={self.auth_type!r}>"

    # Secrets ---------------------------------------------------------------

    def _secrets_owner(self) -> str:
        return f"integration {self.slug!r}"

    def update_secrets(self, changes: dict[str, str | None]) -> None:
        """Merge changed secret options; ``None`` or absent keeps the stored value.

        Fails closed: if the stored secrets cannot be decrypted, nothing is merged and
        SecretDecryptionError is raised, so a secret we could not read is never lost.
        """
        changes = {name: value for name, value in changes.items() if value}
        if not changes:
            return
        current = self.get_secrets()
        current.update(changes)  # type: ignore[arg-type]
        self.set_secrets(current)

    def secret_names(self) -> list[str]:
        return sorted(self.get_secrets())

    @property
    def auth_fingerprint(self) -> str:
        """Changes whenever auth settings or secrets change: part of token cache keys.
        Hashed again only when one of them changed (every account's provider asks)."""
        config = json.dumps(self.auth_config, sort_keys=True)
        inputs = (self.auth_type, config, self.encrypted_secrets, self.base_url)
        memo = self.__dict__.get("_fingerprint_memo")
        if memo is not None and memo[0] == inputs:
            return str(memo[1])
        material = json.dumps(
            [self.auth_type, self.auth_config, self.encrypted_secrets, self.base_url],
            sort_keys=True,
        )
        fingerprint = hashlib.sha256(material.encode()).hexdigest()[:16]
        self.__dict__["_fingerprint_memo"] = (inputs, fingerprint)
        return fingerprint

    # Validation -------------------------------------------------------------

    def clean(self) -> None:
        errors = validate_integration(self)
        if errors:
            # Auth options live in one JSON field: name the option inside the message.
            by_model_field: dict[str, list[str]] = {}
            for name, messages in errors.items():
                model_field, _, option = name.partition(".")
                model_field = "auth_config" if model_field == "auth" else model_field
                by_model_field.setdefault(model_field, []).extend(
                    f"{option}: {m}" if option else m for m in messages
                )
            raise ValidationError(by_model_field)


class CallSource(models.TextChoices):
    ADMIN = "admin", _("Admin")
    COMMAND = "command", _("Command")
    API = "api", _("API")
    TASK = "task", _("Task")


class CallLog(models.Model):
    """One call to a remote API (its retries counted in ``attempts``), redacted."""

    # No index of its own: calllog_integration_latest starts with it, and every index
    # is one more B-tree written per logged call. No constraint in the database either
    # (both foreign keys): each logged row would run a referential check that locks the
    # integration's row FOR KEY SHARE, which under concurrent calls makes PostgreSQL
    # build a MultiXact for that one hot row (measured: 32 threads insert 15% fewer rows
    # a second). Django still cascades deletes; a row logged while its integration or
    # account is being deleted may outlive it until pruned.
    integration = models.ForeignKey(
        Integration,
        on_delete=models.CASCADE,
        related_name="call_logs",
        db_index=False,
        db_constraint=False,
    )
    source = models.CharField(max_length=10, choices=CallSource.choices)
    is_test = models.BooleanField(default=False)
    method = models.CharField(max_length=10)
    url = models.CharField(max_length=1000, help_text=_("Without query values."))
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    ok = models.BooleanField(default=False)
    duration_ms = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=1)
    error = models.TextField(blank=True)
    request_id = models.CharField(max_length=200, blank=True)
    token_kid = models.CharField(max_length=200, blank=True)
    token_jti = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # Kept when the account is deleted (the row still belongs to the integration). No
    # index of its own: calllog_account_latest starts with it.
    account = models.ForeignKey(
        "Account",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="call_logs",
        db_index=False,
        db_constraint=False,
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["integration", "-created_at"], name="calllog_integration_latest"),
            # "Latest calls of one account" (admin, last test per account). Only rows with
            # an account: every query of it names one, and an integration without
            # accounts would otherwise keep a (NULL, created_at) entry per row.
            models.Index(
                fields=["account", "-created_at"],
                name="calllog_account_latest",
                condition=models.Q(account__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        status = self.status_code if self.status_code is not None else "no response"
        return f"{self.method} {self.url} → {status}"


class AccountQuerySet(models.QuerySet["Account"]):
    def with_last_test(self) -> AccountQuerySet:
        """Annotate each account with its newest test call's ``last_test_<column>``
        (as ``IntegrationQuerySet.with_last_test``), over the (account, -created_at)
        index: constant queries however many accounts a page lists."""
        latest = CallLog.objects.filter(account=OuterRef("pk"), is_test=True).order_by(
            "-created_at", "-id"
        )
        return self.annotate(**{
            f"last_test_{name}": Subquery(latest.values(name)[:1]) for name in LAST_TEST_FIELDS
        })


class Account(models.Model):
    """One account an integration acts for (docs/reference.md, Accounts): a GitHub App
    installation, a user a service account impersonates. ``options`` holds only what
    differs from the integration's auth options; tokens are per account (security.md
    #31). Validated on every save."""

    # No index of its own: the (integration, key) constraint starts with it.
    integration = models.ForeignKey(
        Integration, on_delete=models.CASCADE, related_name="accounts", db_index=False
    )
    key = models.CharField(
        max_length=100,
        validators=[RegexValidator(f"^{KEY_PATTERN}$", f"Must be {KEY_RULE}.")],
        help_text=_("The account's name in code and commands."),
    )
    name = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=True)
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text=_('Auth option overrides, e.g. {"installation_id": "4711"}.'),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AccountQuerySet.as_manager()

    class Meta:
        ordering = ["integration", "key"]
        constraints = [
            models.UniqueConstraint(fields=["integration", "key"], name="account_unique_key"),
        ]

    def __str__(self) -> str:
        return self.name or self.key

    def __repr__(self) -> str:
        return f"<Account {self.key!r} of integration {self.integration_id}>"

    def clean(self) -> None:
        if self.integration_id is None:
            return  # clean_fields reports the missing integration
        errors = account_errors(self.integration, self.options)
        if errors:
            # Every message names the account and the option (one JSON field holds them).
            by_field: dict[str, list[str]] = {}
            for name, messages in errors.items():
                option = name.partition(".")[2]
                where = f"account {self.key}: {name}" if option else f"account {self.key}"
                by_field.setdefault("options", []).extend(f"{where}: {m}" for m in messages)
            raise ValidationError(by_field)

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.full_clean()
        super().save(*args, **kwargs)


class KeyState(models.TextChoices):
    ACTIVE = "active", _("Active: signs")
    NEXT = "next", _("Next: published, not yet signing")
    RETIRED = "retired", _("Retired: published until dropped")


class SigningKey(EncryptedSecrets, models.Model):
    """A signing key of an integration besides its configured one, for rollover
    (docs/key-custody.md). The configured key is the active key, as it always was; the
    next key (at most one) and retired keys are rows. A next key holds its private PEM,
    or for a device its ``signer`` settings and PIN, in ``encrypted_secrets`` (bound to
    this row like an integration's secrets); a retired key keeps only its public JWK.
    ``public_jwk`` holds allowlisted members only (security.md #33)."""

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # No index of its own: the (integration, kid) constraint starts with it.
    integration = models.ForeignKey(
        Integration, on_delete=models.CASCADE, related_name="signing_keys", db_index=False
    )
    kid = models.CharField(max_length=200)
    state = models.CharField(max_length=10, choices=KeyState.choices)
    algorithm = models.CharField(max_length=10)
    signer = models.JSONField(default=dict, blank=True, help_text=_("Device settings, no PIN."))
    public_jwk = models.JSONField(default=dict)
    encrypted_secrets = models.TextField(blank=True, default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["integration", "state", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["integration", "kid"], name="signingkey_unique_kid"),
            models.UniqueConstraint(
                fields=["integration"],
                condition=models.Q(state="next"),
                name="signingkey_one_next",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kid} ({self.state})"

    def __repr__(self) -> str:
        return f"<SigningKey {self.kid!r} {self.state} of integration {self.integration_id}>"

    def _secrets_owner(self) -> str:
        return f"signing key {self.kid!r}"
