# shellcheck shell=bash
# Sourced by verify-release.sh and rebuild-compare.sh with their arguments: sets `ref` (an image named
# REGISTRY/PATH@sha256:DIGEST, no tag: what a tag names can change) and `tag` (vX.Y.Z), or exits 2
# through the caller's fail(). Nothing else of the input is trusted, nor ever run as shell text.
[[ $# -eq 2 ]] || fail 2 "usage: $0 REGISTRY/PATH@sha256:DIGEST vX.Y.Z"
ref=$1 tag=$2
reference='^[a-z0-9]+([.-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+@sha256:[0-9a-f]{64}$'
[[ $ref =~ $reference ]] || fail 2 "$ref: name the image as REGISTRY/PATH@sha256:DIGEST, never by tag"
[[ $tag =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail 2 "$tag: a release tag is vX.Y.Z"
