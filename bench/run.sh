#!/usr/bin/env bash
# `npm run bench`: every benchmark under bench/, each printing its own figures. Arguments pick some by name.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/ensure-node.sh
source scripts/ensure-node.sh
npm run --silent build >/dev/null
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for dir in bench/*/; do [ -f "$dir/run.ts" ] && names+=("$(basename "$dir")"); done
fi
for name in "${names[@]}"; do
  echo "== bench/$name"
  node --import tsx "bench/$name/run.ts"
done
