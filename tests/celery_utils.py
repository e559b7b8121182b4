"""Test helpers around this process's Celery app."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def celery_conf_override(**values):
    """Point this process's Celery app elsewhere for a while (broker, eagerness). On exit the keys are
    *removed* from the app's explicit changes rather than set back: a pinned value would hide later
    ``settings.CELERY_*`` overrides of other tests (Celery reads Django settings lazily)."""
    from scrm.celery import app

    changes = app.conf.changes
    saved = {key: changes[key] for key in values if key in changes}
    app.conf.update(values)
    app._pool = None
    app.amqp._producer_pool = None
    try:
        yield
    finally:
        for key in values:
            if key in saved:
                changes[key] = saved[key]
            else:
                changes.pop(key, None)
        app._pool = None
        app.amqp._producer_pool = None
