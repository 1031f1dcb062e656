#!/usr/bin/env bash
# `npm test`: build, check the committed oclif manifest is current, lint, build the agent image, then every test suite against
# the real control plane (brought up once by test/global-setup.ts). Arguments narrow the test files.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/ensure-node.sh
source scripts/ensure-node.sh

npm run --silent build
if git rev-parse --is-inside-work-tree >/dev/null 2>&1 && ! git diff --quiet -- oclif.manifest.json; then
  echo "test: oclif.manifest.json is stale; commit the one 'npm run build' generated" >&2
  git --no-pager diff --stat -- oclif.manifest.json >&2
  exit 1
fi
npm run --silent lint
shellcheck -x agent/*.sh scripts/*.sh lab/k8s/*.sh .ci/run
# The agent image the tests run (and the CLI pins): rebuilt only when something that goes into it changed.
npm run --silent image

if [ $# -eq 0 ]; then set -- 'test/**/*.test.ts'; fi
exec node --import tsx --test --test-global-setup=test/global-setup.ts "$@"
