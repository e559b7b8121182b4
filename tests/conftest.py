"""Shared fixtures: one user per role, API clients for them, and the database-kind markers."""

from __future__ import annotations

import pytest
from django.db import connection
from rest_framework.test import APIClient

from scrm import roles
from tests.factories import UserFactory


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``postgres`` skip on SQLite, each saying why."""
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" in engine:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://... to run it")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    # Tests render templates without running collectstatic first.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def manager(db):
    return UserFactory(username="manager", role=roles.MANAGER)


@pytest.fixture
def operator(db):
    return UserFactory(username="operator", role=roles.OPERATOR)


@pytest.fixture
def other_operator(db):
    return UserFactory(username="operator2", role=roles.OPERATOR)


@pytest.fixture
def integrator(db):
    return UserFactory(username="integrator", role=roles.INTEGRATOR)


@pytest.fixture
def admin_user(db):
    return UserFactory(username="admin", role=roles.ADMIN)


def _client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def manager_api(manager):
    return _client_for(manager)


@pytest.fixture
def operator_api(operator):
    return _client_for(operator)


@pytest.fixture
def integrator_api(integrator):
    return _client_for(integrator)
