"""The README's curl examples work as written, against a live totpd serve.

Every fenced ```sh block under the `## HTTP API` heading of README.md (up to
the next `## ` heading) is concatenated, in order, into one bash script that
runs with `set -euo pipefail`. The script gets TOTPD (the base URL), KEY_ID
and KEY_SECRET in its environment; lines that start with `export TOTPD=` are
dropped, since they are the placeholder a reader edits. The script must exit
0 and print at least one `"status":"OK"` body.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from totpd_testing.server import REPO_ROOT, TotpdError, TotpdServer, server_env, totpd_bin
from totpd_testing.skips import skip_unless_ci

README = REPO_ROOT / "README.md"
SECTION = "## HTTP API"
SCRIPT_TIMEOUT_S = 120
FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
STATUS_OK = re.compile(r'"status"\s*:\s*"OK"')


def fenced_blocks(lines: list[str]):
    """Yield (line, fence_info) for each line; fence_info is the info string
    of the fenced block the line is in or opens/closes, None outside one.

    A fence closes on a line of the same character, at least as long, with
    no info string (CommonMark).
    """
    fence = info = None
    for line in lines:
        match = FENCE.match(line)
        if fence is None and match:
            fence, info = match.group(1), match.group(2)
            yield line, ("open", info)
        elif fence is not None and match and not match.group(2) \
                and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
            yield line, ("close", info)
            fence = info = None
        elif fence is not None:
            yield line, ("body", info)
        else:
            yield line, None


def http_api_section(markdown: str) -> list[str]:
    """The lines under `## HTTP API` up to the next `## ` heading.

    Headings inside code blocks do not count (a shell comment can start
    with `## `).
    """
    lines = markdown.splitlines()
    start = next((i for i, line in enumerate(lines)
                  if line.rstrip() == SECTION or line.startswith(SECTION + " ")), None)
    if start is None:
        return []
    section = []
    for line, where in fenced_blocks(lines[start + 1:]):
        if where is None and line.startswith("## "):
            break
        section.append(line)
    return section


def sh_blocks(section: list[str]) -> list[str]:
    """The bodies of the fenced blocks tagged sh, in order."""
    blocks, body = [], []
    for line, where in fenced_blocks(section):
        if where is None or where[1] != "sh":
            continue
        if where[0] == "open":
            body = []
        elif where[0] == "body":
            body.append(line)
        else:
            blocks.append("\n".join(body))
    return blocks


def readme_script() -> str:
    if not README.is_file():
        pytest.fail(f"{README} does not exist; it must document the HTTP API "
                    f"under a `{SECTION}` heading with ```sh curl examples", pytrace=False)
    section = http_api_section(README.read_text(encoding="utf-8"))
    if not section:
        pytest.fail(f"README.md has no `{SECTION}` section (a line that is exactly "
                    f"`{SECTION}`); its curl examples are what this test runs", pytrace=False)
    blocks = sh_blocks(section)
    if not blocks:
        pytest.fail(f"README.md's `{SECTION}` section has no ```sh code blocks to run",
                    pytrace=False)
    kept = [line for block in blocks for line in block.splitlines()
            if not line.lstrip().startswith("export TOTPD=")]
    return "set -euo pipefail\n" + "\n".join(kept) + "\n"


def test_readme_curl_examples_work_as_written(tmp_path):
    script = readme_script()
    for tool in ("curl", "jq"):
        if re.search(rf"\b{tool}\b", script) and shutil.which(tool) is None:
            skip_unless_ci(f"the README's examples use {tool}, which is not installed "
                           f"(apt-get install {tool})")
    try:
        server = TotpdServer(totpd_bin(), tmp_path / "data", tmp_path / "serve.log")
        key = server.create_key("readme")
        server.start()
    except TotpdError as err:
        pytest.fail(str(err), pytrace=False)
    try:
        env = server_env()
        env.update(TOTPD=server.base_url, KEY_ID=key["key_id"], KEY_SECRET=key["secret"])
        work = tmp_path / "work"
        work.mkdir()
        proc = subprocess.run(
            ["bash", "-c", script], cwd=work, env=env, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S, check=False,
        )
    finally:
        exit_code = server.stop()
    report = (
        f"--- script ---\n{script}\n--- exit {proc.returncode} ---\n"
        f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}\n"
        f"--- totpd serve output ---\n{server.log_text()}"
    )
    assert proc.returncode == 0, f"the README's curl examples failed\n{report}"
    assert STATUS_OK.search(proc.stdout), f'no "status":"OK" in the output\n{report}'
    assert exit_code == 0, f"totpd serve exited {exit_code} on SIGTERM\n{report}"
