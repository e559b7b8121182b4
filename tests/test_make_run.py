"""`make run` stops cleanly on Ctrl-C: web server, both Celery workers, beat and the WeCom stand-in are all
gone within seconds, make ends with 0 or 130 (interrupted), and nothing reports a crash.

Ctrl-C in a terminal sends SIGINT to the whole foreground process group; the test starts `make run` as the
leader of a new process group (on a fresh SCRM_VAR_DIR, free ports, a small demo seed, SQLite and the
filesystem broker whatever the environment says) and sends SIGINT to that group once the web server
answers. It takes about half a minute, mostly migrating the fresh database."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 240  # migrate + seed + start, on a busy machine
STOP_LIMIT = 10  # seconds from Ctrl-C until every process is gone (measured: about 5 s)

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups and ps as on Linux"),
    pytest.mark.skipif(shutil.which("make") is None, reason="needs make"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _group_members(pgid: int) -> list[str]:
    listing = subprocess.run(["ps", "-o", "pid=,stat=,args=", "-g", str(pgid)], capture_output=True, text=True)
    rows = [line.split(None, 2) for line in listing.stdout.splitlines() if line.strip()]
    # A zombie is already dead; it only waits for its parent to collect its status.
    return [" ".join(row) for row in rows if len(row) == 3 and not row[1].startswith("Z")]


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture
def installed():
    # `make run` would first install the requirements when they changed: not from a test.
    if subprocess.run(["make", "-q", ".venv/bin/.installed"], cwd=ROOT).returncode != 0:
        pytest.skip("the virtualenv is not up to date with requirements.txt (run `make install`)")


def test_ctrl_c_stops_make_run_within_seconds_without_a_crash(installed, tmp_path):
    port, standin_port = _free_port(), _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}
        and not key.startswith(("WECOM_", "DJANGO_", "PYTEST_"))
    }
    env.update(
        SCRM_VAR_DIR=str(tmp_path),
        PORT=str(port),
        WECOM_STANDIN_PORT=str(standin_port),
        DEMO_CONTACTS="20",
    )
    log_path = tmp_path / "make-run.log"
    with log_path.open("wb") as log:
        make = subprocess.Popen(
            ["make", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(port):
            assert make.poll() is None, f"make run ended early:\n{log_path.read_text(errors='replace')[-3000:]}"
            assert time.monotonic() < deadline, "the web server did not start"
            time.sleep(0.5)
        time.sleep(3)  # the workers and beat finish starting
        assert len(_group_members(make.pid)) >= 6, _group_members(make.pid)

        interrupted = time.monotonic()
        os.killpg(make.pid, signal.SIGINT)
        while (make.poll() is None or _group_members(make.pid)) and time.monotonic() - interrupted < 30:
            time.sleep(0.1)
        took = time.monotonic() - interrupted
        left = _group_members(make.pid)
    finally:
        try:
            os.killpg(make.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        make.wait(timeout=10)

    output = log_path.read_text(errors="replace")
    assert not left, f"still running {took:.1f}s after Ctrl-C: {left}"
    assert took < STOP_LIMIT, f"took {took:.1f}s to stop"
    assert make.returncode in (0, 130, -signal.SIGINT), make.returncode
    assert "Segmentation fault" not in output
    assert "Stopped." in output
