"""build/audit.sh and build/sbom.sh run the audit package as ``python -m MODULE``, from src/ on build/tools.lock.

A module without a ``__main__`` block runs nothing and exits 0: the gate would pass every release unseen.
These tests run each module the way the scripts do, as a separate process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mcp_orchestration.audit import sbom

ROOT = Path(__file__).resolve().parents[2]
PIP_AUDIT = ROOT / "tests" / "fixtures" / "pip_audit"
SCRIPTS = [ROOT / "build" / "audit.sh", ROOT / "build" / "sbom.sh"]


def modules_the_scripts_run() -> set[str]:
    calls = (re.findall(r"audit_python -m ([\w.]+)", script.read_text()) for script in SCRIPTS)
    return {module for found in calls for module in found}


def run_module(module: str, *argv: str | Path) -> subprocess.CompletedProcess[str]:
    """``audit_python`` of build/tools.sh: this checkout's src/ first, no user site, no bytecode written."""
    env = {**os.environ, "PYTHONPATH": "src", "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", module, *map(str, argv)]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_the_scripts_run_the_gate_the_fetch_and_the_sbom_writer() -> None:
    assert modules_the_scripts_run() == {
        "mcp_orchestration.audit.cli",
        "mcp_orchestration.audit.fetch",
        "mcp_orchestration.audit.sbom",
    }


@pytest.mark.parametrize("module", sorted(modules_the_scripts_run()))
def test_each_module_the_scripts_run_refuses_missing_arguments(module: str) -> None:
    result = run_module(module)
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_the_gate_run_as_audit_sh_runs_it_gives_its_verdict(tmp_path: Path) -> None:
    exceptions = tmp_path / "audit-exceptions.toml"
    exceptions.write_text("exceptions = []\n")
    common: list[str | Path] = ["--exceptions", exceptions, "--first-party", "mcp-orchestration"]
    clean = run_module(
        "mcp_orchestration.audit.cli", "--lock", PIP_AUDIT / "requirements.lock", *common, PIP_AUDIT / "clean.json"
    )
    assert (clean.returncode, clean.stdout.splitlines()[-1]) == (0, "verdict: PASS")
    vulnerable = run_module(
        "mcp_orchestration.audit.cli", "--lock", PIP_AUDIT / "vulnerable.lock", *common, PIP_AUDIT / "vulnerable.json"
    )
    assert vulnerable.returncode == 1
    assert vulnerable.stdout.splitlines()[-1].startswith("verdict: FAIL")


def test_the_sbom_names_its_writer_by_this_checkouts_version_when_run_from_src() -> None:
    """The tools venv has no metadata of this project: the SBOM's tool entry still carries the version."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert sbom._checkout_version() == version
