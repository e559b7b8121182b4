"""The Celery application. Configuration lives in Django settings under the ``CELERY_`` prefix."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scrm.settings")

app = Celery("scrm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
