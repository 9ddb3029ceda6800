"""The one independent OTP oracle of the Python tests.

RFC 4226/6238 written out with Python's hmac module: nothing shared with
totpd, and no minimum secret length (real services issue 80-bit secrets,
which pyotp refuses). Where pyotp can check a code too, `totp_at` asks it
as a second, independent opinion.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import struct
import time

import pyotp

DIGESTS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}
# pyotp 2.12 refuses secrets under 112 bits, and TOTP intervals over 120 s.
PYOTP_MIN_BYTES = 14
PYOTP_MAX_INTERVAL = 120


def b32decode(secret: str) -> bytes:
    """Lenient base32 as services hand it out: any case, spaces, hyphens,
    optional padding."""
    cleaned = "".join(ch for ch in secret if ch not in " \t-=").upper()
    return base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))


def b32encode(key: bytes) -> str:
    """Canonical unpadded base32, the form the API and otpauth URIs carry."""
    return base64.b32encode(key).decode().rstrip("=")


def hotp(key: bytes, counter: int, *, algorithm: str = "SHA1", digits: int = 6) -> str:
    """RFC 4226 §5.3 (HMAC, dynamic truncation, modulo 10^digits,
    zero-padded), with the hash chosen as RFC 6238 §1.2 allows."""
    mac = hmac.new(key, struct.pack(">Q", counter), DIGESTS[algorithm]).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def pyotp_code(key: bytes, unix: int, *, algorithm: str, digits: int, period: int) -> str | None:
    """pyotp's code for one Unix second, or None where pyotp cannot say."""
    if len(key) < PYOTP_MIN_BYTES:
        return None
    options = dict(digits=digits, digest=DIGESTS[algorithm])
    if period <= PYOTP_MAX_INTERVAL:
        return pyotp.TOTP(b32encode(key), interval=period, **options).at(unix)
    # pyotp.TOTP refuses longer intervals; its HOTP takes the counter.
    return pyotp.HOTP(b32encode(key), **options).at(unix // period)


def totp_at(secret_b32: str, unix: int, *, algorithm: str = "SHA1",
            digits: int = 6, period: int = 30) -> str:
    """RFC 6238 §4's code for one Unix second, cross-checked with pyotp when
    it can."""
    key = b32decode(secret_b32)
    code = hotp(key, unix // period, algorithm=algorithm, digits=digits)
    other = pyotp_code(key, unix, algorithm=algorithm, digits=digits, period=period)
    if other is not None and other != code:
        raise AssertionError(
            f"reference implementations disagree at {unix}: hmac {code}, pyotp {other}"
        )
    return code


def allowed_code_responses(secret_b32: str, before: float, after: float, *,
                           algorithm: str = "SHA1", digits: int = 6,
                           period: int = 30) -> dict[tuple[str, int], int]:
    """Every (code, expires_in) pair a correct server could answer.

    The server read its clock at some instant between `before` and `after`
    (both taken from this machine's clock around the request). For each whole
    second in that interval this gives the code and
    expires_in = period - (now mod period); usually the interval holds one or
    two seconds of a single period, and only when it crosses a period
    boundary does a second code become acceptable.
    """
    allowed: dict[tuple[str, int], int] = {}
    for unix in range(int(before), int(after) + 1):
        code = totp_at(secret_b32, unix, algorithm=algorithm, digits=digits, period=period)
        allowed[(code, period - unix % period)] = unix
    return allowed


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
    return body["code"] == hotp(key, counter, algorithm=algorithm, digits=body["digits"])
