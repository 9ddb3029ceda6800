"""Reference OTP codes for the import fixtures, from Python's own hmac module
(RFC 4226 §5.3 dynamic truncation, RFC 6238 §4 with T0 = 0), written without
totpd so the readers are checked against an independent implementation.

Each fixture script describes its credentials with `Credential` and writes
`<name>.expected.json` with `expected()`: one object per entry in file order,
either the parameters and codes, or `{"invalid": true, "label", "issuer"}`.
"""

import base64
import hashlib
import hmac
import json
import struct
from dataclasses import dataclass
from typing import Optional
from urllib.parse import quote

# The times the tests compare codes at: RFC 6238's first test time, one in
# 2005 and one past 2033.
TIMES = (59, 1111111109, 2000000000)

DIGESTS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}


def hotp(secret: bytes, counter: int, digits: int, algorithm: str) -> str:
    mac = hmac.new(secret, struct.pack(">Q", counter), DIGESTS[algorithm]).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


@dataclass
class Credential:
    label: str
    issuer: Optional[str]
    secret_b32: str = ""
    type: str = "totp"  # totp, hotp, or an unserved kind (steam)
    algorithm: str = "SHA1"
    digits: int = 6
    period: int = 30
    counter: int = 0
    # How the entry is expected to come out: the label and issuer the reader
    # should report (defaults: the same as above).
    expect_label: Optional[str] = None
    expect_issuer: Optional[str] = None

    @property
    def secret(self) -> bytes:
        text = self.secret_b32.upper()
        return base64.b32decode(text + "=" * (-len(text) % 8))

    def uri(self, with_issuer_param: bool = True, with_label_prefix: bool = True) -> str:
        """The Key URI Format text of this credential, every parameter present."""
        label = quote(self.label, safe="@")
        if self.issuer and with_label_prefix:
            label = quote(self.issuer, safe="") + ":" + label
        query = [("secret", self.secret_b32)]
        if self.issuer and with_issuer_param:
            query.append(("issuer", self.issuer))
        query += [("algorithm", self.algorithm), ("digits", str(self.digits))]
        if self.type == "hotp":
            query.append(("counter", str(self.counter)))
        else:
            query.append(("period", str(self.period)))
        text = "&".join(f"{k}={quote(v, safe='')}" for k, v in query)
        return f"otpauth://{self.type}/{label}?{text}"

    def expected(self) -> dict:
        label = self.label if self.expect_label is None else self.expect_label
        issuer = self.issuer if self.expect_issuer is None else self.expect_issuer
        if self.type not in ("totp", "hotp"):
            return {"invalid": True, "label": label, "issuer": issuer}
        out = {
            "label": label,
            "issuer": issuer,
            "type": self.type,
            "algorithm": self.algorithm,
            "digits": self.digits,
        }
        if self.type == "hotp":
            out["counter"] = self.counter
            out["codes"] = {
                str(self.counter + i): hotp(self.secret, self.counter + i, self.digits, self.algorithm)
                for i in range(3)
            }
        else:
            out["period"] = self.period
            out["codes"] = {
                str(t): hotp(self.secret, t // self.period, self.digits, self.algorithm) for t in TIMES
            }
        return out


def write_expected(path, credentials) -> None:
    with open(path, "w", encoding="utf-8") as out:
        json.dump([c.expected() for c in credentials], out, ensure_ascii=False, indent=1)
        out.write("\n")


# RFC 6238 Appendix B secrets (ASCII "1234567890" repeated to the hash size),
# a 160-bit random-looking one, and an 80-bit one (the shortest RFC 4226
# allows is 128 bits; real services still issue 80-bit keys).
SECRET_SHA1 = base64.b32encode(b"12345678901234567890").decode().rstrip("=")
SECRET_SHA256 = base64.b32encode(b"12345678901234567890123456789012").decode().rstrip("=")
SECRET_SHA512 = base64.b32encode(b"1234567890" * 6 + b"1234").decode().rstrip("=")
SECRET_80 = "JBSWY3DPEHPK3PXP"

# RFC 6238 Appendix B gives these codes; check the reference against them.
assert hotp(b"12345678901234567890", 59 // 30, 8, "SHA1") == "94287082"
assert hotp(b"12345678901234567890123456789012", 1111111109 // 30, 8, "SHA256") == "68084774"
assert hotp(b"1234567890" * 6 + b"1234", 2000000000 // 30, 8, "SHA512") == "38618901"
