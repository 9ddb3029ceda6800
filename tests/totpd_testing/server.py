"""Start and stop a live `totpd serve` for the SDK and README tests.

The binary comes from the environment variable TOTPD_BIN; a relative path is
taken relative to the repository root, and the default is target/debug/totpd.
Each server gets a fresh data directory, listens on 127.0.0.1:0 (the port is
read back from its "totpd listening on" line) and writes everything it prints
to a log file, so a failing test can show it.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

STARTUP_TIMEOUT_S = 30.0
SHUTDOWN_TIMEOUT_S = 10.0
KEYS_CREATE_TIMEOUT_S = 30.0
# Request ids that mark the log (TotpdServer.sync_log).
_LOG_MARKS = itertools.count()
LISTENING = re.compile(r"^totpd listening on https?://127\.0\.0\.1:(\d+)\s*$")


class TotpdError(RuntimeError):
    """The totpd binary did something the contract does not allow."""


def totpd_bin() -> Path:
    """The totpd binary under test, or a TotpdError that says how to get one."""
    raw = os.environ.get("TOTPD_BIN", "target/debug/totpd")
    path = Path(raw)
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.is_file() or not os.access(path, os.X_OK):
        raise TotpdError(
            f"totpd binary not found or not executable at {path} "
            "(build it with `cargo build --workspace --bins`, or set TOTPD_BIN)"
        )
    return path


def server_env() -> dict[str, str]:
    """The environment for totpd processes: ours, minus every TOTPD_ variable.

    A developer's shell may carry TOTPD_DATABASE_URL or TOTPD_MASTER_KEY;
    they must not leak into a server that is meant to use a fresh data dir.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOTPD_")}
    env.setdefault("RUST_BACKTRACE", "1")
    return env


def create_key(binary: Path, data_dir: Path, account: str) -> dict:
    """Run `totpd keys create --account NAME --json --data-dir DIR`.

    Returns the one JSON object it prints, after checking its shape.
    """
    cmd = [
        str(binary), "keys", "create",
        "--account", account, "--json", "--data-dir", str(data_dir),
    ]
    proc = subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=server_env(),
        timeout=KEYS_CREATE_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        raise TotpdError(
            f"`{' '.join(cmd)}` exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    try:
        key = json.loads(proc.stdout)
    except json.JSONDecodeError as err:
        raise TotpdError(
            f"`totpd keys create --json` must print exactly one JSON object, "
            f"got ({err}):\n{proc.stdout}"
        ) from err
    expected = {"account", "account_id", "key_id", "secret"}
    if not isinstance(key, dict) or not expected <= key.keys():
        raise TotpdError(
            f"`totpd keys create --json` printed {key!r}, "
            f"which lacks some of {sorted(expected)}"
        )
    if key["account"] != account:
        raise TotpdError(f"asked for account {account!r}, got {key['account']!r}")
    for field in ("account_id", "key_id", "secret"):
        if not isinstance(key[field], str) or not key[field]:
            raise TotpdError(f"`keys create --json` field {field!r} is {key[field]!r}")
    return key


class TotpdServer:
    """One `totpd serve --no-bootstrap` process on a loopback port of its own."""

    def __init__(
        self,
        binary: Path,
        data_dir: Path,
        log_path: Path,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        """extra_env is added to server_env() (e.g. TOTPD_LOG=trace)."""
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.extra_env = dict(extra_env or {})
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise TotpdError("server not started")
        return f"http://127.0.0.1:{self.port}"

    def create_key(self, account: str) -> dict:
        return create_key(self.binary, self.data_dir, account)

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def sync_log(self) -> None:
        """Wait until every line the running server has logged is in the file.

        The server writes its log from a buffer, up to 50 ms late, so that a
        check that a line is absent cannot pass only because the line was not
        written yet: a request with a unique request id, then a wait for its
        log line. A server that logs no requests (TOTPD_LOG above info) gets a
        pause instead; a stopped one wrote everything on its way out.
        """
        if self.proc is None or self.proc.poll() is not None or self.port is None:
            return
        if self.extra_env.get("TOTPD_LOG", "info") in ("warn", "error", "off"):
            time.sleep(0.3)
            return
        mark = f"log-sync-{os.getpid()}-{next(_LOG_MARKS)}"
        request = urllib.request.Request(f"{self.base_url}/healthz", headers={"x-request-id": mark})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                resp.read()
        except OSError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if mark in self.log_path.read_text(errors="replace"):
                return
            time.sleep(0.01)
        raise TotpdError(f"the server's log line for request {mark} did not appear within 10 s")

    def log_text(self, start: int = 0, max_lines: int = 400) -> str:
        self.sync_log()
        try:
            with open(self.log_path, "rb") as log:
                log.seek(start)
                text = log.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log file)"
        lines = text.splitlines()
        if len(lines) > max_lines:
            skipped = len(lines) - max_lines
            lines = [f"... ({skipped} earlier lines in {self.log_path})"] + lines[-max_lines:]
        return "\n".join(lines) if lines else "(no output)"

    def start(self) -> None:
        """Start serve on 127.0.0.1:0, read the bound port from its "totpd
        listening on" line, and wait for GET /healthz to answer 200."""
        start = self.log_size()
        self.port = None
        with open(self.log_path, "ab") as log:
            log.write(b"=== totpd serve on 127.0.0.1:0 ===\n")
            log.flush()
            self.proc = subprocess.Popen(
                [
                    str(self.binary), "serve",
                    "--listen", "127.0.0.1:0",
                    "--data-dir", str(self.data_dir),
                    "--no-bootstrap",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**server_env(), **self.extra_env},
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.port is None:
                self.port = self._listening_port(start)
            elif self._healthy():
                return
            if self.proc.poll() is not None:
                raise TotpdError(
                    f"totpd serve exited {self.proc.returncode} at start; its output:\n"
                    f"{self.log_text(start)}"
                )
            time.sleep(0.05)
        self._kill()
        raise TotpdError(
            f"totpd serve did not listen and answer GET /healthz with 200 within "
            f"{STARTUP_TIMEOUT_S:.0f}s; its output:\n{self.log_text(start)}"
        )

    def _listening_port(self, start: int) -> int | None:
        with open(self.log_path, "rb") as log:
            log.seek(start)
            for line in log.read().decode("utf-8", errors="replace").splitlines():
                match = LISTENING.search(line)
                if match:
                    return int(match.group(1))
        return None

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=2) as resp:
                return resp.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def stop(self) -> int | None:
        """SIGTERM, then wait for a graceful exit; returns the exit code.

        Raises TotpdError when serve does not exit within the timeout (it is
        then killed), since DESIGN's shutdown contract is a prompt exit.
        """
        if self.proc is None or self.proc.poll() is not None:
            self.returncode = None if self.proc is None else self.proc.returncode
            return self.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._kill()
            raise TotpdError(
                f"totpd serve did not exit within {SHUTDOWN_TIMEOUT_S:.0f}s of "
                f"SIGTERM and was killed; its output:\n{self.log_text()}"
            )
        return self.returncode

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
