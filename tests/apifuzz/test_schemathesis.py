"""API fuzzing: schemathesis against a live `totpd serve` and its /openapi.json.

Every operation in the document is exercised, authenticated with a real
owner key, in all of schemathesis's phases (examples, coverage, fuzzing and
stateful, which follows the create response's links to the code and delete
operations with real ids). Two checks must hold for every response:
`not_a_server_error` (no 5xx) and `response_schema_conformance` (the body
matches the documented schema for its status).

A run whose every request is refused with 401 would pass both checks
without testing anything, so the test first proves the credentials are
accepted, then reads the HAR record of the run and requires that every
operation was reached past authentication, with successes where the
operation can succeed (a code and a delete need an id the stateful phase
takes from a create).

Environment: TOTPD_SCHEMATHESIS_MAX_EXAMPLES (default 100) bounds the test
cases per operation and phase.
"""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from totpd_testing.api import Api
from totpd_testing.server import TotpdError, TotpdServer, create_key, totpd_bin

MAX_EXAMPLES = int(os.environ.get("TOTPD_SCHEMATHESIS_MAX_EXAMPLES", "100"))
RUN_TIMEOUT_S = 600
# Override to explore other inputs locally; CI always uses the default.
SEED = os.environ.get("TOTPD_SCHEMATHESIS_SEED", "1")

# (method, path template) -> statuses of which at least one must be seen.
REQUIRED = {
    ("POST", "/api/v2/totp/secrets"): {200, 400},
    ("GET", "/api/v2/totp/secrets"): {200, 400},
    ("GET", "/api/v2/totp/code/{id}"): {200, 404},
    ("DELETE", "/api/v2/totp/secrets/{id}"): {200, 404},
    ("GET", "/api/v2/totp/secrets/{id}"): {200, 404},
    ("PATCH", "/api/v2/totp/secrets/{id}"): {200, 400, 404},
    ("POST", "/api/v2/totp/secrets/{id}/verify"): {200, 404},
    ("POST", "/api/v2/totp/secrets/import"): {200, 400},
    ("POST", "/api/v2/keys"): {200, 400},
    ("GET", "/api/v2/keys"): {200},
    ("DELETE", "/api/v2/keys/{key_id}"): {200, 404},
    ("GET", "/api/v2/audit"): {200, 400},
    ("GET", "/healthz"): {200},
    ("GET", "/readyz"): {200},
}
TEMPLATES = [
    (re.compile(r"^/api/v2/totp/secrets/import$"), "/api/v2/totp/secrets/import"),
    (re.compile(r"^/api/v2/keys/[^/]+$"), "/api/v2/keys/{key_id}"),
    (re.compile(r"^/api/v2/totp/secrets/[^/]+$"), "/api/v2/totp/secrets/{id}"),
    (re.compile(r"^/api/v2/totp/code/[^/]+$"), "/api/v2/totp/code/{id}"),
    (re.compile(r"^/api/v2/totp/secrets/[^/]+/verify$"), "/api/v2/totp/secrets/{id}/verify"),
]


def template(url: str) -> str:
    path = re.sub(r"^[a-z]+://[^/]+", "", url).split("?", 1)[0]
    for pattern, name in TEMPLATES:
        if pattern.match(path):
            return name
    return path


def schemathesis_cli() -> Path:
    cli = Path(sys.executable).parent / "schemathesis"
    if not cli.exists():
        pytest.fail(
            f"schemathesis is not installed beside {sys.executable} "
            "(scripts/test installs tests/requirements.txt into .venv)",
            pytrace=False,
        )
    return cli


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    try:
        binary = totpd_bin()
    except TotpdError as err:
        pytest.fail(str(err), pytrace=False)
    data_dir = tmp_path_factory.mktemp("data")
    # schemathesis sends bursts well over the default per-key rate limit;
    # its 429s would only hide the operations' own answers.
    srv = TotpdServer(binary, data_dir, tmp_path_factory.mktemp("log") / "serve.log",
                      extra_env={"TOTPD_RATE_LIMIT_PER_KEY": "0"})
    try:
        srv.key = create_key(binary, data_dir, "schemathesis")
        srv.start()
    except TotpdError as err:
        pytest.fail(str(err), pytrace=False)
    yield srv
    code = srv.stop()
    assert code == 0, f"serve exited {code} after SIGTERM:\n{srv.log_text()}"


def test_credentials_are_accepted_before_the_run(server):
    """Without this, a run where everything is 401 would pass vacuously."""
    api = Api(server.port, server.key["key_id"], server.key["secret"])
    status, body = api.request("GET", "/api/v2/totp/secrets")
    assert (status, body and body.get("status")) == (200, "OK"), body
    # The same request with a wrong secret is refused: the check above
    # really depends on the credentials.
    wrong = Api(server.port, server.key["key_id"], "not-the-secret")
    assert wrong.request("GET", "/api/v2/totp/secrets")[0] == 401


def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(server, tmp_path):
    key = server.key
    har_path = tmp_path / "run.har"
    # Longer stateful scenarios (the default is 6 steps): with the keys
    # routes' links beside the secrets', short scenarios often never follow
    # the create response's link to the code.
    (tmp_path / "schemathesis.toml").write_text("[phases.stateful]\nmax-steps = 20\n")
    cmd = [
        str(schemathesis_cli()), "run", f"{server.base_url}/openapi.json",
        "-H", f"sb-api-key-id: {key['key_id']}",
        "-H", f"sb-api-secret-key: {key['secret']}",
        "--checks", "not_a_server_error,response_schema_conformance",
        "--continue-on-failure",
        "--max-examples", str(MAX_EXAMPLES),
        "--report", "har", "--report-har-path", str(har_path),
        # Keep credentials out of the printed output and of failure reports.
        "--output-sanitize", "true",
        # A fixed seed: the same requests every run, so whether each route is
        # reached with a success (checked below) does not depend on luck.
        "--seed", SEED,
    ]
    # cwd: schemathesis keeps its example database in the working directory.
    proc = subprocess.run(
        cmd, cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
        stdin=subprocess.DEVNULL, check=False,
    )
    output = (proc.stdout + proc.stderr).replace(key["secret"], "[key secret]")
    print(output)
    assert proc.returncode == 0, f"schemathesis exited {proc.returncode}:\n{output}"

    seen: dict[tuple[str, str], collections.Counter] = collections.defaultdict(
        collections.Counter
    )
    for entry in json.loads(har_path.read_text())["log"]["entries"]:
        operation = (entry["request"]["method"], template(entry["request"]["url"]))
        seen[operation][entry["response"]["status"]] += 1
    summary = "\n".join(
        f"  {m} {p}: {dict(sorted(c.items()))}" for (m, p), c in sorted(seen.items())
    )
    print(f"responses by operation and status:\n{summary}")

    with urllib.request.urlopen(f"{server.base_url}/openapi.json", timeout=10) as resp:
        spec = json.load(resp)
    operations = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert operations == set(REQUIRED), (
        f"the document's operations changed; update REQUIRED: {sorted(operations)}"
    )
    problems = []
    for operation, wanted in REQUIRED.items():
        counts = seen.get(operation, collections.Counter())
        total = sum(counts.values())
        if total == 0:
            problems.append(f"{operation} was never called")
            continue
        missing = wanted - counts.keys()
        if missing:
            problems.append(f"{operation} never answered {sorted(missing)}: {dict(counts)}")
        refused = counts[401] + counts[429]
        if refused * 2 > total:
            problems.append(
                f"{operation}: {refused} of {total} answers were 401/429, so the run "
                f"mostly did not get past authentication or rate limits: {dict(counts)}"
            )
    assert not problems, "\n".join(problems) + f"\nall responses:\n{summary}"
