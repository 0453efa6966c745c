#!/usr/bin/env bash
# Make sure a Docker engine with BuildKit runs here: install Debian's engine and tools if they
# are missing, start dockerd in the background if nothing answers, wait until it does.
# Containers run with --network none and builds with --network=host, so dockerd needs no
# bridge or iptables. Used by `make image` and .ci/run; needs root (or sudo) to install/start.
set -euo pipefail

docker=/usr/bin/docker # Debian's client: BuildKit without buildx
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"

# Only what is missing: an engine that is already there (Docker CE on a GitHub runner, whose
# docker-ce package conflicts with docker.io) is used as it is.
missing=()
[ -x "$docker" ] || missing+=(docker.io)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! $docker info >/dev/null 2>&1; then
  log=${DOCKERD_LOG:-/tmp/dockerd.log}
  $sudo_cmd setsid dockerd --iptables=false --bridge=none >"$log" 2>&1 </dev/null &
  for _ in $(seq 60); do
    $docker info >/dev/null 2>&1 && break
    sleep 1
  done
  $docker info >/dev/null 2>&1 || { echo "docker-engine.sh: dockerd did not start; see $log" >&2; exit 1; }
fi
echo "docker engine: $($docker version --format '{{.Server.Version}}')"
