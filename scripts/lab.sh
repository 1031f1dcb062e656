#!/usr/bin/env bash
# `npm run lab [-- COMMAND]`: the karp lab on a real HA cluster (lab/cli.ts) with a Node >= 22, building the CLI
# first when it is missing. Needs root on Linux.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/ensure-node.sh
source "$root/scripts/ensure-node.sh"
cd "$root"
if [ "${1:-up}" = up ] && [ ! -f dist/commands/install.js ]; then npm run --silent build >&2; fi
exec node --import tsx lab/cli.ts "$@"
