"""Benchmark: a burst of 2,000 WeCom add_external_contact callbacks while a 100,000-recipient broadcast sends.

Targets (issue "WeCom intake"): (1) 2,000 signed, encrypted ``add_external_contact`` callbacks from 50
concurrent clients: 0 lost, 0 duplicates, response p95 < 50 ms; (2) welcome latency (the event received by
our endpoint → ``send_welcome_msg`` accepted by WeCom) p99 < 5 s with 2 worker processes on the ``wecom``
queue, while the default-queue workers send a 100,000-recipient broadcast.

    .venv/bin/python bench/wecom_callbacks.py            # into scrm_bench_wecom_cb (DROPped and CREATEd)

Everything runs in real processes on this machine:

* the web app: ``gunicorn scrm.wsgi -w 4 -k gthread --threads 8`` (DEBUG off), ``POST /wecom/callback/``;
* Celery on Redis (``--redis-url``, the db is FLUSHed first): one worker ``-Q default --concurrency=2``
  (the broadcast) and one ``-Q wecom --concurrency=2`` (the callbacks and welcomes: 2 processes);
* the WeCom stand-in (``wecom.standin``) in its own process (this script with ``--serve-standin``), so its
  answers do not wait on the GIL of the 50 client threads (``--standin-in-process`` serves it from this
  process instead, to compare). Two bench-only control endpoints are added to it: ``bench/prepare`` makes
  the customers and their follows (10 staff, round robin, the live code's state) and returns the
  decrypted callback messages; ``bench/arm`` creates one welcome code at the moment its callback is sent
  (WeCom creates it on the add and pushes at once; the stand-in accepts a welcome within 20 s of that).

Sequence: set-up (10 staff, a live code with a welcome template, 100,000 consenting contacts written
set-based, a segment of everyone, a template, quiet hours off); start the processes; 100 warm-up callbacks
(10 clients; not counted); the broadcast is submitted by a manager (so approved and scheduled) and
started by ``broadcasts_tick`` as beat would; as soon as its first delivery is sent the burst fires: 50
client threads each POST 40 pre-encrypted callbacks back to back over new connections (as WeCom does),
each POST timed. Then the script waits for every event to be processed and every welcome to be answered,
and for the broadcast to finish.

Figures: statuses, inbox rows (lost = events without a row), duplicates (inbox rows per key, contacts per
external_userid, follows per (staff, customer), add_friend touchpoints per contact, welcome ledger rows
and welcomes accepted by the stand-in per welcome code), response time measured by the client (and by
gunicorn, ``%(D)s`` of its access log, without the accept queue), welcome latency from
``CallbackEvent.received_at`` (the web process's clock) to the stand-in's ``accepted_at`` (same machine,
same clock), split into queue wait / processing / send; a welcome never accepted counts as infinitely
late. Broadcast deliveries sent during the burst prove the default workers were busy.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import http.client
import json
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from urllib.parse import urlencode, urlparse

from _common import BASE_DIR, database_recreate, django_setup, machine, percentile

from wecom.standin import WeComStandIn, serve

RESPONSE_P95_TARGET_MS = 50.0
WELCOME_P99_TARGET_S = 5.0
ALLOWED = {"scrm_bench_wecom_cb"}
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/scrm_bench_wecom_cb"
STAFF = [f"s{i:02d}" for i in range(1, 11)]
AES_KEY_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


# --- The stand-in with two bench-only control endpoints --------------------------------------------


class BenchStandIn(WeComStandIn):
    def _control(self, method: str, path: str, raw: bytes, base: str):
        if (method, path) == ("POST", "bench/prepare"):
            return "200 OK", {"events": self.bench_prepare(**json.loads(raw))}
        if (method, path) == ("POST", "bench/arm"):
            body = json.loads(raw)
            with self.lock:
                self.welcome_codes[body["welcome_code"]] = {
                    "created": time.time(),
                    "used": False,
                    "userid": body["userid"],
                    "external_userid": body["external_userid"],
                }
            return "200 OK", {"ok": True}
        return super()._control(method, path, raw, base)

    def bench_prepare(self, *, n: int, state: str, userids: list[str], label: str) -> list[dict]:
        """``n`` customers who scanned the code with ``state``, each followed by the next of ``userids``:
        their decrypted add_external_contact messages (the welcome codes are created by ``bench/arm``)."""
        events = []
        with self.lock:
            for i in range(n):
                userid = userids[i % len(userids)]
                eid = self.customer_add(name=f"{label}客户{i}", gender=1 + i % 2)
                follow = self.follow_add(userid=userid, external_userid=eid, state=state, add_way=1)
                code = f"wc{label}{i:06d}{random.getrandbits(64):016x}"
                message = self.event_xml(
                    change_type="add_external_contact",
                    userid=userid,
                    external_userid=eid,
                    created=follow["createtime"],
                    state=state,
                    welcome_code=code,
                )
                events.append({"userid": userid, "external_userid": eid, "welcome_code": code, "message": message})
        return events


def serve_standin(config: dict) -> None:
    """``--serve-standin``: run the stand-in in this process and print its URL."""
    _server, url = serve(BenchStandIn(**config))
    print(url, flush=True)
    while True:
        time.sleep(3600)


# --- HTTP helpers ----------------------------------------------------------------------------------------


def _json(url: str, body: dict | None = None, timeout: float = 120) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method="POST" if body is not None else "GET", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Callback:
    """One pre-built callback: the encrypted body, its signed query string, and what it is about."""

    def __init__(self, event: dict, crypto) -> None:
        self.userid = event["userid"]
        self.external_userid = event["external_userid"]
        self.welcome_code = event["welcome_code"]
        self.key = hashlib.sha256(event["message"].encode()).hexdigest()  # the inbox row's key
        self.body, sealed = crypto.encrypted_xml(event["message"])
        self.query = urlencode(
            {"msg_signature": sealed.signature, "timestamp": sealed.timestamp, "nonce": sealed.nonce}
        )
        self.status = 0
        self.started = self.seconds = 0.0


def push(standin_url: str, host: str, port: int, callback: Callback) -> None:
    """Create the callback's welcome code in the stand-in (untimed), then POST the callback on a new
    connection, timed from connect to the last byte of the answer."""
    _json(
        f"{standin_url}/standin/bench/arm",
        {
            "welcome_code": callback.welcome_code,
            "userid": callback.userid,
            "external_userid": callback.external_userid,
        },
    )
    callback.started = time.time()
    started = time.perf_counter()
    connection = http.client.HTTPConnection(host, port, timeout=60)
    try:
        connection.request(
            "POST",
            f"/wecom/callback/?{callback.query}",
            body=callback.body,
            headers={"Content-Type": "text/xml; charset=utf-8"},
        )
        response = connection.getresponse()
        response.read()
        callback.status = response.status
    except OSError:
        callback.status = 0
    finally:
        connection.close()
    callback.seconds = time.perf_counter() - started


def fire(standin_url: str, host: str, port: int, callbacks: list[Callback], clients: int) -> tuple[float, float]:
    """``clients`` threads, each pushing its share of ``callbacks`` back to back; returns (start, end)."""
    shares = [callbacks[i::clients] for i in range(clients)]
    barrier = threading.Barrier(clients + 1)

    def client(share: list[Callback]) -> None:
        barrier.wait()
        for callback in share:
            push(standin_url, host, port, callback)

    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.time()
    for thread in threads:
        thread.join()
    return started, time.time()


# --- Processes -------------------------------------------------------------------------------------------


class Processes:
    def __init__(self, logs: str) -> None:
        self.logs = logs
        self.running: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict) -> subprocess.Popen:
        log = open(os.path.join(self.logs, f"{name}.log"), "w")  # noqa: SIM115 - lives as long as the process
        process = subprocess.Popen(
            argv, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.running.append((name, process))
        return process

    def stop(self) -> None:
        for _name, process in self.running:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for _name, process in self.running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def _wait_for(predicate, *, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    sys.exit(f"timed out after {timeout:.0f} s waiting for {what}")


def _fmt_ms(values: list[float]) -> str:
    return " · ".join(f"{label} {percentile(values, p) * 1000:,.1f}" for label, p in _PERCENTILES) + (
        f" · max {max(values) * 1000:,.1f} ms"
    )


def _fmt_s(values: list[float]) -> str:
    def one(v: float) -> str:
        return "never" if v == float("inf") else f"{v:,.2f}"

    return " · ".join(f"{label} {one(percentile(values, p))}" for label, p in _PERCENTILES) + (
        f" · max {one(max(values))} s"
    )


_PERCENTILES = (("p50", 50), ("p95", 95), ("p99", 99))


# --- The benchmark ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL") or DEFAULT_URL)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11", help="its db is FLUSHed")
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--contacts", type=int, default=100_000, help="recipients of the broadcast")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--standin-in-process", action="store_true", help="serve the stand-in from this process")
    parser.add_argument("--serve-standin", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_standin:
        serve_standin(json.loads(args.serve_standin))
        return
    if urlparse(args.database_url).path.lstrip("/") not in ALLOWED:
        sys.exit(f"Refusing: only {', '.join(sorted(ALLOWED))} is accepted (the database is dropped).")

    rng = random.Random()
    config = {
        "corp_id": f"ww{uuid.uuid4().hex[:16]}",
        "corp_secret": uuid.uuid4().hex,
        "token": uuid.uuid4().hex[:24],
        "encoding_aes_key": "".join(rng.choice(AES_KEY_ALPHABET) for _ in range(43)),
        "staff": STAFF,
    }
    standin_process = None
    if args.standin_in_process:
        _server, standin_url = serve(BenchStandIn(**config))
    else:
        standin_process = subprocess.Popen(
            [sys.executable, __file__, "--serve-standin", json.dumps(config)], stdout=subprocess.PIPE, text=True
        )
    logs = tempfile.mkdtemp(prefix="wecom-callbacks-bench-")
    processes = Processes(logs)
    try:
        if standin_process is not None:
            standin_url = standin_process.stdout.readline().strip()
        env = {
            "DATABASE_URL": args.database_url,
            "DEBUG": "0",
            "SECRET_KEY": uuid.uuid4().hex * 2,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "REDIS_URL": args.redis_url,
            "CELERY_BROKER_URL": args.redis_url,
            "WECOM_API_BASE": f"{standin_url}/cgi-bin",
            "WECOM_CORP_ID": config["corp_id"],
            "WECOM_CORP_SECRET": config["corp_secret"],
            "WECOM_CALLBACK_TOKEN": config["token"],
            "WECOM_ENCODING_AES_KEY": config["encoding_aes_key"],
            "SCRM_GATEWAY_WECOM": "outbox",
            "SCRM_VAR_DIR": logs,
            "LOG_LEVEL": "WARNING",
        }
        os.environ.update(env)
        import redis

        redis.Redis.from_url(args.redis_url).flushdb()
        database_recreate(args.database_url)
        django_setup(args.database_url)
        run(args, standin_url, config, processes, dict(os.environ, **env), logs)
    finally:
        processes.stop()
        if standin_process is not None:
            standin_process.terminate()
            standin_process.wait(timeout=10)
    shutil.rmtree(logs, ignore_errors=True)


def run(args, standin_url: str, config: dict, processes: Processes, env: dict, logs: str) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Count, Max, Min

    from campaigns import sending, services
    from campaigns.models import Broadcast, Delivery, FrequencyPolicy, MessageTemplate
    from contacts.models import Channel, Contact, Touchpoint
    from scrm.celery import app
    from wecom.crypto import WeComCrypto
    from wecom.livecodes import PoolMember, live_code_create
    from wecom.models import CallbackEvent, FollowRelationship, StaffAccount

    print(machine())
    started = time.monotonic()
    call_command("migrate", verbosity=0)
    User = get_user_model()
    manager = User.objects.create_user("manager", first_name="经理")
    manager.groups.add(Group.objects.get(name="manager"))
    accounts = []
    for userid in STAFF:
        user = User.objects.create_user(userid, first_name=f"员工{userid[1:]}")
        accounts.append(StaffAccount.objects.create(userid=userid, user=user))
    welcome = MessageTemplate.objects.create(name="欢迎语", body="{name} 你好，欢迎来到门店！", is_service=True)
    live_code = live_code_create(
        actor=manager,
        name="门店海报",
        channel=Channel.objects.create(name="线下门店", kind=Channel.Kind.OFFLINE_STORE),
        pool=[PoolMember(account) for account in accounts],
        welcome_template=welcome,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO contacts_contact (name, email, gender, region, city, occupation, acquired_at, intent_level,
                stage, attributes, marketing_consent, consent_at, consent_source, purchase_count, total_spent,
                referral_count, created_at, updated_at, owner_id)
            SELECT '会员' || n, '', 'unknown', '', '', '', now() - n * interval '1 minute', 'none', 'lead', '{}',
                   true, now(), 'bench', 0, 0, 0, now(), now(), %s
            FROM generate_series(1, %s) AS n
            """,
            [manager.pk, args.contacts],
        )
        cursor.execute("VACUUM ANALYZE")
    FrequencyPolicy.objects.update_or_create(pk=1, defaults={"quiet_hours_enabled": False})
    template = MessageTemplate.objects.create(
        name="双十二", body="{name}，您好！双十二会员专享券 {coupon} 已到账，{owner} 为您服务。"
    )
    segment = services.segment_create(name="所有人", rules={"op": "and", "rules": []}, created_by=manager)
    crypto = WeComCrypto(
        token=config["token"], encoding_aes_key=config["encoding_aes_key"], receive_id=config["corp_id"]
    )

    def prepare(n: int, label: str) -> list[Callback]:
        answer = _json(
            f"{standin_url}/standin/bench/prepare", {"n": n, "state": live_code.state, "userids": STAFF, "label": label}
        )
        return [Callback(event, crypto) for event in answer["events"]]

    warmup, burst = prepare(args.warmup, "w"), prepare(args.events, "b")
    print(
        f"set-up {time.monotonic() - started:.1f} s: {Contact.objects.count():,} contacts with consent, "
        f"live code {live_code.state} ({len(STAFF)} staff, welcome template), "
        f"{len(warmup) + len(burst):,} customers prepared in the stand-in"
    )

    # --- processes --------------------------------------------------------------------------------
    port = _free_port()
    access_log = os.path.join(logs, "access.log")
    gunicorn = [
        os.path.join(os.path.dirname(sys.executable), "gunicorn"),
        "scrm.wsgi",
        "-w",
        "4",
        "-k",
        "gthread",
        "--threads",
        "8",
        "-b",
        f"127.0.0.1:{port}",
        "--access-logfile",
        access_log,
        "--access-logformat",
        '"%(r)s" %(s)s %(D)s',
    ]
    celery = [sys.executable, "-m", "celery", "-A", "scrm", "worker", "--loglevel=WARNING"]
    quiet = ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    processes.start("gunicorn", gunicorn, env)
    processes.start("celery-default", [*celery, "-Q", "default", "--concurrency=2", "-n", "default@%h", *quiet], env)
    processes.start("celery-wecom", [*celery, "-Q", "wecom", "--concurrency=2", "-n", "wecom@%h", *quiet], env)
    for command in (gunicorn, processes.running[1][1].args, processes.running[2][1].args):
        print("  $ " + shlex.join(str(part) for part in command))

    def web_up() -> bool:
        try:
            connection_ = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection_.request("GET", "/wecom/callback/")
            return connection_.getresponse().status == 400  # answers: the signature is missing
        except OSError:
            return False

    _wait_for(web_up, timeout=60, what="gunicorn")

    def workers_up() -> bool:
        names = {name.split("@")[0] for reply in app.control.ping(timeout=1.0) for name in reply}
        return {"default", "wecom"} <= names

    _wait_for(workers_up, timeout=90, what="the Celery workers")

    # --- warm-up ----------------------------------------------------------------------------------
    fire(standin_url, "127.0.0.1", port, warmup, clients=10)
    finished = (CallbackEvent.Status.DONE, CallbackEvent.Status.FAILED, CallbackEvent.Status.IGNORED)
    _wait_for(
        lambda: CallbackEvent.objects.filter(status__in=finished).count() >= len(warmup),
        timeout=120,
        what="the warm-up events",
    )
    time.sleep(1)
    with open(access_log) as log:
        warmup_lines = sum(1 for _ in log)
    print(f"warm-up: {len(warmup)} callbacks from 10 clients, processed ({Counter(c.status for c in warmup)})")

    # --- the broadcast, then the burst while it sends -----------------------------------------------
    broadcast = services.broadcast_create(
        created_by=manager, name="双十二", template=template, segment=segment, variables={"coupon": "DD12"}
    )
    submitted = time.monotonic()
    broadcast = services.broadcast_submit(broadcast=broadcast, user=manager)  # a manager: approved, scheduled
    sending.broadcasts_tick()  # what beat would do (the submit enqueued one as well)
    sent_rows = Delivery.objects.filter(broadcast=broadcast, status=Delivery.Status.SENT)
    _wait_for(sent_rows.exists, timeout=300, what="the broadcast to start sending", interval=0.1)
    broadcast.refresh_from_db()
    print(
        f"broadcast {broadcast.pk} ({broadcast.status}, approved by {broadcast.approved_by}): "
        f"{broadcast.total_targeted:,} deliveries planned, first sent {time.monotonic() - submitted:.1f} s "
        "after the submit: burst fires now"
    )
    burst_start, burst_end = fire(standin_url, "127.0.0.1", port, burst, clients=args.clients)
    post_seconds = burst_end - burst_start
    keys = [c.key for c in burst]
    events = CallbackEvent.objects.filter(key__in=keys)

    def settled() -> bool:
        return not events.exclude(status__in=finished).exists() and events.count() >= sum(
            c.status == 200 for c in burst
        )

    _wait_for(settled, timeout=900, what="every burst event to be processed", interval=0.5)
    codes = [c.welcome_code for c in burst]
    welcome_rows = Delivery.objects.filter(welcome_code__in=codes)
    _wait_for(
        lambda: not welcome_rows.filter(status=Delivery.Status.SENDING).exists(),
        timeout=120,
        what="the welcome sends",
    )
    settled_at = time.time()
    accepted: dict[str, list[float]] = {}
    for welcome_ in _json(f"{standin_url}/standin/welcomes")["welcomes"]:
        accepted.setdefault(welcome_["welcome_code"], []).append(welcome_["accepted_at"])

    def window(start: float, end: float) -> int:
        return sent_rows.filter(
            sent_at__gte=dt.datetime.fromtimestamp(start, dt.UTC), sent_at__lte=dt.datetime.fromtimestamp(end, dt.UTC)
        ).count()

    sent_during_posts = window(burst_start, burst_end)
    sent_during_processing = window(burst_start, settled_at)
    sent_before = sent_rows.filter(sent_at__lt=dt.datetime.fromtimestamp(burst_start, dt.UTC)).count()

    # --- the broadcast to its end (context only) ----------------------------------------------------
    def broadcast_done() -> bool:
        if Broadcast.objects.filter(pk=broadcast.pk, status=Broadcast.Status.SENT).exists():
            return True
        sending.broadcasts_tick()
        return False

    _wait_for(broadcast_done, timeout=900, what="the broadcast to finish", interval=5)
    broadcast.refresh_from_db()
    span = Delivery.objects.filter(broadcast=broadcast, status=Delivery.Status.SENT).aggregate(
        first=Min("sent_at"), last=Max("sent_at")
    )
    broadcast_sent = sent_rows.count()

    # --- figures --------------------------------------------------------------------------------------
    statuses = Counter(c.status for c in burst)
    rows = {
        key: (received, claimed, processed, status)
        for key, received, claimed, processed, status in events.values_list(
            "key", "received_at", "claimed_at", "processed_at", "status"
        )
    }
    lost = sum(1 for c in burst if c.key not in rows)
    burst_eids = [c.external_userid for c in burst]
    dup_keys = (
        CallbackEvent.objects.values("key").annotate(n=Count("id")).filter(n__gt=1).count()
    )  # the unique key makes this 0 by construction; counted all the same
    dup_contacts = (
        Contact.objects.filter(wecom_external_userid__in=burst_eids)
        .values("wecom_external_userid")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    contacts = Contact.objects.filter(wecom_external_userid__in=burst_eids).count()
    follows = FollowRelationship.objects.filter(external_userid__in=burst_eids)
    dup_follows = follows.values("staff_id", "external_userid").annotate(n=Count("id")).filter(n__gt=1).count()
    adds = Touchpoint.objects.filter(kind=Touchpoint.Kind.ADD_FRIEND, contact__wecom_external_userid__in=burst_eids)
    dup_adds = adds.values("contact_id").annotate(n=Count("id")).filter(n__gt=1).count()
    dup_ledger = welcome_rows.values("welcome_code").annotate(n=Count("id")).filter(n__gt=1).count()
    dup_accepted = sum(1 for code in codes if len(accepted.get(code, [])) > 1)
    ledger = Counter(welcome_rows.values_list("status", flat=True))
    processing = Counter(status for _r, _c, _p, status in rows.values())

    client_seconds = [c.seconds for c in burst]
    with open(access_log) as log:
        lines = [line for line in log][warmup_lines:]
    server_seconds = [int(line.rsplit(" ", 1)[1]) / 1e6 for line in lines if "/wecom/callback/" in line]

    latency, queue_wait, handling, send = [], [], [], []
    for c in burst:
        row = rows.get(c.key)
        times = accepted.get(c.welcome_code)
        if row is None:
            latency.append(float("inf"))
            continue
        received, claimed, processed, _status = row
        latency.append(min(times) - received.timestamp() if times else float("inf"))
        if claimed:
            queue_wait.append((claimed - received).total_seconds())
        if claimed and processed:
            handling.append((processed - claimed).total_seconds())
        if processed and times:
            send.append(min(times) - processed.timestamp())
    received_all = [r[0] for r in rows.values()]
    processed_all = [r[2] for r in rows.values() if r[2]]
    claimed_all = [r[1] for r in rows.values() if r[1]]
    process_span = (max(processed_all) - min(claimed_all)).total_seconds() if processed_all else 0.0
    receive_span = (max(received_all) - min(received_all)).total_seconds() if received_all else 0.0

    print()
    print(
        f"BURST: {len(burst):,} add_external_contact callbacks from {args.clients} clients in {post_seconds:.1f} s "
        f"({len(burst) / post_seconds:,.0f}/s); HTTP statuses {dict(sorted(statuses.items()))}"
    )
    print(f"  inbox rows {len(rows):,} of {len(burst):,} events — lost {lost}; processing {dict(processing)}")
    print(
        f"  duplicates: inbox rows per key {dup_keys} · contacts per external_userid {dup_contacts} "
        f"({contacts:,} contacts) · follows per (staff, customer) {dup_follows} ({follows.count():,} follows) · "
        f"add_friend touchpoints per contact {dup_adds} ({adds.count():,}) · welcome ledger rows per code "
        f"{dup_ledger} ({welcome_rows.count():,}: {dict(ledger)}) · welcomes accepted twice {dup_accepted}"
    )
    print(f"  response (client: connect → answer read): {_fmt_ms(client_seconds)}")
    if server_seconds:
        print(f"  response (gunicorn %(D)s, {len(server_seconds):,} requests): {_fmt_ms(server_seconds)}")
    p95 = percentile(client_seconds, 95) * 1000
    verdict = "within target" if p95 <= RESPONSE_P95_TARGET_MS else "OVER target"
    print(
        f"RESPONSE p95: {p95:,.1f} ms = {p95 / RESPONSE_P95_TARGET_MS:.2f} × the "
        f"{RESPONSE_P95_TARGET_MS:g} ms target ({verdict})"
    )
    print()
    accepted_burst = sum(1 for code in codes if code in accepted)
    print(
        f"WELCOMES: {accepted_burst:,} of {len(burst):,} accepted by the stand-in "
        f"({len(burst) - accepted_burst:,} not: too late for the 20 s window or failed); 2 worker processes "
        f"(-Q wecom --concurrency=2) processed the burst in {process_span:.1f} s "
        f"({len(processed_all) / process_span if process_span else 0:,.0f} events/s); "
        f"the endpoint received it over {receive_span:.1f} s"
    )
    print(f"  latency received → welcome accepted: {_fmt_s(latency)}")
    if queue_wait:
        print(f"    queue wait   received → claimed by a worker: {_fmt_s(queue_wait)}")
    if handling:
        print(f"    processing   claimed → processed (commit):  {_fmt_s(handling)}")
    if send:
        print(f"    welcome send processed → accepted:          {_fmt_s(send)}")
    p99 = percentile(latency, 99)
    verdict = "within target" if p99 <= WELCOME_P99_TARGET_S else "OVER target"
    shown = "∞ (more than 1 % never accepted)" if p99 == float("inf") else f"{p99:,.2f} s"
    ratio = "∞" if p99 == float("inf") else f"{p99 / WELCOME_P99_TARGET_S:.2f}"
    print(f"WELCOME p99: {shown} = {ratio} × the {WELCOME_P99_TARGET_S:g} s target ({verdict})")
    print()
    total_span = (span["last"] - span["first"]).total_seconds() if span["first"] else 0.0
    print(
        f"BROADCAST: {broadcast_sent:,} sent ({broadcast.status}); {sent_before:,} before the burst, "
        f"{sent_during_posts:,} while the burst was POSTed ({post_seconds:.1f} s), {sent_during_processing:,} "
        f"from the burst's start until its last welcome ({settled_at - burst_start:.1f} s); "
        f"first → last sent {total_span:.1f} s ({broadcast_sent / total_span if total_span else 0:,.0f}/s)"
    )
    print(f"load average after the run: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
