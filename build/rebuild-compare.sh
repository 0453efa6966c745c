#!/usr/bin/env bash
# Rebuild a released image from its commit and compare it layer by layer (the last step of
# build/verify-release.sh, which first checks the image's signature: run that, not this, on a release).
#   1. the commit the image names (org.opencontainers.image.revision) is checked out alone, in a
#      temporary worktree: nothing uncommitted or untracked of this checkout reaches the build;
#   2. the two bases the release published beside it (NAME:base-builder-HEX, NAME:base-runtime-HEX,
#      HEX their config digest) are the ones the image names, layers and config
#      (io.mcp-orchestration.base.*.{chainid,config}, signed with the image): what they hold is
#      trusted from the release, not rebuilt (SECURITY.md);
#   3. that commit's `make image` builds it on those bases (always with --no-cache), and
#      build/repro_check.py compares.
# Usage: build/rebuild-compare.sh NAME@sha256:DIGEST vX.Y.Z
# Exit status: 0 the same; 1 different (the report is on stdout) or bases not the image's; 2 no verdict.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "rebuild-compare: $2" >&2; exit "$1"; }
. build/release-args.sh "$@"
DOCKER=${DOCKER:-/usr/bin/docker}
name=${ref%@*}
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || fail 2 "build/*.py need python3 >= 3.11"

label() { "$DOCKER" image inspect -f "{{index .Config.Labels \"$1\"}}" "$2" || fail 2 "cannot read the labels of $2"; }
"$DOCKER" image inspect "$ref" >/dev/null 2>&1 || "$DOCKER" pull --quiet "$ref" >/dev/null \
  || fail 2 "cannot pull $ref"

revision=$(label org.opencontainers.image.revision "$ref")
[[ $revision =~ ^[0-9a-f]{40}$ ]] || fail 1 "$ref names no commit (label org.opencontainers.image.revision)"
git cat-file -e "$revision^{commit}" 2>/dev/null \
  || fail 2 "this clone has no commit $revision, the image's revision: git fetch --tags first"

bases=()
for role in builder runtime; do
  chain=$(label "io.mcp-orchestration.base.$role.chainid" "$ref")
  config=$(label "io.mcp-orchestration.base.$role.config" "$ref")
  for value in "$chain" "$config"; do
    [[ $value =~ ^sha256:[0-9a-f]{64}$ ]] || fail 1 "$ref does not name its $role base (io.mcp-orchestration.base.$role.*)"
  done
  tagged="$name:base-$role-${config#sha256:}"
  "$DOCKER" pull --quiet "$tagged" >/dev/null || fail 2 "cannot pull the $role base $tagged"
  # From here on by the digest pulled: the build cannot be handed another base than the one checked.
  base=
  while read -r pulled; do
    if [[ $pulled == "$name@sha256:"* ]]; then base=$pulled; fi
  done < <("$DOCKER" image inspect -f '{{range .RepoDigests}}{{println .}}{{end}}' "$tagged")
  [[ -n $base ]] || fail 2 "no registry digest for $tagged"
  have=$(DOCKER=$DOCKER build/chain-id.sh "$base") || fail 2 "cannot read the layers of $base"
  [[ $have == "$chain" ]] || fail 1 "the $role base $base has layers $have, the image was built on $chain"
  have=$(python3 build/config_digest.py --docker "$DOCKER" "$base") || fail 2 "cannot read the config of $base"
  [[ $have == "$config" ]] || fail 1 "the $role base $base has config $have, the image was built on $config"
  bases+=("$base")
done

tree=$(mktemp -d)
trap 'git worktree remove --force "$tree" >/dev/null 2>&1 || true; rm -rf "$tree"; git worktree prune || true' EXIT
git worktree add --quiet --detach "$tree" "$revision" || fail 2 "cannot check out $revision"
# The wheels are checked against the commit's locks by their hashes, in the build: a copy saves the download.
[[ ! -d build/out/wheelhouse ]] || { mkdir -p "$tree/build/out" && cp -a build/out/wheelhouse "$tree/build/out/"; }
rebuilt=mcp-orchestration:rebuild
# LOCAL_BASES= : the bases are the release's, pulled above; nothing is installed or started here.
make --no-print-directory -C "$tree" image DOCKER="$DOCKER" IMAGE="$rebuilt" BUILD_FLAGS=--quiet LOCAL_BASES= \
  BUILDER_IMAGE="${bases[0]}" RUNTIME_IMAGE="${bases[1]}" >&2 || fail 2 "the rebuild failed"
status=0
python3 build/repro_check.py --docker "$DOCKER" "$ref" "$rebuilt" || status=$?
exit "$status"
