#!/usr/bin/env bash
# Verify a released image before running it (`make verify-release`, SECURITY.md "Verify a release"):
#   1. its signature: cosign, keyless, made by this repository's release workflow at TAG;
#   2. its SBOM attestation, same identity: a CycloneDX SBOM about this digest, made from this image
#      (its config digest), with every Debian and Python package (build/attested_sbom.py); saved to
#      build/out/verify-release/sbom.cdx.json;
#   3. its build provenance (SLSA, actions/attest): gh attestation verify;
#   4. a rebuild (build/rebuild-compare.sh): the commit the image names, checked out alone, on the
#      bases the release published beside it (checked against the ids the image names), built and
#      compared layer by layer with the released image. The bases themselves are the release's: what
#      they hold is checked by their ids, not rebuilt (SECURITY.md, Verify a release).
# Usage: build/verify-release.sh IMAGE@sha256:DIGEST vX.Y.Z
#   REPO=OWNER/NAME  the repository whose workflow must have signed (default: pyproject.toml's Source)
#   KEY=FILE         verify against a cosign public key instead (an image you signed yourself)
# Exit status: 0 verified; 1 a check failed; 2 no verdict (a missing tool, bad arguments, an image
# that cannot be pulled, a clone without the image's commit). cosign exits 1 for a network failure as
# for a bad signature: its message says which. Every check runs only after the one before it passed.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "verify-release: $2" >&2; exit "$1"; }
. build/release-args.sh "$@"
source_url=$(sed -n 's|^Source = "https://github.com/\(.*\)"|\1|p' pyproject.toml)
repo=${REPO:-$source_url}
for tool in cosign git make python3; do
  command -v "$tool" >/dev/null || fail 2 "no $tool on PATH: install it (SECURITY.md, Verify a release)"
done
[[ -n ${KEY:-} ]] || command -v gh >/dev/null || fail 2 "no gh on PATH: the provenance is checked with gh attestation verify"

if [[ -n ${KEY:-} ]]; then
  identity=(--key "$KEY")
else
  identity=(--certificate-identity "https://github.com/$repo/.github/workflows/release.yml@refs/tags/$tag"
    --certificate-oidc-issuer https://token.actions.githubusercontent.com)
fi
out=build/out/verify-release
mkdir -p "$out"

export DOCKER=${DOCKER:-/usr/bin/docker}  # and build/rebuild-compare.sh's: Debian's client, as make uses
command -v "$DOCKER" >/dev/null || fail 2 "no Docker client $DOCKER: name yours with DOCKER=PATH"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || fail 2 "build/*.py need python3 >= 3.11"
"$DOCKER" image inspect "$ref" >/dev/null 2>&1 || "$DOCKER" pull --quiet "$ref" >/dev/null \
  || fail 2 "cannot pull $ref: no verdict (the registry, the network or the name)"

echo "verify-release: 1/4 signature of $ref" >&2
cosign verify "${identity[@]}" "$ref" >/dev/null || fail 1 "the signature does not verify"

echo "verify-release: 2/4 SBOM attestation" >&2
cosign verify-attestation "${identity[@]}" --type cyclonedx "$ref" >"$out/attestation.json" \
  || fail 1 "the SBOM attestation does not verify"
status=0
image_id=$(python3 build/config_digest.py --docker "$DOCKER" "$ref") || fail 2 "cannot read the config of $ref"
python3 build/attested_sbom.py --digest "${ref#*@}" --image-id "$image_id" <"$out/attestation.json" \
  >"$out/sbom.cdx.json" || status=$?
[[ $status -eq 0 ]] || fail "$status" "no attested SBOM of the whole image about ${ref#*@} (see above)"

if [[ -z ${KEY:-} ]]; then
  echo "verify-release: 3/4 build provenance" >&2
  gh attestation verify "oci://$ref" --repo "$repo" --signer-workflow "$repo/.github/workflows/release.yml" \
    --source-ref "refs/tags/$tag" >/dev/null || fail 1 "the build provenance does not verify"
else
  echo "verify-release: 3/4 build provenance: skipped with KEY (GitHub attests only its own builds)" >&2
fi

echo "verify-release: 4/4 rebuild and compare" >&2
status=0
build/rebuild-compare.sh "$ref" "$tag" || status=$?
[[ $status -eq 0 ]] || fail "$status" "the rebuild does not match $ref (see above)"
echo "verify-release: $ref is signed by $repo at $tag, with its SBOM and provenance, and its own layers rebuild bit for bit on the bases it names" >&2
