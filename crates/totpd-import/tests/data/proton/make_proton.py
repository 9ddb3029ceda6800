"""Writes Proton Authenticator exports (plain and password protected) and
their expected entries.

The layout follows Proton's source (protonpass/proton-pass-common,
proton-authenticator/src/entry/exporter.rs, entry/password_exporter.rs,
crypto.rs): the plain export is {"version": 1, "entries": [{"id", "content":
{"uri", "entry_type": "Totp" | "Steam"}, "note"}]}; the protected one is
{"version": 1, "salt": base64(16 bytes), "content": base64(nonce(12) ||
AES-256-GCM ciphertext || tag)}, the key Argon2id v1.3 (19 MiB, 2 passes,
1 lane, 32 bytes), the associated data "proton.authenticator.export.v1".

The KDF parameters are Proton's own (fixed by the format). Proton serves
TOTP and Steam, no HOTP.

Run with a Python that has `cryptography` and `argon2-cffi`:
    python make_proton.py
"""

import base64
import json
import os
import random
import sys

from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from otp_reference import (  # noqa: E402
    SECRET_80,
    SECRET_SHA1,
    SECRET_SHA256,
    SECRET_SHA512,
    Credential,
    write_expected,
)

PASSWORD = "Proton-export-pässword"
AAD = b"proton.authenticator.export.v1"
RNG = random.Random(20240602)


def rand(n):
    return bytes(RNG.getrandbits(8) for _ in range(n))


GITHUB = Credential("alice@example.com", "GitHub", SECRET_SHA1)
BUECHEREI = Credential("jürgen", "Bücherei Köln", SECRET_SHA256, algorithm="SHA256", digits=8, period=60)
BARE_LABEL = Credential("bob", None, SECRET_80)  # a URI without an issuer
MAIL = Credential("carol@example.org", "Mail", SECRET_SHA512, algorithm="SHA512", period=30)
STEAM = Credential(None, None, SECRET_80, type="steam")
CREDENTIALS = [GITHUB, BUECHEREI, BARE_LABEL, MAIL, STEAM]


def entry(uri, kind):
    h = rand(16).hex()
    return {"id": f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}", "content": {"uri": uri, "entry_type": kind},
            "note": None}


def plain_export():
    return {
        "version": 1,
        "entries": [
            entry(GITHUB.uri(), "Totp"),
            entry(BUECHEREI.uri(), "Totp"),
            entry(BARE_LABEL.uri(), "Totp"),
            entry(MAIL.uri(), "Totp"),
            entry("steam://" + SECRET_80, "Steam"),
        ],
    }


def protected_export(plain_text):
    salt = rand(16)
    key = hash_secret_raw(PASSWORD.encode(), salt, 2, 19 * 1024, 1, 32, Type.ID, 19)
    nonce = rand(12)
    content = nonce + AESGCM(key).encrypt(nonce, plain_text.encode(), AAD)
    return {"version": 1, "salt": base64.b64encode(salt).decode(), "content": base64.b64encode(content).decode()}


def write(name, document):
    with open(os.path.join(HERE, name), "w", encoding="utf-8") as out:
        json.dump(document, out, ensure_ascii=False)
        out.write("\n")


def main():
    plain = plain_export()
    write("plain.json", plain)
    # Proton writes the export with serde_json::to_string: compact.
    write("encrypted.json", protected_export(json.dumps(plain, ensure_ascii=False, separators=(",", ":"))))
    for name in ("plain", "encrypted"):
        write_expected(os.path.join(HERE, f"{name}.expected.json"), CREDENTIALS)


if __name__ == "__main__":
    main()
