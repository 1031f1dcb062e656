#!/usr/bin/env bash
# `npm run image [-- --update-lock|--force|--out DIR]`: builds the agent image (every architecture) into
# build/image/ as an OCI layout; see scripts/image/build.ts.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/ensure-node.sh
source scripts/ensure-node.sh
exec node --import tsx scripts/image/build.ts "$@"
