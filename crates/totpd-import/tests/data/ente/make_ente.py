"""Writes Ente Auth exports (the plain URI list and the encrypted JSON) and
their expected entries.

The layout follows Ente's documentation (ente-io/ente,
docs/docs/auth/migration/export.md, "Auth Encrypted Export format") and the
app's export code (EnteAuthExport, CryptoUtil.deriveSensitiveKey,
CryptoUtil.encryptData): {"version": 1, "kdfParams": {"memLimit",
"opsLimit", "salt"}, "encryptedData", "encryptionNonce"}, the key libsodium's
crypto_pwhash (Argon2id v1.3, 32 bytes), the data one
crypto_secretstream_xchacha20poly1305 message with the tag FINAL, the nonce
the stream's header, the plaintext the URI list. PyNaCl (libsodium) does the
derivation and the encryption.

KDF parameters: the app uses 1 GiB with 4 passes (256 MiB with 16 on small
devices), too slow for a debug-build test; the file stores libsodium's
"interactive" limits instead, 64 MiB and 2 passes, which the format allows
(the reader takes whatever kdfParams says, within its bounds).

Run with a Python that has `pynacl`: python make_ente.py
"""

import base64
import json
import os
import random
import sys

import nacl.bindings as sodium
import nacl.pwhash

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

PASSWORD = "ente export pass"
RNG = random.Random(20240603)
MEM_LIMIT = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE
OPS_LIMIT = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
assert (MEM_LIMIT, OPS_LIMIT) == (64 * 1024 * 1024, 2)


def rand(n):
    return bytes(RNG.getrandbits(8) for _ in range(n))


GITHUB = Credential("alice@example.com", "GitHub", SECRET_SHA1)
BUECHEREI = Credential("jürgen", "Bücherei Köln", SECRET_SHA256, algorithm="SHA256", digits=8, period=60)
COUNTER = Credential("bob", "Bank", SECRET_SHA1, type="hotp", counter=5, digits=8)
SHORT = Credential("erin", "Example", SECRET_80)
MAIL = Credential("carol@example.org", "Mail", SECRET_SHA512, algorithm="SHA512", period=30)
# Ente has Steam entries; the URI reader refuses them without names.
STEAM = Credential(None, None, SECRET_80, type="steam")
CREDENTIALS = [GITHUB, BUECHEREI, COUNTER, SHORT, MAIL, STEAM]

# Ente appends a codeDisplay parameter (JSON) to some URIs.
CODE_DISPLAY = "&codeDisplay=" + "%7B%22pinned%22%3Afalse%2C%22trashed%22%3Afalse%2C%22tags%22%3A%5B%5D%7D"


def plain_text():
    lines = [
        GITHUB.uri(),
        BUECHEREI.uri() + CODE_DISPLAY,
        COUNTER.uri(),
        SHORT.uri(),
        MAIL.uri(),
        f"otpauth://steam/Steam:dave?secret={SECRET_80}&issuer=Steam&algorithm=SHA1&digits=5&period=30",
    ]
    return "\n".join(lines)


def encrypted_export(text):
    salt = rand(16)
    key = nacl.pwhash.argon2id.kdf(32, PASSWORD.encode(), salt, opslimit=OPS_LIMIT, memlimit=MEM_LIMIT)
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    header = sodium.crypto_secretstream_xchacha20poly1305_init_push(state, key)
    data = sodium.crypto_secretstream_xchacha20poly1305_push(
        state, text.encode(), None, sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
    )
    # The same, checked back with libsodium's pull.
    pull = sodium.crypto_secretstream_xchacha20poly1305_state()
    sodium.crypto_secretstream_xchacha20poly1305_init_pull(pull, header, key)
    assert sodium.crypto_secretstream_xchacha20poly1305_pull(pull, data, None) == (
        text.encode(),
        sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL,
    )
    b64 = lambda b: base64.b64encode(b).decode()
    export = {
        "version": 1,
        "kdfParams": {"memLimit": MEM_LIMIT, "opsLimit": OPS_LIMIT, "salt": b64(salt)},
        "encryptedData": b64(data),
        "encryptionNonce": b64(header),
    }
    # A stream whose only chunk is tagged MESSAGE, not FINAL: truncated.
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    header = sodium.crypto_secretstream_xchacha20poly1305_init_push(state, key)
    data = sodium.crypto_secretstream_xchacha20poly1305_push(
        state, text.encode(), None, sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
    )
    unfinished = dict(export, encryptedData=b64(data), encryptionNonce=b64(header))
    return export, unfinished


def main():
    text = plain_text()
    with open(os.path.join(HERE, "plain.txt"), "w", encoding="utf-8") as out:
        out.write(text + "\n")
    export, unfinished = encrypted_export(text)
    for name, document in (("encrypted.json", export), ("unfinished.json", unfinished)):
        with open(os.path.join(HERE, name), "w", encoding="utf-8") as out:
            json.dump(document, out)
            out.write("\n")
    for name in ("plain", "encrypted"):
        write_expected(os.path.join(HERE, f"{name}.expected.json"), CREDENTIALS)


if __name__ == "__main__":
    main()
