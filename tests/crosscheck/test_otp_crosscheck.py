"""Cross-check `totpd otp` against two independent TOTP implementations.

For random (secret, algorithm, digits, period, time) tuples, the codes
`totpd otp` prints must equal those of

  * oathtool (Debian package `oathtool`), given the secret in hex, and
  * pyotp (PyPI) for secrets of 112 bits or more, which it requires (its
    HOTP class with counter = time // period for periods over 120 s, which
    its TOTP class refuses), or RFC 4226/6238 written out with Python's
    `hmac` (totpd_testing.otp) for shorter secrets (80-bit secrets are common: GitHub,
    Discord, Microsoft).

Secrets are 10 to 64 bytes (a sixth of them exactly 10), digits 6 to 8,
periods 15, 30, 60 or anything from 1 to 300 seconds, times up to 2^33.
Each tuple reaches totpd one of three ways: --secret on the command line,
--secret - on standard input, or an otpauth:// URI built from it; about a
fifth ask for a --window of 3 consecutive codes.

The binary is TOTPD_BIN (default target/debug/totpd). OTP_CROSSCHECK_COUNT
sets the number of tuples (default 1000; CI never runs fewer). The RNG seed
is printed; set OTP_CROSSCHECK_SEED to replay a run.
"""

from __future__ import annotations

import concurrent.futures
import os
import random
import shutil
import subprocess
import urllib.parse

from totpd_testing.otp import DIGESTS, b32encode, hotp, pyotp_code
from totpd_testing.server import totpd_bin
from totpd_testing.skips import in_ci, skip_unless_ci

DEFAULT_COUNT = 1000


def make_tuples(rng, count):
    tuples = []
    for index in range(count):
        length = 10 if rng.random() < 1 / 6 else rng.randint(10, 64)
        period = rng.choice([15, 30, 60, None]) or rng.randint(1, 300)
        tuples.append(
            {
                "index": index,
                "secret": bytes(rng.getrandbits(8) for _ in range(length)),
                "algorithm": rng.choice(sorted(DIGESTS)),
                "digits": rng.choice([6, 7, 8]),
                "period": period,
                "time": rng.randint(0, 2**33),
                "window": 3 if rng.random() < 0.2 else 1,
                "via": rng.choice(["argv", "stdin", "uri"]),
            }
        )
    return tuples


def run(command, stdin=None):
    result = subprocess.run(
        command, input=stdin, capture_output=True, text=True, timeout=30, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"exit {result.returncode}: {result.stderr.strip()}")
    return result.stdout.split()


def totpd_codes(binary, t):
    common = ["--at", str(t["time"]), "--window", str(t["window"])]
    params = [
        "--algorithm", t["algorithm"].lower() if t["index"] % 2 else t["algorithm"],
        "--digits", str(t["digits"]),
        "--period", str(t["period"]),
    ]
    if t["via"] == "argv":
        return run([binary, "otp", "--secret", b32encode(t["secret"]), *params, *common])
    if t["via"] == "stdin":
        return run([binary, "otp", "--secret", "-", *params, *common], stdin=b32encode(t["secret"]) + "\n")
    query = urllib.parse.urlencode(
        {
            "secret": b32encode(t["secret"]),
            "issuer": "Cross Check",
            "algorithm": t["algorithm"],
            "digits": t["digits"],
            "period": t["period"],
        }
    )
    uri = f"otpauth://totp/Cross%20Check:tuple{t['index']}?{query}"
    return run([binary, "otp", "--uri", uri, *common])


def oathtool_codes(t):
    command = [
        "oathtool",
        f"--totp={t['algorithm']}",
        "-d", str(t["digits"]),
        "-s", f"{t['period']}s",
        "-N", f"@{t['time']}",
    ]
    if t["window"] > 1:
        command += ["-w", str(t["window"] - 1)]  # oathtool -w N prints N+1 codes
    return run(command + [t["secret"].hex()])


def python_codes(t):
    """The codes of the Python oracle: pyotp where it can, else hmac."""
    times = [t["time"] + i * t["period"] for i in range(t["window"])]
    options = dict(algorithm=t["algorithm"], digits=t["digits"], period=t["period"])
    theirs = [pyotp_code(t["secret"], x, **options) for x in times]
    if all(code is not None for code in theirs):
        return theirs, "pyotp"
    return [hotp(t["secret"], x // t["period"], algorithm=t["algorithm"], digits=t["digits"])
            for x in times], "hmac"


def check(binary, t):
    """Returns None when all three agree, else a description (no secret bytes)."""
    try:
        ours = totpd_codes(binary, t)
    except Exception as error:  # noqa: BLE001 - report and count as a failure
        return f"totpd failed: {error}"
    try:
        oath = oathtool_codes(t)
        reference, name = python_codes(t)
    except Exception as error:  # noqa: BLE001
        return f"a reference implementation failed: {error}"
    if ours == oath == reference:
        return None
    return f"totpd {ours} oathtool {oath} {name} {reference}"


def test_totpd_otp_agrees_with_oathtool_and_pyotp():
    binary = str(totpd_bin())
    if shutil.which("oathtool") is None:
        skip_unless_ci("oathtool is not installed (apt-get install oathtool)")
    count = int(os.environ.get("OTP_CROSSCHECK_COUNT", DEFAULT_COUNT))
    if in_ci():
        count = max(count, DEFAULT_COUNT)
    seed_text = os.environ.get("OTP_CROSSCHECK_SEED")
    seed = int(seed_text) if seed_text else random.SystemRandom().randrange(2**32)
    print(f"otp crosscheck: seed {seed} (OTP_CROSSCHECK_SEED={seed} replays this run)")
    tuples = make_tuples(random.Random(seed), count)

    failures = []
    workers = max(2, (os.cpu_count() or 1) * 2)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for t, problem in zip(tuples, pool.map(lambda t: check(binary, t), tuples)):
            if problem:
                failures.append((t, problem))

    short = sum(1 for t in tuples if len(t["secret"]) < 14)
    print(
        f"otp crosscheck: {count} tuples, all with oathtool; "
        f"{short} with secrets under 112 bits checked with hmac instead of pyotp"
    )
    described = [
        f"tuple {t['index']}: {len(t['secret'])}-byte secret, {t['algorithm']}, "
        f"{t['digits']} digits, period {t['period']}, time {t['time']}, "
        f"window {t['window']}, via {t['via']}: {problem}"
        for t, problem in failures[:20]
    ]
    assert not failures, (
        f"{len(failures)} of {count} tuples disagree (seed {seed}):\n" + "\n".join(described)
    )
