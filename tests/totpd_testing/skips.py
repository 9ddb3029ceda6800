"""Loud skips.

A test that cannot run here calls `skip_unless_ci(reason)`: on a
developer's machine it is skipped with the reason, and under CI (`CI` set
to anything but "", "false" or "0") it fails, since CI must run everything.
Every skip, whatever raised it, is also appended to the file named by
TOTPD_SKIP_LOG (one line: `python <test id>: <reason>`), which
scripts/test counts and prints in its summary.
"""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "") not in ("", "false", "0")


def skip_unless_ci(reason: str) -> None:
    """Skip the running test with `reason`, or fail it under CI."""
    if in_ci():
        pytest.fail(f"{reason}; CI must run this test", pytrace=False)
    pytest.skip(reason)


def record_skip(test_id: str, reason: str) -> None:
    """Append one skip to TOTPD_SKIP_LOG, when scripts/test set it."""
    path = os.environ.get("TOTPD_SKIP_LOG")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as log:
        log.write(f"python {test_id}: {reason}\n")
