"""The fixtures of every Python test, and the skip policy.

Fixtures: `totpd_server`, a live `totpd serve` shared by the tests that ask
for it, and Sendblue SDK clients pointed at it. One server runs for the whole session, on a free loopback port with a fresh
temporary data dir. Its first API key is created with `totpd keys create`
before it starts; every test then gets an account of its own, created with
the same command while the server runs, so tests never see each other's
secrets. The server's output goes to a log file; when a test fails, the
part of the log written during that test is attached to the report.
"""

from __future__ import annotations

import itertools
import os
import re

import pytest
from sendblue_api import SendblueAPI

from totpd_testing.audit import (
    Received,
    check_database_holds_none_of_it,
    check_every_code_recorded_once,
)
from totpd_testing.server import TotpdError, TotpdServer, totpd_bin
from totpd_testing.skips import in_ci, record_skip

_servers: list[TotpdServer] = []
# What the clients of the shared server received, checked against its audit
# log when the session ends.
_received = Received()
_account_numbers = itertools.count(1)


@pytest.fixture(scope="session", autouse=True)
def _no_sdk_environment():
    """The SDK reads SENDBLUE_API_* variables; the tests configure it alone."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("SENDBLUE_API_")}
    yield
    os.environ.update(saved)


@pytest.fixture(scope="session")
def totpd_server(tmp_path_factory):
    try:
        binary = totpd_bin()
    except TotpdError as err:
        pytest.fail(str(err), pytrace=False)
    data_dir = tmp_path_factory.mktemp("totpd-data")
    log_path = tmp_path_factory.mktemp("totpd-log") / "serve.log"
    server = TotpdServer(binary, data_dir, log_path)
    try:
        # The first key is made before serve starts (keys create must work
        # on an empty data dir), the per-test ones while it runs.
        server.owner_key = server.create_key("sdk-owner")
        server.start()
    except TotpdError as err:
        pytest.fail(str(err), pytrace=False)
    _servers.append(server)
    _received.install()
    yield server
    _received.uninstall()
    _servers.remove(server)
    # Every code a client received has exactly one record (DESIGN: audit log).
    problems = check_every_code_recorded_once(_received, server.base_url)
    code = server.stop()
    problems += check_database_holds_none_of_it(_received, data_dir / "totpd.db")
    if problems:
        pytest.fail(
            f"audit log check of {len(_received.codes)} codes received: "
            + "; ".join(problems[:20]),
            pytrace=False,
        )
    if code != 0:
        pytest.fail(
            f"totpd serve exited {code} after SIGTERM (DESIGN.md: exit 0); "
            f"its output:\n{server.log_text()}",
            pytrace=False,
        )


@pytest.fixture
def account(totpd_server, request):
    """A fresh account with one API key: {account, account_id, key_id, secret}."""
    return new_account(totpd_server, request)


@pytest.fixture
def other_account(totpd_server, request):
    return new_account(totpd_server, request)


def new_account(server: TotpdServer, request) -> dict:
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name)[:60]
    try:
        key = server.create_key(f"sdk-{next(_account_numbers)}-{name}"[:64])
    except TotpdError as err:
        pytest.fail(str(err), pytrace=False)
    _received.add_key(key["key_id"], key["secret"])
    return key


def make_client(server: TotpdServer, key_id: str, secret: str, **options) -> SendblueAPI:
    """An SDK client configured with the base URL and the key, nothing else.

    Tests pass max_retries=0 so a 5xx or 429 fails at once instead of being
    retried into success; the SDK is otherwise left as shipped.
    """
    return SendblueAPI(base_url=server.base_url, api_key=key_id, api_secret=secret, **options)


@pytest.fixture
def sdk_client_for(totpd_server):
    """make(key_id, secret) -> a client with max_retries=0, closed after the test."""
    made = []

    def make(key_id: str, secret: str) -> SendblueAPI:
        sdk = make_client(totpd_server, key_id, secret, max_retries=0)
        made.append(sdk)
        return sdk

    yield make
    for sdk in made:
        sdk.close()


@pytest.fixture
def client(sdk_client_for, account):
    return sdk_client_for(account["key_id"], account["secret"])


@pytest.fixture
def other_client(sdk_client_for, other_account):
    return sdk_client_for(other_account["key_id"], other_account["secret"])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    item._totpd_log_offsets = {id(s): s.log_size() for s in _servers}
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = skip_reason(report)
        record_skip(item.nodeid, reason)
        if in_ci():
            # However a test came to be skipped, CI must run it.
            report.outcome = "failed"
            report.longrepr = f"skipped under CI ({reason}); CI must run every test"
        return
    if not report.failed:
        return
    offsets = getattr(item, "_totpd_log_offsets", {})
    for server in _servers:
        start = offsets.get(id(server), 0)
        report.sections.append(
            (f"totpd serve output during this test ({server.log_path})",
             server.log_text(start)),
        )


def skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)
