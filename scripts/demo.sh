#!/usr/bin/env bash
# End-to-end run of the trust core in a throwaway home: key, init, publish, read, verify, rotate, revoke.
set -euo pipefail

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export MCP_ORCHESTRATION_HOME="$work/home"
export MCP_ORCHESTRATION_HOST_STATE="$work/host-state.json" # a throwaway store: leave the real host state alone
run() { printf '\n$ mcp-orchestration %s\n' "$*"; mcp-orchestration "$@"; }

run keys generate --out "$work/signing_key"
run keys generate --out "$work/signing_key_next"
export MCP_ORCHESTRATION_SIGNING_KEY_FILE="$work/signing_key"
run init --expect-key "$(mcp-orchestration keys fingerprint)"

cat > "$work/claude.json" <<'JSON'
{"mcpServers": {"filesystem": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/data"]}}}
JSON
run publish --client claude-desktop --profile default --file "$work/claude.json" --changelog "first config"
run get --client claude-desktop --profile default
run history --client claude-desktop --profile default
run verify --deep
run keys rotate --new-key-file "$work/signing_key_next"
old=$(mcp-orchestration keys fingerprint)
export MCP_ORCHESTRATION_SIGNING_KEY_FILE="$work/signing_key_next"
run keys revoke "$old"
run keys list
run verify --deep
printf '\nDemo finished: the store verified after publish, rotation and revocation.\n'
