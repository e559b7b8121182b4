"""Shared fixtures: one user per role, API clients for them, and the database-kind markers."""

from __future__ import annotations

import pytest
from django.db import connection
from rest_framework.test import APIClient

from scrm import roles
from tests.celery_utils import celery_conf_override
from tests.factories import UserFactory


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


def pytest_configure(config):
    """Hash test passwords with MD5: PBKDF2's deliberate slowness (over a second per user on a small
    machine) buys nothing in tests, and every fixture user hashes a password."""
    from django.conf import settings

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


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


@pytest.fixture
def celery_worker_process(transactional_db, tmp_path):
    """A real ``celery worker`` process on the test database, with Redis as broker when REDIS_URL is
    set (else the filesystem broker in a temporary folder). Yields a function that starts it; the
    process is killed (SIGKILL) at the end. PostgreSQL only: SQLite's in-memory test database cannot
    be shared with another process."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from django.conf import settings

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: a worker process cannot share SQLite's in-memory test database")
    db = settings.DATABASES["default"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["DATABASE_URL"] = (
        f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )

    redis_url = os.environ.get("REDIS_URL")
    env["SCRM_VAR_DIR"] = str(tmp_path)
    env["MEDIA_ROOT"] = str(settings.MEDIA_ROOT)  # uploads are shared storage between web and workers
    if redis_url:
        env["CELERY_BROKER_URL"] = redis_url
        transport_options = {"visibility_timeout": 3600}
    else:
        env["CELERY_BROKER_URL"] = "filesystem://"
        queue_dir = tmp_path / "broker" / "queue"
        queue_dir.mkdir(parents=True)
        (tmp_path / "broker" / "control").mkdir()
        transport_options = {
            "data_folder_in": str(queue_dir),
            "data_folder_out": str(queue_dir),
            "control_folder": str(tmp_path / "broker" / "control"),
            "store_processed": False,
        }
    # Point this process's producer at the same broker as the worker.
    override = celery_conf_override(
        broker_url=env["CELERY_BROKER_URL"], broker_transport_options=transport_options, task_always_eager=False
    )
    override.__enter__()
    processes: list[subprocess.Popen] = []

    def start(concurrency: int = 1, queue: str = "default", extra_env: dict | None = None) -> subprocess.Popen:
        log = open(tmp_path / f"worker-{len(processes)}.log", "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "scrm",
                "worker",
                "--loglevel=INFO",
                f"--concurrency={concurrency}",
                "-Q",
                queue,
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=settings.BASE_DIR,
            env={**env, **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        processes.append(process)
        time.sleep(0.5)
        return process

    yield start
    for process in processes:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)
    override.__exit__(None, None, None)


@pytest.fixture(autouse=True)
def _api_throttling_off(settings):
    """The API's rate limits (scrm.permissions) are off in tests, which make thousands of requests from one
    client; tests/test_security.py turns them on with low rates."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"user": None, "anon": None}}
