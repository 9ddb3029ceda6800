"""Writes 1Password .1pux archives and their expected entries.

The layout follows 1Password's documentation ("About the 1Password
Unencrypted Export format", support.1password.com/1pux-format): a zip with
export.attributes, export.data and files/; export.data is
{"accounts": [{"attrs", "vaults": [{"attrs", "items": [...]}]}]}, each item
with overview.title/url, details.loginFields (the username has designation
"username") and details.sections[].fields[], where a one-time password
field's value is {"totp": "otpauth://..." or a base32 secret}.

1Password has TOTP only (no HOTP, no Steam). Also written: a zip bomb (an
export.data that inflates to 80 MiB of spaces, more than the default
bound of 64 MiB) and an archive without
export.data. Run with any Python 3: python make_onepux.py
"""

import json
import os
import sys
import zipfile

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

GITHUB = Credential("alice@example.com", "GitHub", SECRET_SHA1)
# No issuer in the URI: the item's title fills it.
BUECHEREI = Credential(
    "jürgen", None, SECRET_SHA256, algorithm="SHA256", digits=8, period=60, expect_issuer="Bücherei Köln"
)
# A bare secret: the title is the issuer, the username the label.
BARE = Credential("bob", "Example", SECRET_80)
MAIL = Credential("carol@example.org", "Mail", SECRET_SHA512, algorithm="SHA512")
# A field whose text is neither a URI nor base32: an invalid entry.
BROKEN = Credential("dave", "Broken", type="broken")
CREDENTIALS = [GITHUB, BUECHEREI, BARE, MAIL, BROKEN]

ZIP_TIME = (2024, 6, 1, 12, 0, 0)


def field(title, value, fid):
    return {
        "title": title,
        "id": fid,
        "value": value,
        "indexAtSource": 0,
        "guarded": False,
        "multiline": False,
        "dontGenerate": False,
        "inputTraits": {"keyboard": "default", "correction": "default", "capitalization": "default"},
    }


def item(uuid, title, username, totps=(), category="001", url="https://example.com"):
    login_fields = []
    if username is not None:
        login_fields = [
            {"value": username, "id": "", "name": "username", "fieldType": "T", "designation": "username"},
            {"value": "not-a-secret-of-the-test", "id": "", "name": "password", "fieldType": "P",
             "designation": "password"},
        ]
    sections = [{"title": "", "name": "add more", "fields": []}]
    for i, totp in enumerate(totps):
        sections[0]["fields"].append(field("one-time password", {"totp": totp}, f"TOTP_{uuid}{i}"))
    sections.append({"title": "Notes", "name": "notes", "fields": [field("pin", {"concealed": "1234"}, "pin")]})
    return {
        "uuid": uuid,
        "favIndex": 0,
        "createdAt": 1717200000,
        "updatedAt": 1717200000,
        "state": "active",
        "categoryUuid": category,
        "details": {"loginFields": login_fields, "notesPlain": "", "sections": sections, "passwordHistory": []},
        "overview": {"subtitle": username or "", "urls": [{"label": "", "url": url}], "title": title, "url": url,
                     "ps": 0, "pbe": 0.0, "pgrng": False},
    }


def export_data():
    personal = [
        item("a1", "GitHub", "alice@example.com", [GITHUB.uri()]),
        item("a2", "Forum", "alice"),  # no one-time password: skipped
        item("a3", "Bücherei Köln", "jürgen", [BUECHEREI.uri(with_issuer_param=False)]),
        item("a4", "A secure note", None, category="003"),
        item("a5", "Example", "bob", ["jbsw y3dp ehpk 3pxp"]),
    ]
    shared = [
        item("b1", "Mail", "carol@example.org", [MAIL.uri()]),
        item("b2", "Broken", "dave", ["not a secret!"]),
    ]
    return {
        "accounts": [
            {
                "attrs": {"accountName": "Test", "name": "Test User", "avatar": "", "email": "t@example.com",
                          "uuid": "ACCOUNT", "domain": "https://my.1password.com/"},
                "vaults": [
                    {"attrs": {"uuid": "v1", "desc": "", "avatar": "", "name": "Personal", "type": "P"},
                     "items": personal},
                    {"attrs": {"uuid": "v2", "desc": "", "avatar": "", "name": "Shared", "type": "U"},
                     "items": shared},
                ],
            }
        ]
    }


def add(archive, name, data):
    info = zipfile.ZipInfo(name, ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def main():
    attributes = json.dumps({"version": 3, "description": "1Password Unencrypted Export", "createdAt": 1717200000})
    with zipfile.ZipFile(os.path.join(HERE, "export.1pux"), "w") as archive:
        add(archive, "export.attributes", attributes)
        add(archive, "export.data", json.dumps(export_data(), ensure_ascii=False, indent=1).encode())
        add(archive, "files/", b"")
    write_expected(os.path.join(HERE, "export.expected.json"), CREDENTIALS)
    with zipfile.ZipFile(os.path.join(HERE, "bomb.1pux"), "w", compresslevel=9) as archive:
        add(archive, "export.attributes", attributes)
        add(archive, "export.data", b" " * (80 * 1024 * 1024))
    with zipfile.ZipFile(os.path.join(HERE, "no_export_data.1pux"), "w") as archive:
        add(archive, "export.attributes", attributes)


if __name__ == "__main__":
    main()
