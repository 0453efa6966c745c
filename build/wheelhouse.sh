#!/usr/bin/env bash
# Usage: build/wheelhouse.sh [amd64|arm64]...   (default: this host's architecture)
# Fills build/out/wheelhouse/<arch>/ with the wheels of build/requirements.lock and
# build/build-requirements.lock for CPython 3.13 on Debian 13, checked against the
# locks' hashes. An arch already filled from the same locks and script is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

glibc_minor=41 # Debian 13 has glibc 2.41
locks=(build/requirements.lock build/build-requirements.lock)
stamp=$(cat "${locks[@]}" build/wheelhouse.sh | sha256sum | cut -d' ' -f1)

if (($# == 0)); then
  case $(uname -m) in x86_64) set -- amd64 ;; aarch64) set -- arm64 ;; *) set -- "$(uname -m)" ;; esac
fi
for arch in "$@"; do
  case $arch in
    amd64) machine=x86_64 ;;
    arm64) machine=aarch64 ;;
    *) echo "wheelhouse.sh: unknown arch '$arch' (want amd64 or arm64)" >&2; exit 2 ;;
  esac
  dir=build/out/wheelhouse/$arch
  if [[ $(cat "$dir/.stamp" 2>/dev/null) == "$stamp" ]]; then
    echo "$dir: up to date"
    continue
  fi
  # pip matches only the platform tags it is given, preferring earlier ones: every
  # manylinux tag that glibc 2.41 accepts, newest first, as pip on the target would order them.
  platforms=()
  for tag in $(seq -f 'manylinux_2_%g' "$glibc_minor" -1 5) manylinux2014 manylinux2010 manylinux1; do
    platforms+=(--platform "${tag}_$machine")
  done
  declare -F pip >/dev/null || . build/tools.sh  # only to download: an up-to-date wheelhouse needs no PyPI
  rm -rf "$dir"
  for lock in "${locks[@]}"; do
    pip download --quiet --dest "$dir" --only-binary=:all: "${platforms[@]}" \
      --python-version 3.13 --implementation cp --abi cp313 --abi abi3 --abi none \
      --require-hashes --no-deps -r "$lock"
  done
  echo "$stamp" > "$dir/.stamp"
  echo "$dir: $(find "$dir" -name '*.whl' | wc -l) wheels, $(du -sh "$dir" | cut -f1)"
done
