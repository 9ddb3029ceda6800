"""Sendblue's Python SDK (sendblue==1.33.0) with keys of every role.

Owner and admin keys do everything the SDK can; an agent key creates,
lists and reads codes but may not delete (403, which the SDK raises as
PermissionDeniedError); a key scoped to one secret sees only that one; a
verifier key gets none of the SDK's four operations. Keys are made through
`POST /api/v2/keys` with the account's owner key; the SDK is not patched.
"""

from __future__ import annotations

import base64
import os
import time
import uuid

import pytest
import sendblue_api

from totpd_testing.api import Api
from totpd_testing.otp import allowed_code_responses


def random_secret() -> str:
    return base64.b32encode(os.urandom(20)).decode().rstrip("=")


def check_code(client, secret_id: str, secret_b32: str) -> None:
    """The SDK's code is the reference's at an instant of the request."""
    before = time.time()
    resp = client.v2.totp.get_code(secret_id)
    after = time.time()
    assert resp.status == "OK"
    assert (resp.code, resp.expires_in) in allowed_code_responses(secret_b32, before, after)


@pytest.fixture
def owner_api(totpd_server, account):
    api = Api(totpd_server.port, account["key_id"], account["secret"])
    yield api
    api.close()


def make_key(owner_api: Api, role: str, **fields) -> dict:
    status, body = owner_api.request("POST", "/api/v2/keys", {"role": role, **fields})
    assert status == 200, body
    assert body["api_key"]["role"] == role
    return {"key_id": body["api_key"]["key_id"], "secret": body["secret"]}


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_owner_and_admin_keys_do_everything_the_sdk_does(sdk_client_for, owner_api, role):
    key = make_key(owner_api, role, name=f"sdk {role}")
    client = sdk_client_for(key["key_id"], key["secret"])
    secret = random_secret()
    record = client.v2.totp.secrets.create(secret=secret, label=f"{role}@example.com").totp_secret
    assert [s.id for s in client.v2.totp.secrets.list().totp_secrets] == [record.id]
    check_code(client, record.id, secret)
    assert client.v2.totp.secrets.delete(record.id).status == "OK"
    assert client.v2.totp.secrets.list().totp_secrets == []


def test_an_agent_key_creates_lists_and_reads_codes_but_may_not_delete(sdk_client_for, owner_api):
    key = make_key(owner_api, "agent", name="sdk agent")
    client = sdk_client_for(key["key_id"], key["secret"])
    secret = random_secret()
    record = client.v2.totp.secrets.create(secret=secret, label="agent@example.com").totp_secret
    assert record.secret is not None
    assert [s.id for s in client.v2.totp.secrets.list().totp_secrets] == [record.id]
    check_code(client, record.id, secret)
    with pytest.raises(sendblue_api.PermissionDeniedError) as err:
        client.v2.totp.secrets.delete(record.id)
    assert err.value.status_code == 403
    assert err.value.body["error"] == "forbidden"
    # Still there.
    check_code(client, record.id, secret)


def test_a_scoped_agent_key_sees_its_one_secret_only(sdk_client_for, owner_api, client):
    mine_secret, other_secret = random_secret(), random_secret()
    mine = client.v2.totp.secrets.create(secret=mine_secret, label="mine").totp_secret
    other = client.v2.totp.secrets.create(secret=other_secret, label="other").totp_secret
    key = make_key(owner_api, "agent", secret_ids=[mine.id])
    scoped = sdk_client_for(key["key_id"], key["secret"])
    assert [s.id for s in scoped.v2.totp.secrets.list().totp_secrets] == [mine.id]
    check_code(scoped, mine.id, mine_secret)
    with pytest.raises(sendblue_api.NotFoundError):
        scoped.v2.totp.get_code(other.id)
    with pytest.raises(sendblue_api.NotFoundError):
        scoped.v2.totp.get_code(str(uuid.uuid4()))
    with pytest.raises(sendblue_api.PermissionDeniedError):
        scoped.v2.totp.secrets.create(secret=random_secret(), label="new")
    # The owner still sees both.
    assert {s.id for s in client.v2.totp.secrets.list().totp_secrets} == {mine.id, other.id}


def test_a_verifier_key_gets_none_of_the_sdk_operations(sdk_client_for, owner_api, client):
    record = client.v2.totp.secrets.create(secret=random_secret(), label="v").totp_secret
    key = make_key(owner_api, "verifier")
    verifier = sdk_client_for(key["key_id"], key["secret"])
    calls = [
        lambda: verifier.v2.totp.secrets.list(),
        lambda: verifier.v2.totp.get_code(record.id),
        lambda: verifier.v2.totp.secrets.create(secret=random_secret(), label="x"),
        lambda: verifier.v2.totp.secrets.delete(record.id),
    ]
    for call in calls:
        with pytest.raises(sendblue_api.PermissionDeniedError) as err:
            call()
        assert err.value.body["error"] == "forbidden"
    assert [s.id for s in client.v2.totp.secrets.list().totp_secrets] == [record.id]
