"""oci:// URLs: what they name, which are refused, and that only an oci:// URL loads oras-py."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mcp_orchestration.core.errors import UsageError
from mcp_orchestration.store.mirror.oci import OciSource
from mcp_orchestration.store.mirror.oci_layout import Reference, parse_url
from mcp_orchestration.store.mirror.transport import open_source


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("oci://registry.example.com/mirror", Reference("registry.example.com", "mirror", "latest", False)),
        ("oci://registry.example.com:5000/a/b/c:v1.2", Reference("registry.example.com:5000", "a/b/c", "v1.2", False)),
        ("oci://ghcr.io/org/team.x/mcp-mirror:prod_2", Reference("ghcr.io", "org/team.x/mcp-mirror", "prod_2", False)),
        ("oci://10.0.0.1:5000/mirror", Reference("10.0.0.1:5000", "mirror", "latest", False)),
        ("oci://127.0.0.1:5000/mirror:t", Reference("127.0.0.1:5000", "mirror", "t", True)),
        ("oci://127.0.0.2/mirror", Reference("127.0.0.2", "mirror", "latest", True)),
        ("oci://LOCALHOST:5000/mirror", Reference("localhost:5000", "mirror", "latest", True)),
        ("oci://[::1]:5000/mirror", Reference("[::1]:5000", "mirror", "latest", True)),
        ("oci://[2001:db8::1]/mirror", Reference("[2001:db8::1]", "mirror", "latest", False)),
    ],
)
def test_url_names_registry_repository_tag_and_plain_http_only_on_loopback(url: str, expected: Reference) -> None:
    assert parse_url(url) == expected


def test_plain_http_on_loopback_and_https_elsewhere_in_request_urls() -> None:
    assert parse_url("oci://localhost:5000/a/b").base == "http://localhost:5000/v2/a/b"
    assert parse_url("oci://localhost.example.com/a").base == "https://localhost.example.com/v2/a"


@pytest.mark.parametrize(
    "url",
    [
        "oci://user:s3cret-pw@registry.example.com/mirror",
        "oci://user@registry.example.com/mirror",
        "oci://registry.example.com/Mirror",  # repositories are lowercase
        "oci://registry.example.com/",
        "oci://registry.example.com/mirror:" + "t" * 121,  # "<tag>-objects" must be a tag too
        "oci://registry.example.com/mirror@sha256:" + "0" * 64,  # a mirror is a tag, not a fixed digest
        "oci://registry.example.com/mirror?x=1",
        "oci://registry.example.com:99999/mirror",
        "oci:///mirror",
    ],
)
def test_malformed_urls_and_credentials_in_urls_are_refused(url: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_url(url)
    assert "s3cret-pw" not in str(caught.value) and "s3cret-pw" not in repr(caught.value)


def test_credentials_in_the_url_point_to_docker_login() -> None:
    with pytest.raises(UsageError) as caught:
        open_source("oci://user:pw@127.0.0.1:5000/mirror")
    assert "docker login" in caught.value.hint


def test_the_scheme_registry_opens_the_oci_transport() -> None:
    source = open_source("oci://127.0.0.1:5000/mirror:v1")
    try:
        assert isinstance(source, OciSource)
        assert source.counters.requests == 0  # opening sends nothing
    finally:
        source.close()


def test_the_command_line_does_not_load_oras_or_requests() -> None:
    code = (
        "import sys, mcp_orchestration.cli, mcp_orchestration.store.mirror.transport;"
        "print(sorted(m for m in ('oras', 'requests') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
