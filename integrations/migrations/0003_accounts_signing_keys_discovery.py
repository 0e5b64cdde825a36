# This version's tables and fields, in one step:
# - accounts (docs/accounts.md) and CallLog.account with its (account, -created_at) index;
# - key custody (docs/key-custody.md): next and retired signing keys per integration, and
#   the permission to manage them;
# - discovery (docs/sender-constrained.md): the authorization server metadata read for an
#   integration's issuer, and when it was read.

import uuid

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0002_calllog_drop_integration_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="Account",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "key",
                    models.CharField(
                        help_text="The account's name in code and commands.",
                        max_length=100,
                        validators=[
                            django.core.validators.RegexValidator(
                                "^[A-Za-z0-9_.@:-]{1,100}$",
                                "Must be 1-100 characters of letters, digits and _ . @ : -.",
                            )
                        ],
                    ),
                ),
                ("name", models.CharField(blank=True, max_length=200)),
                ("enabled", models.BooleanField(default=True)),
                (
                    "options",
                    models.JSONField(
                        blank=True,
                        default=dict,
                        help_text='Auth option overrides, e.g. {"installation_id": "4711"}.',
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "integration",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="accounts",
                        to="integrations.integration",
                    ),
                ),
            ],
            options={
                "ordering": ["integration", "key"],
            },
        ),
        migrations.AddField(
            model_name="calllog",
            name="account",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="call_logs",
                to="integrations.account",
            ),
        ),
        migrations.AddIndex(
            model_name="calllog",
            index=models.Index(fields=["account", "-created_at"], name="calllog_account_latest"),
        ),
        migrations.AddConstraint(
            model_name="account",
            constraint=models.UniqueConstraint(
                fields=("integration", "key"), name="account_unique_key"
            ),
        ),
        migrations.AlterModelOptions(
            name="integration",
            options={
                "ordering": ["name"],
                "permissions": [
                    ("run_test_call", "Can run test calls"),
                    ("manage_signing_keys", "Can add, promote and drop signing keys"),
                ],
            },
        ),
        migrations.CreateModel(
            name="SigningKey",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("uid", models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ("kid", models.CharField(max_length=200)),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("active", "Active: signs"),
                            ("next", "Next: published, not yet signing"),
                            ("retired", "Retired: published until dropped"),
                        ],
                        max_length=10,
                    ),
                ),
                ("algorithm", models.CharField(max_length=10)),
                (
                    "signer",
                    models.JSONField(
                        blank=True, default=dict, help_text="Device settings, no PIN."
                    ),
                ),
                ("public_jwk", models.JSONField(default=dict)),
                ("encrypted_secrets", models.TextField(blank=True, default="", editable=False)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("retired_at", models.DateTimeField(blank=True, null=True)),
                (
                    "integration",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="signing_keys",
                        to="integrations.integration",
                    ),
                ),
            ],
            options={
                "ordering": ["integration", "state", "-created_at"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("integration", "kid"), name="signingkey_unique_kid"
                    ),
                    models.UniqueConstraint(
                        condition=models.Q(("state", "next")),
                        fields=("integration",),
                        name="signingkey_one_next",
                    ),
                ],
            },
        ),
        migrations.AddField(
            model_name="integration",
            name="server_metadata",
            field=models.JSONField(blank=True, default=dict, editable=False),
        ),
        migrations.AddField(
            model_name="integration",
            name="metadata_read_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]
