# Key custody (docs/key-custody.md): next and retired signing keys per integration, and
# the permission to manage them.

import django.db.models.deletion
import uuid
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('integrations', '0005_calllog_chart_index'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='integration',
            options={'ordering': ['name'], 'permissions': [('run_test_call', 'Can run test calls'), ('manage_signing_keys', 'Can add, promote and drop signing keys')]},
        ),
        migrations.CreateModel(
            name='SigningKey',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('uid', models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ('kid', models.CharField(max_length=200)),
                ('state', models.CharField(choices=[('active', 'Active: signs'), ('next', 'Next: published, not yet signing'), ('retired', 'Retired: published until dropped')], max_length=10)),
                ('algorithm', models.CharField(max_length=10)),
                ('signer', models.JSONField(blank=True, default=dict, help_text='Device settings, no PIN.')),
                ('public_jwk', models.JSONField(default=dict)),
                ('encrypted_secrets', models.TextField(blank=True, default='', editable=False)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('retired_at', models.DateTimeField(blank=True, null=True)),
                ('integration', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='signing_keys', to='integrations.integration')),
            ],
            options={
                'ordering': ['integration', 'state', '-created_at'],
                'constraints': [models.UniqueConstraint(fields=('integration', 'kid'), name='signingkey_unique_kid'), models.UniqueConstraint(condition=models.Q(('state', 'next')), fields=('integration',), name='signingkey_one_next')],
            },
        ),
    ]
