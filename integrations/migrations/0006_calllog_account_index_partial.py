# calllog_account_latest keeps only rows with an account (WHERE account_id IS NOT NULL):
# every query of it names an account, and an integration without accounts made it hold
# a (NULL, created_at) entry for each of its rows (measured: about 28 MB per million
# rows, all dead weight to write, vacuum and cache).
#
# On PostgreSQL the partial index is built CONCURRENTLY (no lock against the call log's
# inserts) under a new name, then swapped in under the old one, as 0004 does, through
# the schema editor's own index operations; other databases drop and create it.
# Django's state gets the model's index either way.

from django.db import migrations, models

NAME = "calllog_account_latest"
FIELDS = ["account", "-created_at"]
FULL = models.Index(fields=FIELDS, name=NAME)
PARTIAL = models.Index(fields=FIELDS, name=NAME, condition=models.Q(account__isnull=False))


def swap(apps, schema_editor, old, new):
    model = apps.get_model("integrations", "CallLog")
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.remove_index(model, old)
        schema_editor.add_index(model, new)
        return
    staging = new.clone()
    staging.name = f"{NAME}_new"
    # Left INVALID by an earlier failure of this migration, if any.
    schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {staging.name}")
    schema_editor.add_index(model, staging, concurrently=True)
    schema_editor.remove_index(model, old, concurrently=True)
    schema_editor.rename_index(model, staging, new)


def partial(apps, schema_editor):
    swap(apps, schema_editor, FULL, PARTIAL)


def full(apps, schema_editor):
    swap(apps, schema_editor, PARTIAL, FULL)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("integrations", "0005_calllog_no_foreign_key_constraints"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(partial, full, elidable=False)],
            state_operations=[
                migrations.RemoveIndex(model_name="calllog", name=NAME),
                migrations.AddIndex(model_name="calllog", index=PARTIAL),
            ],
        ),
    ]
