#!/usr/bin/env bash
# Runs `prisma generate` (Prisma's TypeScript client and our Python generator).
# Prisma's CLI first tries to download a native schema engine that `generate` does not
# use (it runs Prisma's WASM engines). Where that download host is out of reach, run again
# with PRISMA_SCHEMA_ENGINE_BINARY naming a placeholder file, which skips the download.
# Extra arguments go to prisma (e.g. --schema path).
set -euo pipefail
cd "$(dirname "$0")/.."
placeholder=prisma/.engine-placeholder
run_offline() {
  PRISMA_SCHEMA_ENGINE_BINARY="$PWD/$placeholder" npx --no-install prisma generate "$@" 2>&1 | grep -v 'Unknown user config'
  exit "${PIPESTATUS[0]}"
}
# an earlier run found the download host out of reach: do not wait for it again
[ -f "$placeholder" ] && run_offline "$@"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if npx --no-install prisma generate "$@" >"$log" 2>&1; then
  grep -v 'Unknown user config' "$log" || true
  exit 0
fi
if grep -qE 'binaries\.prisma\.sh|schema-engine|ENOTFOUND|EAI_AGAIN|ECONNREFUSED' "$log"; then
  : >"$placeholder"
  run_offline "$@"
fi
cat "$log" >&2
exit 1
