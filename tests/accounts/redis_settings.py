"""Settings for the account worker processes: the test settings with the Redis cache
(CACHE_URL) under a key prefix of the test's own (TEST_CACHE_PREFIX), so runs sharing
one Redis never see each other's tokens and their keys can be deleted afterwards."""

import os

from tests.settings import *  # noqa: F403
from tests.settings import CACHES

CACHES["default"]["KEY_PREFIX"] = os.environ["TEST_CACHE_PREFIX"]
