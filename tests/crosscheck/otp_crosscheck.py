#!/usr/bin/env python3
"""Cross-check `totpd otp` against two independent TOTP implementations.

For random (secret, algorithm, digits, period, time) tuples, the codes
`totpd otp` prints must equal those of

  * oathtool (Debian package `oathtool`), given the secret in hex, and
  * pyotp (PyPI) for secrets of 112 bits or more, which it requires (its
    HOTP class with counter = time // period for periods over 120 s, which
    its TOTP class refuses), or RFC 4226/6238 written out below with
    Python's `hmac` for shorter secrets (80-bit secrets are common: GitHub,
    Discord, Microsoft).

Secrets are 10 to 64 bytes (a sixth of them exactly 10), digits 6 to 8,
periods 15, 30, 60 or anything from 1 to 300 seconds, times up to 2^33.
Each tuple reaches totpd one of three ways: --secret on the command line,
--secret - on standard input, or an otpauth:// URI built from it; about a
fifth ask for a --window of 3 consecutive codes.

Usage: otp_crosscheck.py [TOTPD_BIN] [COUNT]
  TOTPD_BIN  defaults to target/debug/totpd
  COUNT      number of tuples, default 1000 (at least 1000 counts for CI)
The RNG seed is printed; set OTP_CROSSCHECK_SEED to replay a run.
Exits 1 on any mismatch and prints `otp crosscheck: N passed, M failed` last.
"""

import base64
import concurrent.futures
import hashlib
import hmac
import os
import random
import shutil
import struct
import subprocess
import sys
import urllib.parse

import pyotp

HASHES = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}
PYOTP_MIN_BYTES = 14  # pyotp 2.12 refuses secrets under 112 bits
PYOTP_MAX_INTERVAL = 120  # and TOTP intervals over 120 seconds


def make_tuples(rng, count):
    tuples = []
    for index in range(count):
        length = 10 if rng.random() < 1 / 6 else rng.randint(10, 64)
        period = rng.choice([15, 30, 60, None]) or rng.randint(1, 300)
        tuples.append(
            {
                "index": index,
                "secret": bytes(rng.getrandbits(8) for _ in range(length)),
                "algorithm": rng.choice(sorted(HASHES)),
                "digits": rng.choice([6, 7, 8]),
                "period": period,
                "time": rng.randint(0, 2**33),
                "window": 3 if rng.random() < 0.2 else 1,
                "via": rng.choice(["argv", "stdin", "uri"]),
            }
        )
    return tuples


def b32(secret):
    return base64.b32encode(secret).decode().rstrip("=")


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
        return run([binary, "otp", "--secret", b32(t["secret"]), *params, *common])
    if t["via"] == "stdin":
        return run([binary, "otp", "--secret", "-", *params, *common], stdin=b32(t["secret"]) + "\n")
    query = urllib.parse.urlencode(
        {
            "secret": b32(t["secret"]),
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


def rfc_totp(secret, algorithm, digits, period, time):
    """RFC 6238 §4 over RFC 4226 §5.3, independent of pyotp."""
    counter = time // period
    mac = hmac.new(secret, struct.pack(">Q", counter), HASHES[algorithm]).digest()
    offset = mac[-1] & 0x0F
    value = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def python_codes(t):
    times = [t["time"] + i * t["period"] for i in range(t["window"])]
    if len(t["secret"]) >= PYOTP_MIN_BYTES:
        options = dict(digits=t["digits"], digest=HASHES[t["algorithm"]])
        if t["period"] <= PYOTP_MAX_INTERVAL:
            totp = pyotp.TOTP(b32(t["secret"]), interval=t["period"], **options)
            return [totp.at(x) for x in times], "pyotp"
        # pyotp.TOTP refuses longer intervals; its HOTP takes the counter.
        hotp = pyotp.HOTP(b32(t["secret"]), **options)
        return [hotp.at(x // t["period"]) for x in times], "pyotp"
    return [rfc_totp(t["secret"], t["algorithm"], t["digits"], t["period"], x) for x in times], "hmac"


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


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/debug/totpd"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        sys.exit(f"otp crosscheck: {binary} is not an executable; build it first")
    if shutil.which("oathtool") is None:
        sys.exit("otp crosscheck: oathtool not found (apt-get install oathtool)")
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

    for t, problem in failures[:20]:
        print(
            f"MISMATCH tuple {t['index']}: {len(t['secret'])}-byte secret, {t['algorithm']}, "
            f"{t['digits']} digits, period {t['period']}, time {t['time']}, "
            f"window {t['window']}, via {t['via']}: {problem}"
        )
    short = sum(1 for t in tuples if len(t["secret"]) < PYOTP_MIN_BYTES)
    print(
        f"otp crosscheck: {short} tuples with secrets under 112 bits checked with hmac, "
        f"{count - short} with pyotp; all {count} with oathtool"
    )
    print(f"otp crosscheck: {count - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
