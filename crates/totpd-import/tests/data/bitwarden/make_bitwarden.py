"""Writes Bitwarden JSON exports (plain, password protected with PBKDF2 and
with Argon2id, and an account-restricted one) and their expected entries.

The layout follows Bitwarden's documentation ("Export vault data",
"Encrypted exports") and its source (bitwarden/sdk-internal,
crates/bitwarden-exporters/src/encrypted_json.rs; crates/bitwarden-crypto,
keys/kdf.rs and keys/utils.rs): the salt is the text of the `salt` field,
PBKDF2-SHA256 or Argon2id (salt hashed with SHA-256, memory in MiB) gives 32
bytes, HKDF-Expand-SHA256 stretches them into an AES key ("enc") and a MAC
key ("mac"), and each "2." cipher string is AES-256-CBC/PKCS#7 with
HMAC-SHA256 over iv || ciphertext.

KDF parameters: PBKDF2 uses Bitwarden's default 600,000 iterations; Argon2id
uses the clients' default 64 MiB, 3 passes, 4 lanes. Both are what an export
made with the defaults carries. pbkdf2_min.json uses 5,000 iterations, the
least Bitwarden's importer takes, for tests that derive many times.

Run with a Python that has `cryptography` and `argon2-cffi`:
    python make_bitwarden.py
"""

import base64
import hashlib
import hmac
import json
import os
import random
import sys

from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

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

PASSWORD = "correct horse battery staple"
# Fixed randomness, so that running the script again gives the same files.
RNG = random.Random(20240601)


def rand(n: int) -> bytes:
    return bytes(RNG.getrandbits(8) for _ in range(n))


def uuid() -> str:
    h = rand(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def pbkdf2(password: bytes, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password, salt, iterations, 32)


def argon2id(password: bytes, salt: bytes, iterations: int, memory_mib: int, lanes: int) -> bytes:
    return hash_secret_raw(
        password, hashlib.sha256(salt).digest(), iterations, memory_mib * 1024, lanes, 32, Type.ID, 19
    )


def stretch(key: bytes):
    enc = HKDFExpand(hashes.SHA256(), 32, b"enc").derive(key)
    mac = HKDFExpand(hashes.SHA256(), 32, b"mac").derive(key)
    return enc, mac


# Bitwarden's own test vectors (bitwarden-crypto, keys/kdf.rs and
# keys/utils.rs): the derivations and the stretch here agree with them.
_vector = pbkdf2(b"67t9b5g67$%Dh89n", b"test_key", 10000)
assert list(_vector[:4]) == [31, 79, 104, 226], _vector
assert list(argon2id(b"67t9b5g67$%Dh89n", b"test_key", 4, 32, 2)[:4]) == [207, 240, 225, 177]
assert list(stretch(_vector)[0][:4]) == [111, 31, 178, 45]
assert list(stretch(_vector)[1][:4]) == [221, 127, 206, 234]


def cipher_string(plaintext: bytes, enc: bytes, mac: bytes) -> str:
    iv = rand(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(enc), modes.CBC(iv)).encryptor()
    ct = encryptor.update(padded) + encryptor.finalize()
    tag = hmac.new(mac, iv + ct, hashlib.sha256).digest()
    b64 = lambda b: base64.b64encode(b).decode()
    return f"2.{b64(iv)}|{b64(ct)}|{b64(tag)}"


# The credentials, in file order. Bitwarden serves TOTP only, and Steam.
GITHUB = Credential("alice@example.com", "GitHub", SECRET_SHA1)
BUECHEREI = Credential("jürgen", "Bücherei Köln", SECRET_SHA256, algorithm="SHA256", digits=8, period=60)
# A bare secret: the item name is the issuer, the username the label.
BARE = Credential("bob", "Example", SECRET_80)
# A URI with an account name but no issuer: the item name fills it.
MAIL = Credential("carol@example.org", None, SECRET_SHA512, algorithm="SHA512", expect_issuer="Mail")
STEAM = Credential("dave", "Steam", SECRET_80, type="steam")
CREDENTIALS = [GITHUB, BUECHEREI, BARE, MAIL, STEAM]


def login_item(name, username, totp, folder=None):
    return {
        "passwordHistory": None,
        "revisionDate": "2024-05-01T10:00:00.000Z",
        "creationDate": "2024-05-01T10:00:00.000Z",
        "deletedDate": None,
        "id": uuid(),
        "organizationId": None,
        "folderId": folder,
        "type": 1,
        "reprompt": 0,
        "name": name,
        "notes": None,
        "favorite": False,
        "login": {
            "fido2Credentials": [],
            "uris": [{"match": None, "uri": "https://example.com/login"}],
            "username": username,
            "password": "not-a-secret-of-the-test",
            "totp": totp,
        },
        "collectionIds": None,
    }


def plain_export() -> dict:
    folder = uuid()
    items = [
        login_item("GitHub", "alice@example.com", GITHUB.uri(), folder),
        # A login without an authenticator key: not an entry.
        login_item("Forum", "alice", None),
        login_item("Bücherei", "jürgen", BUECHEREI.uri()),
        {
            "id": uuid(),
            "organizationId": None,
            "folderId": None,
            "type": 2,
            "reprompt": 0,
            "name": "A secure note",
            "notes": "nothing to import here",
            "favorite": False,
            "secureNote": {"type": 0},
            "collectionIds": None,
        },
        # Bitwarden takes the key with spaces and in lower case.
        login_item("Example", "bob", "jbsw y3dp ehpk 3pxp"),
        login_item("Mail", "carol@example.org", MAIL.uri()),
        login_item("Empty key", "erin", ""),
        login_item("Steam", "dave", "steam://" + SECRET_80),
    ]
    return {"encrypted": False, "folders": [{"id": folder, "name": "Work"}], "items": items}


def protected_export(plain: str, kdf_type: int, iterations: int, memory=None, lanes=None) -> dict:
    salt = base64.b64encode(rand(16)).decode()
    password = PASSWORD.encode()
    if kdf_type == 0:
        key = pbkdf2(password, salt.encode(), iterations)
    else:
        key = argon2id(password, salt.encode(), iterations, memory, lanes)
    enc, mac = stretch(key)
    return {
        "encrypted": True,
        "passwordProtected": True,
        "salt": salt,
        "kdfType": kdf_type,
        "kdfIterations": iterations,
        "kdfMemory": memory,
        "kdfParallelism": lanes,
        "encKeyValidation_DO_NOT_EDIT": cipher_string(uuid().encode(), enc, mac),
        "data": cipher_string(plain.encode(), enc, mac),
    }


def write(name: str, document: dict) -> None:
    with open(os.path.join(HERE, name), "w", encoding="utf-8") as out:
        json.dump(document, out, ensure_ascii=False, indent=2)
        out.write("\n")


def main() -> None:
    plain = plain_export()
    plain_text = json.dumps(plain, ensure_ascii=False, indent=2)
    write("plain.json", plain)
    write("pbkdf2.json", protected_export(plain_text, 0, 600000))
    write("argon2id.json", protected_export(plain_text, 1, 3, 64, 4))
    # 5,000 iterations, the least Bitwarden's importer takes: for the damage
    # tests, which derive a key many times.
    write("pbkdf2_min.json", protected_export(plain_text, 0, 5000))
    # Account restricted: the items' strings are encrypted with the account's
    # key, which no export carries (the cipher strings here are random).
    restricted = {
        "encrypted": True,
        "encKeyValidation_DO_NOT_EDIT": cipher_string(uuid().encode(), rand(32), rand(32)),
        "folders": [],
        "items": [
            {
                "id": uuid(),
                "type": 1,
                "name": cipher_string(b"GitHub", rand(32), rand(32)),
                "login": {"totp": cipher_string(GITHUB.uri().encode(), rand(32), rand(32))},
            }
        ],
    }
    write("account_restricted.json", restricted)
    for name in ("plain", "pbkdf2", "argon2id", "pbkdf2_min"):
        write_expected(os.path.join(HERE, f"{name}.expected.json"), CREDENTIALS)


if __name__ == "__main__":
    main()
