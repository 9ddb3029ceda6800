"""What a test suite received from totpd, checked against totpd's audit log.

`Received` wraps httpx (which the Sendblue SDK uses) for the length of a
session and notes every code answered (request id, key id, secret id,
code), every secret that was stored and every key secret that was sent.
At the end:

- `check_every_code_recorded_once` reads each key's `code.read` events
  through `GET /api/v2/audit` (with the key itself, paging by cursor) and
  requires exactly one `ok` event per code received, with that key id,
  secret id and request id;
- `check_database_holds_none_of_it` scans every row of the SQLite database
  (every column, as text) for the secrets and key secrets, the audit rows
  also for the codes (as whole numbers), and the database files' raw bytes
  for the secrets and key secrets.

Nothing seen is ever printed: failures name counts and request ids only.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import httpx

_CODE_PATH = re.compile(r"^/api/v2/totp/code/([^/]+)$")
_SECRETS_PATH = "/api/v2/totp/secrets"


@dataclass
class Served:
    request_id: str
    key_id: str
    secret_id: str
    code: str


@dataclass
class Received:
    codes: list[Served] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)
    key_secrets: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _original_send = None

    def install(self) -> None:
        """Wraps httpx.Client.send until `uninstall`."""
        original = httpx.Client.send
        received = self

        def send(client, request, *args, **kwargs):
            response = original(client, request, *args, **kwargs)
            try:
                received._note(request, response)
            except Exception:  # never let the bookkeeping break a test
                pass
            return response

        self._original_send = original
        httpx.Client.send = send

    def uninstall(self) -> None:
        if self._original_send is not None:
            httpx.Client.send = self._original_send
            self._original_send = None

    def add_key(self, key_id: str, secret: str) -> None:
        with self._lock:
            self.key_secrets[key_id] = secret

    def _note(self, request: httpx.Request, response: httpx.Response) -> None:
        key_id = request.headers.get("sb-api-key-id")
        key_secret = request.headers.get("sb-api-secret-key")
        # A wrong secret is a test's own invention, not a key's: only keys
        # that authenticated are noted.
        if key_id and key_secret and response.status_code != 401:
            self.add_key(key_id, key_secret)
        if response.status_code != 200:
            return
        path = request.url.path
        response.read()
        match = _CODE_PATH.match(path)
        if request.method == "GET" and match:
            body = response.json()
            code = body.get("code")
            request_id = response.headers.get("x-request-id")
            if isinstance(code, str) and request_id and key_id:
                with self._lock:
                    self.codes.append(Served(request_id, key_id, match.group(1), code))
        elif request.method == "POST" and path == _SECRETS_PATH:
            stored = response.json().get("totp_secret", {}).get("secret")
            sent = json.loads(request.content or b"{}").get("secret")
            with self._lock:
                for secret in (stored, sent):
                    if isinstance(secret, str) and len(secret) >= 16:
                        self.secrets.add(secret)
                        self.secrets.add(re.sub(r"[\s=-]", "", secret).upper())


def _audit_page(
    base_url: str, key_id: str, reader: tuple[str, str], cursor: str | None
) -> dict:
    query = {"action": "code.read", "key_id": key_id, "limit": "1000"}
    if cursor:
        query["cursor"] = cursor
    request = urllib.request.Request(
        f"{base_url}/api/v2/audit?{urllib.parse.urlencode(query)}",
        headers={"sb-api-key-id": reader[0], "sb-api-secret-key": reader[1]},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


def code_reads(base_url: str, key_id: str, reader: tuple[str, str]) -> list[dict]:
    """Every code.read event of the key, newest first, read with `reader`."""
    events: list[dict] = []
    cursor = None
    while True:
        page = _audit_page(base_url, key_id, reader, cursor)
        events.extend(page["events"])
        cursor = page.get("next_cursor")
        if not cursor:
            return events


def _events_of(received: Received, base_url: str, key_id: str, secret: str) -> list[dict]:
    """The key's code.read events, read with the key itself or, for a key
    whose role may not read the audit log (agent, verifier: 403), with the
    noted key of its account that can (the audit log is per account: a key
    of another account sees none of them)."""
    try:
        return code_reads(base_url, key_id, (key_id, secret))
    except urllib.error.HTTPError as err:
        if err.code != 403:
            raise
    best: list[dict] = []
    for reader in list(received.key_secrets.items()):
        if reader[0] == key_id:
            continue
        try:
            events = code_reads(base_url, key_id, reader)
        except urllib.error.HTTPError:
            continue
        if len(events) > len(best):
            best = events
    return best


def check_every_code_recorded_once(received: Received, base_url: str) -> list[str]:
    """Problems found (empty if every code received has exactly one record)."""
    problems: list[str] = []
    by_key: dict[str, list[Served]] = {}
    for served in received.codes:
        by_key.setdefault(served.key_id, []).append(served)
    for key_id, served in by_key.items():
        secret = received.key_secrets.get(key_id)
        if secret is None:
            problems.append(f"no key secret noted for {key_id}")
            continue
        events = _events_of(received, base_url, key_id, secret)
        ok = {}
        for event in events:
            if event["outcome"] == "ok":
                ok.setdefault(event["request_id"], []).append(event)
        for one in served:
            found = ok.get(one.request_id, [])
            if len(found) != 1:
                problems.append(
                    f"request {one.request_id} (key {key_id}) got a code and has "
                    f"{len(found)} ok code.read records"
                )
                continue
            event = found[0]
            if event["key_id"] != key_id or event["secret_id"] != one.secret_id:
                problems.append(
                    f"request {one.request_id}: recorded key {event['key_id']} secret "
                    f"{event['secret_id']}, served key {key_id} secret {one.secret_id}"
                )
    return problems


def _row_texts(db: Path, table: str) -> list[list[str]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
    texts = []
    for row in rows:
        values = []
        for value in row:
            if isinstance(value, bytes):
                values.append(value.decode("latin-1"))
            else:
                values.append("" if value is None else str(value))
        texts.append(values)
    return texts


def check_database_holds_none_of_it(received: Received, db: Path) -> list[str]:
    """Problems found in the database at `db` (a SQLite file, with its WAL)."""
    problems: list[str] = []
    hidden = sorted(received.secrets) + sorted(received.key_secrets.values())
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
    codes = {served.code for served in received.codes}
    audit_rows = 0
    for table in tables:
        for values in _row_texts(db, table):
            text = "\x00".join(values)
            if any(h in text for h in hidden):
                problems.append(f"a row of {table} holds a secret or key secret")
            if table == "audit_events":
                audit_rows += 1
                numbers = set(re.findall(r"\d+", text))
                if numbers & codes:
                    problems.append("an audit row holds a code a client received")
    if received.codes and audit_rows == 0:
        problems.append("the audit log is empty")
    for path in (db, Path(f"{db}-wal")):
        if path.exists():
            raw = path.read_bytes()
            if any(h.encode() in raw for h in hidden):
                problems.append(f"{path.name} holds a secret or key secret in its bytes")
    return problems
