#!/usr/bin/env bash
# `npm run bench`: every benchmark under bench/, each printing its own figures. A benchmark is a .ts file in a
# directory of bench/: NAME runs bench/NAME/run.ts, NAME/ENTRY runs bench/NAME/ENTRY.ts (e.g.
# failover/real-nodes). Arguments pick some by name; with none, every one runs. Modules that are not
# benchmarks live deeper (bench/NAME/lib/).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/ensure-node.sh
source scripts/ensure-node.sh
npm run --silent build >/dev/null
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for file in bench/*/*.ts; do
    name=${file#bench/}
    name=${name%.ts}
    names+=("${name%/run}")
  done
fi
for name in "${names[@]}"; do
  case $name in
    */*) file=bench/$name.ts ;;
    *) file=bench/$name/run.ts ;;
  esac
  [ -f "$file" ] || { echo "bench/run.sh: no benchmark $name ($file)" >&2; exit 2; }
  echo "== bench/$name"
  node --import tsx "$file"
done
