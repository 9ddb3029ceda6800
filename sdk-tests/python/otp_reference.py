"""An independent TOTP reference for checking the codes totpd hands out.

Two implementations that share nothing with totpd: RFC 4226/6238 written out
with Python's hmac module, and pyotp. pyotp refuses secrets shorter than
112 bits, so for those only the hmac version is used.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct

import pyotp

DIGESTS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}
PYOTP_MIN_BYTES = 14  # 112 bits


def b32decode(secret: str) -> bytes:
    """Decode base32 the lenient way real services hand it out."""
    cleaned = "".join(ch for ch in secret if ch not in " \t-=").upper()
    return base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))


def hotp(key: bytes, counter: int, digits: int, algorithm: str) -> str:
    """RFC 4226 section 5.3, with the hash chosen as RFC 6238 allows."""
    mac = hmac.new(key, struct.pack(">Q", counter), DIGESTS[algorithm]).digest()
    offset = mac[-1] & 0x0F
    binary = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(binary % 10**digits).zfill(digits)


def totp_at(secret_b32: str, unix: int, *, algorithm: str = "SHA1",
            digits: int = 6, period: int = 30) -> str:
    """The code for one unix second, cross-checked with pyotp when it can."""
    key = b32decode(secret_b32)
    code = hotp(key, unix // period, digits, algorithm)
    if len(key) >= PYOTP_MIN_BYTES:
        canonical = base64.b32encode(key).decode().rstrip("=")
        other = pyotp.TOTP(canonical, digits=digits, digest=DIGESTS[algorithm],
                           interval=period).at(unix)
        if other != code:
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
