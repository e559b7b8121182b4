"""WeCom's callback message crypto (the WXBizMsgCrypt scheme), on ``cryptography``.

- ``msg_signature`` = SHA1 over the sorted token, timestamp, nonce and ciphertext, concatenated.
- The AES key is the 43-character EncodingAESKey plus "=", base64-decoded: 32 bytes; AES-256-CBC with
  the key's first 16 bytes as IV, PKCS#7 padding to a multiple of 32 bytes.
- Plaintext = 16 random bytes + the message's length (4 bytes, network order) + the message + the
  receiveid, which must equal our corp id.

Every failure raises ``CallbackRejected`` with a code the endpoint answers as a 4xx; nothing here
touches the database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32  # WeCom pads to 32 bytes, not to AES's 16
MAX_CLOCK_SKEW = 300  # seconds a timestamp may differ from our clock (replays older than this are refused)


class CallbackRejected(Exception):
    """A callback that is not WeCom's, or not for us. ``code`` names the reason for logs and the answer."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Encrypted:
    ciphertext: str  # base64
    signature: str
    timestamp: str
    nonce: str


class WeComCrypto:
    def __init__(self, *, token: str, encoding_aes_key: str, receive_id: str) -> None:
        if len(encoding_aes_key) != 43:
            raise ValueError("EncodingAESKey must be 43 characters")
        try:
            self.key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except binascii.Error as exc:
            raise ValueError("EncodingAESKey is not base64") from exc
        self.token = token
        self.receive_id = receive_id

    # --- signature ------------------------------------------------------------------------------

    def signature(self, timestamp: str, nonce: str, ciphertext: str) -> str:
        return hashlib.sha1("".join(sorted([self.token, timestamp, nonce, ciphertext])).encode()).hexdigest()

    def verify(self, *, signature: str, timestamp: str, nonce: str, ciphertext: str, now: float | None = None) -> None:
        """Raises unless the signature matches and the timestamp is fresh (``now=None``: the clock)."""
        if not (signature and timestamp and nonce and ciphertext):
            raise CallbackRejected(
                "missing_parameter", "msg_signature, timestamp, nonce and the ciphertext are required"
            )
        if not hmac.compare_digest(self.signature(timestamp, nonce, ciphertext), signature.lower()):
            raise CallbackRejected("bad_signature", "msg_signature does not match")
        try:
            sent = int(timestamp)
        except ValueError:
            raise CallbackRejected("bad_timestamp", "timestamp is not a number") from None
        clock = time.time() if now is None else now
        if abs(clock - sent) > MAX_CLOCK_SKEW:
            raise CallbackRejected("stale_timestamp", f"timestamp is more than {MAX_CLOCK_SKEW} s from our clock")

    # --- AES --------------------------------------------------------------------------------------

    def _cipher(self) -> Cipher:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def decrypt(self, ciphertext: str) -> str:
        """The message inside ``ciphertext``; raises unless it is well-formed and addressed to our corp."""
        try:
            raw = base64.b64decode(ciphertext, validate=True)
        except (binascii.Error, ValueError):
            raise CallbackRejected("bad_ciphertext", "the ciphertext is not base64") from None
        if not raw or len(raw) % 16:
            raise CallbackRejected("bad_ciphertext", "the ciphertext is not whole AES blocks")
        decryptor = self._cipher().decryptor()
        padded = decryptor.update(raw) + decryptor.finalize()
        pad = padded[-1]
        if not 1 <= pad <= BLOCK or padded[-pad:] != bytes([pad]) * pad:
            raise CallbackRejected("bad_ciphertext", "bad padding")
        plain = padded[:-pad]
        if len(plain) < 20:
            raise CallbackRejected("bad_ciphertext", "too short")
        (length,) = struct.unpack(">I", plain[16:20])
        if 20 + length > len(plain):
            raise CallbackRejected("bad_ciphertext", "the length field runs past the message")
        message, receive_id = plain[20 : 20 + length], plain[20 + length :]
        if receive_id.decode("utf-8", "replace") != self.receive_id:
            raise CallbackRejected("wrong_receiver", "the message is for another corp id")
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError:
            raise CallbackRejected("bad_ciphertext", "the message is not UTF-8") from None

    def encrypt(self, message: str, *, timestamp: str | None = None, nonce: str | None = None) -> Encrypted:
        """What WeCom sends (and what we answer a URL check with): used by the stand-in and the tests."""
        body = message.encode("utf-8")
        plain = os.urandom(16) + struct.pack(">I", len(body)) + body + self.receive_id.encode()
        pad = BLOCK - len(plain) % BLOCK
        plain += bytes([pad]) * pad
        encryptor = self._cipher().encryptor()
        ciphertext = base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()
        timestamp = timestamp or str(int(time.time()))
        nonce = nonce or str(int.from_bytes(os.urandom(4), "big"))
        return Encrypted(ciphertext, self.signature(timestamp, nonce, ciphertext), timestamp, nonce)

    def encrypted_xml(self, message: str, *, to_user: str = "") -> tuple[bytes, Encrypted]:
        """A callback POST body as WeCom sends it, and its query parameters."""
        sealed = self.encrypt(message)
        xml = (
            f"<xml><ToUserName><![CDATA[{to_user or self.receive_id}]]></ToUserName>"
            f"<Encrypt><![CDATA[{sealed.ciphertext}]]></Encrypt><AgentID><![CDATA[]]></AgentID></xml>"
        )
        return xml.encode(), sealed
