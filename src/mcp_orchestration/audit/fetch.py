"""Download Debian's security tracker JSON for the audit: HTTPS only, bounded in size and time.

    python -m mcp_orchestration.audit.fetch [--url URL] [--max-bytes N] [--timeout SECONDS] OUT

Exit status 0 when OUT holds the whole answer, 2 otherwise (``tracker_unreachable``):
no route, a TLS or HTTP error, a redirect off HTTPS, an answer over the size
bound, a stall past the timeout, or an answer cut short: fewer bytes than its
Content-Length, or a chunked body that stops mid-chunk. OUT is written whole
or not at all (a ``.partial`` file renamed at the end), so a cut download is
never judged. An answer framed by neither can only end when the connection
does, so a cut one looks whole here: the gate still refuses a tracker that is
not JSON, does not cover the image's release, or is too small (``tracker.py``).
OUT is dated as the server dates the data (its Last-Modified, else its Date),
so the gate can refuse an old copy. The certificate is checked against the
system's CAs, as urllib does by default.
"""

from __future__ import annotations

import argparse
import email.utils
import http.client
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from datetime import UTC
from http.client import HTTPMessage
from pathlib import Path
from typing import IO, TypeVar
from urllib.parse import urlsplit

from mcp_orchestration.audit.errors import TrackerUnreachableError
from mcp_orchestration.core.errors import ExitCode, OrchestrationError

TRACKER_URL = "https://security-tracker.debian.org/tracker/data/json"
MAX_BYTES = 256 * 1024 * 1024  # the whole tracker is some tens of MiB; far more is not it
TIMEOUT = 60.0  # seconds without progress on connect or on any read
MAX_TIMEOUT = 86400.0  # a day: the most --timeout takes (inf, 1e400, even 1e10 do not fit a socket's timeout)
_CHUNK = 1024 * 1024
_Number = TypeVar("_Number", int, float)


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to another https:// URL."""

    def redirect_request(  # noqa: PLR0917  # urllib's signature
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str, headers: HTTPMessage, newurl: str
    ) -> urllib.request.Request | None:
        _require_https(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch_tracker(url: str, dest: Path, *, max_bytes: int = MAX_BYTES, timeout: float = TIMEOUT) -> int:
    """Download ``url`` to ``dest`` and return its size; any failure is ``TrackerUnreachableError``."""
    _require_https(url)
    partial = dest.with_name(dest.name + ".partial")
    opener = urllib.request.build_opener(_HttpsOnlyRedirects)
    request = urllib.request.Request(url, headers={"User-Agent": "mcp-orchestration-audit"})  # noqa: S310
    try:
        with opener.open(request, timeout=timeout) as answer, partial.open("wb") as out:
            size = copy_bounded(answer, out, max_bytes)
            _require_whole(answer.headers, size)
        if (dated := _dated(answer.headers)) is not None:
            os.utime(partial, (dated, dated))
        os.replace(partial, dest)
    except TrackerUnreachableError:
        partial.unlink(missing_ok=True)
        raise
    # HTTPError, timeouts, TLS errors, a chunked body cut short (IncompleteRead), a garbled answer (BadStatusLine)
    except (OSError, urllib.error.URLError, http.client.HTTPException, ValueError) as error:
        partial.unlink(missing_ok=True)
        raise TrackerUnreachableError(f"Cannot download {url}: {_reason(error)}.") from None
    return size


def copy_bounded(source: IO[bytes], out: IO[bytes], max_bytes: int) -> int:
    """Copy everything, but stop with an error past ``max_bytes``: the bound holds whatever the server claims."""
    size = 0
    while chunk := source.read(_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise TrackerUnreachableError(f"The answer is larger than {max_bytes} bytes: not the tracker's JSON.")
        out.write(chunk)
    return size


def _require_whole(headers: HTTPMessage, size: int) -> None:
    """Refuse a body shorter (or longer) than its Content-Length: http.client returns a cut one as if it were whole."""
    announced = headers.get("Content-Length")
    if announced is not None and announced.strip() != str(size):
        raise TrackerUnreachableError(f"The answer ended after {size} of the {announced} bytes it announced.")


def _dated(headers: HTTPMessage) -> float | None:
    """When Debian's data last changed (Last-Modified), else when it was sent (Date): the gate refuses an old file.

    None, and the file keeps the time it was written, when the server gives neither in a form HTTP allows.
    A date without a zone, or with ``-0000``, is UTC (RFC 5322 says so of ``-0000``; HTTP dates are GMT),
    never this machine's local time.
    """
    for name in ("Last-Modified", "Date"):
        try:
            dated = email.utils.parsedate_to_datetime(headers.get(name, ""))
        except ValueError:  # absent or malformed
            continue
        return (dated if dated.tzinfo else dated.replace(tzinfo=UTC)).timestamp()
    return None


def _require_https(url: str) -> None:
    if urlsplit(url).scheme != "https":
        raise TrackerUnreachableError(f"Refusing {url}: Debian's security data is fetched over https:// only.")


def _reason(error: Exception) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    return str(error) or type(error).__name__


def _bound(kind: type[_Number], most: _Number | None = None) -> Callable[[str], _Number]:
    """An argparse type for a bound: zero or less, or above ``most``, is a typo, so a usage error.

    Zero or less would fail every download; a timeout past ``most`` stopped it with an OverflowError.
    """
    what = "a whole number" if kind is int else "a number"
    ceiling = "" if most is None else f" and at most {most:g}"

    def parse(text: str) -> _Number:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0 or (most is not None and not value <= most):  # NaN fails either test
            raise argparse.ArgumentTypeError(f"must be {what} above 0{ceiling}, not {text}")
        return value

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    """Fetch, print where and how much on stderr, and return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m mcp_orchestration.audit.fetch", description=__doc__)
    parser.add_argument("out", type=Path, metavar="OUT")
    parser.add_argument("--url", default=TRACKER_URL, help="default: %(default)s")
    parser.add_argument("--max-bytes", type=_bound(int), default=MAX_BYTES, help="default: %(default)s")
    parser.add_argument(
        "--timeout", type=_bound(float, MAX_TIMEOUT), default=TIMEOUT, help="seconds; default: %(default)s"
    )
    args = parser.parse_args(argv)
    try:
        size = fetch_tracker(args.url, args.out, max_bytes=args.max_bytes, timeout=args.timeout)
    except OrchestrationError as error:
        sys.stderr.write(f"error [{error.code}]: {error.diagnostics()}\n")
        return ExitCode.USAGE
    sys.stderr.write(f"{args.out}: {size} bytes from {args.url}\n")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
