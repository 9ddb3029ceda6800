#!/usr/bin/env python3
"""Writes the Aegis fixtures from Aegis' own format description
(https://github.com/beemdevelopment/Aegis/blob/master/docs/vault.md):

- aegis_plain.json: header.slots and header.params null, db an object.
- aegis_encrypted.json: the same db, AES-256-GCM under a random master key;
  a biometric slot (type 2, which a reader must skip) and a password slot
  (type 1) wrapping the master key under scrypt(password, salt, N, r, p).
  The KDF parameters are the app's own: N = 2^15, r = 8, p = 1.
- <name>.expected.json: what a reader must give, with codes computed here by
  Python's hmac module (RFC 4226 / RFC 6238).

Run with a Python that has `cryptography`:
    python3 make_aegis.py
Every secret is a test value (the RFC test keys or "Hello!" bytes); the
password is PASSWORD below. Nonces, salts and keys are derived from fixed
labels so the output is the same on every run.
"""

import base64
import hashlib
import hmac
import json
import os
import struct
import sys

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from otp_reference import hotp  # noqa: E402  (RFC 4226 with Python's hmac)
PASSWORD = "aegis test password ✓"
TIMES = [59, 1111111109, 2000000000]


def b32(raw):
    return base64.b32encode(raw).decode().rstrip("=")


def fixed(label, n):
    """n deterministic bytes for a label (not random: fixtures must be reproducible)."""
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{label}/{i}".encode()).digest()
        i += 1
    return out[:n]




# (type, name, issuer, secret bytes, algo, digits, period or counter)
ENTRIES = [
    ("totp", "alice@example.com", "Example Mail", b"12345678901234567890", "SHA1", 6, 30),
    ("totp", "jörg", "Bücherei Zürich", b"12345678901234567890123456789012", "SHA256", 8, 30),
    ("totp", "bob", "Big Bank", b"1234567890" * 6 + b"1234", "SHA512", 8, 60),
    ("hotp", "carol", "VPN", b"12345678901234567890", "SHA1", 6, 42),
    ("steam", "erin", "Steam", b"steam test secret!!!", "SHA1", 5, 30),
    ("totp", "dave", "", b"Hello!\xde\xad\xbe\xef", "SHA1", 6, 30),  # 80-bit secret, no issuer
    ("yandex", "frank", "Yandex", b"yandex test secret 1", "SHA256", 8, 30),
]


def aegis_entry(i, kind, name, issuer, raw, algo, digits, param):
    info = {"secret": b32(raw), "algo": algo, "digits": digits}
    if kind == "hotp":
        info["counter"] = param
    else:
        info["period"] = param
    if kind == "yandex":
        info["pin"] = "1234"
    return {
        "type": kind,
        "uuid": "00000000-0000-4000-8000-%012d" % i,
        "name": name,
        "issuer": issuer,
        "note": "",
        "favorite": False,
        "icon": None,
        "icon_mime": None,
        "icon_hash": None,
        "info": info,
        "groups": [],
    }


def expected():
    out = []
    for kind, name, issuer, raw, algo, digits, param in ENTRIES:
        if kind not in ("totp", "hotp"):
            out.append({"invalid": True, "label": name, "issuer": issuer or None})
            continue
        item = {"label": name, "issuer": issuer or None, "type": kind,
                "algorithm": algo, "digits": digits}
        if kind == "hotp":
            item["counter"] = param
            item["codes"] = {str(c): hotp(raw, c, digits, algo) for c in range(param, param + 3)}
        else:
            item["period"] = param
            item["codes"] = {str(t): hotp(raw, t // param, digits, algo) for t in TIMES}
        out.append(item)
    return out


def write(name, value):
    with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
        json.dump(value, f, indent=4, ensure_ascii=False)
        f.write("\n")


def main():
    db = {"version": 3,
          "entries": [aegis_entry(i, *e) for i, e in enumerate(ENTRIES)],
          "groups": []}
    write("aegis_plain.json", {"version": 1, "header": {"slots": None, "params": None}, "db": db})

    master = fixed("master key", 32)
    db_nonce = fixed("db nonce", 12)
    sealed = AESGCM(master).encrypt(db_nonce, json.dumps(db, ensure_ascii=False).encode(), None)
    db_ct, db_tag = sealed[:-16], sealed[-16:]

    # A biometric slot: its wrapping key lives in the Android KeyStore, so a
    # reader cannot use it and must go on to the password slot.
    bio_key = fixed("biometric key", 32)
    bio_nonce = fixed("biometric nonce", 12)
    bio = AESGCM(bio_key).encrypt(bio_nonce, master, None)

    n, r, p = 2 ** 15, 8, 1
    salt = fixed("scrypt salt", 32)
    kek = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(PASSWORD.encode())
    slot_nonce = fixed("slot nonce", 12)
    wrapped = AESGCM(kek).encrypt(slot_nonce, master, None)

    header = {
        "slots": [
            {"type": 2, "uuid": "00000000-0000-4000-8000-0000000000b1",
             "key": bio[:-16].hex(),
             "key_params": {"nonce": bio_nonce.hex(), "tag": bio[-16:].hex()}},
            {"type": 1, "uuid": "00000000-0000-4000-8000-0000000000a1",
             "key": wrapped[:-16].hex(),
             "key_params": {"nonce": slot_nonce.hex(), "tag": wrapped[-16:].hex()},
             "n": n, "r": r, "p": p, "salt": salt.hex(), "repaired": True},
        ],
        "params": {"nonce": db_nonce.hex(), "tag": db_tag.hex()},
    }
    write("aegis_encrypted.json", {"version": 1, "header": header,
                                   "db": base64.b64encode(db_ct).decode()})
    write("aegis.expected.json", expected())


if __name__ == "__main__":
    main()
