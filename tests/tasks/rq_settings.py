"""Settings for RQ worker subprocesses in tests: the test settings plus the RQ engine on
a queue and cache prefix of the test's own (TEST_RQ_QUEUE), so runs never share jobs."""

import os

from tests.settings import *  # noqa: F403
from tests.settings import CACHES, INSTALLED_APPS

_QUEUE = os.environ["TEST_RQ_QUEUE"]
INSTALLED_APPS = [*INSTALLED_APPS, "django_rq"]
RQ_QUEUES = {_QUEUE: {"URL": os.environ["TEST_RQ_URL"]}}
TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": [_QUEUE]}}
INTEGRATIONS_TASK_QUEUE = _QUEUE
CACHES["default"]["KEY_PREFIX"] = _QUEUE
