#!/usr/bin/env bash
# `npm run karp -- ARGS`: runs the CLI from this checkout with a Node >= 22, building it first if needed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/ensure-node.sh
source "$root/scripts/ensure-node.sh"
[ -f "$root/dist/commands/install.js" ] || (cd "$root" && npm run --silent build >&2)
exec node "$root/bin/run.js" "$@"
