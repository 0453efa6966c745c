#!/usr/bin/env bash
# The dependency audit (`make audit`): the whole-image SBOM (build/sbom.sh), pip-audit on the
# hash-pinned lock and on the venv inside the built image with a CycloneDX SBOM of each, Debian's
# security tracker data for the image's Debian packages, then the policy gate, whose verdict is this
# script's exit status: 0 pass, 1 fail, 2 no verdict (`mcp-orchestration-audit-gate --help`, SECURITY.md).
# Needs PyPI's JSON API, security-tracker.debian.org over HTTPS and a Docker engine with $IMAGE built
# (`make image`). The gate runs on build/tools.lock's hash-pinned packages (build/tools.sh), never on
# the project's venv, whose test tools are not pinned by hash. Writes build/out/audit/ (and build/sbom.sh's copies of the
# image's files, build/out/image-venv and build/out/image-root):
#   image-full.cdx.json  every Debian package and Python distribution of $IMAGE (build/sbom.sh)
#   lock.json   lock.cdx.json    build/requirements.lock, read as it is: nothing is installed
#   image.json  image.cdx.json   the site-packages of $IMAGE's /venv
#   debian-tracker.json          https://security-tracker.debian.org/tracker/data/json (bounded, HTTPS only)
# pip-audit runs without --strict: that flag aborts at the first package it cannot look up and
# writes no report, while the gate applies the same rule (not_audited) to every package at once.
# pip-audit lists only what it finds where it is pointed, so the gate also gets the lock: lock.json
# must list exactly its pins, image.json (--venv) those plus the project itself (coverage,
# lock_mismatch): a partial report (wrong --path, unreadable dist-info) or a venv that is not the
# lock fails instead of passing on what was seen. The gate judges pip-audit's reports and the Debian
# packages in one run, so its status is the worst of both (2 beats 1 beats 0): a tracker that could
# not be downloaded is no verdict (2), never a pass.
set -euo pipefail
cd "$(dirname "$0")/.."
trap 'echo "audit.sh: failed: $BASH_COMMAND" >&2; exit 2' ERR

DOCKER=${DOCKER:-/usr/bin/docker}
IMAGE=${IMAGE:-mcp-orchestration:latest}
DEBIAN_TRACKER_URL=${DEBIAN_TRACKER_URL:-https://security-tracker.debian.org/tracker/data/json}
out=build/out/audit
venv=build/out/image-venv
root=build/out/image-root

"$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1 || { echo "audit.sh: no image $IMAGE: run make image first" >&2; exit 2; }
. build/tools.sh
rm -rf "$out"
mkdir -p "$out"

# The image's files as shipped (copied out of a container that is created but never started), and its SBOM.
DOCKER=$DOCKER IMAGE=$IMAGE build/sbom.sh
site=("$venv"/lib/python3.*/site-packages)
[[ ${#site[@]} -eq 1 && -d ${site[0]} ]] || { echo "audit.sh: no single site-packages in $IMAGE:/venv" >&2; exit 2; }

# audit NAME PIP_AUDIT_SOURCE...: the JSON report for the gate and the SBOM. pip-audit exits 1 both
# when it finds a vulnerability and when it fails; the gate judges the report, and finds none in the
# second case. It exits 0 when it could look nothing up: then the report lists every package skipped.
audit() {
  local name=$1 status=0
  shift
  pip_audit "$@" --cache-dir build/out/pip-audit-cache --progress-spinner off \
    -f json --aliases on --desc on -o "$out/$name.json" || status=$?
  pip_audit "$@" --cache-dir build/out/pip-audit-cache --progress-spinner off \
    -f cyclonedx-json -o "$out/$name.cdx.json" || status=$?
  echo "audit.sh: pip-audit on $name exited $status" >&2
}
audit lock -r build/requirements.lock --require-hashes --disable-pip
audit image --path "${site[0]}"

# Debian's security data: when it cannot be had, the gate finds no file (tracker_unreadable) and gives no verdict.
audit_python -m mcp_orchestration.audit.fetch "$out/debian-tracker.json" --url "$DEBIAN_TRACKER_URL" \
  || echo "audit.sh: no Debian security data: the verdict cannot be a pass" >&2

status=0
audit_python -m mcp_orchestration.audit.cli --lock build/requirements.lock --exceptions audit-exceptions.toml --first-party mcp-orchestration \
  "$out/lock.json" --venv "$out/image.json" --debian-status "$root/var/lib/dpkg/status.d" \
  --debian-tracker "$out/debian-tracker.json" --os-release "$root/etc/os-release" || status=$?
for sbom in "$out"/{lock,image,image-full}.cdx.json; do
  [[ -s $sbom ]] || { echo "audit.sh: no SBOM $sbom" >&2; [[ $status -ne 0 ]] || status=2; }
done
echo "audit.sh: reports and SBOMs in $out; verdict exit status $status" >&2
exit "$status"
