#!/usr/bin/env bash
# Type-checks the Grafana dashboards (grafana/dashboards/*.json) against Grafana's own published
# types (@grafana/schema, pinned in grafana/types/package-lock.json) with TypeScript:
#   1. npm ci in grafana/types (the pinned @grafana/schema and typescript);
#   2. grafana/types/gen.mjs writes generated/<name>.ts: `export const dashboard: DashboardFile =
#      <the dashboard's JSON, verbatim>;` (DashboardFile is in grafana/types/dashboard.ts);
#   3. tsc --strict --noEmit: an unknown property, a wrong type, a value outside an enum or a
#      missing required property is an error. The JSON starts on line 1 of each generated file,
#      so an error at generated/NAME.ts(LINE,COL) is at line LINE of grafana/dashboards/NAME.json.
# Exits non-zero on any error. Needs Node.js and npm (the npm registry, for npm ci).
#   scripts/check-dashboard-types.sh                 # the repository's dashboards
#   scripts/check-dashboard-types.sh some/copy.json  # other dashboard files, same checks
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
types="$root/grafana/types"

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "error: $tool not found (install Node.js and npm, e.g. Debian's nodejs and npm packages)" >&2
    exit 2
  fi
done

files=()
for f in "$@"; do
  files+=("$(cd "$(dirname "$f")" && pwd)/$(basename "$f")")
done

cd "$types"
# npm ci: exactly the lock file's versions, into a fresh node_modules.
npm ci --no-audit --no-fund --loglevel=error
node gen.mjs "${files[@]}"
./node_modules/.bin/tsc -p . --strict --noEmit
echo "dashboard types: OK ($(ls generated | wc -l) dashboards against @grafana/schema $(node -p 'require("./node_modules/@grafana/schema/package.json").version'), TypeScript $(./node_modules/.bin/tsc --version | sed 's/^Version //'))"
