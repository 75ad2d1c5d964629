"""Local package indexes for the pypi and npm source kinds: no network needed."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

# A pyproject whose build backend is the sdist's own backend.py: code that fetch must never run.
PYPROJECT = b"""[build-system]
requires = []
build-backend = "backend"
backend-path = ["."]
"""


def tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_pypi_index(root: Path, extra: dict[str, bytes] | None = None) -> tuple[str, str]:
    """A PEP 503 index holding demo-pkg 1.0 (with `extra` files in its sdist); returns (index URL,
    sdist sha256)."""
    files = {
        "PKG-INFO": b"Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.0\n",
        "pyproject.toml": PYPROJECT,
        "demo/__init__.py": b"",
        "demo/core.py": b"def run():\n    return 1\n",
        "demo/static/app.js": b"function go() { return 1; }\n",
        "demo/static/vendor/lib.js": b"var lib = 1;\n",
        "docs/index.rst": b"Demo\n",
        **(extra or {}),
    }
    sdist = tar_bytes({"demo_pkg-1.0/" + name: data for name, data in files.items()})
    (root / "files").mkdir(parents=True)
    (root / "files/demo_pkg-1.0.tar.gz").write_bytes(sdist)
    sha = hashlib.sha256(sdist).hexdigest()
    (root / "simple/demo-pkg").mkdir(parents=True)
    (root / "simple/demo-pkg/index.html").write_text(
        f'<html><body><a href="../../files/demo_pkg-1.0.tar.gz#sha256={sha}">'
        "demo_pkg-1.0.tar.gz</a></body></html>\n"
    )
    return (root / "simple").as_uri(), sha


class _Registry(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[str, bytes]] = {}

    def do_GET(self):  # noqa: N802 (http.server's name)
        route = self.routes.get(self.path.split("?")[0])
        if route is None:
            self.send_response(404)
            self.end_headers()
            return
        ctype, body = route
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def npm_registry() -> Iterator[tuple[str, str]]:
    """A loopback npm registry serving demo-js@1.0.0; yields (registry URL, tarball sha256)."""
    tgz = tar_bytes(
        {
            "package/package.json": b'{"name": "demo-js", "version": "1.0.0"}\n',
            "package/lib/index.js": b"export function add(a, b) { return a + b; }\n",
            "package/lib/util.js": b"const x = require('./index');\n",
        }
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()
    packument = {
        "name": "demo-js",
        "dist-tags": {"latest": "1.0.0"},
        "versions": {
            "1.0.0": {
                "name": "demo-js",
                "version": "1.0.0",
                "dist": {
                    "tarball": url + "demo-js/-/demo-js-1.0.0.tgz",
                    "shasum": hashlib.sha1(tgz).hexdigest(),
                    "integrity": integrity,
                },
            }
        },
    }
    _Registry.routes = {
        "/demo-js": ("application/json", json.dumps(packument).encode()),
        "/demo-js/-/demo-js-1.0.0.tgz": ("application/octet-stream", tgz),
    }
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield url, hashlib.sha256(tgz).hexdigest()
    finally:
        server.shutdown()
        server.server_close()
