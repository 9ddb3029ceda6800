#!/usr/bin/env python3
"""Writes the 2FAS fixtures from the backup format as 2FAS writes it and as
Aegis reads it (Aegis' TwoFASImporter.java and its test backups, schema
version 4; https://github.com/beemdevelopment/Aegis):

- 2fas_plain.2fas: `services[]`, each with `name` (the service, shown as
  the issuer), `secret` (base32) and `otp` {label, account, issuer, digits,
  period, algorithm, tokenType TOTP/HOTP/STEAM, counter}.
- 2fas_encrypted.2fas: `services` empty and `servicesEncrypted` =
  base64(ciphertext + tag) ":" base64(salt) ":" base64(iv), AES-256-GCM
  under PBKDF2-HMAC-SHA256(password, salt, 10 000 iterations, 256 bits)
  over the JSON array of the same services. The iteration count is fixed
  by the format (it is not in the file), so the app's own 10 000 is used;
  the salt is 256 bytes and the IV 12, as in 2FAS' own backups.
- 2fas.expected.json: what a reader must give, codes computed here by
  Python's hmac module (RFC 4226 / RFC 6238).

Run with a Python that has `cryptography`:  python3 make_2fas.py
Every secret is a test value; the password is PASSWORD below. Salt and IV
are derived from fixed labels so the output is the same on every run.
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
PASSWORD = "2fas test password ✓"
TIMES = [59, 1111111109, 2000000000]


def b32(raw):
    return base64.b32encode(raw).decode().rstrip("=")


def fixed(label, n):
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{label}/{i}".encode()).digest()
        i += 1
    return out[:n]




# (tokenType, service name, otp.account, otp.issuer, secret, algorithm,
#  digits, period or counter). A None account or issuer is left out of
#  `otp`: then the account comes from otp.label and the issuer is the name.
SERVICES = [
    ("TOTP", "Example Mail", "alice@example.com", "Example Mail", b"12345678901234567890", "SHA1", 6, 30),
    ("TOTP", "Bücherei Zürich", "jörg", "Bücherei Zürich", b"12345678901234567890123456789012", "SHA256", 8, 30),
    ("TOTP", "Big Bank", "bob", None, b"1234567890" * 6 + b"1234", "SHA512", 8, 60),
    ("HOTP", "VPN", None, "VPN", b"12345678901234567890", "SHA1", 6, 42),
    ("STEAM", "Steam", "erin", "Steam", b"steam test secret!!!", "SHA1", 5, 30),
    ("TOTP", "Forum", "dave", "Old Forum Name", b"Hello!\xde\xad\xbe\xef", "SHA1", 6, 30),
]
LABELS = {"VPN": "carol"}


def service(i, kind, name, account, issuer, raw, algo, digits, param):
    label = account if account is not None else LABELS[name]
    otp = {"label": label, "digits": digits, "algorithm": algo, "tokenType": kind, "source": "Manual"}
    if account is not None:
        otp["account"] = account
    if issuer is not None:
        otp["issuer"] = issuer
    if kind == "HOTP":
        otp["counter"] = param
    else:
        otp["period"] = param
    return {"name": name, "secret": b32(raw), "updatedAt": 1700000000000 + i,
            "otp": otp, "order": {"position": i},
            "icon": {"selected": "Label", "label": {"text": name[:2].upper(), "backgroundColor": "Default"}}}


def expected():
    out = []
    for kind, name, account, issuer, raw, algo, digits, param in SERVICES:
        label = account if account is not None else LABELS[name]
        if kind not in ("TOTP", "HOTP"):
            out.append({"invalid": True, "label": label, "issuer": name})
            continue
        item = {"label": label, "issuer": name, "type": kind.lower(), "algorithm": algo, "digits": digits}
        if kind == "HOTP":
            item["counter"] = param
            item["codes"] = {str(c): hotp(raw, c, digits, algo) for c in range(param, param + 3)}
        else:
            item["period"] = param
            item["codes"] = {str(t): hotp(raw, t // param, digits, algo) for t in TIMES}
        out.append(item)
    return out


def write(name, value):
    with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False)


def main():
    services = [service(i, *s) for i, s in enumerate(SERVICES)]
    common = {"groups": [], "updatedAt": 1700000001000, "schemaVersion": 4,
              "appVersionCode": 5000009, "appVersionName": "5.1.0", "appOrigin": "android"}
    write("2fas_plain.2fas", {"services": services, **common})

    salt = fixed("2fas salt", 256)
    iv = fixed("2fas iv", 12)
    key = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=10_000).derive(PASSWORD.encode())
    sealed = AESGCM(key).encrypt(iv, json.dumps(services, ensure_ascii=False).encode(), None)
    encrypted = ":".join(base64.b64encode(part).decode() for part in (sealed, salt, iv))
    write("2fas_encrypted.2fas", {"services": [], **common, "servicesEncrypted": encrypted})
    with open(os.path.join(HERE, "2fas.expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected(), f, indent=4, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
