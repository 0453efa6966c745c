"""Real mirror servers for tests and benchmarks: nginx and a CNCF distribution registry on 127.0.0.1.

``serve_nginx(root, work)`` runs Debian's nginx-light serving a static mirror
tree: reads are static files with nginx's own ETag and If-None-Match
handling, writes are WebDAV PUTs allowed only with the bearer token given;
every request is logged to ``access.log`` (``requests_logged`` reads it) and
the server is stopped, bounded in time, when the block ends.

``registry(tmp)`` starts Debian's ``docker-registry`` (distribution 2.8) on a
free loopback port with filesystem storage under ``tmp``, optionally behind
htpasswd (bcrypt) auth, waits until ``/v2/`` answers and stops it when the
block ends. Its log goes to a file under ``tmp``; it holds request lines,
never a password (the registry gets only the bcrypt hash).

Without the binaries (``apt-get install nginx-light docker-registry``) the tests that need
them skip, unless ``MCP_ORCHESTRATION_REQUIRE_MIRROR_SERVERS=1`` (CI), where
they fail instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

REQUIRE_VARIABLE = "MCP_ORCHESTRATION_REQUIRE_MIRROR_SERVERS"
REQUIRED = os.environ.get(REQUIRE_VARIABLE) == "1"  # read at import: each test starts without MCP_ORCHESTRATION_*
REGISTRY_BINARY = Path("/usr/bin/docker-registry")
NGINX_BINARY = Path("/usr/sbin/nginx")
START_SECONDS = 15.0
STOP_SECONDS = 10.0


def unavailable(reason: str) -> NoReturn:
    """Skip the calling test, or fail it where CI requires the mirror servers."""
    if REQUIRED:
        pytest.fail(f"{reason}, and {REQUIRE_VARIABLE}=1 requires it")
    pytest.skip(reason)


def require(binary: Path, package: str) -> None:
    """Skip (or fail, in CI) the calling test if ``binary`` is missing."""
    if not binary.exists():
        unavailable(f"{binary} is not installed (`apt-get install {package}`)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def htpasswd_line(user: str, password: str) -> str:
    """An htpasswd entry with a bcrypt hash, the only kind distribution accepts.

    The hash comes from the system's libcrypt (libxcrypt, on every Debian), not
    the ``bcrypt`` package: with that installed, cryptography would load the
    encrypted OpenSSH keys the product refuses, and the tests would not see it.
    """
    try:
        libcrypt = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
        libcrypt.crypt_gensalt.restype = libcrypt.crypt.restype = ctypes.c_char_p
        libcrypt.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
        libcrypt.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    except (OSError, AttributeError):
        unavailable("libcrypt (libxcrypt) with crypt_gensalt is not installed (`apt-get install libcrypt1`)")
    salt = libcrypt.crypt_gensalt(b"$2b$", 4, None, 0)  # cost 4: tests only
    hashed = libcrypt.crypt(password.encode(), salt) if salt else None
    if not hashed or not hashed.startswith(b"$2b$"):
        raise AssertionError("libcrypt made no bcrypt hash")
    return f"{user}:{hashed.decode()}\n"


@dataclass(frozen=True)
class RegistryServer:
    host: str  # 127.0.0.1:PORT, as an oci:// URL names it
    root: Path  # the storage directory
    log: Path

    def url(self, repository: str, tag: str | None = None) -> str:
        return f"oci://{self.host}/{repository}" + (f":{tag}" if tag else "")


def _wait_until_answering(child: subprocess.Popen[bytes], host: str, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise AssertionError(f"docker-registry exited ({child.returncode}):\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"http://{host}/v2/", timeout=1):
                return
        except urllib.error.HTTPError as exc:
            if exc.code == 401:  # up, and asking for credentials
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"docker-registry did not answer within {START_SECONDS} s:\n{log.read_text()[-4000:]}")


@contextmanager
def registry(tmp: Path, *, users: Mapping[str, str] | None = None) -> Iterator[RegistryServer]:
    """A distribution registry on 127.0.0.1, for the duration of the block (htpasswd auth if ``users``)."""
    require(REGISTRY_BINARY, "docker-registry")
    tmp.mkdir(parents=True, exist_ok=True)
    host = f"127.0.0.1:{free_port()}"
    config: dict[str, object] = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text"},
        "storage": {"filesystem": {"rootdirectory": str(tmp / "storage")}, "delete": {"enabled": True}},
        "http": {"addr": host, "secret": secrets.token_hex(16)},
    }
    if users:
        htpasswd = tmp / "htpasswd"
        htpasswd.write_text("".join(htpasswd_line(user, password) for user, password in users.items()))
        config["auth"] = {"htpasswd": {"realm": "mcp-orchestration-test", "path": str(htpasswd)}}
    config_file = tmp / "registry.yml"
    config_file.write_text(json.dumps(config))  # JSON is YAML
    log = tmp / "registry.log"
    with log.open("wb") as out:
        child = subprocess.Popen(
            [str(REGISTRY_BINARY), "serve", str(config_file)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
    try:
        _wait_until_answering(child, host, log)
        yield RegistryServer(host, tmp / "storage", log)
    finally:
        child.terminate()
        try:
            child.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=STOP_SECONDS)


_NGINX_CONFIG = """
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


@contextmanager
def serve_nginx(root: Path, work: Path, *, put_token: str | None = None) -> Iterator[str]:
    """nginx serving ``root`` at the URL yielded; PUT needs ``Authorization: Bearer <put_token>``."""
    require(NGINX_BINARY, "nginx-light")
    work.mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = work / "nginx.conf"
    config.write_text(
        _NGINX_CONFIG.format(
            work=work, root=root, port=port, token=put_token or "-", allow_put="0" if put_token else "1"
        )
    )
    process = subprocess.Popen(
        [str(NGINX_BINARY), "-c", str(config), "-p", str(work), "-e", str(work / "error.log")],
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
