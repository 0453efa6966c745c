"""An HTTPS server on loopback that answers one request with given bytes, then hangs up: a server that misbehaves.

Its certificate (made here, for 127.0.0.1) is the only one the client side is
told to trust, through ``SSL_CERT_FILE``, which OpenSSL reads when urllib
builds its default context: the code under test runs its real TLS path,
hostname check included. The server thread stops by itself: it accepts one
connection within ``TIMEOUT`` seconds, answers it, and closes.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TIMEOUT = 10.0  # seconds the server waits for the connection, then for each read of the request


def certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files in ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@contextlib.contextmanager
def https_answer(directory: Path, answer: bytes) -> Iterator[tuple[str, Path]]:
    """Serve ``answer`` (status line, headers and body, as sent) once; yield the URL and the certificate to trust."""
    cert, key = certificate(directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    thread = threading.Thread(target=_answer_once, args=(listener, context, answer), daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{listener.getsockname()[1]}/tracker/data/json", cert
    finally:
        thread.join(TIMEOUT * 3)


def _answer_once(listener: socket.socket, context: ssl.SSLContext, answer: bytes) -> None:
    with listener, contextlib.suppress(OSError):  # a client that gave up or refused the certificate
        connection, _ = listener.accept()
        connection.settimeout(TIMEOUT)
        with context.wrap_socket(connection, server_side=True) as tls:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = tls.recv(4096)
                if not chunk:
                    return
                request += chunk
            tls.sendall(answer)
