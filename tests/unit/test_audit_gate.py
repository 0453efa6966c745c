"""The audit gate against recorded pip-audit reports (tests/fixtures/pip_audit/README.md), locks and exceptions.

"Today" is fixed, so an exception's expiry means the same on every run. The
reports were recorded from the lock copied beside them, not from
build/requirements.lock, so that a lock update does not invalidate them.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import tomllib
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Protocol

import pytest

from mcp_orchestration.audit import cli, gate
from mcp_orchestration.audit.errors import LockMalformedError
from mcp_orchestration.audit.exceptions import load_exceptions, parse_exceptions
from mcp_orchestration.audit.lock import load_lock, parse_lock
from mcp_orchestration.audit.tracker import MIN_PACKAGES
from mcp_orchestration.core.errors import ExitCode
from tests.conftest import Result

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "pip_audit"
LOCK = FIXTURES / "requirements.lock"  # what clean.json, skipped.json and skipped-image.json audited
VULNERABLE = FIXTURES / "vulnerable.json"
VULNERABLE_LOCK = FIXTURES / "vulnerable.lock"  # the five pins vulnerable.json audited
NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)  # the verdict's time
TODAY = NOW.date()
IN_30_DAYS = TODAY + timedelta(days=30)
EMPTY = "exceptions = []\n"


def run_gate(
    *argv: str | Path,
    exceptions: str = EMPTY,
    lock: Path = LOCK,
    tracker_min_packages: int = MIN_PACKAGES,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> Result:
    exceptions_file = tmp_path / "audit-exceptions.toml"
    exceptions_file.write_text(exceptions, encoding="utf-8")
    argv = ("--exceptions", exceptions_file, "--lock", lock, *argv)
    status = cli.main(list(map(str, argv)), now=NOW, tracker_min_packages=tracker_min_packages)
    out, err = capsys.readouterr()
    return Result(status, out, err)


def exception(vuln_id: str, package: str, expires: date = IN_30_DAYS, ecosystem: str = "pypi", **extra: object) -> str:
    fields: dict[str, object] = {
        "id": vuln_id,
        "ecosystem": ecosystem,
        "package": package,
        "reason": "not reachable from the stdio server",
        "approved_by": "A. Reviewer",
        **extra,
    }
    lines = [f"{key} = {json.dumps(value)}" for key, value in fields.items()]
    return "\n".join(["[[exceptions]]", *lines, f"expires = {expires.isoformat()}", ""])


def row(out: str, package: str, vuln_id: str) -> str:
    matches = [line for line in out.splitlines() if line.split()[:1] == [package] and vuln_id in line.split()]
    assert len(matches) == 1, out
    return matches[0]


def write_report(
    path: Path,
    *,
    keep: Collection[str] | None = None,
    versions: Mapping[str, str] | None = None,
    names: Mapping[str, str] | None = None,
    extra: Sequence[dict[str, object]] = (),
) -> Path:
    """clean.json altered: only ``keep`` packages, other ``versions`` or ``names``, ``extra`` entries appended."""
    report = json.loads((FIXTURES / "clean.json").read_text())
    dependencies = [dep for dep in report["dependencies"] if keep is None or dep["name"] in keep]
    for dep in dependencies:
        dep["version"] = (versions or {}).get(dep["name"], dep["version"])
        dep["name"] = (names or {}).get(dep["name"], dep["name"])
    report["dependencies"] = [*dependencies, *extra]
    path.write_text(json.dumps(report))
    return path


class GateRun(Protocol):
    """The ``gate_run`` fixture: the audit gate in-process on report files."""

    def __call__(self, *argv: str | Path, exceptions: str = ..., lock: Path = ...) -> Result: ...


@pytest.fixture
def gate_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> GateRun:
    def go(*argv: str | Path, exceptions: str = EMPTY, lock: Path = LOCK) -> Result:
        return run_gate(*argv, exceptions=exceptions, lock=lock, tmp_path=tmp_path, capsys=capsys)

    return go


# -- reports ------------------------------------------------------------------------------------


def test_clean_report_of_the_lock_passes(gate_run: GateRun) -> None:
    result = gate_run(FIXTURES / "clean.json")
    assert result.status == ExitCode.OK
    assert "clean.json: 37 packages\n  no known vulnerability\nverdict: PASS\n" in result.stdout
    assert result.stderr == ""


def test_vulnerable_report_fails_and_tables_every_vulnerability(gate_run: GateRun) -> None:
    result = gate_run(VULNERABLE, lock=VULNERABLE_LOCK)
    assert result.status == ExitCode.FAILURE
    assert row(result.stdout, "idna", "PYSEC-2024-60").split() == ["idna", "3.6", "PYSEC-2024-60", "3.7", "vulnerable"]
    assert row(result.stdout, "h11", "CVE-2025-43859").split()[-2:] == ["0.16.0", "vulnerable"]
    for vuln_id in ("CVE-2024-47874", "CVE-2025-54121", "CVE-2025-62727"):
        assert row(result.stdout, "starlette", vuln_id).endswith("vulnerable")
    assert "anyio" not in result.stdout and "click" not in result.stdout
    assert "FAIL [vulnerable]" in result.stdout
    assert "5 known vulnerabilities not covered by an exception" in result.stdout
    assert result.stdout.endswith("verdict: FAIL (1 finding)\n")


def test_exceptions_by_id_or_alias_let_every_vulnerability_pass(gate_run: GateRun) -> None:
    # pip-audit reports CVE ids here; reviewers often write the GHSA one: both must match.
    exceptions = "".join(
        exception(vuln_id, package)
        for vuln_id, package in [
            ("PYSEC-2024-60", "idna"),
            ("GHSA-vqfr-h8mv-ghfj", "h11"),
            ("ghsa-f96h-pmfr-66vw", "Starlette"),
            ("CVE-2025-54121", "starlette"),
            ("GHSA-0000-0000-0000", "starlette"),
        ]
    ) + exception("GHSA-7f5h-v6xp-fcq8", "starlette")
    result = gate_run(VULNERABLE, exceptions=exceptions, lock=VULNERABLE_LOCK)
    assert result.status == ExitCode.OK, result.stdout
    assert row(result.stdout, "h11", "CVE-2025-43859").endswith(f"excepted until {IN_30_DAYS}")
    assert row(result.stdout, "starlette", "CVE-2025-62727").endswith(f"excepted until {IN_30_DAYS}")
    assert (
        "note: exception GHSA-0000-0000-0000 for pypi starlette matched no vulnerability: remove it." in result.stdout
    )
    assert result.stdout.endswith("verdict: PASS\n")


def test_an_exception_covers_only_its_own_vulnerability_and_package(gate_run: GateRun) -> None:
    exceptions = exception("GHSA-vqfr-h8mv-ghfj", "h11") + exception("CVE-2024-3651", "starlette")
    result = gate_run(VULNERABLE, exceptions=exceptions, lock=VULNERABLE_LOCK)
    assert result.status == ExitCode.FAILURE
    assert row(result.stdout, "h11", "CVE-2025-43859").endswith(f"excepted until {IN_30_DAYS}")
    assert row(result.stdout, "idna", "PYSEC-2024-60").endswith("vulnerable")
    assert "4 known vulnerabilities not covered" in result.stdout


def test_an_exception_cannot_widen_what_it_covers_with_ids_of_its_own(gate_run: GateRun) -> None:
    """Review finding: the file's own `aliases` were matched as ids, so one exception let three advisories pass."""
    widened = exception("CVE-2024-47874", "starlette", aliases=["CVE-2025-54121", "CVE-2025-62727"])
    others = exception("PYSEC-2024-60", "idna") + exception("CVE-2025-43859", "h11")
    result = gate_run(VULNERABLE, exceptions=widened + others, lock=VULNERABLE_LOCK)
    assert result.status == ExitCode.FAILURE
    for vuln_id in ("CVE-2025-54121", "CVE-2025-62727"):
        assert row(result.stdout, "starlette", vuln_id).endswith("vulnerable")
    assert "FAIL [exception_invalid]" in result.stdout and "`aliases` is no longer accepted" in result.stdout


def test_without_aliases_in_the_report_only_the_reported_id_matches(gate_run: GateRun, tmp_path: Path) -> None:
    # What pip-audit writes with `--aliases off`.
    report = json.loads(VULNERABLE.read_text())
    report["dependencies"] = [dep for dep in report["dependencies"] if dep["name"] == "h11"]
    del report["dependencies"][0]["vulns"][0]["aliases"]
    path, lock = tmp_path / "no-aliases.json", tmp_path / "h11.lock"
    path.write_text(json.dumps(report))
    lock.write_text("h11==0.14.0\n")
    assert gate_run(path, exceptions=exception("GHSA-vqfr-h8mv-ghfj", "h11"), lock=lock).status == ExitCode.FAILURE
    assert gate_run(path, exceptions=exception("CVE-2025-43859", "h11"), lock=lock).status == ExitCode.OK


def test_skipped_report_recorded_without_an_advisory_source_fails(gate_run: GateRun) -> None:
    # pip-audit printed "No known vulnerabilities found" and exited 0 for this report.
    result = gate_run(FIXTURES / "skipped.json")
    assert result.status == ExitCode.FAILURE
    assert "FAIL [not_audited]" in result.stdout
    assert "37 of 37 packages could not be audited" in result.stdout
    assert "Dependency not found on PyPI and could not be audited" in result.stdout
    assert row(result.stdout, "cryptography", "-").split() == ["cryptography", "-", "-", "-", "not", "audited"]


def test_one_skipped_package_among_audited_ones_fails(gate_run: GateRun, tmp_path: Path) -> None:
    report = json.loads((FIXTURES / "clean.json").read_text())
    report["dependencies"][5] = {"name": "cryptography", "skip_reason": "Package has invalid version"}
    path = tmp_path / "one-skipped.json"
    path.write_text(json.dumps(report))
    result = gate_run(path)
    assert result.status == ExitCode.FAILURE
    assert "1 of 37 packages could not be audited (cryptography: Package has invalid version)" in result.stdout


def test_first_party_package_may_be_skipped_but_nothing_else(gate_run: GateRun, tmp_path: Path) -> None:
    image = gate_run("--venv", FIXTURES / "skipped-image.json", "--first-party", "mcp_orchestration")
    assert "37 of 37 packages could not be audited" in image.stdout
    assert row(image.stdout, "mcp-orchestration", "-").endswith("first-party")
    assert "[coverage]" not in image.stdout and "[lock_mismatch]" not in image.stdout  # the venv is the lock + us
    assert "38 of 38 packages" in gate_run("--venv", FIXTURES / "skipped-image.json").stdout

    path = write_report(tmp_path / "image.json", extra=[{"name": "mcp-orchestration", "skip_reason": "not on PyPI"}])
    assert gate_run("--venv", path, "--first-party", "mcp-orchestration").status == ExitCode.OK
    assert gate_run("--venv", path).status == ExitCode.FAILURE


def test_empty_report_fails_as_nothing_audited(gate_run: GateRun) -> None:
    result = gate_run(FIXTURES / "empty.json")
    assert result.status == ExitCode.FAILURE
    assert "FAIL [nothing_audited]" in result.stdout
    assert "FAIL [coverage]" in result.stdout and "37 of the 37 packages" in result.stdout


def test_every_report_is_judged(gate_run: GateRun) -> None:
    result = gate_run(FIXTURES / "clean.json", FIXTURES / "skipped.json")
    assert result.status == ExitCode.FAILURE
    assert "clean.json: 37 packages" in result.stdout and "skipped.json: 37 packages" in result.stdout


# -- coverage: every report lists the lock, exactly ------------------------------------------------


@pytest.mark.parametrize("role", [(), ("--venv",)], ids=["lock report", "venv report"])
def test_a_partial_report_fails_on_coverage(gate_run: GateRun, tmp_path: Path, role: tuple[str, ...]) -> None:
    # One audited package with no vulnerability: PASS before the gate compared reports with the lock.
    result = gate_run(*role, write_report(tmp_path / "partial.json", keep={"idna"}))
    assert result.status == ExitCode.FAILURE
    assert "partial.json: 1 packages\n  no known vulnerability\n" in result.stdout
    assert f"FAIL [coverage] {tmp_path / 'partial.json'}: 36 of the 37 packages of {LOCK} are missing" in result.stdout
    assert "(annotated-types==0.8.0, anyio==4.16.0, attrs==26.1.0, cffi==2.1.1, click==8.5.1 and 31 more)" in (
        result.stdout
    )
    assert result.stdout.endswith("verdict: FAIL (1 finding)\n")


def test_one_missing_package_fails_and_is_named(gate_run: GateRun, tmp_path: Path) -> None:
    result = gate_run(write_report(tmp_path / "r.json", keep=set(load_lock(LOCK).pins) - {"cryptography"}))
    assert result.status == ExitCode.FAILURE
    assert "1 of the 37 packages" in result.stdout and "(cryptography==50.0.2)" in result.stdout


SELF = {"name": "mcp-orchestration", "skip_reason": "Dependency not found on PyPI"}


@pytest.mark.parametrize(
    ("role", "ours"), [((), []), (("--venv",), [SELF])], ids=["lock report", "venv report with the project"]
)
def test_a_package_the_lock_does_not_pin_fails(
    gate_run: GateRun, tmp_path: Path, role: tuple[str, ...], ours: list[dict[str, object]]
) -> None:
    extra: list[dict[str, object]] = [{"name": "requests", "version": "2.32.5", "vulns": []}, *ours]
    result = gate_run(*role, write_report(tmp_path / "extra.json", extra=extra), "--first-party", "mcp-orchestration")
    assert result.status == ExitCode.FAILURE
    assert "FAIL [lock_mismatch]" in result.stdout and "1 package not as" in result.stdout
    assert "(requests 2.32.5: not locked)" in result.stdout
    assert result.stdout.endswith("verdict: FAIL (1 finding)\n")


def test_a_version_the_lock_does_not_pin_fails(gate_run: GateRun, tmp_path: Path) -> None:
    result = gate_run(write_report(tmp_path / "old.json", versions={"idna": "3.6", "h11": "0.14.0"}))
    assert result.status == ExitCode.FAILURE
    assert "FAIL [lock_mismatch]" in result.stdout
    assert (
        "2 packages not as" in result.stdout and "(h11 0.14.0, locked 0.16.0, idna 3.6, locked 3.20)" in result.stdout
    )
    assert "[coverage]" not in result.stdout  # listed, at the wrong version: one finding, not two


def test_names_are_compared_as_pep_503_normalises_them(gate_run: GateRun, tmp_path: Path) -> None:
    names = {"jaraco-classes": "Jaraco.Classes", "typing-extensions": "typing_extensions"}
    lock = tmp_path / "requirements.lock"
    lock.write_text(LOCK.read_text().replace("pydantic-core==", "Pydantic_Core=="))
    assert "Pydantic_Core==" in lock.read_text()
    result = gate_run(write_report(tmp_path / "names.json", names=names), lock=lock)
    assert result.status == ExitCode.OK, result.stdout


def test_a_venv_report_must_list_the_first_party_distribution(gate_run: GateRun) -> None:
    result = gate_run("--venv", FIXTURES / "clean.json", "--first-party", "mcp_orchestration")
    assert result.status == ExitCode.FAILURE
    assert f"1 of the 38 packages of {LOCK} and the first-party mcp-orchestration are missing" in result.stdout
    assert "(mcp-orchestration)" in result.stdout
    # the lock's own report never lists it: there it is expected to be absent
    assert gate_run(FIXTURES / "clean.json", "--first-party", "mcp-orchestration").status == ExitCode.OK


def test_the_first_party_distribution_in_a_lock_report_fails(gate_run: GateRun) -> None:
    result = gate_run(FIXTURES / "skipped-image.json", "--first-party", "mcp-orchestration")
    assert "FAIL [lock_mismatch]" in result.stdout and "(mcp-orchestration (skipped): not locked)" in result.stdout


def test_the_recorded_reports_cover_their_lock(gate_run: GateRun) -> None:
    # A skipped package has no version in the JSON: its name covers the pin (and it is not_audited anyway).
    result = gate_run(FIXTURES / "clean.json", FIXTURES / "skipped.json")
    assert "[coverage]" not in result.stdout and "[lock_mismatch]" not in result.stdout
    pins = load_lock(LOCK).pins
    clean = json.loads((FIXTURES / "clean.json").read_text())["dependencies"]
    assert pins == {dep["name"]: dep["version"] for dep in clean} and len(pins) == 37
    assert dict(load_lock(VULNERABLE_LOCK).pins) == {
        dep["name"]: dep["version"] for dep in json.loads(VULNERABLE.read_text())["dependencies"]
    }


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("truncated.json", None, "report_malformed"),
        ("sbom-not-a-report.json", None, "report_malformed"),
        ("zero-bytes.json", b"", "report_malformed"),
        ("not-utf8.json", b'{"dependencies": ["\xff"]}', "report_unreadable"),
        ("list.json", b"[]", "report_malformed"),
        ("no-vulns.json", b'{"dependencies": [{"name": "idna", "version": "3.6"}]}', "report_malformed"),
        ("both.json", b'{"dependencies": [{"name": "a", "skip_reason": "x", "vulns": []}]}', "report_malformed"),
        (
            "no-id.json",
            b'{"dependencies": [{"name": "a", "version": "1", "vulns": [{"fix_versions": []}]}]}',
            "report_malformed",
        ),
        (
            "fixes.json",
            b'{"dependencies": [{"name": "a", "version": "1", "vulns": [{"id": "X", "fix_versions": "2"}]}]}',
            "report_malformed",
        ),
        ("entry.json", b'{"dependencies": ["idna"]}', "report_malformed"),
        (
            "no-fixes.json",
            b'{"dependencies": [{"name": "a", "version": "1", "vulns": [{"id": "X"}]}]}',
            "report_malformed",
        ),
        ("missing.json", None, "report_unreadable"),
    ],
)
def test_unreadable_or_malformed_report_gives_no_verdict_and_no_traceback(
    gate_run: GateRun, tmp_path: Path, name: str, content: bytes | None, code: str
) -> None:
    path = FIXTURES / name if (FIXTURES / name).exists() else tmp_path / name
    if content is not None:
        path.write_bytes(content)
    result = gate_run(path)
    assert result.status == ExitCode.USAGE
    assert result.stdout == ""
    assert result.stderr.startswith(f"error [{code}]: ")
    assert str(path) in result.stderr
    assert "Traceback" not in result.stderr


# -- the exceptions file ------------------------------------------------------------------------


def test_expired_exception_fails_and_excepts_nothing(gate_run: GateRun) -> None:
    exceptions = exception("GHSA-vqfr-h8mv-ghfj", "h11", expires=TODAY - timedelta(days=1))
    result = gate_run(VULNERABLE, exceptions=exceptions, lock=VULNERABLE_LOCK)
    assert result.status == ExitCode.FAILURE
    assert "FAIL [exception_expired] exception GHSA-vqfr-h8mv-ghfj for pypi h11 expired on 2026-11-30" in result.stdout
    assert row(result.stdout, "h11", "CVE-2025-43859").endswith("vulnerable")


def test_expired_exception_fails_even_when_nothing_is_vulnerable(gate_run: GateRun) -> None:
    result = gate_run(FIXTURES / "clean.json", exceptions=exception("X-1", "idna", expires=date(2026, 1, 1)))
    assert result.status == ExitCode.FAILURE
    assert "exception_expired" in result.stdout


@pytest.mark.parametrize(("days", "in_force"), [(0, True), (90, True), (91, False)])
def test_an_exception_is_in_force_until_its_date_and_at_most_90_days_ahead(
    gate_run: GateRun, days: int, in_force: bool
) -> None:
    exceptions = "".join(
        exception(vuln_id, package, expires=TODAY + timedelta(days=days))
        for vuln_id, package in [
            ("PYSEC-2024-60", "idna"),
            ("CVE-2025-43859", "h11"),
            ("CVE-2024-47874", "starlette"),
            ("CVE-2025-54121", "starlette"),
            ("CVE-2025-62727", "starlette"),
        ]
    )
    result = gate_run(VULNERABLE, exceptions=exceptions, lock=VULNERABLE_LOCK)
    assert (result.status == ExitCode.OK) is in_force, result.stdout
    if not in_force:
        assert "more than 90 days after 2026-12-01 (at most 2027-03-01)" in result.stdout
        assert "5 known vulnerabilities not covered" in result.stdout


VALID = exception("GHSA-vqfr-h8mv-ghfj", "h11")


@pytest.mark.parametrize(
    ("exceptions", "problem"),
    [
        (VALID.replace('reason = "not reachable from the stdio server"\n', ""), "`reason` is missing or empty"),
        (VALID.replace("not reachable from the stdio server", "  "), "`reason` is missing or empty"),
        (VALID.replace('package = "h11"\n', ""), "`package` is missing or empty"),
        (VALID.replace('approved_by = "A. Reviewer"\n', ""), "`approved_by` is missing or empty"),
        (VALID.replace('id = "GHSA-vqfr-h8mv-ghfj"\n', ""), "`id` is missing or empty"),
        (VALID.replace("expires = 2026-12-31", 'expires = "2026-12-31"'), "`expires` must be a TOML date"),
        (VALID.replace("expires = 2026-12-31", "expires = 2026-12-31T00:00:00"), "`expires` must be a TOML date"),
        (VALID.replace("expires = 2026-12-31\n", ""), "`expires` must be a TOML date"),
        (VALID + 'expiry = "never"\n', "unknown key `expiry`"),
        (VALID + 'aliases = ["CVE-2025-43859"]\n', "`aliases` is no longer accepted"),
        ("exceptions = {}\n", "`exceptions` must be an array of tables"),
        ("", "`exceptions` must be an array of tables"),
        ("exceptions = [1]\n", "exception 1 is not a table"),
        (EMPTY + "allow_all = true\n", "unknown top-level key(s) allow_all"),
    ],
)
def test_a_broken_exception_fails_and_excepts_nothing(gate_run: GateRun, exceptions: str, problem: str) -> None:
    result = gate_run(VULNERABLE, exceptions=exceptions, lock=VULNERABLE_LOCK)
    assert result.status == ExitCode.FAILURE
    assert "FAIL [exception_invalid]" in result.stdout and problem in result.stdout, result.stdout
    assert row(result.stdout, "h11", "CVE-2025-43859").endswith("vulnerable")


@pytest.mark.parametrize(
    ("exceptions", "message"),
    [
        (VALID.replace("2026-12-31", "2026-02-30"), "is not valid TOML"),
        ("exceptions = [\n", "is not valid TOML"),
        (None, "No such file or directory"),
    ],
)
def test_an_unreadable_exceptions_file_gives_no_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], exceptions: str | None, message: str
) -> None:
    path = tmp_path / "audit-exceptions.toml"
    if exceptions is not None:
        path.write_text(exceptions)
    status = cli.main(["--exceptions", str(path), "--lock", str(LOCK), str(FIXTURES / "clean.json")], now=NOW)
    out, err = capsys.readouterr()
    assert status == ExitCode.USAGE
    assert out == ""
    assert err.startswith("error [exceptions_unreadable]: ") and message in err
    assert "Traceback" not in err


def test_the_shipped_exceptions_file_is_empty_and_its_example_is_valid() -> None:
    shipped = ROOT / "audit-exceptions.toml"
    loaded = load_exceptions(shipped)
    assert loaded.entries == () and loaded.problems == ()

    lines = shipped.read_text().splitlines()
    start = lines.index("# [[exceptions]]")
    example = [line.removeprefix("# ") for line in lines[start:] if line.startswith("# ")]
    document = tomllib.loads("\n".join(example))
    parsed = parse_exceptions(document, "example")
    assert parsed.problems == () and len(parsed.entries) == 1
    entry = parsed.entries[0]
    assert (entry.id, entry.ecosystem, entry.package) == ("GHSA-xxxx-xxxx-xxxx", "pypi", "starlette")


def test_the_shipped_exceptions_file_cites_a_section_security_md_has() -> None:
    header = (ROOT / "audit-exceptions.toml").read_text().splitlines()[0]
    cited = re.findall(r'SECURITY\.md, "([^"]+)"', header)
    headings = {line.removeprefix("## ") for line in (ROOT / "SECURITY.md").read_text().splitlines()}
    assert cited and set(cited) <= headings, header


# -- the lock --------------------------------------------------------------------------------------


def test_the_lock_is_read_for_its_pins_alone() -> None:
    text = (
        "# a header\n"
        "Foo_Bar[extra]==1.0.post1 \\\n"
        "    --hash=sha256:aa \\\n"
        "    --hash=sha256:bb\n"
        "    # via x\n"
        "\n"
        "baz==2.0  # trailing comment\n"
        "qux==3 \\\n"
    )
    assert dict(parse_lock(text, "t").pins) == {"foo-bar": "1.0.post1", "baz": "2.0", "qux": "3"}


def test_the_shipped_lock_is_one_the_gate_reads() -> None:
    # build/audit.sh passes it with --lock; a form the gate refuses would stop every audit with exit 2.
    pins = load_lock(ROOT / "build" / "requirements.lock").pins
    assert pins and all(version[0].isdigit() for version in pins.values())


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("idna>=3.7\n", "`idna>=3.7` is not a `name==version` pin"),
        ("idna==3.*\n", "`idna==3.*` is not a `name==version` pin"),
        ("idna===3.7\n", "is not a `name==version` pin"),
        ('idna==3.7 ; python_version < "3.14"\n', "is not a `name==version` pin"),
        ("idna==3.7 \\\n    --hash sha256:aa\n", "is not a `name==version` pin"),
        ("-r other.txt\n", "`-r other.txt` is not a `name==version` pin"),
        ("https://example.org/idna-3.7-py3-none-any.whl\n", "is not a `name==version` pin"),
        ("idna==3.7\nIDNA==3.8\n", "t:2: IDNA is pinned twice"),
        ("# nothing but comments\n", "t pins no package"),
        ("", "t pins no package"),
    ],
)
def test_a_lock_that_does_not_pin_exactly_gives_no_verdict(text: str, problem: str) -> None:
    with pytest.raises(LockMalformedError) as raised:
        parse_lock(text, "t")
    assert problem in raised.value.message


@pytest.mark.parametrize(
    ("content", "code", "message"),
    [
        (None, "lock_unreadable", "No such file or directory"),
        (b"idna==3.7\n\xff\n", "lock_unreadable", "UnicodeDecodeError"),
        (b"idna>=3.7\n", "lock_malformed", "is not a `name==version` pin"),
    ],
)
def test_an_unreadable_or_malformed_lock_gives_no_verdict(
    gate_run: GateRun, tmp_path: Path, content: bytes | None, code: str, message: str
) -> None:
    lock = tmp_path / "requirements.lock"
    if content is not None:
        lock.write_bytes(content)
    result = gate_run(FIXTURES / "clean.json", lock=lock)
    assert result.status == ExitCode.USAGE
    assert result.stdout == ""
    assert result.stderr.startswith(f"error [{code}]: ") and message in result.stderr and str(lock) in result.stderr
    assert "Traceback" not in result.stderr


def test_audit_sh_gives_the_gate_the_lock_and_says_which_report_is_the_venv() -> None:
    script = (ROOT / "build" / "audit.sh").read_text().replace("\\\n", " ")
    call = " ".join(
        next(
            line
            for line in script.splitlines()
            if line.lstrip().startswith("audit_python -m mcp_orchestration.audit.cli ")
        ).split()
    )
    assert "--lock build/requirements.lock" in call and "-r build/requirements.lock" in script
    assert '"$out/lock.json" --venv "$out/image.json"' in call and "--first-party mcp-orchestration" in call


# -- the command --------------------------------------------------------------------------------


def test_help_documents_the_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for text in ("0  PASS", "1  FAIL", "2  no verdict", "not_audited", "report_malformed", "exceptions_unreadable"):
        assert text in out
    for text in ("--lock FILE", "--venv REPORT", "coverage", "lock_mismatch", "lock_unreadable", "lock_malformed"):
        assert text in out


@pytest.mark.parametrize("argv", [[], ["--lock", str(LOCK)], ["--venv"]])
def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(argv)
    assert done.value.code == ExitCode.USAGE


def test_an_internal_error_gives_no_verdict_and_no_traceback(
    gate_run: GateRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> gate.Verdict:
        raise KeyError("bug")

    monkeypatch.setattr(cli, "evaluate", broken)
    result = gate_run(FIXTURES / "clean.json")
    assert result.status == ExitCode.USAGE
    assert result.stderr.startswith("error [internal]: Unexpected internal error (KeyError).")
    assert "Traceback" not in result.stderr


OWN_CORE = {"mcp_orchestration.core.errors", "mcp_orchestration.core.fsutil"}  # both import the standard library alone


def test_the_audit_needs_only_the_standard_library_and_its_own_extra() -> None:
    # pip-audit must never become a dependency of the product: the gate only reads its JSON. The SBOM writer and the
    # Debian parser come from the `audit` extra, which the runtime (and so the image) never installs.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extra = {re.split(r"[=<>!~ ;\[]", spec)[0] for spec in project["optional-dependencies"]["audit"]}
    assert extra == {"cyclonedx-python-lib", "python-debian"}
    runtime = {re.split(r"[=<>!~ ;\[]", spec)[0] for spec in project["dependencies"]}
    assert runtime.isdisjoint({"pip-audit", *extra, "packageurl-python"})
    imports = {"cyclonedx", "packageurl", "debian", "packaging"}  # packaging: a runtime dependency already
    package = ROOT / "src" / "mcp_orchestration" / "audit"
    for module in package.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                allowed = top in sys.stdlib_module_names or top in imports or name in OWN_CORE
                assert allowed or name.startswith("mcp_orchestration.audit."), f"{module.name} imports {name}"
