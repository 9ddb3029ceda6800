"""A small keep-alive HTTP/1.1 client for the API, one per thread."""

from __future__ import annotations

import http.client
import json


class Api:
    """A keep-alive HTTP/1.1 client for one server; not thread-safe."""

    def __init__(self, port: int, key_id: str, secret: str, timeout: float = 10.0) -> None:
        self.port = port
        self.headers = {"sb-api-key-id": key_id, "sb-api-secret-key": secret}
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body=None, headers=None, raw: bytes | None = None):
        """Returns (status, parsed JSON or None). Network errors propagate,
        after the connection is dropped so the next call opens a new one."""
        all_headers = dict(self.headers)
        payload = raw
        if body is not None:
            payload = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        if self._conn is None:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            self._conn.request(method, path, body=payload, headers=all_headers)
            response = self._conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        # A server may answer an error before reading the whole body and
        # then close the connection without saying so; a client cannot tell,
        # so it does not reuse such a connection.
        if response.getheader("connection", "").lower() == "close" or (
            payload is not None and response.status >= 400
        ):
            self.close()
        try:
            return response.status, json.loads(data) if data else None
        except ValueError:
            return response.status, None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
