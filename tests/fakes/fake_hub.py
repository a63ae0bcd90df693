"""A tiny stand-in for the Hugging Face Hub's file endpoints, served on 127.0.0.1 for offline tests.

Implements what ``hf_hub_download`` uses: ``HEAD`` and ``GET`` on ``/{repo_id}/resolve/{revision}/{path}``,
answering with ``X-Repo-Commit``, ``ETag`` and ``Content-Length`` (plus the ``X-Error-Code`` headers the
client maps to RepositoryNotFound / EntryNotFound / RevisionNotFound). For dataset repos (vector libraries) also
what ``create_repo``, ``upload_folder`` (regular, inline uploads) and ``snapshot_download`` use; model repos (kits)
take ``create_repo`` and ``upload_folder`` too. A token, when
``require_token`` is set, must come as ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, Tuple
from urllib.parse import unquote


class FakeHub:
    def __init__(self) -> None:
        self.files: Dict[Tuple[str, str], bytes] = {}   # (repo_id, path) -> content
        self.commit = "a" * 40
        self.requests = 0
        self.require_token = None
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _lookup(self):
                hub.requests += 1
                path = unquote(self.path.split("?")[0]).lstrip("/")
                for prefix in ("models/", "datasets/"):
                    if path.startswith(prefix):
                        path = path[len(prefix):]
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

            def _json(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                if hub.require_token and self.headers.get("Authorization") != f"Bearer {hub.require_token}":
                    self._json(401, {"error": "Invalid credentials"})
                    return False
                return True

            def do_GET(self):
                path = unquote(self.path.split("?")[0]).lstrip("/")
                if path.startswith("api/datasets/") and "/tree/" in path:
                    repo = path[len("api/datasets/"):].split("/tree/")[0]
                    self._json(200, [{"type": "file", "path": f, "size": len(d), "oid": hashlib.sha1(d).hexdigest()}
                                     for (r, f), d in hub.files.items() if r == repo])
                    return
                if path.startswith("api/datasets/") and "/revision/" in path:
                    repo = path[len("api/datasets/"):].split("/revision/")[0]
                    files = [f for r, f in hub.files if r == repo]
                    if not files:
                        self.send_response(404)
                        self.send_header("X-Error-Code", "RepoNotFound")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self._json(200, {"id": repo, "sha": hub.commit, "siblings": [{"rfilename": f} for f in files]})
                    return
                self._answer(True)

            def do_POST(self):
                hub.requests += 1
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = unquote(self.path.split("?")[0]).lstrip("/")
                if not self._authorised():
                    return
                if path == "api/validate-yaml":      # a model card's front matter, checked on upload
                    self._json(200, {"errors": [], "warnings": []})
                elif path == "api/repos/create":
                    req = json.loads(body or b"{}")
                    self._json(200, {"url": f"{hub.endpoint}/datasets/{req.get('organization')}/{req.get('name')}"})
                elif "/preupload/" in path:
                    req = json.loads(body)
                    self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                               for f in req["files"]]})
                elif "/commit/" in path:      # api/models/{repo}/commit/{rev} or api/datasets/...
                    repo = path.split("/", 2)[2].split("/commit/")[0]
                    for line in body.decode().splitlines():
                        item = json.loads(line)
                        if item.get("key") == "file":
                            v = item["value"]
                            hub.files[(repo, v["path"])] = base64.b64decode(v["content"])
                    self._json(200, {"commitUrl": f"{hub.endpoint}/{repo}/commit/{hub.commit}",
                                     "commitOid": hub.commit, "pullRequestUrl": None})
                else:
                    self._json(404, {"error": f"not faked: {path}"})

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
