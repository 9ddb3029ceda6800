#!/usr/bin/env python3
"""Writes the andOTP fixtures from andOTP's own sources
(https://github.com/andOTP/andOTP: Database/Entry.java for the JSON,
Utilities/BackupHelper.java, EncryptionHelper.java and Constants.java for
the encrypted backup), as Aegis' AndOtpImporter.java also reads them:

- andotp_plain.json: a JSON array of entries {secret, issuer, label,
  digits, type TOTP/HOTP/STEAM, algorithm, thumbnail, last_used,
  used_frequency, period (TOTP) or counter (HOTP), tags}. The last entry
  is in the older form without `issuer`, its label "Issuer - account".
- andotp_encrypted.json.aes: 4-byte big-endian PBKDF2 iteration count,
  12-byte salt, 12-byte nonce, then AES-256-GCM ciphertext and 16-byte tag
  of the same JSON, key = PBKDF2-HMAC-SHA1(password, salt, iterations, 256
  bits). andOTP picks the count at random in 140 000..160 000; this file
  carries 150 000, inside the app's own range.
- andotp.expected.json: what a reader must give, codes computed here by
  Python's hmac module (RFC 4226 / RFC 6238).

Run with a Python that has `cryptography`:  python3 make_andotp.py
Every secret is a test value; the password is PASSWORD below.
"""

import base64
import hashlib
import hmac
import json
import os
import struct
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from otp_reference import hotp  # noqa: E402  (RFC 4226 with Python's hmac)
PASSWORD = "andotp test password ✓"
ITERATIONS = 150_000
TIMES = [59, 1111111109, 2000000000]


def b32(raw):
    # andOTP writes Apache commons-codec Base32, with padding.
    return base64.b32encode(raw).decode()


def fixed(label, n):
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{label}/{i}".encode()).digest()
        i += 1
    return out[:n]




# (type, label, issuer (None: the older form without the key), expected
#  label, expected issuer, secret, algorithm, digits, period or counter)
ENTRIES = [
    ("TOTP", "alice@example.com", "Example Mail", "alice@example.com", "Example Mail", b"12345678901234567890", "SHA1", 6, 30),
    ("TOTP", "jörg", "Bücherei Zürich", "jörg", "Bücherei Zürich", b"12345678901234567890123456789012", "SHA256", 8, 30),
    ("TOTP", "bob", "Big Bank", "bob", "Big Bank", b"1234567890" * 6 + b"1234", "SHA512", 8, 60),
    ("HOTP", "carol", "VPN", "carol", "VPN", b"12345678901234567890", "SHA1", 6, 42),
    ("STEAM", "erin", "Steam", "erin", "Steam", b"steam test secret!!!", "SHA1", 5, 30),
    ("TOTP", "Forum - dave", None, "dave", "Forum", b"Hello!\xde\xad\xbe\xef", "SHA1", 6, 30),
]


def andotp_entry(i, kind, label, issuer, _label, _issuer, raw, algo, digits, param):
    item = {"secret": b32(raw)}
    if issuer is not None:
        item["issuer"] = issuer
    item.update({"label": label, "digits": digits, "type": kind, "algorithm": algo,
                 "thumbnail": "Default", "last_used": 1700000000000 + i, "used_frequency": i})
    if kind == "HOTP":
        item["counter"] = param
    elif kind == "TOTP":
        item["period"] = param
    item["tags"] = ["test"] if i % 2 else []
    return item


def expected():
    out = []
    for kind, _, _, label, issuer, raw, algo, digits, param in ENTRIES:
        if kind not in ("TOTP", "HOTP"):
            out.append({"invalid": True, "label": label, "issuer": issuer})
            continue
        item = {"label": label, "issuer": issuer, "type": kind.lower(), "algorithm": algo, "digits": digits}
        if kind == "HOTP":
            item["counter"] = param
            item["codes"] = {str(c): hotp(raw, c, digits, algo) for c in range(param, param + 3)}
        else:
            item["period"] = param
            item["codes"] = {str(t): hotp(raw, t // param, digits, algo) for t in TIMES}
        out.append(item)
    return out


def main():
    plain = json.dumps([andotp_entry(i, *e) for i, e in enumerate(ENTRIES)], ensure_ascii=False).encode()
    with open(os.path.join(HERE, "andotp_plain.json"), "wb") as f:
        f.write(plain)

    salt = fixed("andotp salt", 12)
    nonce = fixed("andotp nonce", 12)
    key = PBKDF2HMAC(algorithm=hashes.SHA1(), length=32, salt=salt, iterations=ITERATIONS).derive(PASSWORD.encode())
    sealed = AESGCM(key).encrypt(nonce, plain, None)
    with open(os.path.join(HERE, "andotp_encrypted.json.aes"), "wb") as f:
        f.write(struct.pack(">I", ITERATIONS) + salt + nonce + sealed)

    with open(os.path.join(HERE, "andotp.expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected(), f, indent=4, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
