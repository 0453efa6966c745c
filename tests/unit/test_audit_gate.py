"""The audit gate against recorded pip-audit reports (tests/fixtures/pip_audit/README.md) and exceptions files.

"Today" is fixed, so an exception's expiry means the same on every run.
"""

from __future__ import annotations

import ast
import json
import sys
import tomllib
from datetime import date, timedelta
from pathlib import Path

import pytest

from mcp_orchestration.audit import cli, gate
from mcp_orchestration.audit.exceptions import load_exceptions, parse_exceptions
from mcp_orchestration.errors import ExitCode
from tests.conftest import Result

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "pip_audit"
TODAY = date(2026, 12, 1)
IN_30_DAYS = TODAY + timedelta(days=30)
EMPTY = "exceptions = []\n"


def run_gate(*argv: str | Path, exceptions: str = EMPTY, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Result:
    exceptions_file = tmp_path / "audit-exceptions.toml"
    exceptions_file.write_text(exceptions, encoding="utf-8")
    status = cli.main(["--exceptions", str(exceptions_file), *map(str, argv)], today=TODAY)
    out, err = capsys.readouterr()
    return Result(status, out, err)


def exception(vuln_id: str, package: str, expires: date = IN_30_DAYS, **extra: object) -> str:
    fields: dict[str, object] = {
        "id": vuln_id,
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


@pytest.fixture
def gate_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    def go(*argv: str | Path, exceptions: str = EMPTY) -> Result:
        return run_gate(*argv, exceptions=exceptions, tmp_path=tmp_path, capsys=capsys)

    return go


# -- reports ------------------------------------------------------------------------------------


def test_clean_report_of_the_lock_passes(gate_run) -> None:  # type: ignore[no-untyped-def]
    result = gate_run(FIXTURES / "clean.json")
    assert result.status == ExitCode.OK
    assert "clean.json: 37 packages\n  no known vulnerability\nverdict: PASS\n" in result.stdout
    assert result.stderr == ""


def test_vulnerable_report_fails_and_tables_every_vulnerability(gate_run) -> None:  # type: ignore[no-untyped-def]
    result = gate_run(FIXTURES / "vulnerable.json")
    assert result.status == ExitCode.FAILURE
    assert row(result.stdout, "idna", "PYSEC-2024-60").split() == ["idna", "3.6", "PYSEC-2024-60", "3.7", "vulnerable"]
    assert row(result.stdout, "h11", "CVE-2025-43859").split()[-2:] == ["0.16.0", "vulnerable"]
    for vuln_id in ("CVE-2024-47874", "CVE-2025-54121", "CVE-2025-62727"):
        assert row(result.stdout, "starlette", vuln_id).endswith("vulnerable")
    assert "anyio" not in result.stdout and "click" not in result.stdout
    assert "FAIL [vulnerable]" in result.stdout
    assert "5 known vulnerabilities not covered by an exception" in result.stdout
    assert result.stdout.endswith("verdict: FAIL (1 finding)\n")


def test_exceptions_by_id_or_alias_let_every_vulnerability_pass(gate_run) -> None:  # type: ignore[no-untyped-def]
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
    ) + exception("GHSA-7f5h-v6xp-fcq8-other-name", "starlette", aliases=["CVE-2025-62727"])
    result = gate_run(FIXTURES / "vulnerable.json", exceptions=exceptions)
    assert result.status == ExitCode.OK, result.stdout
    assert row(result.stdout, "h11", "CVE-2025-43859").endswith(f"excepted until {IN_30_DAYS}")
    assert row(result.stdout, "starlette", "CVE-2025-62727").endswith(f"excepted until {IN_30_DAYS}")
    assert "note: exception GHSA-0000-0000-0000 for starlette matched no vulnerability: remove it." in result.stdout
    assert result.stdout.endswith("verdict: PASS\n")


def test_an_exception_covers_only_its_own_vulnerability_and_package(gate_run) -> None:  # type: ignore[no-untyped-def]
    exceptions = exception("GHSA-vqfr-h8mv-ghfj", "h11") + exception("CVE-2024-3651", "starlette")
    result = gate_run(FIXTURES / "vulnerable.json", exceptions=exceptions)
    assert result.status == ExitCode.FAILURE
    assert row(result.stdout, "h11", "CVE-2025-43859").endswith(f"excepted until {IN_30_DAYS}")
    assert row(result.stdout, "idna", "PYSEC-2024-60").endswith("vulnerable")
    assert "4 known vulnerabilities not covered" in result.stdout


def test_without_aliases_in_the_report_only_the_reported_id_matches(gate_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # What pip-audit writes with `--aliases off`.
    report = json.loads((FIXTURES / "vulnerable.json").read_text())
    report["dependencies"] = [dep for dep in report["dependencies"] if dep["name"] == "h11"]
    del report["dependencies"][0]["vulns"][0]["aliases"]
    path = tmp_path / "no-aliases.json"
    path.write_text(json.dumps(report))
    assert gate_run(path, exceptions=exception("GHSA-vqfr-h8mv-ghfj", "h11")).status == ExitCode.FAILURE
    assert gate_run(path, exceptions=exception("CVE-2025-43859", "h11")).status == ExitCode.OK


def test_skipped_report_recorded_without_an_advisory_source_fails(gate_run) -> None:  # type: ignore[no-untyped-def]
    # pip-audit printed "No known vulnerabilities found" and exited 0 for this report.
    result = gate_run(FIXTURES / "skipped.json")
    assert result.status == ExitCode.FAILURE
    assert "FAIL [not_audited]" in result.stdout
    assert "37 of 37 packages could not be audited" in result.stdout
    assert "Dependency not found on PyPI and could not be audited" in result.stdout
    assert row(result.stdout, "cryptography", "-").split() == ["cryptography", "-", "-", "-", "not", "audited"]


def test_one_skipped_package_among_audited_ones_fails(gate_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    report = json.loads((FIXTURES / "clean.json").read_text())
    report["dependencies"][5] = {"name": "cryptography", "skip_reason": "Package has invalid version"}
    path = tmp_path / "one-skipped.json"
    path.write_text(json.dumps(report))
    result = gate_run(path)
    assert result.status == ExitCode.FAILURE
    assert "1 of 37 packages could not be audited (cryptography: Package has invalid version)" in result.stdout


def test_first_party_package_may_be_skipped_but_nothing_else(gate_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    image = gate_run(FIXTURES / "skipped-image.json", "--first-party", "mcp_orchestration")
    assert "37 of 37 packages could not be audited" in image.stdout
    assert row(image.stdout, "mcp-orchestration", "-").endswith("first-party")
    assert "38 of 38 packages" in gate_run(FIXTURES / "skipped-image.json").stdout

    report = json.loads((FIXTURES / "clean.json").read_text())
    report["dependencies"].append({"name": "mcp-orchestration", "skip_reason": "Dependency not found on PyPI"})
    path = tmp_path / "image.json"
    path.write_text(json.dumps(report))
    assert gate_run(path, "--first-party", "mcp-orchestration").status == ExitCode.OK
    assert gate_run(path).status == ExitCode.FAILURE


def test_empty_report_fails_as_nothing_audited(gate_run) -> None:  # type: ignore[no-untyped-def]
    result = gate_run(FIXTURES / "empty.json")
    assert result.status == ExitCode.FAILURE
    assert "FAIL [nothing_audited]" in result.stdout


def test_every_report_is_judged(gate_run) -> None:  # type: ignore[no-untyped-def]
    result = gate_run(FIXTURES / "clean.json", FIXTURES / "skipped.json")
    assert result.status == ExitCode.FAILURE
    assert "clean.json: 37 packages" in result.stdout and "skipped.json: 37 packages" in result.stdout


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
def test_unreadable_or_malformed_report_gives_no_verdict_and_no_traceback(  # type: ignore[no-untyped-def]
    gate_run, tmp_path: Path, name: str, content: bytes | None, code: str
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


def test_expired_exception_fails_and_excepts_nothing(gate_run) -> None:  # type: ignore[no-untyped-def]
    exceptions = exception("GHSA-vqfr-h8mv-ghfj", "h11", expires=TODAY - timedelta(days=1))
    result = gate_run(FIXTURES / "vulnerable.json", exceptions=exceptions)
    assert result.status == ExitCode.FAILURE
    assert "FAIL [exception_expired] exception GHSA-vqfr-h8mv-ghfj for h11 expired on 2026-11-30" in result.stdout
    assert row(result.stdout, "h11", "CVE-2025-43859").endswith("vulnerable")


def test_expired_exception_fails_even_when_nothing_is_vulnerable(gate_run) -> None:  # type: ignore[no-untyped-def]
    result = gate_run(FIXTURES / "clean.json", exceptions=exception("X-1", "idna", expires=date(2026, 1, 1)))
    assert result.status == ExitCode.FAILURE
    assert "exception_expired" in result.stdout


@pytest.mark.parametrize(("days", "in_force"), [(0, True), (90, True), (91, False)])
def test_an_exception_is_in_force_until_its_date_and_at_most_90_days_ahead(  # type: ignore[no-untyped-def]
    gate_run, days: int, in_force: bool
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
    result = gate_run(FIXTURES / "vulnerable.json", exceptions=exceptions)
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
        (VALID + 'aliases = "CVE-2025-43859"\n', "`aliases` must be a list of advisory ids"),
        ("exceptions = {}\n", "`exceptions` must be an array of tables"),
        ("", "`exceptions` must be an array of tables"),
        ("exceptions = [1]\n", "exception 1 is not a table"),
        (EMPTY + "allow_all = true\n", "unknown top-level key(s) allow_all"),
    ],
)
def test_a_broken_exception_fails_and_excepts_nothing(gate_run, exceptions: str, problem: str) -> None:  # type: ignore[no-untyped-def]
    result = gate_run(FIXTURES / "vulnerable.json", exceptions=exceptions)
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
    status = cli.main(["--exceptions", str(path), str(FIXTURES / "clean.json")], today=TODAY)
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
    assert (entry.id, entry.package, entry.aliases) == ("GHSA-xxxx-xxxx-xxxx", "starlette", ("CVE-2026-00000",))


# -- the command --------------------------------------------------------------------------------


def test_help_documents_the_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for text in ("0  PASS", "1  FAIL", "2  no verdict", "not_audited", "report_malformed", "exceptions_unreadable"):
        assert text in out


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main([])
    assert done.value.code == ExitCode.USAGE


def test_an_internal_error_gives_no_verdict_and_no_traceback(  # type: ignore[no-untyped-def]
    gate_run, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> gate.Verdict:
        raise KeyError("bug")

    monkeypatch.setattr(cli, "evaluate", broken)
    result = gate_run(FIXTURES / "clean.json")
    assert result.status == ExitCode.USAGE
    assert result.stderr.startswith("error [internal]: Unexpected internal error (KeyError).")
    assert "Traceback" not in result.stderr


def test_the_gate_needs_nothing_but_the_standard_library() -> None:
    # pip-audit must never become a dependency of the product: the gate only reads its JSON.
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not any(spec.startswith("pip-audit") for spec in dependencies)
    package = ROOT / "src" / "mcp_orchestration" / "audit"
    for module in package.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                allowed = top in sys.stdlib_module_names or name == "mcp_orchestration.errors"
                assert allowed or name.startswith("mcp_orchestration.audit."), f"{module.name} imports {name}"
