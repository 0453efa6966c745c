#!/usr/bin/env bash
# The whole-image SBOM (`make sbom`; also the first step of build/audit.sh): CycloneDX 1.6 JSON of
# every Debian package and every Python distribution of $IMAGE, with versions, purls and hashes
# (`python -m mcp_orchestration.audit.sbom --help`, SECURITY.md). Needs a Docker engine with $IMAGE
# built (`make image`), build/tools.lock's hash-pinned packages (build/tools.sh: PyPI the first time
# only), and for the wheels' hashes the wheelhouse the image was built from (build/out/wheelhouse/<arch>,
# `make wheelhouse`).
# The image's files are copied out of a container that is created but never started:
#   build/out/image-venv                       its /venv
#   build/out/image-root/var/lib/dpkg/status.d  one control stanza per Debian package
#   build/out/image-root/etc/os-release         (a symlink in the image: -L copies its target)
# and the SBOM is written to build/out/audit/image-full.cdx.json. Exit status 0, or 2 (no SBOM).
set -euo pipefail
cd "$(dirname "$0")/.."
trap 'echo "sbom.sh: failed: $BASH_COMMAND" >&2; exit 2' ERR

DOCKER=${DOCKER:-/usr/bin/docker}
IMAGE=${IMAGE:-mcp-orchestration:latest}
out=build/out/audit
venv=build/out/image-venv
root=build/out/image-root

"$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1 || { echo "sbom.sh: no image $IMAGE: run make image first" >&2; exit 2; }
rm -rf "$venv" "$root" "$out/image-full.cdx.json"
mkdir -p "$out" "$root/etc" "$root/var/lib/dpkg"
. build/tools.sh

cid=$("$DOCKER" create "$IMAGE")
trap '"$DOCKER" rm "$cid" >/dev/null || echo "sbom.sh: cannot remove the container $cid" >&2' EXIT
"$DOCKER" cp "$cid:/venv" "$venv"
"$DOCKER" cp "$cid:/var/lib/dpkg/status.d" "$root/var/lib/dpkg/status.d"
"$DOCKER" cp -L "$cid:/etc/os-release" "$root/etc/os-release"
site=("$venv"/lib/python3.*/site-packages)
[[ ${#site[@]} -eq 1 && -d ${site[0]} ]] || { echo "sbom.sh: no single site-packages in $IMAGE:/venv" >&2; exit 2; }

inspect() { "$DOCKER" image inspect -f "$1" "$IMAGE"; }
image_id=$(python3 build/config_digest.py --docker "$DOCKER" "$IMAGE")  # not .Id: the manifest's on a containerd store
wheelhouse=build/out/wheelhouse/$(inspect '{{.Architecture}}')
[[ -d $wheelhouse ]] || echo "sbom.sh: no $wheelhouse (make wheelhouse): the Python components get no hash" >&2
audit_python -m mcp_orchestration.audit.sbom \
  --debian-status "$root/var/lib/dpkg/status.d" --os-release "$root/etc/os-release" \
  --site-packages "${site[0]}" --lock build/requirements.lock --wheelhouse "$wheelhouse" \
  --image "$IMAGE" --image-id "$image_id" --created "$(inspect '{{.Created}}')" \
  -o "$out/image-full.cdx.json"
