"""A tiny stand-in for the Hugging Face Hub, serving model folders on 127.0.0.1.

It answers the two requests ``huggingface_hub.hf_hub_download`` makes
(``HEAD`` then ``GET`` of ``/{repo_id}/resolve/{revision}/{filename}``) with
the headers the real Hub sends (commit hash, ETag, size), and 404s with the
Hub's error codes for unknown repos and files.
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    """Serve ``{repo_id: folder}``; ``requests`` records every (method, path)."""

    def __init__(self, repos: dict[str, Path], commit: str = COMMIT):
        self.repos = {k: Path(v) for k, v in repos.items()}
        self.commit = commit
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _resolve(self):
                hub.requests.append((self.command, self.path))
                parts = unquote(self.path.split("?")[0]).strip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return None, "RepositoryNotFound"
                repo_id, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
                folder = hub.repos.get(repo_id)
                if folder is None:
                    return None, "RepositoryNotFound"
                if revision not in ("main", hub.commit):
                    return None, "RevisionNotFound"
                path = folder / filename
                if not path.is_file():
                    return None, "EntryNotFound"
                return path, None

            def _headers(self, path):
                data = path.read_bytes()
                etag = hashlib.sha256(data).hexdigest()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("ETag", f'"{etag}"')
                self.send_header("X-Repo-Commit", hub.commit)
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                return data

            def _error(self, code):
                self.send_response(404)
                self.send_header("X-Error-Code", code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_HEAD(self):
                path, err = self._resolve()
                if err:
                    return self._error(err)
                self._headers(path)

            def do_GET(self):
                path, err = self._resolve()
                if err:
                    return self._error(err)
                self.wfile.write(self._headers(path))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
