#!/usr/bin/env bash
# End to end with the shipped image: a signing key as a Docker secret, a store volume, `init`,
# then a real MCP session over stdio (as Claude Desktop runs it), rotation, and verification.
# Run by `make demo` after `make image`; needs a Docker engine (build/docker-engine.sh).
set -euo pipefail

image=${IMAGE:-mcp-orchestration:latest}
docker=${DOCKER:-/usr/bin/docker}
python=${PYTHON:-.venv/bin/python}
work=$(mktemp -d)
volume="mcp-orchestration-demo-$$"
trap '$docker volume rm -f "$volume" >/dev/null; rm -rf "$work"' EXIT

# Keys are made on the host and handed in as secret files readable by the image's uid only.
mkdir -m 0700 "$work/secrets"
for name in signing_key signing_key_next; do
  .venv/bin/mcp-orchestration keys generate --out "$work/secrets/$name" >/dev/null
  chown 65532:65532 "$work/secrets/$name" 2>/dev/null || chmod 0444 "$work/secrets/$name" # non-root: let uid 65532 read it
done
hardened=(--rm --init --network none --read-only --cap-drop ALL --security-opt no-new-privileges
  -v "$volume:/var/lib/mcp-orchestration" -v "$work/secrets/signing_key:/run/secrets/signing_key:ro")
run() { printf '\n$ docker run ... %s\n' "$*"; $docker run "${hardened[@]}" "$@"; }

run "$image" init
printf '\n$ MCP session over stdio: docker run -i ... %s\n' "$image"
$python scripts/mcp_session.py "$docker" run -i "${hardened[@]}" "$image"
run -v "$work/secrets/signing_key_next:/run/secrets/signing_key_next:ro" "$image" keys rotate
hardened[-1]="$work/secrets/signing_key_next:/run/secrets/signing_key:ro" # the new key takes the old one's place
run "$image" keys list
run "$image" verify --deep
run "$image" healthcheck && printf '\nhealthcheck: ok\n'
printf '\nDemo finished: published over MCP in the container, rotated the key, and the store verified.\n'
