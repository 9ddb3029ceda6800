"""Shared helpers of the Python tests under tests/.

- The live-server harness of sdk-tests/python (TotpdServer, create_key,
  totpd_bin), re-exported so every test starts `totpd serve` the same way.
- A TOTP reference written from RFC 4226/6238 with Python's hmac module:
  nothing shared with totpd, and no minimum secret length (pyotp refuses
  the 80-bit secrets real services issue).
- A small keep-alive HTTP client for the API, one per thread.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import http.client
import json
import struct
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "sdk-tests" / "python"))

from totpd_server import (  # noqa: E402  (needs the path above)
    TotpdError,
    TotpdServer,
    create_key,
    server_env,
    totpd_bin,
)

__all__ = [
    "Api",
    "REPO_ROOT",
    "TotpdError",
    "TotpdServer",
    "b32_bytes",
    "code_matches",
    "create_key",
    "hotp",
    "server_env",
    "totpd_bin",
]

_DIGESTS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}


def b32_bytes(secret: str) -> bytes:
    """Lenient base32 as services hand it out: any case, spaces, hyphens."""
    clean = secret.replace(" ", "").replace("-", "").rstrip("=").upper()
    return base64.b32decode(clean + "=" * (-len(clean) % 8))


def hotp(key: bytes, counter: int, algorithm: str = "SHA1", digits: int = 6) -> str:
    """RFC 4226 §5.3: HMAC, dynamic truncation, modulo 10^digits, zero-padded."""
    mac = hmac.new(key, struct.pack(">Q", counter), _DIGESTS[algorithm]).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def unix_seconds(rfc3339_utc: str) -> int:
    """`2026-11-26T05:13:00Z` (whole seconds, UTC) as a Unix time."""
    return calendar.timegm(time.strptime(rfc3339_utc, "%Y-%m-%dT%H:%M:%SZ"))


def code_matches(key: bytes, algorithm: str, body: dict) -> bool:
    """Whether a code response's `code` is RFC 6238's for its own period.

    The period is taken from the response's `expires_at` (the end of the
    code's period), so the check is exact and needs no clock skew window.
    """
    period = body["period"]
    counter = unix_seconds(body["expires_at"]) // period - 1
    return body["code"] == hotp(key, counter, algorithm, body["digits"])


class Api:
    """A keep-alive HTTP/1.1 client for one server; not thread-safe."""

    def __init__(self, port: int, key_id: str, secret: str, timeout: float = 10.0) -> None:
        self.port = port
        self.headers = {"sb-api-key-id": key_id, "sb-api-secret-key": secret}
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body=None, headers=None, raw: bytes | None = None):
        """Returns (status, parsed JSON or None). Network errors propagate,
        after the connection is dropped so the next call opens a new one."""
        all_headers = dict(self.headers)
        payload = raw
        if body is not None:
            payload = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            self._conn.request(method, path, body=payload, headers=all_headers)
            response = self._conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        # A server may answer an error before reading the whole body and
        # then close the connection without saying so; a client cannot tell,
        # so it does not reuse such a connection.
        if response.getheader("connection", "").lower() == "close" or (
            payload is not None and response.status >= 400
        ):
            self.close()
        try:
            return response.status, json.loads(data) if data else None
        except ValueError:
            return response.status, None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
