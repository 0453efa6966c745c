# shellcheck shell=bash
# Sourced by lock.sh, wheelhouse.sh, audit.sh and sbom.sh from the repository root.
# Installs the hash-pinned uv, pip, pip-audit and audit libraries of build/tools.lock into
# build/out/tools (again whenever that lock changes) and defines `uv`, `pip` and `pip_audit` to run
# them, and `audit_python` to run this checkout's audit package (src/, not installed) on them: the
# gate that decides a release runs on no package that the lock does not pin by hash.
# pip runs isolated from the host's pip config and PIP_* variables: PyPI only.

tools=build/out/tools
if ! cmp -s build/tools.lock "$tools/tools.lock"; then
  rm -rf "$tools"
  python3 -m venv "$tools"
  PIP_CONFIG_FILE=/dev/null "$tools/bin/pip" --isolated install --quiet \
    --require-hashes --no-deps -r build/tools.lock
  cp build/tools.lock "$tools/tools.lock"
fi

uv() { UV_NO_CONFIG=1 UV_PYTHON_DOWNLOADS=never "$tools/bin/uv" "$@"; }
pip() { PIP_CONFIG_FILE=/dev/null "$tools/bin/pip" --isolated "$@"; }
pip_audit() { PIP_CONFIG_FILE=/dev/null "$tools/bin/pip-audit" "$@"; }
audit_python() { PYTHONPATH=src PYTHONNOUSERSITE=1 PYTHONDONTWRITEBYTECODE=1 "$tools/bin/python" "$@"; }
