"""The README's run command starts a working server, as written.

The first fenced ```sh block under `## Quick start` in README.md is run with
bash in the repository root, exactly as a newcomer would paste it, with a
fresh XDG_DATA_HOME (so the default data directory is new) and TOTPD_LISTEN
set to a free port (the one thing a shared test machine cannot leave at its default).
The test waits for the bootstrap key and the listening line, uses that key to
enroll a secret and fetch its code, then stops the command with SIGTERM and
requires it to exit 0.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request

import pytest

from totpd_testing.server import LISTENING, REPO_ROOT, server_env

README = REPO_ROOT / "README.md"
# The command may build the release binary first: minutes on a cold machine.
START_TIMEOUT_S = 900


def quick_start_command() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)
    if len(section) != 2:
        pytest.fail("README.md has no `## Quick start` section", pytrace=False)
    match = re.search(r"```sh\n(.*?)```", section[1], re.S)
    if not match:
        pytest.fail("README.md's Quick start has no ```sh block", pytrace=False)
    return match.group(1).strip()


def request(url: str, key: tuple[str, str], body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if body else "GET")
    req.add_header("sb-api-key-id", key[0])
    req.add_header("sb-api-secret-key", key[1])
    if body is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as response:
        return json.loads(response.read())


def test_readme_run_command_starts_a_server_that_prints_its_bootstrap_key(tmp_path):
    command = quick_start_command()
    env = server_env()
    # A fresh default data directory ($XDG_DATA_HOME/totpd); HOME stays, as
    # cargo and rustup live there.
    env.update(XDG_DATA_HOME=str(tmp_path / "data"), TOTPD_LISTEN="127.0.0.1:0")
    proc = subprocess.Popen(
        ["bash", "-c", command],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # SIGTERM reaches cargo and the server alike
    )
    lines: list[str] = []
    listening = threading.Event()
    port = None

    def read() -> None:
        nonlocal port
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            match = LISTENING.search(line.strip())
            if match:
                port = int(match.group(1))
                listening.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not listening.wait(1.0):
            if proc.poll() is not None or time.monotonic() > deadline:
                reader.join(timeout=5)
                pytest.fail(
                    f"`{command}` did not start listening (exit status {proc.poll()}):\n"
                    + "\n".join(lines[-40:]),
                    pytrace=False,
                )
        values = {}
        for line in lines:
            for label in ("key id:", "key secret:"):
                if line.strip().startswith(label):
                    values[label] = line.strip()[len(label):].strip()
        assert set(values) == {"key id:", "key secret:"}, "no bootstrap key printed:\n" + "\n".join(lines)
        key = (values["key id:"], values["key secret:"])
        assert (tmp_path / "data/totpd/master.key").is_file()
        base = f"http://127.0.0.1:{port}"
        created = request(f"{base}/api/v2/totp/secrets", key, {"label": "readme", "secret": "JBSWY3DPEHPK3PXP"})
        assert created["status"] == "OK"
        code = request(f"{base}/api/v2/totp/code/{created['totp_secret']['id']}", key)
        assert code["status"] == "OK" and re.fullmatch(r"\d{6}", code["code"])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            status = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            status = proc.wait()
        reader.join(timeout=5)
    assert status == 0, f"`{command}` exited {status} on SIGTERM:\n" + "\n".join(lines[-40:])
