"""Crash safety: `kill -9` a loaded `totpd serve` on SQLite, 20 times.

Several client threads create and delete secrets as fast as the server
answers. At random moments the server is killed with SIGKILL and started
again on the same data directory. After every restart:

- every create answered 200 is present, with its label and parameters, and
  its code is the one RFC 6238 gives for the secret the client sent
  (computed here with Python's hmac, sharing nothing with totpd);
- every delete answered 200 stays deleted (absent from the list, 404 for
  its code);
- a create or delete that got no answer (in flight at the kill) may have
  happened or not, but nothing else may appear: every listed secret is one
  the clients sent. Whichever way it went is then final, and checked at
  every later restart.

Finally the server is stopped and SQLite's `PRAGMA integrity_check` on the
database file must say `ok`.

Environment: TOTPD_CRASH_SEED makes a run repeatable (the seed is printed).
"""

from __future__ import annotations

import base64
import http.client
import os
import traceback
import random
import sqlite3
import threading
import time
from dataclasses import dataclass

import pytest

from totpd_testing.api import Api
from totpd_testing.otp import code_matches
from totpd_testing.server import TotpdError, TotpdServer, create_key, totpd_bin

KILLS = 20
THREADS = 4
# Each kill comes this long (seconds, uniform) after the load resumed.
LOAD_BEFORE_KILL_S = (0.2, 1.2)
# Past this many live secrets, deletes become more likely than creates, so
# the per-restart verification stays short.
LIVE_TARGET = 150
TIME_BUDGET_S = 115
ALGORITHMS = ["SHA1", "SHA256", "SHA512"]


@dataclass
class Sent:
    """A secret as the client sent it."""

    label: str
    key: bytes
    algorithm: str
    digits: int
    period: int


class Ledger:
    """What the clients know about the server's state, under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.present: dict[str, Sent] = {}        # acknowledged (or proven) creates
        self.deleted: dict[str, Sent] = {}        # acknowledged (or proven) deletes
        self.maybe_created: dict[str, Sent] = {}  # label -> sent, no answer
        self.maybe_deleted: dict[str, Sent] = {}  # id -> sent, no answer
        self.deleting: set[str] = set()           # ids with a delete in flight
        self.acked_creates = 0
        self.acked_deletes = 0
        self.unanswered = 0
        self.unexpected: list[str] = []


def make_secret(rng: random.Random, label: str) -> Sent:
    return Sent(
        label=label,
        # 10 bytes is the 80-bit length real services issue; 64 is SHA-512's block.
        key=bytes(rng.getrandbits(8) for _ in range(rng.choice([10, 16, 20, 32, 64]))),
        algorithm=rng.choice(ALGORITHMS),
        digits=rng.choice([6, 8]),
        period=rng.choice([30, 60]),
    )


def worker(*args) -> None:
    """Runs the load loop; a crash of the thread itself is reported, not lost."""
    ledger, idle = args[4], args[7]
    try:
        load(*args)
    except BaseException:
        with ledger.lock:
            ledger.unexpected.append(f"client thread failed:\n{traceback.format_exc()}")
        idle.release()


def load(
    number: int,
    seed: int,
    server: TotpdServer,
    key: dict,
    ledger: Ledger,
    running: threading.Event,
    stop: threading.Event,
    idle: threading.Semaphore,
) -> None:
    rng = random.Random(seed * 1000 + number)
    api = None
    port = None
    created = 0
    while not stop.is_set():
        if not running.is_set():
            idle.release()
            while not running.wait(0.05):
                if stop.is_set():
                    return
            continue
        if api is None or port != server.port:
            if api is not None:
                api.close()
            port = server.port
            api = Api(port, key["key_id"], key["secret"], timeout=10)
        with ledger.lock:
            candidates = [i for i in ledger.present if i not in ledger.deleting]
            delete_odds = 0.3 if len(candidates) < LIVE_TARGET else 0.7
            target = None
            if candidates and rng.random() < delete_odds:
                target = rng.choice(candidates)
                ledger.deleting.add(target)
        if target is None:
            created += 1
            sent = make_secret(rng, f"crash-{number}-{created}")
            with ledger.lock:
                ledger.maybe_created[sent.label] = sent
            body = {
                "label": sent.label,
                "secret": base64.b32encode(sent.key).decode().rstrip("=").lower(),
                "algorithm": sent.algorithm,
                "digits": sent.digits,
                "period": sent.period,
            }
            try:
                status, answer = api.request("POST", "/api/v2/totp/secrets", body)
            except (OSError, http.client.HTTPException):
                with ledger.lock:
                    ledger.unanswered += 1
                continue
            with ledger.lock:
                if status == 200:
                    del ledger.maybe_created[sent.label]
                    ledger.present[answer["totp_secret"]["id"]] = sent
                    ledger.acked_creates += 1
                else:
                    ledger.unexpected.append(f"create answered {status}: {answer}")
        else:
            with ledger.lock:
                sent = ledger.present.pop(target)
                ledger.maybe_deleted[target] = sent
            try:
                status, answer = api.request("DELETE", f"/api/v2/totp/secrets/{target}")
            except (OSError, http.client.HTTPException):
                with ledger.lock:
                    ledger.unanswered += 1
                continue
            with ledger.lock:
                ledger.deleting.discard(target)
                del ledger.maybe_deleted[target]
                if status == 200:
                    ledger.deleted[target] = sent
                    ledger.acked_deletes += 1
                else:
                    # An acknowledged create that is not there (404) is the
                    # very loss this test looks for.
                    ledger.present[target] = sent
                    ledger.unexpected.append(f"delete of {target} answered {status}: {answer}")
    if api is not None:
        api.close()


def verify(server: TotpdServer, key: dict, ledger: Ledger, restart: int) -> int:
    """Checks the restarted server against the ledger; settles the unknowns.

    Runs while no client thread is sending. Returns the codes checked.
    """
    api = Api(server.port, key["key_id"], key["secret"])
    problems = []
    status, body = api.request("GET", "/api/v2/totp/secrets")
    assert status == 200, f"after restart {restart}: list answered {status}: {body}"
    listed = {s["id"]: s for s in body["totp_secrets"]}

    # In-flight deletes: whichever way they went is final from now on.
    for secret_id, sent in list(ledger.maybe_deleted.items()):
        (ledger.present if secret_id in listed else ledger.deleted)[secret_id] = sent
    ledger.maybe_deleted.clear()
    ledger.deleting.clear()
    # In-flight creates: the listed ones happened; the rest never will.
    by_label = {s["label"]: i for i, s in listed.items()}
    for label, sent in ledger.maybe_created.items():
        if label in by_label:
            ledger.present[by_label[label]] = sent
    ledger.maybe_created.clear()

    for secret_id in listed.keys() - ledger.present.keys():
        problems.append(f"{secret_id} ({listed[secret_id]['label']}) is listed but was "
                        "never created, or was deleted with an acknowledgement")
    for secret_id, sent in ledger.present.items():
        row = listed.get(secret_id)
        if row is None:
            problems.append(f"acknowledged create {secret_id} ({sent.label}) is lost")
            continue
        want = (sent.label, sent.algorithm, sent.digits, sent.period)
        got = (row["label"], row["algorithm"], row["digits"], row["period"])
        if got != want:
            problems.append(f"{secret_id}: listed as {got}, created as {want}")
        status, code = api.request("GET", f"/api/v2/totp/code/{secret_id}")
        if status != 200:
            problems.append(f"code of {secret_id} answered {status}: {code}")
        elif not code_matches(sent.key, sent.algorithm, code):
            problems.append(f"code of {secret_id} is wrong for its secret")
    for secret_id in ledger.deleted:
        if secret_id in listed:
            problems.append(f"acknowledged delete {secret_id} came back in the list")
    # A few deleted ids by the code route too (all of them would grow the
    # verification with every cycle).
    for secret_id in list(ledger.deleted)[-20:]:
        status, _ = api.request("GET", f"/api/v2/totp/code/{secret_id}")
        if status != 404:
            problems.append(f"code of deleted {secret_id} answered {status}, not 404")
    api.close()
    assert not problems, f"after restart {restart}:\n" + "\n".join(problems[:30])
    return len(ledger.present)


def test_acknowledged_writes_survive_kill_9_and_the_database_stays_intact(tmp_path):
    started = time.monotonic()
    seed = int(os.environ.get("TOTPD_CRASH_SEED", random.SystemRandom().randrange(2**32)))
    print(f"seed {seed} (set TOTPD_CRASH_SEED={seed} to repeat this run)")
    rng = random.Random(seed)
    try:
        binary = totpd_bin()
    except TotpdError as err:
        pytest.fail(str(err), pytrace=False)
    data_dir = tmp_path / "data"
    # A load test of durability, not of the abuse limits: no per-key limit.
    server = TotpdServer(binary, data_dir, tmp_path / "serve.log",
                         extra_env={"TOTPD_RATE_LIMIT_PER_KEY": "0"})
    key = create_key(binary, data_dir, "crash")
    server.start()

    ledger = Ledger()
    running, stop = threading.Event(), threading.Event()
    idle = threading.Semaphore(0)
    threads = [
        threading.Thread(
            target=worker,
            args=(n, seed, server, key, ledger, running, stop, idle),
            daemon=True,
        )
        for n in range(THREADS)
    ]
    codes_checked = 0
    try:
        running.set()
        for thread in threads:
            thread.start()
        for kill in range(1, KILLS + 1):
            time.sleep(rng.uniform(*LOAD_BEFORE_KILL_S))
            running.clear()
            server.proc.kill()  # SIGKILL: no shutdown code runs
            server.proc.wait()
            # Every worker finishes the request it had in flight, then waits.
            for _ in threads:
                assert idle.acquire(timeout=30), "a client thread hung"
            with ledger.lock:
                assert not ledger.unexpected, "\n".join(ledger.unexpected[:20])
            server.start()
            with ledger.lock:
                codes_checked += verify(server, key, ledger, kill)
            running.set()
            assert time.monotonic() - started < TIME_BUDGET_S, (
                f"over the {TIME_BUDGET_S}s budget after {kill} kills"
            )
        running.clear()
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        exit_code = server.stop()
        assert exit_code == 0, f"serve exited {exit_code} after SIGTERM"
    except BaseException:
        stop.set()
        running.set()
        server._kill()
        print(server.log_text(max_lines=60))
        raise

    db_path = data_dir / "totpd.db"
    assert db_path.is_file(), f"no SQLite database at {db_path}"
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        result = connection.execute("PRAGMA integrity_check").fetchall()
        secrets_in_db = connection.execute("SELECT count(*) FROM secrets").fetchone()[0]
    finally:
        connection.close()
    assert result == [("ok",)], f"integrity_check: {result}"
    assert secrets_in_db == len(ledger.present)

    print(
        f"{KILLS} kills in {time.monotonic() - started:.1f}s: "
        f"{ledger.acked_creates} creates and {ledger.acked_deletes} deletes acknowledged, "
        f"{ledger.unanswered} requests cut off by a kill, {codes_checked} codes checked, "
        f"{len(ledger.present)} secrets at the end"
    )
    # Not vacuous: real load, and kills that landed in the middle of it.
    assert ledger.acked_creates >= 100 and ledger.acked_deletes >= 20
    assert ledger.unanswered >= 1, "no kill ever caught a request in flight"
