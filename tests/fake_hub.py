"""A tiny stand-in for the Hugging Face Hub's file endpoints, served on 127.0.0.1 for offline tests.

Implements what ``hf_hub_download`` uses: ``HEAD`` and ``GET`` on ``/{repo_id}/resolve/{revision}/{path}``,
answering with ``X-Repo-Commit``, ``ETag`` and ``Content-Length`` (plus the ``X-Error-Code`` headers the
client maps to RepositoryNotFound / EntryNotFound / RevisionNotFound).
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, Tuple
from urllib.parse import unquote


class FakeHub:
    def __init__(self) -> None:
        self.files: Dict[Tuple[str, str], bytes] = {}   # (repo_id, path) -> content
        self.commit = "a" * 40
        self.requests = 0
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _lookup(self):
                hub.requests += 1
                path = unquote(self.path.split("?")[0]).lstrip("/")
                if path.startswith("models/"):
                    path = path[len("models/"):]
                parts = path.split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return 404, "EntryNotFound", None
                repo, rev, fpath = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                if not any(r == repo for r, _ in hub.files):
                    return 404, "RepoNotFound", None
                if rev not in ("main", hub.commit):
                    return 404, "RevisionNotFound", None
                data = hub.files.get((repo, fpath))
                if data is None:
                    return 404, "EntryNotFound", None
                return 200, None, data

            def _answer(self, body: bool):
                code, err, data = self._lookup()
                self.send_response(code)
                if err:
                    self.send_header("X-Error-Code", err)
                    self.send_header("X-Error-Message", err)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                etag = hashlib.sha256(data).hexdigest()
                self.send_header("X-Repo-Commit", hub.commit)
                self.send_header("ETag", f'"{etag}"')
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_HEAD(self):
                self._answer(False)

            def do_GET(self):
                self._answer(True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, repo_id: str, path: str, data: bytes) -> None:
        self.files[(repo_id, path)] = data

    def __enter__(self) -> "FakeHub":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
