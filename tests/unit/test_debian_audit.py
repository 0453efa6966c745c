"""The Debian half of the audit gate on recorded data (tests/fixtures/debian_tracker/README.md).

Each case runs ``mcp-orchestration-audit-gate`` in-process on the image's recorded status.d and
os-release with one tracker file, and asserts the exit status, the finding codes and the rows.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import pytest

from mcp_orchestration.audit import fetch
from mcp_orchestration.audit.debian_gate import classify
from mcp_orchestration.audit.dpkg import load_status_dir
from mcp_orchestration.audit.errors import DpkgStatusMalformedError, OsReleaseError, TrackerUnreachableError
from mcp_orchestration.audit.osrelease import parse_os_release
from mcp_orchestration.audit.tracker import MIN_PACKAGES, Issue, parse_tracker
from mcp_orchestration.core.errors import ExitCode
from tests.conftest import Result
from tests.https_answer import https_answer
from tests.unit.test_audit_gate import EMPTY, FIXTURES, NOW, ROOT, TODAY, exception, row, run_gate

DATA = Path(__file__).resolve().parents[1] / "fixtures" / "debian_tracker"
STATUS = DATA / "status.d"
OS_RELEASE = DATA / "os-release"
RECORDED_PACKAGES = 5  # source packages with a trixie issue in clean.json and the files made from it


def dated(path: Path, when: datetime = NOW) -> Path:
    """Set the file's date as the download does (the server's Last-Modified or Date): the verdict's ``NOW``."""
    stamp = when.timestamp()
    os.utime(path, (stamp, stamp))
    return path


def as_downloaded(recorded: Path, directory: Path) -> Path:
    """A recorded tracker file dated ``NOW``: the gate refuses an old one, and a checkout dates files at random."""
    directory.mkdir(exist_ok=True)
    return dated(Path(shutil.copyfile(recorded, directory / recorded.name)))


class DebianRun(Protocol):
    def __call__(
        self, tracker: str | Path, *extra: str | Path, exceptions: str = ..., status: Path = ..., os_release: Path = ...
    ) -> Result: ...


@pytest.fixture
def debian_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> DebianRun:
    def go(
        tracker: str | Path,
        *extra: str | Path,
        exceptions: str = EMPTY,
        status: Path = STATUS,
        os_release: Path = OS_RELEASE,
    ) -> Result:
        # A file a test writes is dated by the test (dated()): the real clock is no time of the verdict.
        path = as_downloaded(DATA / tracker, tmp_path / "downloaded") if isinstance(tracker, str) else tracker
        argv = ("--debian-status", status, "--debian-tracker", path, "--os-release", os_release, *extra)
        return run_gate(
            *argv, exceptions=exceptions, tracker_min_packages=RECORDED_PACKAGES, tmp_path=tmp_path, capsys=capsys
        )

    return go


def codes(result: Result) -> list[str]:
    return [line.split("]")[0].removeprefix("FAIL [") for line in result.stdout.splitlines() if line.startswith("FAIL")]


# -- the recorded cases ---------------------------------------------------------------------------


def test_clean_tracker_passes_and_lists_what_debian_does_not_fix_as_information(debian_run: DebianRun) -> None:
    result = debian_run("clean.json")
    assert result.status == ExitCode.OK, result.stdout + result.stderr
    assert result.stdout.endswith("verdict: PASS\n")
    assert "(Debian trixie): 7 packages" in result.stdout
    assert "not failing: unimportant" in row(result.stdout, "glibc", "CVE-2099-0004")
    assert "not failing: no DSA (postponed)" in row(result.stdout, "glibc", "CVE-2099-0005")
    assert "not failing: no DSA (ignored)" in row(result.stdout, "zlib", "CVE-2099-0007")
    for clean in ("CVE-2099-0001", "CVE-2099-0002", "CVE-2099-0003", "TEMP-0000000-2A1B3C", "CVE-2099-0006"):
        assert clean not in result.stdout  # fixed at or before the installed version, never affected, not installed
    assert "CVE-2099-0008" not in result.stdout  # 1:1.3.dfsg... is newer than 1.3.1-1: the epoch decides


def test_open_issue_with_no_fix_fails_as_unfixed(debian_run: DebianRun) -> None:
    result = debian_run("vulnerable.json")
    assert result.status == ExitCode.FAILURE
    assert codes(result) == ["unfixed"]
    assert "unfixed" in row(result.stdout, "openssl", "CVE-2099-0101")
    assert "undetermined" in row(result.stdout, "glibc", "CVE-2099-0102")
    assert "2 open issues with no fix in Debian trixie" in result.stdout
    assert result.stdout.endswith("verdict: FAIL (1 finding)\n")


def test_issue_fixed_in_a_newer_version_fails_as_fixable_whatever_its_urgency(debian_run: DebianRun) -> None:
    result = debian_run("fixed-newer.json")
    assert result.status == ExitCode.FAILURE
    assert codes(result) == ["fixable"]
    glibc = row(result.stdout, "glibc", "CVE-2099-0201")
    assert "2.41-12+deb13u5" in glibc and "2.41-12+deb13u6" in glibc and glibc.endswith("fixable")
    assert row(result.stdout, "openssl", "CVE-2099-0202").endswith("fixable")  # no-DSA, but the fix exists
    assert "2 vulnerabilities fixed in a newer version" in result.stdout and "rebuild the base" in result.stdout


def test_unreachable_tracker_is_no_verdict_and_the_download_leaves_no_file(
    debian_run: DebianRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "debian-tracker.json"
    assert fetch.main([str(out), "--url", f"https://127.0.0.1:{port}/tracker/data/json", "--timeout", "5"]) == 2
    assert "error [tracker_unreachable]" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob("*.partial"))
    result = debian_run(out, FIXTURES / "clean.json")  # the pip-audit report is clean: the verdict is still none
    assert result.status == ExitCode.USAGE
    assert "error [tracker_unreadable]" in result.stderr
    assert "no known vulnerability" in result.stdout  # the pip-audit half is judged and shown all the same
    assert result.stdout.endswith("verdict: NONE [tracker_unreadable] (exit status 2, treat as FAIL)\n")


@pytest.mark.parametrize(
    ("tracker", "code"),
    [
        ("truncated.json", "tracker_malformed"),
        ("unknown-status.json", "tracker_malformed"),
        ("other-release.json", "tracker_release_missing"),
    ],
)
def test_a_tracker_that_cannot_support_a_verdict_is_no_verdict(debian_run: DebianRun, tracker: str, code: str) -> None:
    result = debian_run(tracker)
    assert result.status == ExitCode.USAGE
    assert result.stderr.startswith(f"error [{code}]")
    assert "PASS" not in result.stdout


def test_a_fragment_of_the_tracker_that_mentions_the_release_is_no_verdict(
    debian_run: DebianRun, tmp_path: Path
) -> None:
    """Review finding: only the release was checked, so a fragment that mentioned it passed as a clean image."""
    fragment = tmp_path / "fragment.json"
    fragment.write_text(json.dumps({"glibc": json.loads((DATA / "clean.json").read_text())["glibc"]}))
    result = debian_run(dated(fragment))
    assert result.status == ExitCode.USAGE
    assert result.stderr.startswith("error [tracker_incomplete]")
    assert f"issues of 1 source package in Debian trixie, fewer than the {RECORDED_PACKAGES}" in result.stderr


def test_the_gate_expects_a_whole_trackers_worth_of_packages_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tracker = as_downloaded(DATA / "clean.json", tmp_path / "downloaded")
    argv = ("--debian-status", STATUS, "--debian-tracker", tracker, "--os-release", OS_RELEASE)
    result = run_gate(*argv, tmp_path=tmp_path, capsys=capsys)  # as make audit runs it
    assert result.status == ExitCode.USAGE
    assert f"fewer than the {MIN_PACKAGES}" in result.stderr and result.stderr.startswith("error [tracker_incomplete]")


@pytest.mark.parametrize(
    ("age", "status"),
    [
        (timedelta(hours=47, minutes=59), ExitCode.OK),
        (timedelta(hours=60), ExitCode.USAGE),  # dated two days before by the calendar: was judged current
        (timedelta(days=2, hours=23, minutes=59), ExitCode.USAGE),
    ],
    ids=["47h59m", "60h", "2d23h59m"],
)
def test_a_tracker_file_older_than_48_hours_is_no_verdict(
    debian_run: DebianRun, tmp_path: Path, age: timedelta, status: ExitCode
) -> None:
    """An old download would judge the image against issues Debian has since fixed, found or reopened.

    Review finding: whole days were compared, so a file almost three days old passed.
    """
    old = tmp_path / "old.json"
    shutil.copyfile(DATA / "clean.json", old)
    result = debian_run(dated(old, NOW - age))
    assert result.status == status, result.stderr
    if status == ExitCode.USAGE:
        assert result.stderr.startswith("error [tracker_stale]")
        assert (
            f"dated {NOW - age:%Y-%m-%dT%H:%M:%SZ}, more than 48 hours before the verdict (2026-12-01T12:00:00Z)"
            in (result.stderr)
        )


@pytest.mark.parametrize(
    ("ahead", "status"),
    [
        (timedelta(minutes=59), ExitCode.OK),  # a server's clock a little ahead of this one's
        (timedelta(hours=2), ExitCode.USAGE),
        (datetime(2100, 1, 1, tzinfo=UTC) - NOW, ExitCode.USAGE),  # would never go stale
    ],
    ids=["59m", "2h", "2100"],
)
def test_a_tracker_file_dated_after_the_verdict_is_no_verdict(
    debian_run: DebianRun, tmp_path: Path, ahead: timedelta, status: ExitCode
) -> None:
    """Review finding: only an old date was refused, so a file dated 2100 passed every day until then."""
    ahead_of_time = tmp_path / "ahead.json"
    shutil.copyfile(DATA / "clean.json", ahead_of_time)
    result = debian_run(dated(ahead_of_time, NOW + ahead))
    assert result.status == status, result.stderr
    if status == ExitCode.USAGE:
        assert result.stderr.startswith(
            f"error [tracker_future]: {ahead_of_time} is dated {NOW + ahead:%Y-%m-%dT%H:%M:%SZ}"
        )


def test_an_empty_object_is_not_a_clean_tracker(debian_run: DebianRun, tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    assert debian_run(dated(empty)).stderr.startswith("error [tracker_malformed]")


def test_a_status_dir_without_packages_is_no_verdict(debian_run: DebianRun, tmp_path: Path) -> None:
    status = tmp_path / "status.d"
    status.mkdir()
    (status / "libc6.md5sums").write_text((STATUS / "libc6.md5sums").read_text())
    result = debian_run("vulnerable.json", status=status)
    assert result.status == ExitCode.USAGE
    assert result.stderr.startswith("error [dpkg_status_empty]")
    missing = debian_run("vulnerable.json", status=tmp_path / "nowhere")
    assert missing.status == ExitCode.USAGE and missing.stderr.startswith("error [dpkg_status_unreadable]")


def test_an_os_release_that_is_not_debian_is_no_verdict(debian_run: DebianRun, tmp_path: Path) -> None:
    alpine = tmp_path / "os-release"
    alpine.write_text('NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.22.0\n')
    result = debian_run("clean.json", os_release=alpine)
    assert result.status == ExitCode.USAGE and result.stderr.startswith("error [os_release_invalid]")


# -- exceptions -----------------------------------------------------------------------------------


def test_an_exception_names_the_source_package_and_the_issue(debian_run: DebianRun) -> None:
    both = exception("CVE-2099-0101", "openssl", ecosystem="debian") + exception(
        "CVE-2099-0102", "glibc", ecosystem="debian"
    )
    result = debian_run("vulnerable.json", exceptions=both)
    assert result.status == ExitCode.OK, result.stdout
    assert f"excepted until {TODAY + timedelta(days=30)}" in row(result.stdout, "openssl", "CVE-2099-0101")
    assert "matched no vulnerability" not in result.stdout
    binary = exception("CVE-2099-0101", "libssl3t64", ecosystem="debian")
    binary += exception("CVE-2099-0102", "glibc", ecosystem="debian")
    assert debian_run("vulnerable.json", exceptions=binary).status == ExitCode.FAILURE  # not the binary's name


def test_an_expired_exception_covers_nothing_and_fails(debian_run: DebianRun) -> None:
    expired = exception("CVE-2099-0201", "glibc", expires=TODAY - timedelta(days=1), ecosystem="debian")
    expired += exception("CVE-2099-0202", "openssl", ecosystem="debian", covers_fixable=True)
    result = debian_run("fixed-newer.json", exceptions=expired)
    assert result.status == ExitCode.FAILURE
    assert codes(result) == ["exception_expired", "fixable"]
    assert row(result.stdout, "glibc", "CVE-2099-0201").endswith("fixable")


def test_an_exception_for_an_unfixed_issue_lapses_once_debian_ships_a_fix(
    debian_run: DebianRun, tmp_path: Path
) -> None:
    """Review finding: an exception granted while Debian had no fix kept hiding the issue once the fix was out."""
    both = exception("CVE-2099-0101", "openssl", ecosystem="debian")
    both += exception("CVE-2099-0102", "glibc", ecosystem="debian")
    assert debian_run("vulnerable.json", exceptions=both).status == ExitCode.OK
    document = json.loads((DATA / "vulnerable.json").read_text())
    document["openssl"]["CVE-2099-0101"]["releases"]["trixie"] |= {"status": "resolved", "fixed_version": "3.5.9-1"}
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps(document))
    dated(fixed)
    result = debian_run(fixed, exceptions=both)
    assert result.status == ExitCode.FAILURE and codes(result) == ["fixable"]
    assert row(result.stdout, "openssl", "CVE-2099-0101").endswith("fixable (excepted only while unfixed)")
    assert "Exceptions granted while Debian had no fix no longer apply to openssl CVE-2099-0101" in result.stdout
    assert "matched no vulnerability" not in result.stdout  # it names the issue: "remove it" would be wrong
    kept = both.replace('ecosystem = "debian"\n', 'ecosystem = "debian"\ncovers_fixable = true\n', 1)
    assert debian_run(fixed, exceptions=kept).status == ExitCode.OK


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (exception("CVE-2099-0101", "openssl", ecosystem="debian", covers_fixable="yes"), "must be true or false"),
        (exception("CVE-2099-0101", "openssl", covers_fixable=True), "is for Debian issues only"),
    ],
)
def test_covers_fixable_is_a_boolean_of_debian_exceptions(debian_run: DebianRun, entry: str, problem: str) -> None:
    result = debian_run("vulnerable.json", exceptions=entry)
    assert "FAIL [exception_invalid]" in result.stdout and f"`covers_fixable` {problem}" in result.stdout


def test_pip_audit_and_debian_share_one_verdict(debian_run: DebianRun) -> None:
    both = debian_run("vulnerable.json", FIXTURES / "clean.json")
    assert both.status == ExitCode.FAILURE and codes(both) == ["unfixed"]
    skipped = debian_run("clean.json", FIXTURES / "skipped.json")  # pip-audit could look nothing up
    assert skipped.status == ExitCode.FAILURE and codes(skipped) == ["not_audited"]
    broken = debian_run("vulnerable.json", FIXTURES / "truncated.json")
    assert broken.status == ExitCode.USAGE and broken.stderr.startswith("error [report_malformed]")


def test_the_debian_options_go_together(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        run_gate("--debian-status", STATUS, tmp_path=tmp_path, capsys=capsys)
    assert exited.value.code == ExitCode.USAGE
    assert "go together" in capsys.readouterr().err


# -- the pieces -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("installed", "fixed", "expected"),
    [
        ("2.41-12+deb13u5", "2.41-12+deb13u6", "fixable"),
        ("2.41-12+deb13u6", "2.41-12+deb13u6", "clean"),
        ("3.5.9-1~deb13u1", "3.5.9-1", "fixable"),  # ~ sorts before anything, the end of the string included
        ("1:1.3.1-1", "1.4-1", "clean"),  # the epoch comes first
        ("1.0-1", "0", "clean"),  # never affected
    ],
)
def test_fixed_versions_compare_in_debian_order(installed: str, fixed: str, expected: str) -> None:
    assert classify(Issue("CVE-2099-1", "resolved", fixed, "medium", None), installed) == expected


def test_without_a_fix_only_debians_own_rating_keeps_an_issue_from_failing() -> None:
    assert classify(Issue("CVE-2099-1", "open", None, "not yet assigned", None), "1.0-1") == "unfixed"
    assert classify(Issue("CVE-2099-1", "undetermined", None, "", None), "1.0-1") == "unfixed"
    assert classify(Issue("CVE-2099-1", "open", None, "unimportant", None), "1.0-1") == "information"
    assert classify(Issue("CVE-2099-1", "open", None, "low", ""), "1.0-1") == "information"  # nodsa, no reason


def test_status_dir_gives_source_packages_and_versions() -> None:
    packages = {package.name: package for package in load_status_dir(STATUS)}
    assert sorted(packages) == ["base-files", "libc-bin", "libc6", "libcom-err2", "libssl3t64", "tzdata", "zlib1g"]
    assert (packages["libcom-err2"].source, packages["libcom-err2"].source_version) == ("e2fsprogs", "1.47.2-3")
    assert packages["libcom-err2"].version == "1.47.2-3+b12"
    assert (packages["libc6"].source, packages["libc6"].source_version) == ("glibc", "2.41-12+deb13u5")
    assert (packages["tzdata"].source, packages["tzdata"].architecture) == ("tzdata", "all")
    assert all(package.sha256 is None for package in packages.values())


def test_a_malformed_stanza_stops_the_reader(tmp_path: Path) -> None:
    (tmp_path / "libc6").write_text("Package: libc6\nArchitecture: amd64\n")
    with pytest.raises(DpkgStatusMalformedError, match="no `Version:`"):
        load_status_dir(tmp_path)
    (tmp_path / "libc6").write_text("Package: libc6\nVersion: 1\nArchitecture: amd64\nSHA256: abc\n")
    with pytest.raises(DpkgStatusMalformedError, match="SHA256"):
        load_status_dir(tmp_path)


def test_os_release_needs_debian_with_a_version_and_a_codename() -> None:
    release = parse_os_release(OS_RELEASE.read_text(), "os-release")
    assert (release.id, release.version_id, release.codename) == ("debian", "13", "trixie")
    with pytest.raises(OsReleaseError, match="VERSION_CODENAME"):
        parse_os_release('ID=debian\nVERSION_ID="13"\n', "os-release")


def test_tracker_keeps_only_the_release_asked_for() -> None:
    tracker = parse_tracker((DATA / "clean.json").read_bytes(), "clean.json", "trixie", min_packages=RECORDED_PACKAGES)
    assert sorted(tracker.issues) == ["curl", "e2fsprogs", "glibc", "openssl", "zlib"]
    assert {issue.id: issue.nodsa_reason for issue in tracker.issues["glibc"]}["CVE-2099-0005"] == "postponed"


def test_the_download_is_https_only_and_bounded(tmp_path: Path) -> None:
    with pytest.raises(TrackerUnreachableError, match="https:// only"):
        fetch.fetch_tracker("http://security-tracker.debian.org/tracker/data/json", tmp_path / "t.json")
    with pytest.raises(TrackerUnreachableError, match="larger than 10 bytes"):
        fetch.copy_bounded(io.BytesIO(b"x" * 11), io.BytesIO(), 10)
    assert fetch.copy_bounded(io.BytesIO(b"x" * 10), io.BytesIO(), 10) == 10


def fetch_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], head: bytes, body: bytes
) -> tuple[int, str, Path]:
    """``fetch.main``'s status and stderr for one HTTPS answer (``head``: header lines), and where it saves it."""
    out = tmp_path / "debian-tracker.json"
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + head + b"\r\n\r\n" + body
    with https_answer(tmp_path, answer) as (url, cert):
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        status = fetch.main([str(out), "--url", url, "--timeout", "10"])
    return status, capsys.readouterr().err, out


@pytest.mark.parametrize(
    "option",
    [
        ("--max-bytes", "-1"),
        ("--max-bytes", "0"),
        ("--timeout", "-5"),
        ("--timeout", "0"),
        ("--timeout", "nan"),
        ("--timeout", "inf"),  # review finding: these three stopped the download with an OverflowError traceback
        ("--timeout", "1e400"),
        ("--timeout", "1e10"),
    ],
)
def test_the_download_bounds_must_be_positive_and_finite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: tuple[str, str]
) -> None:
    """A bound of zero or less, or a timeout past a day, is a typo, not a bound: a usage error before any fetch."""
    with socket.socket() as probe:  # a closed port: without the check, the download is tried and fails
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SystemExit) as exited:
        fetch.main([str(tmp_path / "t.json"), "--url", f"https://127.0.0.1:{port}/", *option])
    assert exited.value.code == ExitCode.USAGE
    err = capsys.readouterr().err
    assert f"argument {option[0]}: must be a" in err and "above 0" in err and f", not {option[1]}\n" in err


LAST_MODIFIED = b"Last-Modified: Mon, 30 Nov 2026 21:05:00 GMT"
DATE = b"Date: Tue, 01 Dec 2026 08:00:00 GMT"


@pytest.mark.parametrize(
    ("dates", "stamp"),
    [
        ((LAST_MODIFIED, DATE), datetime(2026, 11, 30, 21, 5, tzinfo=UTC)),  # when Debian's data last changed
        ((DATE,), datetime(2026, 12, 1, 8, tzinfo=UTC)),  # else when the server sent it
    ],
    ids=["last-modified", "date"],
)
def test_the_download_saves_a_whole_answer_dated_as_the_server_dates_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    dates: tuple[bytes, ...],
    stamp: datetime,
) -> None:
    body = (DATA / "clean.json").read_bytes()
    head = b"\r\n".join([*dates, b"Content-Length: %d" % len(body)])
    status, err, out = fetch_answer(tmp_path, monkeypatch, capsys, head, body)
    assert status == ExitCode.OK, err
    assert out.read_bytes() == body and not list(tmp_path.glob("*.partial"))
    assert out.stat().st_mtime == stamp.timestamp()


@pytest.mark.parametrize(
    "stamp", [b"Mon, 30 Nov 2026 21:05:00 -0000", b"Mon, 30 Nov 2026 21:05:00"], ids=["-0000", "none"]
)
def test_a_server_date_without_a_zone_is_utc_not_local_time(tmp_path: Path, stamp: bytes) -> None:
    """Review finding: email.utils gives such a date without a zone, and it was read as this machine's local time.

    The download runs in a process whose local time is UTC+14 (a POSIX TZ: no time zone database needed).
    """
    body = (DATA / "clean.json").read_bytes()
    out = tmp_path / "debian-tracker.json"
    answer = b"HTTP/1.1 200 OK\r\nLast-Modified: " + stamp + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    with https_answer(tmp_path, answer) as (url, cert):
        env = {**os.environ, "SSL_CERT_FILE": str(cert), "TZ": "KIR-14", "PYTHONPATH": str(ROOT / "src")}
        download = [sys.executable, "-m", "mcp_orchestration.audit.fetch", str(out), "--url", url, "--timeout", "10"]
        result = subprocess.run(download, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == ExitCode.OK, result.stderr
    assert out.stat().st_mtime == datetime(2026, 11, 30, 21, 5, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("head", "body", "reason"),
    [
        (b"Content-Length: 1000", b"{" * 20, "The answer ended after 20 of the 1000 bytes it announced"),
        (b"Transfer-Encoding: chunked", b"3e8\r\n" + b"{" * 20, "IncompleteRead"),
    ],
    ids=["content-length", "chunked"],
)
def test_a_download_cut_short_leaves_no_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    head: bytes,
    body: bytes,
    reason: str,
) -> None:
    """Review finding: http.client returns a body cut before its Content-Length as if whole, and it was saved."""
    status, err, out = fetch_answer(tmp_path, monkeypatch, capsys, head, body)
    assert status == ExitCode.USAGE
    assert err.startswith("error [tracker_unreachable]") and reason in err, err
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("marker", [{"nodsa": None}, {"nodsa": ""}, {"nodsa_reason": None}, {"nodsa_reason": ""}])
def test_an_empty_or_null_nodsa_field_does_not_keep_an_issue_from_failing(marker: dict[str, str | None]) -> None:
    """Only Debian's stated decision (a no-DSA note or reason) turns an open issue into information."""
    entry = {"status": "open", "urgency": "high", **marker}
    text = json.dumps({"glibc": {"CVE-2099-9": {"releases": {"trixie": entry}}}})
    (issue,) = parse_tracker(text, "inline", "trixie", min_packages=1).issues["glibc"]
    assert issue.nodsa_reason is None
    assert classify(issue, "2.41-12") == "unfixed"


def test_an_exception_covers_only_its_own_ecosystem(debian_run: DebianRun) -> None:
    """A PyPI project and a Debian source package may share a name and a CVE: each exception names which one."""
    pypi_named = exception("CVE-2099-0101", "openssl") + exception("CVE-2099-0102", "glibc")
    result = debian_run("vulnerable.json", exceptions=pypi_named)
    assert result.status == ExitCode.FAILURE
    assert "matched no vulnerability" in result.stdout


def test_an_exception_without_an_ecosystem_is_invalid(debian_run: DebianRun) -> None:
    entry = exception("CVE-2099-0101", "openssl", ecosystem="debian").replace('ecosystem = "debian"\n', "")
    result = debian_run("vulnerable.json", exceptions=entry)
    assert "`ecosystem` must be one of 'pypi', 'debian'." in result.stdout


def test_a_debian_exception_names_its_source_package_as_debian_spells_it(debian_run: DebianRun, tmp_path: Path) -> None:
    """Review finding: Debian names went through PEP 503, so an exception for python3.13 covered python3-13."""
    status = tmp_path / "status.d"
    shutil.copytree(STATUS, status)
    (status / "python3-13").write_text("Package: python3-13\nVersion: 1.0-1\nArchitecture: amd64\n")
    document = json.loads((DATA / "clean.json").read_text())
    document["python3-13"] = {"CVE-2099-0301": {"releases": {"trixie": {"status": "open", "urgency": "medium"}}}}
    tracker = tmp_path / "tracker.json"
    tracker.write_text(json.dumps(document))
    dated(tracker)
    other = exception("CVE-2099-0301", "python3.13", ecosystem="debian")  # another source package of trixie
    result = debian_run(tracker, status=status, exceptions=other)
    assert result.status == ExitCode.FAILURE
    assert row(result.stdout, "python3-13", "CVE-2099-0301").endswith("unfixed")
    assert "exception CVE-2099-0301 for debian python3.13 matched no vulnerability" in result.stdout
    same = exception("CVE-2099-0301", "python3-13", ecosystem="debian")
    assert debian_run(tracker, status=status, exceptions=same).status == ExitCode.OK


def test_a_debian_exception_for_a_name_debian_cannot_have_is_invalid(debian_run: DebianRun) -> None:
    both = exception("CVE-2099-0101", "OpenSSL", ecosystem="debian") + exception(
        "CVE-2099-0102", "glibc", ecosystem="debian"
    )
    result = debian_run("vulnerable.json", exceptions=both)
    assert result.status == ExitCode.FAILURE
    assert "(CVE-2099-0101): `package` OpenSSL is not a Debian package name" in result.stdout
    assert row(result.stdout, "openssl", "CVE-2099-0101").endswith("unfixed")
