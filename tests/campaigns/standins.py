"""Local stand-ins for the services the campaign gateways talk to, each a real server on 127.0.0.1 (an
ephemeral port) in a background thread, and a pytest fixture that starts and stops it:

* ``WeComStandIn`` (fixture ``wecom``): ``gettoken`` and ``externalcontact/add_msg_template`` as WeCom
  documents them, with tokens you can expire, busy answers, HTTP 500s and a ``fail_list``;
* ``WebhookReceiver`` (fixture ``webhook_receiver``): checks every request's signature with its own
  HMAC code and answers what the test scripts (500, 429, 400, slow answers, per-message results);
* ``SMTPStandIn`` (fixture ``smtp_server``): a small SMTP server on ``socketserver`` that stores what it
  receives and refuses (550), defers (451) or hangs up on the recipients it is told to.

Import the fixtures into a test module with ``from tests.campaigns.standins import ...  # noqa: F401``.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import socketserver
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest


class _StandIn:
    """Runs ``self.server`` in a daemon thread; use as a context manager."""

    server: socketserver.BaseServer

    def start(self):
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output clean
        pass

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(self, status: int, body: bytes | dict | None = None, headers: dict | None = None) -> None:
        if isinstance(body, dict):
            body = json.dumps(body, ensure_ascii=False).encode()
        body = body or b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


# --- WeCom --------------------------------------------------------------------------------------


class WeComStandIn(_StandIn):
    """The two WeCom server APIs the gateway uses, with the error codes WeCom documents:
    40001 (bad corpid/secret at gettoken), 41001 (no token), 40014 (unknown token), 42001 (expired
    token), -1 (system busy), 60111 (unknown sender userid), and ``fail_list`` for external ids that are
    not customers of the sender."""

    def __init__(self, *, expires_in: int = 7200, senders: set[str] | None = None) -> None:
        # A fresh corp per stand-in: the gateway's token cache key differs, so tests never share a token.
        self.corp_id = f"ww{uuid.uuid4().hex[:16]}"
        self.corp_secret = uuid.uuid4().hex
        self.expires_in = expires_in
        self.senders = senders if senders is not None else {"alice", "bob"}
        self.not_customers: set[str] = set()  # external ids answered in fail_list
        self.busy = 0  # the next N add_msg_template calls answer errcode -1
        self.http_500 = 0  # the next N add_msg_template calls answer HTTP 500
        self.gettoken_calls = 0
        self.calls: list[dict] = []  # every add_msg_template request: {"token": ..., "body": ...}
        self.templates: list[dict] = []  # the accepted ones, with their "msgid"
        self._valid: set[str] = set()
        self._expired: set[str] = set()
        self._tokens = itertools.count(1)
        self._msgids = itertools.count(1)
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/cgi-bin"

    def settings(self) -> dict:
        return {"WECOM_API_BASE": self.api_base, "WECOM_CORP_ID": self.corp_id, "WECOM_CORP_SECRET": self.corp_secret}

    def expire_tokens(self) -> None:
        """Every token issued so far is now expired (WeCom may do this before expires_in)."""
        with self._lock:
            self._expired |= self._valid
            self._valid.clear()

    def _gettoken(self, query: dict) -> dict:
        if query.get("corpid") != [self.corp_id] or query.get("corpsecret") != [self.corp_secret]:
            return {"errcode": 40001, "errmsg": "invalid credential, hint: [standin]"}
        with self._lock:
            self.gettoken_calls += 1
            token = f"token-{next(self._tokens)}"
            self._valid.add(token)
        return {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": self.expires_in}

    def _add_msg_template(self, query: dict, raw: bytes) -> tuple[int, dict]:
        token = (query.get("access_token") or [""])[0]
        body = json.loads(raw or b"{}")
        with self._lock:
            self.calls.append({"token": token, "body": body})
            if not token:
                return 200, {"errcode": 41001, "errmsg": "access_token missing"}
            if token in self._expired:
                return 200, {"errcode": 42001, "errmsg": "access_token expired, hint: [standin]"}
            if token not in self._valid:
                return 200, {"errcode": 40014, "errmsg": "invalid access_token"}
            if self.http_500:
                self.http_500 -= 1
                return 500, {}
            if self.busy:
                self.busy -= 1
                return 200, {"errcode": -1, "errmsg": "system busy"}
            ids = body.get("external_userid") or []
            if body.get("chat_type", "single") != "single" or not isinstance(ids, list):
                return 200, {"errcode": 40058, "errmsg": "invalid chat_type or external_userid"}
            if len(ids) > 10000:
                return 200, {"errcode": 40058, "errmsg": "external_userid exceeds 10000"}
            if body.get("sender") not in self.senders:
                return 200, {"errcode": 60111, "errmsg": "invalid userid: sender not found"}
            if not (body.get("text") or {}).get("content"):
                return 200, {"errcode": 41041, "errmsg": "text content empty"}
            msgid = f"msg{next(self._msgids):04d}"
            self.templates.append({**body, "msgid": msgid})
            fail_list = [i for i in ids if i in self.not_customers]
            return 200, {"errcode": 0, "errmsg": "ok", "fail_list": fail_list, "msgid": msgid}

    def _handler(self):
        standin = self

        class Handler(_QuietHandler):
            def do_GET(self):
                url = urlsplit(self.path)
                if url.path == "/cgi-bin/gettoken":
                    self._answer(200, standin._gettoken(parse_qs(url.query)))
                else:
                    self._answer(404, {"errcode": 404, "errmsg": "not found"})

            def do_POST(self):
                url = urlsplit(self.path)
                raw = self._read_body()
                if url.path == "/cgi-bin/externalcontact/add_msg_template":
                    status, answer = standin._add_msg_template(parse_qs(url.query), raw)
                    self._answer(status, answer if status == 200 else b"<html>502 Bad Gateway</html>")
                else:
                    self._answer(404, {"errcode": 404, "errmsg": "not found"})

        return Handler


# --- Webhook receiver ----------------------------------------------------------------------------


@dataclass
class WebhookRequest:
    headers: dict[str, str]
    body: bytes
    signature_ok: bool
    status: int  # what the receiver answered

    @property
    def payload(self) -> dict:
        return json.loads(self.body)


@dataclass
class _Scripted:
    status: int
    body: dict | bytes | None = None
    delay: float = 0.0
    headers: dict = field(default_factory=dict)


class WebhookReceiver(_StandIn):
    """An integrator's endpoint. It checks the signature the way docs/webhooks.md tells receivers to,
    with its own code (not the gateway's), answers 401 to a bad one, and otherwise answers the scripted
    responses in order, then ``200 {"accepted": n}``."""

    def __init__(self, secret: str = "whsec-test-123") -> None:
        self.secret = secret
        self.requests: list[WebhookRequest] = []
        self._script: deque[_Scripted] = deque()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/scrm"

    def settings(self) -> dict:
        return {"SCRM_WEBHOOK_URL": self.url, "SCRM_WEBHOOK_SECRET": self.secret}

    def answer(
        self, status: int, body: dict | bytes | None = None, *, times: int = 1, delay: float = 0.0, headers=None
    ):
        """Answer the next ``times`` requests with ``status`` (and ``body``), after ``delay`` seconds."""
        with self._lock:
            for _ in range(times):
                self._script.append(_Scripted(status, body, delay, dict(headers or {})))

    def signature_ok(self, headers, body: bytes) -> bool:
        timestamp = headers.get("X-SCRM-Timestamp", "")
        signature = headers.get("X-SCRM-Signature", "")
        expected = (
            "sha256=" + hmac.new(self.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        )
        fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) < 300
        return fresh and hmac.compare_digest(expected, signature)

    def _handler(self):
        receiver = self

        class Handler(_QuietHandler):
            def do_POST(self):
                body = self._read_body()
                ok = receiver.signature_ok(self.headers, body)
                with receiver._lock:
                    scripted = receiver._script.popleft() if (ok and receiver._script) else None
                if not ok:
                    scripted = _Scripted(401, {"error": "bad signature"})
                elif scripted is None:
                    scripted = _Scripted(200, {"accepted": len(json.loads(body)["messages"])})
                with receiver._lock:
                    receiver.requests.append(WebhookRequest(dict(self.headers.items()), body, ok, scripted.status))
                if scripted.delay:
                    time.sleep(scripted.delay)
                try:
                    self._answer(scripted.status, scripted.body, scripted.headers)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a timeout test)

        return Handler


# --- SMTP ------------------------------------------------------------------------------------


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_to: list[str]
    data: bytes

    def message(self):
        import email
        from email import policy

        return email.message_from_bytes(self.data, policy=policy.default)


class SMTPStandIn(_StandIn):
    """Just enough SMTP (RFC 5321) for smtplib: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    def __init__(self) -> None:
        self.received: list[ReceivedMail] = []
        self.connections = 0
        self.reject: set[str] = set()  # RCPT TO answered 550 (mailbox unavailable)
        self.defer: set[str] = set()  # RCPT TO answered 451 (try again later)
        self.hang_up: set[str] = set()  # RCPT TO makes the server drop the connection without a word
        self._lock = threading.Lock()
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), self._handler(), bind_and_activate=False)
        server.allow_reuse_address = True
        server.daemon_threads = True
        server.server_bind()
        server.server_activate()
        self.server = server

    def settings(self) -> dict:
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": self.port,
            "EMAIL_HOST_USER": "",
            "EMAIL_HOST_PASSWORD": "",
            "EMAIL_USE_TLS": False,
        }

    def _handler(self):
        standin = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")
                self.wfile.flush()

            def handle(self):
                with standin._lock:
                    standin.connections += 1
                self.reply("220 standin.localhost ESMTP ready")
                mail_from, rcpt_to = None, []
                while line := self.rfile.readline():
                    command = line.decode("utf-8", "replace").rstrip("\r\n")
                    verb = command[:4].upper()
                    if verb == "EHLO":
                        self.reply("250-standin.localhost\r\n250-8BITMIME\r\n250 SMTPUTF8")
                    elif verb == "HELO":
                        self.reply("250 standin.localhost")
                    elif command.upper().startswith("MAIL FROM:"):
                        mail_from, rcpt_to = _angle(command[10:]), []
                        self.reply("250 2.1.0 OK")
                    elif command.upper().startswith("RCPT TO:"):
                        if mail_from is None:
                            self.reply("503 5.5.1 MAIL first")
                            continue
                        address = _angle(command[8:])
                        if address in standin.hang_up:
                            return
                        if address in standin.reject:
                            self.reply("550 5.1.1 mailbox unavailable")
                        elif address in standin.defer:
                            self.reply("451 4.3.0 try again later")
                        else:
                            rcpt_to.append(address)
                            self.reply("250 2.1.5 OK")
                    elif verb == "DATA":
                        if not rcpt_to:
                            self.reply("503 5.5.1 RCPT first")
                            continue
                        self.reply("354 end data with <CR><LF>.<CR><LF>")
                        lines = []
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                            lines.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                        with standin._lock:
                            standin.received.append(ReceivedMail(mail_from, rcpt_to, b"".join(lines)))
                        mail_from, rcpt_to = None, []
                        self.reply("250 2.0.0 queued")
                    elif verb == "RSET":
                        mail_from, rcpt_to = None, []
                        self.reply("250 2.0.0 OK")
                    elif verb == "NOOP":
                        self.reply("250 2.0.0 OK")
                    elif verb == "QUIT":
                        self.reply("221 2.0.0 bye")
                        return
                    else:
                        self.reply("502 5.5.2 command not implemented")

        return Handler


def _angle(text: str) -> str:
    """The address in ``<addr> PARAMS``."""
    text = text.strip()
    if text.startswith("<"):
        return text[1 : text.index(">")]
    return text.split()[0] if text else ""


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- Fixtures ----------------------------------------------------------------------------------


@pytest.fixture(name="wecom")
def wecom_fixture():
    with WeComStandIn() as server:
        yield server


@pytest.fixture(name="webhook_receiver")
def webhook_receiver_fixture():
    with WebhookReceiver() as server:
        yield server


@pytest.fixture(name="smtp_server")
def smtp_server_fixture():
    with SMTPStandIn() as server:
        yield server
