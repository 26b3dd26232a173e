"""A small JSON client of the REST API, for the benchmark scripts that drive a running server.

Imported by file name, ``import bench_api``, as every helper (see bench_setup.py).
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request


class Api:
    def __init__(self, base: str, token: str | None = None):
        self.base, self.token = base.rstrip("/"), token

    def call(self, method: str, path: str, body: dict | None = None, raw: bool = False):
        """(HTTP status, the answer): parsed JSON (None when empty), its text when ``raw``; an error's
        answer is its JSON, or ``{"detail": the start of its text}``."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Accept", "*/*" if raw else "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Token {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                content = response.read()
                return response.status, (content.decode() if raw else json.loads(content) if content else None)
        except urllib.error.HTTPError as error:
            content = error.read()
            try:
                return error.code, json.loads(content)
            except ValueError:
                return error.code, {"detail": content[:500].decode(errors="replace")}
