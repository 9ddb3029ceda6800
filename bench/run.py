#!/usr/bin/env python3
"""totpd's HTTP benchmark: one command, from a fresh clone, in minutes.

    bench/run             # full run: writes BENCHMARKS.md's table and bench/benchmarks.png
    bench/run --smoke     # seconds: exercises every step, checks nothing, writes bench/out/ only

It builds the release binary with the `bench-bare` feature, then for each
backend (SQLite always; PostgreSQL when TOTPD_BENCH_POSTGRES_URL or
postgres://postgres@127.0.0.1:5432/postgres answers) starts `totpd serve` on
a fresh data dir / database, seeds secrets through the store (`totpd
bench-seed`, not HTTP), and measures with wrk over loopback, in one run with
the same settings. The server runs its default configuration (per-key rate
limit, logging at info with a line per request, pool size, every limit as
shipped); a row that changes a setting says so in its note:

  bare        GET /bench/bare: the same HTTP stack answering a fixed JSON
              body of a code response's size (the reference point)
  code        GET /api/v2/totp/code/{id}
  list-10     GET /api/v2/totp/secrets, account with 10 secrets
  list-10k    GET /api/v2/totp/secrets, account with 10,000 secrets
  create      POST /api/v2/totp/secrets (durable: answered after fsync)
  hotp-code   GET /api/v2/totp/code/{id} of one HOTP secret: each request
              advances its counter (a durable write) and is audited
  verify      POST /api/v2/totp/secrets/{id}/verify, each a correct code
              (successive HOTP codes of 4,000 secrets, round robin, so no
              code repeats and no request is a failed attempt): a durable
              compare-and-set of the counter plus its audit record; a
              single answer other than valid:true (counted afterwards from
              the secrets' counters and /metrics) fails the run. A secret's
              requests are 2,000 apart, so two of them are never in flight
              at once (a later code would be accepted first and the earlier
              then refused, rightly)

and, on SQLite, the scale run: the code endpoint with 1,000 and with
1,000,000 stored secrets, a random secret per request, and the server's
peak RSS under that load.

Every figure is requests/s, p50 and p99 latency from wrk, and the ratio to
bare measured minutes apart on the same machine. wrk shares the 2 cores with
the server, so absolute numbers are lower than on a dedicated client.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import struct
import urllib.parse
import urllib.request
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
CHART = ROOT / "bench" / "benchmarks.png"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
BEGIN = "<!-- bench/run: begin -->"
END = "<!-- bench/run: end -->"
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/postgres"
# The import benchmark's screenshot, a fixture of totpd-import's tests.
QR_SCREENSHOT = "shot_1x.png"


@dataclass
class Settings:
    duration: int  # seconds per wrk run
    connections: int
    threads: int
    scale_small: int
    scale_large: int
    list_large: int
    verify_secrets: int
    smoke: bool


@dataclass
class Result:
    backend: str
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    connections: int
    errors: int = 0
    ratio_to_bare: float | None = None
    peak_rss_mib: float | None = None
    note: str = ""


@dataclass
class Run:
    machine: dict
    command: str
    settings: dict
    results: list[Result] = field(default_factory=list)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    wrk_version = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.splitlines()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_gib, 1),
        "kernel": platform.release(),
        "wrk": wrk_version[0] if wrk_version else "wrk",
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }


def build() -> Path:
    log("building release binary with --features bench-bare")
    subprocess.run(
        ["cargo", "build", "--release", "-p", "totpd", "--features", "bench-bare"],
        cwd=ROOT,
        check=True,
    )
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    if not target.is_absolute():
        target = ROOT / target
    return target / "release" / "totpd"


class Server:
    """One `totpd serve` on a fresh data dir and database."""

    def __init__(self, binary: Path, backend: str, pg_admin: str | None):
        self.binary = binary
        self.backend = backend
        self.dir = Path(tempfile.mkdtemp(prefix=f"totpd-bench-{backend}-"))
        # The shipped configuration, as a user gets it: no TOTPD_ setting of
        # the caller's shell leaks in, and none is changed here. A row that
        # measures a changed setting says so in its note.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TOTPD_")}
        self.pg_admin = pg_admin
        self.pg_db = None
        self.store_args = ["--data-dir", str(self.dir)]
        if backend == "postgres":
            self.pg_db = f"totpd_bench_{uuid.uuid4().hex[:12]}"
            psql(pg_admin, f"CREATE DATABASE {self.pg_db}")
            self.store_args += ["--database", replace_db(pg_admin, self.pg_db)]
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def seed(self, account: str, count: int, sample: int = 0) -> dict:
        started = time.monotonic()
        out = subprocess.run(
            [str(self.binary), "bench-seed", "--account", account, "--count", str(count),
             "--sample", str(sample), *self.store_args],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        log(f"seeded {count} secrets into {account!r} in {time.monotonic() - started:.1f}s")
        return json.loads(out.strip().splitlines()[-1])

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(self.binary), "serve", "--listen", f"127.0.0.1:{self.port}", "--no-bootstrap", *self.store_args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=open(self.dir / "serve.log", "w"),
            text=True,
        )
        deadline = time.monotonic() + 60
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if "listening on" in line:
                return
            if not line and self.proc.poll() is not None:
                break
        raise RuntimeError(f"totpd serve did not start:\n{(self.dir / 'serve.log').read_text()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def peak_rss_mib(self) -> float | None:
        if self.proc is None:
            return None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def stop_process(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    def stop(self) -> None:
        self.stop_process()
        if self.pg_db:
            psql(self.pg_admin, f"DROP DATABASE IF EXISTS {self.pg_db} WITH (FORCE)")
        shutil.rmtree(self.dir, ignore_errors=True)


def replace_db(url: str, db: str) -> str:
    base, _, query = url.partition("?")
    base = base.rsplit("/", 1)[0]
    return f"{base}/{db}" + (f"?{query}" if query else "")


def psql(url: str | None, sql: str) -> None:
    subprocess.run(["psql", "-q", "-d", url or DEFAULT_PG, "-c", sql], check=True, capture_output=True)


def postgres_url() -> str | None:
    url = os.environ.get("TOTPD_BENCH_POSTGRES_URL", DEFAULT_PG)
    if shutil.which("psql") is None:
        return None
    ok = subprocess.run(["psql", "-q", "-d", url, "-c", "SELECT 1"], capture_output=True).returncode == 0
    return url if ok else None


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def parse_latency(text: str, percentile: str) -> float:
    match = re.search(rf"^\s*{re.escape(percentile)}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not match:
        raise RuntimeError(f"no {percentile}% latency in wrk output:\n{text}")
    return float(match.group(1)) * UNITS[match.group(2)]


def wrk(url: str, headers: dict[str, str], settings: Settings, *, script: Path | None = None,
        connections: int | None = None, threads: int | None = None) -> tuple[float, float, float, int]:
    connections = connections or settings.connections
    threads = min(threads or settings.threads, connections)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{settings.duration}s", "--latency", "--timeout", "10s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if script:
        command += ["-s", str(script)]
    command.append(url)
    text = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    return rps, parse_latency(text, "50"), parse_latency(text, "99"), errors


def auth(key: dict) -> dict[str, str]:
    return {"sb-api-key-id": key["key_id"], "sb-api-secret-key": key["secret"]}


def measure(run: Run, backend: str, name: str, url: str, headers: dict[str, str], settings: Settings,
            server: Server, **kwargs) -> Result:
    rps, p50, p99, errors = wrk(url, headers, settings, **kwargs)
    result = Result(backend, name, rps, p50, p99, kwargs.get("connections") or settings.connections, errors,
                    peak_rss_mib=server.peak_rss_mib())
    log(f"{backend:8} {name:12} {rps:10.0f} req/s  p50 {p50:7.3f} ms  p99 {p99:7.3f} ms  errors {errors}")
    if errors:
        # A figure made of error answers measures nothing: stop here.
        log_tail = "\n".join((server.dir / "serve.log").read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(f"{backend} {name}: {errors} requests failed or were not 2xx; server log:\n{log_tail}")
    run.results.append(result)
    return result


def hotp(key: bytes, counter: int, digits: int = 6) -> str:
    """RFC 4226, for the verify benchmark's codes."""
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def create_hotp(url: str, key: dict, index: int) -> tuple[str, bytes]:
    """Creates an HOTP secret (counter 0) over HTTP; returns its id and key."""
    secret = hashlib.sha1(f"bench-hotp-{index}".encode()).digest()
    body = json.dumps({"label": f"bench-hotp-{index}", "type": "hotp",
                       "secret": base64.b32encode(secret).decode()}).encode()
    request = urllib.request.Request(f"{url}/api/v2/totp/secrets", data=body, method="POST",
                                     headers={**auth(key), "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)["totp_secret"]["id"], secret


def get_json(url: str, key: dict | None = None) -> dict | str:
    request = urllib.request.Request(url, headers=auth(key) if key else {})
    with urllib.request.urlopen(request, timeout=30) as answer:
        body = answer.read().decode()
    return json.loads(body) if key else body


def verify_script(url: str, key: dict, settings: Settings) -> tuple[Path, list[str]]:
    """A wrk script that verifies successive HOTP codes of many secrets.

    Each wrk thread takes every `threads`-th secret and sends them in turn,
    so a secret's next request is thousands of requests away and its codes
    arrive in counter order. The script does not read the answers (a Lua
    `response` hook would cost wrk, which shares the cores, a good part of
    its speed); `verify_refusals` counts them from the server afterwards.
    """
    count = settings.verify_secrets
    # Enough codes for far more requests than the run can make.
    per_secret = max(50, settings.duration * 40_000 // count)
    ids, codes = [], []
    for i in range(count):
        id_, secret = create_hotp(url, key, i)
        ids.append(id_)
        codes.append(",".join(f'"{hotp(secret, c)}"' for c in range(per_secret)))
    threads = min(settings.threads, settings.connections)
    lua = OUT / "verify.lua"
    lua.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"local threads = {threads}\n"
        "local ids = {" + ",".join(f'"{i}"' for i in ids) + "}\n"
        "local codes = {" + ",".join("{" + c + "}" for c in codes) + "}\n"
        "local n = 0\n"
        "function setup(thread) thread:set('tid', n); n = n + 1 end\n"
        "function init(args) cur = tid; sent = {} end\n"
        "function request()\n"
        "  local i = cur + 1\n"
        "  cur = cur + threads\n"
        "  if cur >= #ids then cur = tid end\n"
        "  local k = (sent[i] or 0) + 1\n"
        "  sent[i] = k\n"
        "  local code = codes[i][k] or 'x'\n"
        "  return wrk.format(nil, '/api/v2/totp/secrets/' .. ids[i] .. '/verify', nil, '{\"code\":\"' .. code .. '\"}')\n"
        "end\n"
    )
    return lua, ids


def verify_refusals(url: str, key: dict, ids: list[str]) -> int:
    """Verifications the server answered 200 but not valid:true.

    Every one of these secrets started at counter 0 and only an accepted
    code moves its counter (by one, as the codes are sent in order), so the
    counters add up to the codes accepted; `/metrics` counts the 200s.
    A request still in flight when wrk stops can move its counter after
    its client has gone, so no 200 is counted for it: the difference can
    be negative by up to one request per connection, never positive
    unless a correct code was refused.
    """
    wanted = set(ids)
    accepted = 0
    cursor = None
    while True:
        page_url = f"{url}/api/v2/totp/secrets?q=bench-hotp-&limit=1000"
        if cursor:
            page_url += f"&cursor={urllib.parse.quote(cursor)}"
        page = get_json(page_url, key)
        accepted += sum(s["counter"] for s in page["totp_secrets"] if s["id"] in wanted)
        cursor = page.get("next_cursor")
        if not cursor:
            break
    metrics = get_json(f"{url}/metrics")
    route = 'route="/api/v2/totp/secrets/{id}/verify"'
    answered = sum(int(float(line.rsplit(" ", 1)[1])) for line in metrics.splitlines()
                   if line.startswith("totpd_http_requests_total{") and route in line and 'status="200"' in line)
    return answered - accepted


def bench_backend(run: Run, binary: Path, backend: str, settings: Settings, pg_admin: str | None) -> None:
    server = Server(binary, backend, pg_admin)
    try:
        small = server.seed("bench-small", 10)
        large = server.seed("bench-large", settings.list_large)
        server.start()
        create_lua = OUT / "create.lua"
        create_lua.write_text(
            'wrk.method = "POST"\n'
            'wrk.body = \'{"label":"bench"}\'\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        bare = measure(run, backend, "bare", f"{server.url}/bench/bare", {}, settings, server)
        code = measure(run, backend, "code", f"{server.url}/api/v2/totp/code/{small['secret_id']}",
                       auth(small), settings, server)
        list10 = measure(run, backend, "list-10", f"{server.url}/api/v2/totp/secrets", auth(small), settings, server)
        # The 10,000-secret list is measured for latency, one request at a time.
        list10k = measure(run, backend, f"list-{settings.list_large // 1000}k", f"{server.url}/api/v2/totp/secrets",
                          auth(large), settings, server, connections=1, threads=1)
        create = measure(run, backend, "create", f"{server.url}/api/v2/totp/secrets", auth(small), settings, server,
                         script=create_lua)
        hotp_id, _ = create_hotp(server.url, small, -1)
        hotp_code = measure(run, backend, "hotp-code", f"{server.url}/api/v2/totp/code/{hotp_id}", auth(small),
                            settings, server)
        verify_lua, verify_ids = verify_script(server.url, small, settings)
        verify = measure(run, backend, "verify", server.url, auth(small), settings, server, script=verify_lua)
        refused = verify_refusals(server.url, small, verify_ids)
        if refused > 0 or -refused > settings.connections:
            raise RuntimeError(f"{backend} verify: {refused} more 200s than accepted codes "
                               "(positive: correct codes answered valid:false)")
        verify.note = "every answer valid:true (counted from the counters and /metrics)"
        for result in (code, list10, list10k, create, hotp_code, verify):
            result.ratio_to_bare = result.rps / bare.rps
        bare.ratio_to_bare = 1.0
        bench_import(run, server, backend, small, settings)
        if backend == "sqlite":
            # What the per-request log line costs: the same code row with
            # the level raised above it, on the same database.
            server.stop_process()
            server.env = {**server.env, "TOTPD_LOG": "warn"}
            server.port = free_port()
            server.start()
            quiet = measure(run, backend, "code-nolog", f"{server.url}/api/v2/totp/code/{small['secret_id']}",
                            auth(small), settings, server)
            quiet.ratio_to_bare = quiet.rps / bare.rps
            quiet.note = (f"TOTPD_LOG=warn (no per-request line); the default row is "
                          f"{code.rps / quiet.rps:.2f} of this")
    finally:
        server.stop()


def aegis_export(entries: int, run_tag: str) -> bytes:
    """A plain Aegis vault export of `entries` TOTP accounts with fresh
    secrets (written here from Aegis's docs/vault.md, not by totpd)."""
    items = []
    for i in range(entries):
        secret = hashlib.sha1(f"bench-import-{run_tag}-{i}".encode()).digest()
        items.append({
            "type": "totp", "uuid": str(uuid.uuid4()), "name": f"user{i}@example.com",
            "issuer": f"Service {i % 50}", "note": "", "favorite": False, "icon": None,
            "info": {"secret": base64.b32encode(secret).decode().rstrip("="), "algo": "SHA1",
                     "digits": 6, "period": 30},
        })
    vault = {"version": 1, "header": {"slots": None, "params": None},
             "db": {"version": 3, "entries": items, "groups": []}}
    return json.dumps(vault).encode()


def post_import(url: str, key: dict, body: bytes, content_type: str, query: str = "") -> tuple[float, dict]:
    """One import request; its wall time in ms and its answer."""
    request = urllib.request.Request(f"{url}/api/v2/totp/secrets/import{query}", data=body, method="POST",
                                     headers={**auth(key), "Content-Type": content_type})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as answer:
        reply = json.load(answer)
    return (time.perf_counter() - started) * 1000, reply


def import_result(run: Run, server: Server, backend: str, name: str, times: list[float], note: str) -> None:
    times = sorted(times)
    p50 = times[len(times) // 2]
    result = Result(backend, name, 1000 / statistics.mean(times), p50, times[-1], 1,
                    peak_rss_mib=server.peak_rss_mib(), note=note)
    log(f"{backend:8} {name:12} p50 {p50:8.1f} ms  max {times[-1]:8.1f} ms")
    run.results.append(result)


def bench_import(run: Run, server: Server, backend: str, key: dict, settings: Settings) -> None:
    """DESIGN §7's import targets, one request at a time: a 1,000-entry
    export stored (fresh secrets each time) and a 1920×1080 screenshot with
    one QR code read (a dry run: the time is the decoding's)."""
    repeats = 2 if settings.smoke else 7
    times = []
    for attempt in range(repeats):
        took, reply = post_import(server.url, key, aegis_export(1000, f"{backend}-{attempt}"),
                                  "application/octet-stream", "?format=aegis")
        if reply.get("created") != 1000:
            raise RuntimeError(f"{backend} import-1k: {reply.get('created')} of 1000 created")
        times.append(took)
    import_result(run, server, backend, "import-1k", times,
                  "a 1,000-entry Aegis export stored, one request at a time; req/s = imports/s, p99 column = max")
    screenshot = (ROOT / "crates/totpd-import/tests/data/qr" / QR_SCREENSHOT).read_bytes()
    times = []
    for _ in range(repeats * 3):
        took, reply = post_import(server.url, key, screenshot, "image/png", "?dry_run=true")
        if reply.get("created", 0) + reply.get("duplicates", 0) < 1:
            raise RuntimeError(f"{backend} import-qr: no entry read from {QR_SCREENSHOT}")
        times.append(took)
    import_result(run, server, backend, "import-qr", times,
                  f"{QR_SCREENSHOT} (1920×1080 PNG), dry run; req/s = imports/s, p99 column = max")


def random_code_script(name: str, ids: list[str]) -> Path:
    """A wrk script asking for the code of a random one of `ids` each request."""
    lua = OUT / f"{name}.lua"
    lua.write_text(
        "local ids = {" + ",".join(f'"{i}"' for i in ids) + "}\n"
        "local n = 0\n"
        "function setup(thread) thread:set('tid', n); n = n + 1 end\n"
        "function init(args) math.randomseed(os.time() + 7919 * tid) end\n"
        "function request()\n"
        "  return wrk.format(nil, '/api/v2/totp/code/' .. ids[math.random(#ids)])\n"
        "end\n"
    )
    return lua


def bench_scale(run: Run, binary: Path, settings: Settings) -> None:
    """Code latency with few and with many secrets stored (SQLite), a random
    one of them per request (DESIGN §7).

    Both rows use one account, so its key can read every secret. The 1k row
    picks among all 1,000; the 1M row among 10,000 ids spread evenly over the
    whole million (ids are random, so they land all over the table and its
    indexes), the first 1,000 included in proportion.
    """
    server = Server(binary, "sqlite", None)
    try:
        key = server.seed("scale", settings.scale_small, sample=settings.scale_small)
        small_ids = key["sample_ids"]
        server.start()
        small = measure(run, "sqlite", f"code@{human(settings.scale_small)}", server.url, auth(key),
                        settings, server, script=random_code_script("scale-small", small_ids))
        server.stop_process()
        want = min(10_000, settings.scale_large)
        filler = server.seed("scale", settings.scale_large - settings.scale_small, sample=want)
        share = max(1, round(want * settings.scale_small / settings.scale_large))
        large_ids = filler["sample_ids"] + small_ids[::max(1, len(small_ids) // share)][:share]
        server.port = free_port()
        server.start()
        large = measure(run, "sqlite", f"code@{human(settings.scale_large)}", server.url, auth(key),
                        settings, server, script=random_code_script("scale-large", large_ids))
        large.note = (f"random secret of {len(large_ids):,} spread over all; "
                      f"p50 ×{large.p50_ms / small.p50_ms:.2f}, p99 ×{large.p99_ms / small.p99_ms:.2f} vs {human(settings.scale_small)}")
        small.note = f"random secret of all {len(small_ids):,}"
        large.ratio_to_bare = large.rps / small.rps
        small.ratio_to_bare = 1.0
    finally:
        server.stop()


def human(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def table(run: Run) -> str:
    lines = [
        "| backend | endpoint | conns | req/s | p50 ms | p99 ms | ratio | peak RSS MiB | errors | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in run.results:
        ratio = f"{r.ratio_to_bare:.2f}" if r.ratio_to_bare is not None else ""
        rss = f"{r.peak_rss_mib:.1f}" if r.peak_rss_mib is not None else ""
        lines.append(
            f"| {r.backend} | {r.name} | {r.connections} | {r.rps:,.0f} | {r.p50_ms:.3f} | {r.p99_ms:.3f} "
            f"| {ratio} | {rss} | {r.errors} | {r.note} |"
        )
    return "\n".join(lines)


def chart(run: Run) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = sorted({r.backend for r in run.results if not r.name.startswith("code@")})
    fig, axes = plt.subplots(len(backends), 2, figsize=(12, 3.6 * len(backends)), squeeze=False)
    for row, backend in enumerate(backends):
        results = [r for r in run.results if r.backend == backend and not r.name.startswith("code@")]
        names = [r.name for r in results]
        colors = ["#888888" if r.name == "bare" else "#2b6cb0" for r in results]
        ax = axes[row][0]
        ax.bar(names, [r.rps for r in results], color=colors)
        ax.set_title(f"{backend}: requests/s (grey = bare)")
        ax.set_ylabel("req/s")
        ax = axes[row][1]
        ax.bar(names, [r.p99_ms for r in results], color=colors)
        ax.set_title(f"{backend}: p99 latency")
        ax.set_ylabel("ms")
    fig.suptitle(f"totpd, {run.machine['cores']} cores, wrk {run.settings['connections']} connections, {run.machine['date']}")
    fig.tight_layout()
    fig.savefig(CHART, dpi=90)
    log(f"wrote {CHART.relative_to(ROOT)}")


def update_benchmarks_md(run: Run) -> None:
    m = run.machine
    body = (
        f"{BEGIN}\n"
        f"Measured {m['date']} on {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Linux {m['kernel']}, "
        f"{m['wrk']}; wrk and the server share the cores. Each run: "
        f"{run.settings['duration']} s, {run.settings['connections']} connections, {run.settings['threads']} threads "
        f"(the 10k list: 1 connection). Command: `{run.command}`.\n\n"
        f"{table(run)}\n\n"
        f"![throughput and p99 per endpoint against bare](bench/benchmarks.png)\n"
        f"{END}"
    )
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + body + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n## HTTP API\n\n" + body + "\n"
    BENCHMARKS_MD.write_text(text)
    log(f"updated {BENCHMARKS_MD.relative_to(ROOT)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="seconds-long run that checks the harness works")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL backend")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    settings = (
        Settings(duration=1, connections=16, threads=2, scale_small=100, scale_large=2_000, list_large=1_000,
                 verify_secrets=400, smoke=True)
        if args.smoke
        else Settings(duration=10, connections=64, threads=2, scale_small=1_000, scale_large=1_000_000,
                      list_large=10_000, verify_secrets=4_000, smoke=False)
    )
    OUT.mkdir(parents=True, exist_ok=True)
    binary = build()
    command = "bench/run" + (" --smoke" if args.smoke else "")
    run = Run(machine=machine(), command=command, settings=asdict(settings))
    bench_backend(run, binary, "sqlite", settings, None)
    pg = None if args.no_postgres else postgres_url()
    if pg:
        bench_backend(run, binary, "postgres", settings, pg)
    else:
        log("PostgreSQL not reachable: its figures are skipped")
    bench_scale(run, binary, settings)
    (OUT / "results.json").write_text(json.dumps(asdict(run), indent=2))
    print(table(run))
    if not args.smoke:
        chart(run)
        update_benchmarks_md(run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
