"""Benchmark settings: the test settings on an on-disk SQLite file, DEBUG off."""

import os

os.environ.setdefault("DATABASE_URL", "sqlite:////tmp/integrations-bench.sqlite3")

from tests.settings import *  # noqa: E402,F403
