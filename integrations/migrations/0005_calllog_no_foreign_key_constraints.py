# The call log's foreign keys lose their database constraints (Django keeps the relations
# and still cascades deletes): each logged row ran a referential check that locks the
# integration's row FOR KEY SHARE, and concurrent calls then make PostgreSQL build a
# MultiXact for that one hot row (docs/service.md, the call log). On PostgreSQL this only
# drops two constraints; SQLite copies the table.
#
# Reversing it adds the constraints back, which fails while rows refer to an integration
# or account that no longer exists: prune or delete those rows first.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0004_calllog_chart_index"),
    ]

    operations = [
        migrations.AlterField(
            model_name="calllog",
            name="account",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="call_logs",
                to="integrations.account",
            ),
        ),
        migrations.AlterField(
            model_name="calllog",
            name="integration",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="call_logs",
                to="integrations.integration",
            ),
        ),
    ]
