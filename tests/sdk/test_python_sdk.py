"""Sendblue's Python SDK (sendblue==1.33.0) against a live totpd serve.

Only the base URL and the API key are configured; the SDK is not patched.
Every code is checked against an independent implementation at the instant
the server must have read its clock (see totpd_testing.otp).
"""

from __future__ import annotations

import base64
import os
import time
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest
import sendblue_api
from sendblue_api import SendblueAPI

from totpd_testing.otp import allowed_code_responses, b32decode, totp_at

# RFC 6238 Appendix B seeds, as base32: 20, 32 and 64 bytes.
SEED_SHA1 = base64.b32encode(b"12345678901234567890").decode()
SEED_SHA256 = base64.b32encode(b"12345678901234567890123456789012").decode()
SEED_SHA512 = base64.b32encode(b"1234567890" * 6 + b"1234").decode()
SEEDS = {"SHA1": SEED_SHA1, "SHA256": SEED_SHA256, "SHA512": SEED_SHA512}


def random_secret(nbytes: int = 20) -> str:
    return base64.b32encode(os.urandom(nbytes)).decode().rstrip("=")


def check_code(client: SendblueAPI, secret_id: str, secret_b32: str, *,
               algorithm: str = "SHA1", digits: int = 6, period: int = 30) -> str:
    """Get a code through the SDK and check it against the reference.

    The clock is read just before and just after the request; the server's
    answer must be the code and expires_in of one whole second in between.
    """
    before = time.time()
    resp = client.v2.totp.get_code(secret_id)
    after = time.time()
    assert resp.status == "OK"
    assert isinstance(resp.code, str) and resp.code.isdigit(), resp
    assert len(resp.code) == digits, f"code {resp.code!r} is not {digits} digits"
    assert isinstance(resp.expires_in, int) and 1 <= resp.expires_in <= period, resp
    allowed = allowed_code_responses(secret_b32, before, after,
                                     algorithm=algorithm, digits=digits, period=period)
    assert (resp.code, resp.expires_in) in allowed, (
        f"server answered code={resp.code} expires_in={resp.expires_in}; "
        f"a correct server could answer only one of {sorted(allowed)} "
        f"(clock read between {before:.3f} and {after:.3f})"
    )
    return resp.code


def assert_secret_record(record, *, label, issuer, algorithm, digits, period):
    assert record.label == label
    assert record.issuer == issuer
    assert record.algorithm == algorithm
    assert record.digits == digits
    assert record.period == period
    assert str(uuid.UUID(record.id)) == record.id.lower(), f"id {record.id!r} is not a UUID"
    created = record.created_at
    assert isinstance(created, datetime) and created.tzinfo is not None, created
    assert created.utcoffset() == timedelta(0), f"created_at {created} is not UTC"
    now = datetime.now(timezone.utc)
    assert now - timedelta(minutes=5) <= created <= now + timedelta(seconds=5), created


def list_raw(client: SendblueAPI) -> dict:
    """The list response as the server sent it, parsed as plain JSON."""
    raw = client.v2.totp.secrets.with_raw_response.list()
    assert raw.status_code == 200
    return raw.json()


# --- create ---------------------------------------------------------------


def test_create_from_uri_takes_every_field_from_the_uri(client):
    secret = random_secret()
    uri = (
        f"otpauth://totp/{quote('ACME Co')}:{quote('alice@example.com')}"
        f"?secret={secret}&issuer={quote('ACME Co')}&algorithm=SHA256&digits=8&period=60"
    )
    resp = client.v2.totp.secrets.create(uri=uri)
    assert resp.status == "OK"
    record = resp.totp_secret
    assert_secret_record(record, label="alice@example.com", issuer="ACME Co",
                         algorithm="SHA256", digits=8, period=60)
    assert record.secret is not None, "the create response carries the secret"
    assert b32decode(record.secret) == b32decode(secret)
    check_code(client, record.id, secret, algorithm="SHA256", digits=8, period=60)


def test_create_from_uri_with_issuer_only_in_the_label_prefix(client):
    secret = random_secret()
    uri = f"otpauth://totp/GitHub%3Abob?secret={secret}"
    record = client.v2.totp.secrets.create(uri=uri).totp_secret
    assert_secret_record(record, label="bob", issuer="GitHub",
                         algorithm="SHA1", digits=6, period=30)
    check_code(client, record.id, secret)


@pytest.mark.parametrize(
    ("algorithm", "digits", "period"),
    [("SHA1", 6, 30), ("SHA1", 8, 15), ("SHA256", 6, 60),
     ("SHA256", 8, 30), ("SHA512", 6, 15), ("SHA512", 8, 60)],
)
def test_create_from_secret_with_parameters(client, algorithm, digits, period):
    secret = SEEDS[algorithm]
    label = f"seed-{algorithm}-{digits}-{period}"
    resp = client.v2.totp.secrets.create(
        secret=secret, label=label, issuer="RFC 6238",
        algorithm=algorithm, digits=digits, period=period,
    )
    assert resp.status == "OK"
    record = resp.totp_secret
    assert_secret_record(record, label=label, issuer="RFC 6238",
                         algorithm=algorithm, digits=digits, period=period)
    assert b32decode(record.secret) == b32decode(secret)
    check_code(client, record.id, secret, algorithm=algorithm, digits=digits, period=period)


def test_create_from_secret_defaults_to_sha1_six_digits_thirty_seconds(client):
    secret = random_secret()
    record = client.v2.totp.secrets.create(secret=secret, label="defaults").totp_secret
    assert_secret_record(record, label="defaults", issuer=None,
                         algorithm="SHA1", digits=6, period=30)
    check_code(client, record.id, secret)


def test_create_accepts_base32_as_services_hand_it_out(client):
    key = os.urandom(16)
    canonical = base64.b32encode(key).decode()  # 26 letters and 6 "=" of padding
    groups = [canonical[i:i + 4] for i in range(0, len(canonical), 4)]
    sloppy = " ".join(groups[:3]).lower() + "-" + "-".join(groups[3:])
    record = client.v2.totp.secrets.create(secret=sloppy, label="sloppy").totp_secret
    assert b32decode(record.secret) == key
    check_code(client, record.id, canonical)


def test_create_accepts_an_80_bit_secret(client):
    secret = random_secret(10)  # 80 bits, as GitHub and Discord issue them
    record = client.v2.totp.secrets.create(secret=secret, label="short").totp_secret
    assert b32decode(record.secret) == b32decode(secret)
    check_code(client, record.id, secret)


def test_create_without_secret_generates_160_bits_returned_once(client):
    resp = client.v2.totp.secrets.create(label="generated", issuer="Vault")
    assert resp.status == "OK"
    record = resp.totp_secret
    assert_secret_record(record, label="generated", issuer="Vault",
                         algorithm="SHA1", digits=6, period=30)
    generated = record.secret
    assert isinstance(generated, str) and len(generated.rstrip("=")) == 32, generated
    assert len(b32decode(generated)) == 20
    check_code(client, record.id, generated)

    second = client.v2.totp.secrets.create(label="generated again").totp_secret
    assert b32decode(second.secret) != b32decode(generated)

    # Never again: not in the list, not in the code response.
    listed = list_raw(client)["totp_secrets"]
    assert all("secret" not in item for item in listed), listed
    raw_code = client.v2.totp.with_raw_response.get_code(record.id).json()
    assert "secret" not in raw_code
    assert generated not in str(raw_code) and generated not in str(listed)


def test_unicode_label_and_issuer_round_trip(client):
    secret = random_secret()
    label, issuer = "Zoë 山田 🔐", "Bänk Ünïcode"
    record = client.v2.totp.secrets.create(secret=secret, label=label, issuer=issuer).totp_secret
    assert (record.label, record.issuer) == (label, issuer)
    [listed] = [s for s in client.v2.totp.secrets.list().totp_secrets if s.id == record.id]
    assert (listed.label, listed.issuer) == (label, issuer)


# --- list -----------------------------------------------------------------


def test_list_shows_this_accounts_secrets_without_their_secret(client):
    assert client.v2.totp.secrets.list().totp_secrets == []
    created = {}
    for n, algorithm in enumerate(["SHA1", "SHA256", "SHA512"]):
        record = client.v2.totp.secrets.create(
            secret=random_secret(), label=f"list-{n}", issuer=f"Issuer {n}",
            algorithm=algorithm, digits=8 if n % 2 else 6, period=30 + 30 * n,
        ).totp_secret
        created[record.id] = record

    resp = client.v2.totp.secrets.list()
    assert resp.status == "OK"
    by_id = {s.id: s for s in resp.totp_secrets}
    assert by_id.keys() == created.keys()
    for secret_id, made in created.items():
        listed = by_id[secret_id]
        for field in ("label", "issuer", "algorithm", "digits", "period", "created_at"):
            assert getattr(listed, field) == getattr(made, field), field
        assert listed.secret is None

    raw = list_raw(client)
    assert raw["status"] == "OK"
    for item in raw["totp_secrets"]:
        assert "secret" not in item, f"list carries a secret: {item}"


# --- delete ---------------------------------------------------------------


def test_delete_then_code_is_not_found(client):
    secret = random_secret()
    record = client.v2.totp.secrets.create(secret=secret, label="to delete").totp_secret
    check_code(client, record.id, secret)

    resp = client.v2.totp.secrets.delete(record.id)
    assert resp.status == "OK"

    with pytest.raises(sendblue_api.NotFoundError) as err:
        client.v2.totp.get_code(record.id)
    assert err.value.status_code == 404
    assert err.value.body["status"] == "ERROR"
    assert err.value.body["error"] == "not_found"
    assert record.id not in {s.id for s in client.v2.totp.secrets.list().totp_secrets}
    with pytest.raises(sendblue_api.NotFoundError):
        client.v2.totp.secrets.delete(record.id)


def test_unknown_secret_id_is_not_found(client):
    with pytest.raises(sendblue_api.NotFoundError):
        client.v2.totp.get_code(str(uuid.uuid4()))
    with pytest.raises(sendblue_api.NotFoundError):
        client.v2.totp.secrets.delete(str(uuid.uuid4()))


# --- tenancy --------------------------------------------------------------


def test_another_accounts_secret_is_not_found(client, other_client):
    secret = random_secret()
    record = client.v2.totp.secrets.create(secret=secret, label="mine").totp_secret

    with pytest.raises(sendblue_api.NotFoundError) as err:
        other_client.v2.totp.get_code(record.id)
    assert err.value.body["error"] == "not_found"
    with pytest.raises(sendblue_api.NotFoundError):
        other_client.v2.totp.secrets.delete(record.id)
    assert other_client.v2.totp.secrets.list().totp_secrets == []

    # The failed delete did nothing: the owner still gets its code.
    check_code(client, record.id, secret)


# --- errors ---------------------------------------------------------------


def test_wrong_key_is_authentication_error(sdk_client_for, account):
    wrong_secret = sdk_client_for(account["key_id"], account["secret"] + "x")
    unknown_id = sdk_client_for("not-a-key-id", account["secret"])
    bodies = []
    for sdk in (wrong_secret, unknown_id):
        for call in (
            lambda: sdk.v2.totp.secrets.list(),
            lambda: sdk.v2.totp.secrets.create(secret=random_secret(), label="x"),
            lambda: sdk.v2.totp.get_code(str(uuid.uuid4())),
            lambda: sdk.v2.totp.secrets.delete(str(uuid.uuid4())),
        ):
            with pytest.raises(sendblue_api.AuthenticationError) as err:
                call()
            assert err.value.status_code == 401
            assert err.value.body["status"] == "ERROR"
            assert err.value.body["error"] == "unauthorized"
            bodies.append(err.value.body)
    # Every auth failure looks the same: no hint of which part was wrong.
    assert all(body == bodies[0] for body in bodies), bodies
    good = sdk_client_for(account["key_id"], account["secret"])
    assert good.v2.totp.secrets.list().totp_secrets == []


BAD_CREATES = {
    "digits 7": dict(secret=SEED_SHA1, label="x", digits=7),
    "digits six": dict(secret=SEED_SHA1, label="x", digits="six"),
    "invalid base32": dict(secret="NOT-BASE32-1890!", label="x"),
    "empty secret": dict(secret="", label="x"),
    "algorithm MD5": dict(secret=SEED_SHA1, label="x", algorithm="MD5"),
    "period 0": dict(secret=SEED_SHA1, label="x", period=0),
    "period negative": dict(secret=SEED_SHA1, label="x", period=-30),
    "no label and no uri": dict(secret=SEED_SHA1),
    "empty label": dict(secret=SEED_SHA1, label=""),
    "uri of another scheme": dict(uri=f"https://example.com/?secret={SEED_SHA1}"),
    "uri without secret": dict(uri="otpauth://totp/Example:alice?issuer=Example"),
}


@pytest.mark.parametrize("params", BAD_CREATES.values(), ids=BAD_CREATES.keys())
def test_bad_input_is_bad_request(client, params):
    with pytest.raises(sendblue_api.BadRequestError) as err:
        client.v2.totp.secrets.create(**params)
    assert err.value.status_code == 400
    body = err.value.body
    assert body["status"] == "ERROR" and body["error"] == "invalid_request", body
    assert isinstance(body.get("message"), str) and body["message"], body
    # No partial write.
    assert client.v2.totp.secrets.list().totp_secrets == []


# --- the SDK exactly as a user configures it ------------------------------


def test_default_sdk_client_with_only_base_url_and_key(totpd_server, account):
    """No options but base_url and the key: the documented drop-in switch."""
    with SendblueAPI(base_url=totpd_server.base_url,
                     api_key=account["key_id"], api_secret=account["secret"]) as sdk:
        secret = random_secret()
        record = sdk.v2.totp.secrets.create(secret=secret, label="drop-in").totp_secret
        assert [s.id for s in sdk.v2.totp.secrets.list().totp_secrets] == [record.id]
        check_code(sdk, record.id, secret)
        assert sdk.v2.totp.secrets.delete(record.id).status == "OK"
        assert sdk.v2.totp.secrets.list().totp_secrets == []


# --- the oracle itself ----------------------------------------------------


@pytest.mark.parametrize(
    ("unix", "sha1", "sha256", "sha512"),
    [(59, "94287082", "46119246", "90693936"),
     (1111111109, "07081804", "68084774", "25091201"),
     (1111111111, "14050471", "67062674", "99943326"),
     (1234567890, "89005924", "91819424", "93441116"),
     (2000000000, "69279037", "90698825", "38618901"),
     (20000000000, "65353130", "77737706", "47863826")],
)
def test_reference_implementation_matches_rfc6238_appendix_b(unix, sha1, sha256, sha512):
    """The codes above are checked against this oracle, so it is checked too."""
    for algorithm, expected in (("SHA1", sha1), ("SHA256", sha256), ("SHA512", sha512)):
        assert totp_at(SEEDS[algorithm], unix, algorithm=algorithm, digits=8) == expected
