#!/usr/bin/env python3
"""Writes google_export.txt: Google Authenticator export URIs for the tests.

The payloads are encoded by Google's own protobuf runtime (PyPI package
`protobuf`, tested with 7.x), not by anything in this repository, so the
Rust decoder is checked against an independent encoder. The message types
are declared here from the export format's schema; no protoc is needed.

    python3 -m venv .venv-pb && .venv-pb/bin/pip install protobuf
    .venv-pb/bin/python make_google_export.py > google_export.txt

Each output line is `NAME URI`; the Rust tests look the URIs up by NAME and
state the entries they expect. The script is deterministic: rerunning it
gives the same file.
"""

import base64
import sys
import urllib.parse

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto


def build_types():
    proto = descriptor_pb2.FileDescriptorProto(
        name="migration.proto", package="export", syntax="proto3"
    )
    payload = proto.message_type.add(name="MigrationPayload")
    params = payload.nested_type.add(name="OtpParameters")
    for enum_name, values in [
        ("Algorithm", ["UNSPECIFIED", "SHA1", "SHA256", "SHA512", "MD5"]),
        ("DigitCount", ["UNSPECIFIED", "SIX", "EIGHT"]),
        ("OtpType", ["UNSPECIFIED", "HOTP", "TOTP"]),
    ]:
        enum = payload.enum_type.add(name=enum_name)
        for number, value in enumerate(values):
            enum.value.add(name=f"{enum_name.upper()}_{value}", number=number)

    def field(message, name, number, kind, label=F.LABEL_OPTIONAL, type_name=None):
        f = message.field.add(name=name, number=number, type=kind, label=label)
        if type_name:
            f.type_name = type_name

    field(params, "secret", 1, F.TYPE_BYTES)
    field(params, "name", 2, F.TYPE_STRING)
    field(params, "issuer", 3, F.TYPE_STRING)
    field(params, "algorithm", 4, F.TYPE_ENUM, type_name=".export.MigrationPayload.Algorithm")
    field(params, "digits", 5, F.TYPE_ENUM, type_name=".export.MigrationPayload.DigitCount")
    field(params, "type", 6, F.TYPE_ENUM, type_name=".export.MigrationPayload.OtpType")
    field(params, "counter", 7, F.TYPE_INT64)
    field(
        payload,
        "otp_parameters",
        1,
        F.TYPE_MESSAGE,
        label=F.LABEL_REPEATED,
        type_name=".export.MigrationPayload.OtpParameters",
    )
    field(payload, "version", 2, F.TYPE_INT32)
    field(payload, "batch_size", 3, F.TYPE_INT32)
    field(payload, "batch_index", 4, F.TYPE_INT32)
    field(payload, "batch_id", 5, F.TYPE_INT32)

    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("export.MigrationPayload")
    )


MigrationPayload = build_types()

SHA1, SHA256, SHA512, MD5 = 1, 2, 3, 4
SIX, EIGHT = 1, 2
HOTP, TOTP = 1, 2


def payload(entries, version=1, batch_size=1, batch_index=0, batch_id=0):
    message = MigrationPayload(
        version=version, batch_size=batch_size, batch_index=batch_index, batch_id=batch_id
    )
    for entry in entries:
        message.otp_parameters.add(**entry)
    return message.SerializeToString()


def uri(data, urlsafe=False, padded=True):
    encoded = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode()
    if not padded:
        encoded = encoded.rstrip("=")
    return "otpauth-migration://offline?data=" + urllib.parse.quote(encoded, safe="")


def main(out):
    single = payload(
        [
            dict(
                secret=b"single-totp-secret!!",
                name="Example:alice@example.com",
                issuer="Example",
                algorithm=SHA1,
                digits=SIX,
                type=TOTP,
            )
        ],
        batch_id=-559038737,
    )
    mixed = payload(
        [
            # 0: the common case, every field set.
            dict(secret=b"mixed-sha1-secret-20", name="alice@example.com",
                 issuer="Sha One", algorithm=SHA1, digits=SIX, type=TOTP),
            # 1: SHA-256, eight digits, issuer only as the name's prefix.
            dict(secret=b"mixed-sha256-secret-32-bytes!!!!", name="Sha Two: bob",
                 algorithm=SHA256, digits=EIGHT, type=TOTP),
            # 2: MD5, which must fail for this entry alone.
            dict(secret=b"md5-secret-20-bytes!", name="Legacy:carol",
                 issuer="Legacy", algorithm=MD5, digits=SIX, type=TOTP),
            # 3: SHA-512 with UTF-8 names and the issuer field winning over
            #    a different prefix.
            dict(secret=b"mixed-sha512-secret-with-64-bytes-of-key-material-for-the-test!!",
                 name="Zürich Old:jörg", issuer="Zürich Bank", algorithm=SHA512,
                 digits=EIGHT, type=TOTP),
            # 4: HOTP with a counter.
            dict(secret=b"hotp-secret-20-bytes", name="Counter Co:dave",
                 issuer="Counter Co", algorithm=SHA1, digits=SIX, type=HOTP, counter=42),
            # 5: algorithm, digits and type left unspecified (proto3 omits
            #    zero values), an 80-bit secret, no issuer anywhere.
            dict(secret=b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09", name="erin"),
            # 6: an empty secret, which must fail for this entry alone.
            dict(secret=b"", name="Empty:frank", issuer="Empty"),
        ],
        version=1,
        batch_size=1,
        batch_index=0,
        batch_id=123456789,
    )
    part_one = payload(
        [dict(secret=b"first-part-secret-20", name="grace", issuer="Part One",
              algorithm=SHA1, digits=SIX, type=TOTP)],
        batch_size=2, batch_index=0, batch_id=777,
    )
    part_two = payload(
        [dict(secret=b"second-part-secret20", name="heidi", issuer="Part Two",
              algorithm=SHA256, digits=SIX, type=TOTP)],
        batch_size=2, batch_index=1, batch_id=777,
    )
    empty = payload([], batch_id=5)

    lines = [
        ("single", uri(single)),
        ("single_urlsafe_unpadded", uri(single, urlsafe=True, padded=False)),
        ("mixed", uri(mixed)),
        ("part_one", uri(part_one)),
        ("part_two", uri(part_two)),
        ("empty_batch", uri(empty)),
    ]
    for name, text in lines:
        out.write(f"{name} {text}\n")


if __name__ == "__main__":
    main(sys.stdout)
