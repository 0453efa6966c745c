"""Debian's security data: the security tracker's JSON (``https://security-tracker.debian.org/tracker/data/json``).

Its shape, as the tracker publishes it::

    {"glibc": {                                     # a *source* package
        "CVE-2025-0001": {                          # an issue: CVE id, or TEMP-... for one without
            "description": "...", "scope": "local", "debianbug": 1234,
            "releases": {
                "trixie": {"status": "resolved",    # resolved | open | undetermined
                           "fixed_version": "2.41-12",   # "0": this release was never affected
                           "urgency": "medium",     # unimportant | low | medium | high | not yet assigned | ...
                           "nodsa": "Minor issue", "nodsa_reason": "postponed",   # optional: no DSA planned
                           "repositories": {"trixie": "2.41-12"}}}}}}

Only packages with issues are listed, so a package that is absent is clean;
that makes a wrong, partial or old file dangerous, since it would look clean.
Hence every shape the policy relies on is checked here, an unknown status is
an error (Debian changed the format: no verdict), and a file is refused when
its issues never mention the image's release (``tracker_release_missing``: a
tracker for another distribution or an old one), when it lists issues of
fewer than ``MIN_PACKAGES`` source packages in the release
(``tracker_incomplete``: a fragment; the whole tracker lists thousands for a
supported release), or when it is dated more than ``MAX_AGE`` (48 hours)
before the verdict (``tracker_stale``), or more than ``MAX_SKEW`` after it
(``tracker_future``: a wrong clock here or on the server, or a date set by
hand; such a file would never go stale). The file carries no date of its own,
so its modification time is the date: the download sets it to the server's
``Last-Modified``, else its ``Date`` (``fetch.py``), as ``curl -R`` would.
That catches an old download judged again or a mirror that stopped updating;
a file copied without its date looks fresh, as any input the operator
chooses is trusted to be the one they mean.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, cast

from mcp_orchestration.audit.errors import (
    TrackerFutureError,
    TrackerIncompleteError,
    TrackerMalformedError,
    TrackerReleaseMissingError,
    TrackerStaleError,
    TrackerUnreadableError,
)

Status = Literal["resolved", "open", "undetermined"]
_STATUSES: frozenset[str] = frozenset({"resolved", "open", "undetermined"})
MIN_PACKAGES = 1000  # source packages with an issue in the release: a whole tracker lists thousands, a fragment few
MAX_AGE = timedelta(hours=48)  # Debian updates the tracker many times a day
MAX_SKEW = timedelta(hours=1)  # how far ahead of this machine's clock a server's may be


@dataclass(frozen=True)
class Issue:
    """What the tracker says about one issue of one source package in the image's release."""

    id: str
    status: Status
    fixed_version: str | None  # None or "" in the file: no fix in this release; "0": never affected
    urgency: str
    nodsa_reason: str | None  # "postponed", "ignored", or "" (no DSA, no reason given); None: a DSA is expected


@dataclass(frozen=True)
class Tracker:
    """The issues of every source package that has one in ``release``, by source package name."""

    release: str
    issues: Mapping[str, tuple[Issue, ...]]


def load_tracker(path: Path, release: str, now: datetime, *, min_packages: int = MIN_PACKAGES) -> Tracker:
    """Read and check the file, keeping what concerns ``release`` (a codename such as trixie); it must be current.

    ``now`` is the verdict's time, timezone-aware.
    """
    try:
        dated = path.stat().st_mtime
        text = path.read_bytes()
    except OSError as error:
        raise TrackerUnreadableError(f"Cannot read {path}: {error.strerror or type(error).__name__}.") from None
    _require_current(path, dated, now)
    return parse_tracker(text, str(path), release, min_packages=min_packages)


def _require_current(path: Path, dated: float, now: datetime) -> None:
    """Refuse a file dated more than ``MAX_AGE`` before ``now``, or more than ``MAX_SKEW`` after it."""
    age = now.timestamp() - dated  # seconds, as floats: no datetime overflows on a date of year 10000
    if age > MAX_AGE.total_seconds():
        raise TrackerStaleError(
            f"{path} is dated {_utc(dated)}, more than {MAX_AGE // timedelta(hours=1)} hours before the verdict "
            f"({_utc(now.timestamp())}): Debian has fixed, found or reopened issues since."
        )
    if -age > MAX_SKEW.total_seconds():
        raise TrackerFutureError(
            f"{path} is dated {_utc(dated)}, later than the verdict ({_utc(now.timestamp())}): "
            "this machine's clock, the server's, or the file's date is wrong, and such a file would never go stale."
        )


def _utc(timestamp: float) -> str:
    """A file's date as people read it, or as seconds when no datetime can hold it."""
    try:
        return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        return f"{timestamp:.0f} seconds after 1970"


def parse_tracker(text: bytes | str, source: str, release: str, *, min_packages: int = MIN_PACKAGES) -> Tracker:
    """Parse the tracker's JSON; ``source`` names it in messages, ``min_packages`` is the least a whole one lists."""
    try:
        document = json.loads(text)
    except ValueError as error:  # UnicodeDecodeError included
        raise TrackerMalformedError(f"{source} is not JSON ({error}).") from None
    if not isinstance(document, dict) or not document:
        raise TrackerMalformedError(f"{source} is not an object of source packages.")
    issues: dict[str, tuple[Issue, ...]] = {}
    seen: set[str] = set()
    for package, entries in document.items():
        if not isinstance(entries, dict):
            raise TrackerMalformedError(f"{source}: {package} is not an object of issues.")
        found: list[Issue] = []
        for issue_id, issue in entries.items():
            releases = _releases(issue, f"{source}: {package} {issue_id}")
            seen.update(releases)
            if release in releases:
                found.append(_issue(issue_id, releases[release], f"{source}: {package} {issue_id} ({release})"))
        if found:
            issues[package] = tuple(found)
    if release not in seen:
        others = ", ".join(sorted(seen)[:5]) or "none"
        raise TrackerReleaseMissingError(
            f"{source} mentions no issue of Debian {release} (releases it mentions: {others}): "
            "it is not the tracker data for this image."
        )
    if len(issues) < min_packages:
        count = f"{len(issues)} source package{'' if len(issues) == 1 else 's'}"
        raise TrackerIncompleteError(
            f"{source} lists issues of {count} in Debian {release}, fewer than the {min_packages} "
            "of a whole tracker: it is a fragment, and what it leaves out would look clean."
        )
    return Tracker(release, issues)


def _releases(issue: object, where: str) -> dict[str, object]:
    if not isinstance(issue, dict):
        raise TrackerMalformedError(f"{where} is not an object.")
    releases = issue.get("releases", {})
    if not isinstance(releases, dict):
        raise TrackerMalformedError(f"{where}: `releases` is not an object.")
    return releases


def _issue(issue_id: str, entry: object, where: str) -> Issue:
    if not isinstance(entry, dict):
        raise TrackerMalformedError(f"{where} is not an object.")
    status = entry.get("status")
    if status not in _STATUSES:
        raise TrackerMalformedError(f"{where}: unknown status {status!r} (want one of {', '.join(sorted(_STATUSES))}).")
    texts = {key: entry.get(key) for key in ("fixed_version", "urgency", "nodsa", "nodsa_reason")}
    for key, value in texts.items():
        if value is not None and not isinstance(value, str):
            raise TrackerMalformedError(f"{where}: `{key}` is not a string.")
    fixed = cast("str | None", texts["fixed_version"]) or None
    if status == "resolved" and fixed is None:
        raise TrackerMalformedError(f"{where}: resolved, but no `fixed_version`.")
    nodsa = bool(texts["nodsa"]) or bool(texts["nodsa_reason"])  # a null or empty field decides nothing
    reason = cast("str | None", texts["nodsa_reason"])
    return Issue(
        issue_id,
        cast("Status", status),
        fixed,
        cast("str | None", texts["urgency"]) or "",
        (reason or "") if nodsa else None,
    )
