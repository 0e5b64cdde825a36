# Accounts (docs/reference.md, Accounts) and CallLog.account with its (account, -created_at) index.

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
    ]
