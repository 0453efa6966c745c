#!/usr/bin/env bash
# Rebuild a released image from this checkout and compare it layer by layer (the last step of
# build/verify-release.sh, which first checks the image's signature: run that, not this, on a release).
#   1. the checkout is the commit the image names (org.opencontainers.image.revision), with no change;
#   2. the two bases the release published beside it (NAME:base-builder-X.Y.Z, NAME:base-runtime-X.Y.Z)
#      are the ones the image names (io.mcp-orchestration.base.*.chainid, signed with the image);
#   3. make image builds it on those bases (always with --no-cache), and build/repro_check.py compares.
# Usage: build/rebuild-compare.sh NAME@sha256:DIGEST vX.Y.Z
# Exit status: 0 the same; 1 different (the report is on stdout) or bases not the image's; 2 no verdict.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "rebuild-compare: $2" >&2; exit "$1"; }
. build/release-args.sh "$@"
DOCKER=${DOCKER:-/usr/bin/docker}
name=${ref%@*}

label() { "$DOCKER" image inspect -f "{{index .Config.Labels \"$1\"}}" "$2"; }
"$DOCKER" image inspect "$ref" >/dev/null 2>&1 || "$DOCKER" pull --quiet "$ref" >/dev/null \
  || fail 2 "cannot pull $ref"

revision=$(label org.opencontainers.image.revision "$ref")
[[ $(git rev-parse HEAD) == "$revision" ]] || fail 2 "check out $revision, the image's revision (git checkout $tag)"
[[ -z $(git status --porcelain --untracked-files=no) ]] || fail 2 "the checkout has changes: a rebuild is of the commit alone"

bases=()
for role in builder runtime; do
  want=$(label "io.mcp-orchestration.base.$role.chainid" "$ref")
  [[ $want =~ ^sha256:[0-9a-f]{64}$ ]] || fail 1 "$ref names no $role base (label io.mcp-orchestration.base.$role.chainid)"
  base="$name:base-$role-${tag#v}"
  "$DOCKER" pull --quiet "$base" >/dev/null || fail 2 "cannot pull the $role base $base"
  have=$(DOCKER=$DOCKER build/chain-id.sh "$base") || fail 2 "cannot read the layers of $base"
  [[ $have == "$want" ]] || fail 1 "the $role base $base is $have, the image was built on $want"
  bases+=("$base")
done

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || fail 2 "build/repro_check.py needs python3 >= 3.11"
rebuilt=mcp-orchestration:rebuild
make --no-print-directory image IMAGE="$rebuilt" BUILD_FLAGS=--quiet \
  BUILDER_IMAGE="${bases[0]}" RUNTIME_IMAGE="${bases[1]}" >&2 || fail 2 "the rebuild failed"
status=0
python3 build/repro_check.py --docker "$DOCKER" "$ref" "$rebuilt" || status=$?
exit "$status"
