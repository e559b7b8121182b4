"""The settings module: embedded defaults and the production check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(env_overrides: dict, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DEBUG")}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_deploy_check_passes_with_production_variables(tmp_path):
    result = _run(
        {
            "SCRM_VAR_DIR": str(tmp_path),
            "SECRET_KEY": "x" * 64 + "production-secret-from-the-environment",
            "ALLOWED_HOSTS": "scrm.example.com",
            "SECURE_SSL_REDIRECT": "1",
            "SESSION_COOKIE_SECURE": "1",
            "CSRF_COOKIE_SECURE": "1",
            "SECURE_HSTS_SECONDS": "31536000",
            "SECURE_HSTS_INCLUDE_SUBDOMAINS": "1",
            "SECURE_HSTS_PRELOAD": "1",
        },
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_embedded_default_uses_sqlite_and_the_filesystem_broker(tmp_path):
    code = (
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE']);print(s.CELERY_BROKER_URL);print(s.TIME_ZONE, s.USE_TZ)"
    )
    env = {"SCRM_VAR_DIR": str(tmp_path)}
    result = _run(env, "shell", "--no-imports", "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == ["django.db.backends.sqlite3", "filesystem://", "Asia/Shanghai True"]
    assert (tmp_path / "secret_key").exists()


def test_redis_url_switches_broker_and_cache(tmp_path):
    code = "from django.conf import settings as s;print(s.CELERY_BROKER_URL);print(s.CACHES['default']['BACKEND'])"
    result = _run(
        {"SCRM_VAR_DIR": str(tmp_path), "REDIS_URL": "redis://127.0.0.1:6379/3"}, "shell", "--no-imports", "-c", code
    )
    assert result.stdout.split("\n")[:2] == ["redis://127.0.0.1:6379/3", "django.core.cache.backends.redis.RedisCache"]
