#!/usr/bin/env python3
"""Latency of get_totp_code through MCP, against the REST call it wraps.

Starts `totpd serve` (the binary of TOTPD_BIN, a release build for figures
worth quoting) on a fresh data dir and a free loopback port, stores one
secret, then for each path makes WARMUP calls and times CALLS more, one at a
time, from the client's side (time.perf_counter around each call):

  rest          GET /api/v2/totp/code/{id} on one keep-alive connection
  stdio/auto    `totpd mcp` (spawned), protocol 2026-07-28
  stdio/legacy  `totpd mcp`, protocol 2025-11-25 (initialize handshake)
  http/auto     POST /mcp on the server, 2026-07-28
  http/legacy   POST /mcp, 2025-11-25

and prints p50, p99 and max in milliseconds. Run with the tests' venv
(mcp==2.3.0):

  cargo build --release -p totpd
  TOTPD_BIN=target/release/totpd .venv/bin/python bench/mcp_latency.py
"""

from __future__ import annotations

import asyncio
import base64
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import httpx2  # noqa: E402
from mcp import Client, StdioServerParameters  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from totpd_testing.api import Api  # noqa: E402
from totpd_testing.server import TotpdServer, totpd_bin  # noqa: E402

WARMUP = int(os.environ.get("WARMUP", "20"))
CALLS = int(os.environ.get("CALLS", "200"))


def summary(name: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (f"{name:13} n={len(ms)}  p50 {statistics.median(ms):6.2f} ms  "
            f"p99 {p99:6.2f} ms  max {ms[-1]:6.2f} ms")


async def time_mcp(target, mode: str, secret_id: str) -> list[float]:
    async with Client(target, mode=mode) as client:
        for _ in range(WARMUP):
            result = await client.call_tool("get_totp_code", {"secret_id": secret_id})
            assert not result.is_error, result
        samples = []
        for _ in range(CALLS):
            start = time.perf_counter()
            result = await client.call_tool("get_totp_code", {"secret_id": secret_id})
            samples.append(time.perf_counter() - start)
            assert not result.is_error, result
        return samples


def main() -> None:
    binary = totpd_bin()
    tmp = Path(tempfile.mkdtemp(prefix="totpd-mcp-bench-"))
    (tmp / "data").mkdir()
    server = TotpdServer(binary, tmp / "data", tmp / "serve.log",
                         extra_env={"TOTPD_LOG": "warn"})
    server.owner_key = server.create_key("bench")
    server.start()
    try:
        key_id, secret = server.owner_key["key_id"], server.owner_key["secret"]
        api = Api(server.port, key_id, secret)
        status, body = api.request("POST", "/api/v2/totp/secrets", {
            "secret": base64.b32encode(os.urandom(20)).decode(), "label": "bench",
            "issuer": "Bench"})
        assert status == 200, body
        secret_id = body["totp_secret"]["id"]
        path = f"/api/v2/totp/code/{secret_id}"
        for _ in range(WARMUP):
            api.request("GET", path)
        rest = []
        for _ in range(CALLS):
            start = time.perf_counter()
            status, _ = api.request("GET", path)
            rest.append(time.perf_counter() - start)
            assert status == 200
        print(f"binary {binary}; {WARMUP} warm-up calls, then {CALLS} timed, one at a time")
        print(summary("rest", rest))
        stdio = StdioServerParameters(command=str(binary), args=["mcp"], env={
            "TOTPD_URL": server.base_url, "TOTPD_API_KEY": f"{key_id}.{secret}"})
        for mode in ("auto", "legacy"):
            print(summary(f"stdio/{mode}", asyncio.run(time_mcp(stdio, mode, secret_id))))

        async def over_http(mode: str) -> list[float]:
            async with httpx2.AsyncClient(
                headers={"Authorization": f"Bearer {key_id}.{secret}"}, timeout=30
            ) as http:
                return await time_mcp(
                    streamable_http_client(f"{server.base_url}/mcp", http_client=http),
                    mode, secret_id)

        for mode in ("auto", "legacy"):
            print(summary(f"http/{mode}", asyncio.run(over_http(mode))))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
