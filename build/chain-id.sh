#!/usr/bin/env bash
# The OCI ChainID of an image's layers (image-spec config.md: ChainID(L0) = DiffID(L0),
# ChainID(L0..Ln) = sha256 of "ChainID(L0..Ln-1) DiffID(Ln)"): what its filesystem is, the same on
# every engine and image store, where an image id is the config digest on one and the manifest's on
# another. The image labels its bases with it, and build/rebuild-compare.sh checks it.
# Usage: build/chain-id.sh IMAGE   (prints sha256:..., exits 1 when the image has no layers)
set -euo pipefail
chain=
while read -r diff_id; do
  [[ $diff_id =~ ^sha256:[0-9a-f]{64}$ ]] || { echo "chain-id.sh: $1: bad diff id '$diff_id'" >&2; exit 1; }
  if [[ -z $chain ]]; then
    chain=$diff_id
  else
    chain="sha256:$(printf '%s %s' "$chain" "$diff_id" | sha256sum | cut -d' ' -f1)"
  fi
done < <("${DOCKER:-/usr/bin/docker}" image inspect -f '{{range .RootFS.Layers}}{{println .}}{{end}}' "$1" | sed '/^$/d')
[[ -n $chain ]] || { echo "chain-id.sh: $1: no layers" >&2; exit 1; }
echo "$chain"
