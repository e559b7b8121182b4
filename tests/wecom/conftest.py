"""The adds drainers hold slots in the cache (Redis in CI, shared by every test): each test starts with
them free."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from wecom import inbox


@pytest.fixture(autouse=True)
def _free_drain_slots():
    cache.delete_many([inbox._slot(n) for n in range(inbox.ADD_DRAINERS)])
    yield
    cache.delete_many([inbox._slot(n) for n in range(inbox.ADD_DRAINERS)])
