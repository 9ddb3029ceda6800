"""The MCP interface with the official Python client (mcp==2.3.0).

Every behaviour is checked over both transports, `totpd mcp` on stdio
(spawned with the key in its environment, talking to the live server) and
`/mcp` on the live server (streamable HTTP), and in both client modes:
`auto` (the current, stateless protocol revision) and `legacy` (the
previous revision's initialize handshake). Codes are compared with the
suite's OTP oracle (totpd_testing.otp, itself cross-checked with pyotp).
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import subprocess
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
import pyotp
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from totpd_testing.api import Api
from totpd_testing.audit import code_reads
from totpd_testing.otp import allowed_code_responses, b32decode, code_matches
from totpd_testing.server import TotpdError, TotpdServer, server_env, totpd_bin

TRANSPORTS = ["stdio", "http"]
MODES = ["auto", "legacy"]
BASE_TOOLS = {"list_totp_secrets", "get_totp_code", "add_totp_secret", "verify_totp_code"}


def random_secret() -> str:
    return base64.b32encode(os.urandom(20)).decode().rstrip("=")


def run(coro):
    return asyncio.run(coro)


@asynccontextmanager
async def connect(server: TotpdServer, key: tuple[str, str], transport: str, mode: str,
                  *, allow_delete: bool = False):
    """A connected client of the server's MCP interface, as `key`."""
    key_id, secret = key
    if transport == "stdio":
        args = ["mcp"] + (["--allow-delete"] if allow_delete else [])
        target = StdioServerParameters(
            command=str(server.binary),
            args=args,
            env={"TOTPD_URL": server.base_url, "TOTPD_API_KEY": f"{key_id}.{secret}"},
        )
        async with Client(target, mode=mode) as client:
            yield client
    else:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key_id}.{secret}"},
                                  timeout=30)
        async with http, Client(streamable_http_client(f"{server.base_url}/mcp", http_client=http),
                                mode=mode) as client:
            yield client


def text_of(result) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def create_secret(api: Api, **body) -> dict:
    status, answer = api.request("POST", "/api/v2/totp/secrets", body)
    assert status == 200, answer
    return answer["totp_secret"]


@pytest.fixture
def owner(totpd_server, account):
    """(key_id, secret) of a fresh account's owner key, and an Api client."""
    api = Api(totpd_server.port, account["key_id"], account["secret"])
    yield (account["key_id"], account["secret"]), api
    api.close()


def check_totp_code(structured: dict, secret_b32: str, before: float, after: float) -> None:
    assert structured["type"] == "totp"
    assert (structured["code"], structured["expires_in"]) in allowed_code_responses(
        secret_b32, before, after
    )
    assert code_matches(b32decode(secret_b32), "SHA1", structured)
    # And pyotp, on its own, for the instant of the code.
    expires = structured["expires_in"]
    assert pyotp.TOTP(secret_b32).at(int(after) + expires - 30) == structured["code"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_tools_are_listed_with_descriptions_schemas_and_annotations(
    totpd_server, owner, transport, mode
):
    key, _ = owner

    async def body():
        async with connect(totpd_server, key, transport, mode) as client:
            expected_version = "2025-11-25" if mode == "legacy" else "2026-07-28"
            assert client.protocol_version == expected_version
            return (await client.list_tools()).tools

    tools = {tool.name: tool for tool in run(body())}
    assert set(tools) == BASE_TOOLS, "delete_totp_secret is listed only with --allow-delete"
    for tool in tools.values():
        assert len(tool.description) > 100, tool.name
        assert "never" in tool.description.lower(), tool.name
        assert tool.input_schema["type"] == "object"
        assert tool.output_schema and tool.output_schema["type"] == "object"
        assert tool.annotations is not None
        assert tool.annotations.destructive_hint is False
    listing = tools["list_totp_secrets"].annotations
    assert listing.read_only_hint is True and listing.idempotent_hint is True
    for name in ("get_totp_code", "add_totp_secret", "verify_totp_code"):
        assert tools[name].annotations.read_only_hint is False, name
        assert tools[name].annotations.idempotent_hint is False, name
    assert set(tools["get_totp_code"].input_schema["properties"]) == {
        "secret_id", "name", "min_remaining"}
    assert tools["verify_totp_code"].input_schema["required"] == ["code"]
    assert set(tools["add_totp_secret"].input_schema["properties"]) == {
        "uri", "secret", "label", "issuer", "qr_image"}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_codes_by_id_and_by_name_are_the_reference_codes(totpd_server, owner, transport, mode):
    key, api = owner
    github_b32 = random_secret()
    github = create_secret(api, secret=github_b32, label="alice@example.com", issuer="GitHub")
    other = create_secret(api, secret=random_secret(), label="ops@example.com", issuer="Fastly")

    async def body():
        async with connect(totpd_server, key, transport, mode) as client:
            listed = await client.call_tool("list_totp_secrets", {})
            filtered = await client.call_tool("list_totp_secrets", {"query": "GITH"})
            before = time.time()
            by_id = await client.call_tool("get_totp_code", {"secret_id": github["id"]})
            by_name = await client.call_tool("get_totp_code", {"name": "github"})
            after = time.time()
            return listed, filtered, by_id, by_name, before, after

    listed, filtered, by_id, by_name, before, after = run(body())
    assert not listed.is_error
    secrets = listed.structured_content["secrets"]
    assert {s["id"] for s in secrets} == {github["id"], other["id"]}
    for s in secrets:
        assert set(s) == {"id", "label", "issuer", "type", "algorithm", "digits", "period"}
    assert github_b32 not in str(listed.structured_content)
    assert [s["id"] for s in filtered.structured_content["secrets"]] == [github["id"]]
    for result in (by_id, by_name):
        assert not result.is_error, text_of(result)
        assert result.structured_content["secret_id"] == github["id"]
        check_totp_code(result.structured_content, github_b32, before, after)
    assert by_name.structured_content["issuer"] == "GitHub"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ambiguous_and_unknown_names_are_tool_errors_and_the_session_goes_on(
    totpd_server, owner, transport, mode
):
    key, api = owner
    first = create_secret(api, secret=random_secret(), label="bob@example.com", issuer="Acme")
    second = create_secret(api, secret=random_secret(), label="carol@example.com", issuer="Acme")

    async def body():
        async with connect(totpd_server, key, transport, mode) as client:
            ambiguous = await client.call_tool("get_totp_code", {"name": "acme"})
            unknown = await client.call_tool("get_totp_code", {"name": "no-such-service"})
            exact = await client.call_tool("get_totp_code", {"name": "CAROL@example.com"})
            return ambiguous, unknown, exact

    ambiguous, unknown, exact = run(body())
    assert ambiguous.is_error
    assert first["id"] in text_of(ambiguous) and second["id"] in text_of(ambiguous)
    assert unknown.is_error
    assert "no-such-service" in text_of(unknown)
    # The candidates are listed so the model can choose.
    assert first["id"] in text_of(unknown)
    assert not exact.is_error, text_of(exact)
    assert exact.structured_content["secret_id"] == second["id"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_secret_added_from_a_uri_gives_codes_that_verify_once(
    totpd_server, owner, transport, mode
):
    key, _ = owner
    secret_b32 = random_secret()
    uri = f"otpauth://totp/Example:dave@example.com?secret={secret_b32}&issuer=Example"

    async def body():
        async with connect(totpd_server, key, transport, mode) as client:
            added = await client.call_tool("add_totp_secret", {"uri": uri})
            assert not added.is_error, text_of(added)
            secret_id = added.structured_content["secrets"][0]["id"]
            code = await client.call_tool("get_totp_code", {"secret_id": secret_id})
            assert not code.is_error, text_of(code)
            good = code.structured_content["code"]
            valid = await client.call_tool("verify_totp_code",
                                           {"secret_id": secret_id, "code": good})
            replay = await client.call_tool("verify_totp_code", {"name": "Example", "code": good})
            fields = await client.call_tool("add_totp_secret", {
                "secret": random_secret(), "label": "erin@example.com", "issuer": "Other"})
            return added, valid, replay, fields, good

    added, valid, replay, fields, good = run(body())
    entry = added.structured_content["secrets"][0]
    assert (entry["label"], entry["issuer"], entry["outcome"]) == (
        "dave@example.com", "Example", "created")
    assert secret_b32 not in text_of(added) and secret_b32 not in str(added.structured_content)
    assert valid.structured_content["valid"] is True
    # A code is accepted once: the replay is refused.
    assert replay.structured_content["valid"] is False
    assert not fields.is_error, text_of(fields)
    assert fields.structured_content["secrets"][0]["label"] == "erin@example.com"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_delete_is_not_listed_and_refused_without_allow_delete(totpd_server, owner, transport):
    key, api = owner
    victim = create_secret(api, secret=random_secret(), label="keep@example.com")

    async def body():
        async with connect(totpd_server, key, transport, "auto") as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            refused = await client.call_tool("delete_totp_secret", {"secret_id": victim["id"]})
            return tools, refused

    tools, refused = run(body())
    assert "delete_totp_secret" not in tools
    assert refused.is_error
    assert "--allow-delete" in text_of(refused)
    status, _ = api.request("GET", f"/api/v2/totp/secrets/{victim['id']}")
    assert status == 200, "the secret is still there"


@pytest.fixture(scope="module")
def deleting_server(tmp_path_factory):
    """A second live server whose /mcp offers delete_totp_secret, logging at
    trace level (for the log hygiene test)."""
    try:
        binary = totpd_bin()
    except TotpdError as err:
        pytest.fail(str(err), pytrace=False)
    data_dir = tmp_path_factory.mktemp("totpd-mcp-delete")
    server = TotpdServer(binary, data_dir, tmp_path_factory.mktemp("log") / "serve.log",
                         extra_env={"TOTPD_MCP_ALLOW_DELETE": "true", "TOTPD_LOG": "trace"})
    server.owner_key = server.create_key("mcp-delete-owner")
    server.start()
    yield server
    assert server.stop() == 0


def make_key(api: Api, role: str, secret_ids: list[str] | None = None) -> tuple[str, str]:
    body = {"name": f"mcp-{role}", "role": role}
    if secret_ids is not None:
        body["secret_ids"] = secret_ids
    status, answer = api.request("POST", "/api/v2/keys", body)
    assert status == 200, answer
    return answer["api_key"]["key_id"], answer["secret"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_with_allow_delete_an_owner_deletes_and_an_agent_is_refused(
    deleting_server, transport, mode
):
    owner_key = deleting_server.create_key(f"mcp-del-{transport}-{mode}")
    api = Api(deleting_server.port, owner_key["key_id"], owner_key["secret"])
    doomed = create_secret(api, secret=random_secret(), label="doomed@example.com")
    kept = create_secret(api, secret=random_secret(), label="kept@example.com")
    agent = make_key(api, "agent")

    async def body():
        async with connect(deleting_server, agent, transport, mode, allow_delete=True) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            by_agent = await client.call_tool("delete_totp_secret", {"secret_id": kept["id"]})
        async with connect(deleting_server, (owner_key["key_id"], owner_key["secret"]),
                           transport, mode, allow_delete=True) as client:
            by_name = await client.call_tool("delete_totp_secret", {"name": "doomed"})
            by_owner = await client.call_tool("delete_totp_secret", {"secret_id": doomed["id"]})
        return tools, by_agent, by_name, by_owner

    try:
        tools, by_agent, by_name, by_owner = run(body())
        delete = tools["delete_totp_secret"]
        assert delete.annotations.destructive_hint is True
        assert delete.annotations.read_only_hint is False
        assert delete.annotations.idempotent_hint is True
        assert by_agent.is_error
        assert "not allowed" in text_of(by_agent)
        assert by_name.is_error, "deletion never goes by name"
        assert not by_owner.is_error, text_of(by_owner)
        assert by_owner.structured_content == {"secret_id": doomed["id"], "deleted": True}
        assert api.request("GET", f"/api/v2/totp/secrets/{doomed['id']}")[0] == 404
        assert api.request("GET", f"/api/v2/totp/secrets/{kept['id']}")[0] == 200
    finally:
        api.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_agent_key_scoped_to_one_secret_sees_only_it_and_its_reads_are_audited(
    totpd_server, owner, transport
):
    (owner_id, owner_secret), api = owner
    mine_b32 = random_secret()
    mine = create_secret(api, secret=mine_b32, label="agent@example.com", issuer="Shop")
    create_secret(api, secret=random_secret(), label="boss@example.com", issuer="Shop")
    agent = make_key(api, "agent", [mine["id"]])

    async def body():
        async with connect(totpd_server, agent, transport, "auto") as client:
            listed = await client.call_tool("list_totp_secrets", {})
            before = time.time()
            code = await client.call_tool("get_totp_code", {"name": "shop"})
            after = time.time()
            add = await client.call_tool("add_totp_secret", {
                "secret": random_secret(), "label": "new@example.com"})
            return listed, code, add, before, after

    listed, code, add, before, after = run(body())
    assert [s["id"] for s in listed.structured_content["secrets"]] == [mine["id"]]
    # "shop" names two secrets of the account, but the key sees one.
    assert not code.is_error, text_of(code)
    check_totp_code(code.structured_content, mine_b32, before, after)
    # A scoped key cannot create secrets: a clear tool error.
    assert add.is_error and "not allowed" in text_of(add)
    reads = code_reads(totpd_server.base_url, agent[0], (owner_id, owner_secret))
    assert [(e["secret_id"], e["key_id"], e["outcome"]) for e in reads] == [
        (mine["id"], agent[0], "ok")]


BAD_CALLS = [
    ("get_totp_code", {}),
    ("get_totp_code", {"secret_id": 12}),
    ("get_totp_code", {"secret_id": "not-a-uuid"}),
    ("get_totp_code", {"secret_id": str(uuid.uuid4())}),
    ("get_totp_code", {"name": "x" * 1_000_000}),
    ("get_totp_code", {"name": ["a"]}),
    ("get_totp_code", {"secret_id": str(uuid.uuid4()), "min_remaining": -1}),
    ("get_totp_code", {"secret_id": str(uuid.uuid4()), "min_remaining": "5"}),
    ("get_totp_code", {"nmae": "typo"}),
    ("list_totp_secrets", {"query": {"$gt": ""}}),
    ("verify_totp_code", {"secret_id": str(uuid.uuid4())}),
    ("verify_totp_code", {"secret_id": str(uuid.uuid4()), "code": 123456}),
    ("add_totp_secret", {}),
    ("add_totp_secret", {"uri": "https://example.com/"}),
    ("add_totp_secret", {"uri": "otpauth://totp/x?secret=" + "A" * 200_000}),
    ("add_totp_secret", {"secret": "JBSWY3DPEHPK3PXP"}),
    ("add_totp_secret", {"secret": "not base32 !!", "label": "x"}),
    ("add_totp_secret", {"qr_image": "%%%not base64"}),
    ("add_totp_secret", {"qr_image": base64.b64encode(b"GIF89a....").decode()}),
    ("add_totp_secret", {"uri": "otpauth://totp/a?secret=JBSWY3DPEHPK3PXP", "secret": "x"}),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bad_input_is_a_tool_or_protocol_error_and_never_a_crash(
    totpd_server, owner, transport, mode
):
    key, api = owner
    create_secret(api, secret=random_secret(), label="fine@example.com", issuer="Fine")

    async def body():
        outcomes = []
        async with connect(totpd_server, key, transport, mode) as client:
            for name, arguments in BAD_CALLS:
                try:
                    result = await client.call_tool(name, arguments)
                    outcomes.append((name, "tool error" if result.is_error else "ok",
                                     text_of(result)))
                except Exception as err:  # a protocol error is allowed too
                    outcomes.append((name, "protocol error", str(err)))
            try:
                await client.call_tool("no_such_tool", {})
                unknown_tool = "answered"
            except Exception:
                unknown_tool = "protocol error"
            # The session still works after all of it.
            after = await client.call_tool("get_totp_code", {"name": "fine"})
        return outcomes, unknown_tool, after

    outcomes, unknown_tool, after = run(body())
    for (name, arguments), (_, outcome, text) in zip(BAD_CALLS, outcomes):
        assert outcome != "ok", (name, arguments)
        assert len(text) < 4000, "errors never echo a huge input back"
    assert unknown_tool == "protocol error"
    assert not after.is_error, text_of(after)
    assert api.request("GET", "/healthz")[0] == 200


def post_mcp(server: TotpdServer, key: tuple[str, str] | None, headers: dict) -> int:
    """One raw JSON-RPC POST to /mcp; the HTTP status."""
    all_headers = {"Accept": "application/json, text/event-stream",
                   "Content-Type": "application/json", **headers}
    if key:
        all_headers["sb-api-key-id"], all_headers["sb-api-secret-key"] = key
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}}
    answer = httpx2.post(f"{server.base_url}/mcp", json=body, headers=all_headers, timeout=10)
    return answer.status_code


def test_mcp_over_http_needs_a_key_and_a_loopback_host_and_refuses_browser_origins(
    totpd_server, owner
):
    key, _ = owner
    assert post_mcp(totpd_server, key, {}) == 200
    assert post_mcp(totpd_server, None, {}) == 401
    assert post_mcp(totpd_server, (key[0], "wrong"), {}) == 401
    assert post_mcp(totpd_server, key, {"Host": "attacker.example"}) == 403
    assert post_mcp(totpd_server, key, {"Origin": "https://attacker.example"}) == 403


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_up(env: dict[str, str], args: list[str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(totpd_bin()), "mcp", *(args or [])],
        input="", capture_output=True, text=True, timeout=60,
        env={**server_env(), **env},
    )


def test_totpd_mcp_start_up_errors_are_one_line_on_stderr(totpd_server, owner):
    (key_id, secret), _ = owner
    url = totpd_server.base_url
    cases = {
        "no url": ({"TOTPD_API_KEY": f"{key_id}.{secret}"}, "no server URL"),
        "no key": ({"TOTPD_URL": url}, "no API key"),
        "bad key form": ({"TOTPD_URL": url, "TOTPD_API_KEY": "nodot"}, "<key_id>.<secret>"),
        "unreachable": ({"TOTPD_URL": f"http://127.0.0.1:{free_port()}",
                         "TOTPD_API_KEY": f"{key_id}.{secret}"}, "cannot reach totpd"),
        "refused key": ({"TOTPD_URL": url, "TOTPD_KEY_ID": key_id,
                         "TOTPD_KEY_SECRET": "wrong-secret"}, "refused the API key"),
        "bad url": ({"TOTPD_URL": "ftp://example.com", "TOTPD_API_KEY": f"{key_id}.{secret}"},
                    "http://"),
    }
    for case, (env, reason) in cases.items():
        proc = start_up(env)
        assert proc.returncode != 0, case
        assert proc.stdout == "", f"{case}: stdout is the protocol"
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and reason in lines[0], (case, proc.stderr)
        assert secret not in proc.stderr and "wrong-secret" not in proc.stderr, case


def test_totpd_mcp_help_documents_every_flag_and_variable():
    proc = subprocess.run([str(totpd_bin()), "mcp", "--help"], capture_output=True, text=True,
                          timeout=30, env=server_env())
    assert proc.returncode == 0
    for word in ("--url", "--allow-delete", "TOTPD_URL", "TOTPD_KEY_ID", "TOTPD_KEY_SECRET",
                 "TOTPD_API_KEY"):
        assert word in proc.stdout, word
    proc = subprocess.run([str(totpd_bin()), "serve", "--help"], capture_output=True, text=True,
                          timeout=30, env=server_env())
    for word in ("--mcp-allowed-hosts", "TOTPD_MCP_ALLOWED_HOSTS", "--mcp-allow-delete",
                 "--mcp-allowed-origins"):
        assert word in proc.stdout, word


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_no_log_line_of_serve_or_totpd_mcp_holds_a_secret_or_a_code_even_at_trace(
    deleting_server, transport, tmp_path
):
    owner_key = deleting_server.create_key(f"mcp-hygiene-{transport}")
    key = (owner_key["key_id"], owner_key["secret"])
    secret_b32 = random_secret()
    start = deleting_server.log_size()
    stderr_path = tmp_path / "mcp-stderr.log"

    async def body():
        if transport == "stdio":
            target = StdioServerParameters(command=str(deleting_server.binary), args=["mcp"], env={
                "TOTPD_URL": deleting_server.base_url, "TOTPD_API_KEY": f"{key[0]}.{key[1]}",
                "TOTPD_LOG": "trace"})
            with open(stderr_path, "w") as errlog:
                from mcp.client.stdio import stdio_client
                async with Client(stdio_client(target, errlog=errlog), mode="auto") as client:
                    return await calls(client)
        async with connect(deleting_server, key, transport, "auto") as client:
            return await calls(client)

    async def calls(client):
        # Eight digits: a six-digit code could turn up by chance in a
        # timestamp's microseconds.
        added = await client.call_tool("add_totp_secret", {"uri": (
            f"otpauth://totp/Hygiene:hygiene@example.com?secret={secret_b32}"
            "&issuer=Hygiene&digits=8")})
        code = await client.call_tool("get_totp_code", {"name": "hygiene"})
        return added, code

    added, code = run(body())
    assert not added.is_error and not code.is_error, (text_of(added), text_of(code))
    logs = deleting_server.log_text(start, max_lines=100_000)
    if stderr_path.exists():
        logs += stderr_path.read_text()
    assert len(code.structured_content["code"]) == 8
    for needle in (secret_b32, key[1], code.structured_content["code"]):
        assert needle not in logs


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_secret_added_from_a_qr_screenshot_gives_the_same_codes(
    totpd_server, owner, other_account, transport
):
    (_, _), api = owner
    # Another account's enrollment QR code (a PNG) stands in for a screenshot.
    status, created = api.request("POST", "/api/v2/totp/secrets", {
        "label": "qr@example.com", "issuer": "QrShop", "qr": "png"})
    assert status == 200, created
    source = created["totp_secret"]
    png = source["qr"]
    key = (other_account["key_id"], other_account["secret"])

    async def body():
        async with connect(totpd_server, key, transport, "auto") as client:
            added = await client.call_tool("add_totp_secret", {"qr_image": png})
            if added.is_error:
                return added, None, 0, 0
            before = time.time()
            code = await client.call_tool("get_totp_code", {"name": "qrshop"})
            after = time.time()
            return added, code, before, after

    added, code, before, after = run(body())
    if added.is_error and "not read yet" in text_of(added):
        # The image went through the import route; totpd-import's QR
        # reader is still a placeholder on this branch.
        pytest.xfail("totpd-import's QR image reader is not written yet")
    assert not added.is_error, text_of(added)
    entry = added.structured_content["secrets"][0]
    assert (entry["label"], entry["issuer"], entry["outcome"]) == (
        "qr@example.com", "QrShop", "created")
    assert source["secret"] not in text_of(added)
    check_totp_code(code.structured_content, source["secret"], before, after)
