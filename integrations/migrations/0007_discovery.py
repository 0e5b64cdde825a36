# Discovery (docs/sender-constrained.md): the authorization server metadata read for an
# integration's issuer, and when it was read.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("integrations", "0006_signingkey"),
    ]

    operations = [
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
