"""Test settings: the project's, with test keys and loopback servers allowed."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdef")
# One storage key; rotation tests add their own with override_settings.
os.environ.setdefault(
    "INTEGRATIONS_ENCRYPTION_KEYS", "dGVzdC1zdG9yYWdlLWtleS1udW1iZXItb25lLTMyYiE="
)
os.environ.setdefault("INTEGRATIONS_ALLOW_PRIVATE_NETWORKS", "true")
os.environ.setdefault("DATABASE_URL", "sqlite://:memory:")

from project.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
