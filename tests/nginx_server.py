"""A real nginx (Debian's nginx-light) on 127.0.0.1 serving a static mirror tree, for tests and benchmarks.

Reads are plain static files with nginx's own ETag and If-None-Match handling;
writes are WebDAV PUTs (nginx's dav module), allowed only with the bearer
token given. The server runs as this user in the foreground, logs every
request to ``access.log`` (so tests can count them) and is stopped, bounded
in time, when the context ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
REQUIRE = "MCP_ORCHESTRATION_REQUIRE_MIRROR_SERVERS"

_CONFIG = """
daemon off;
master_process off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format counted '$request_method $uri $status $body_bytes_sent $bytes_sent';
    access_log {work}/access.log counted;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    types {{ application/json json; }}
    default_type application/octet-stream;
    keepalive_requests 100000;
    map "$request_method:$http_authorization" $refused {{
        default 1;
        "~^(GET|HEAD):" 0;
        "PUT:Bearer {token}" {allow_put};
    }}
    server {{
        listen 127.0.0.1:{port};
        root {root};
        client_max_body_size 64m;
        location / {{
            if ($refused) {{ return 401; }}
            dav_methods PUT;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
        }}
        location = /index/HEAD {{
            if ($refused) {{ return 401; }}
            dav_methods PUT;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
            add_header Cache-Control "no-cache";
        }}
    }}
}}
"""


def available() -> bool:
    """Whether nginx is installed; without it tests skip, unless CI requires the mirror servers."""
    if Path(NGINX).is_file():
        return True
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{NGINX} is missing and {REQUIRE}=1: install nginx-light")
    return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serve_nginx(root: Path, work: Path, *, put_token: str | None = None) -> Iterator[str]:
    """nginx serving ``root`` at the URL yielded; PUT needs ``Authorization: Bearer <put_token>``."""
    work.mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = work / "nginx.conf"
    config.write_text(
        _CONFIG.format(work=work, root=root, port=port, token=put_token or "-", allow_put="0" if put_token else "1")
    )
    process = subprocess.Popen(
        [NGINX, "-c", str(config), "-p", str(work), "-e", str(work / "error.log")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_serving(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait_until_serving(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"nginx exited with {process.returncode}: {error}")
        try:
            urllib.request.urlopen(url + "index/HEAD", timeout=1).close()  # noqa: S310 (our loopback server)
            return
        except urllib.error.HTTPError:
            return  # it answers (404 before the first push)
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nginx did not start serving within 15 seconds")


def requests_logged(work: Path) -> list[str]:
    """The requests nginx served so far, one ``METHOD URI STATUS BODY_BYTES BYTES`` line each."""
    log = work / "access.log"
    return log.read_text().splitlines() if log.exists() else []
