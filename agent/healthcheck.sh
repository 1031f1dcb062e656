#!/bin/sh
# Liveness and readiness probe: succeeds while ucarp runs, or while the agent deliberately keeps it
# stopped because the local API server is unhealthy or the node is cordoned (restarting the pod would not
# help then).
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"

# A process that died but was not yet waited for is a zombie; it counts as gone.
alive() { # pid-file expected-name
  pid=$(state_get "$1")
  [ -n "$pid" ] || return 1
  { read -r st <"/proc/$pid/stat"; } 2>/dev/null || return 1
  case $st in *"($2) "[RSDIWP]" "*) return 0 ;; esac
  return 1
}

if alive ucarp.pid ucarp; then
  echo "ucarp running (role $(state_get role unknown))"
  exit 0
fi
if [ -r "$KARP_STATE_DIR/gated" ] && [ -n "$(state_get agent.pid)" ] && kill -0 "$(state_get agent.pid)" 2>/dev/null; then
  echo "ucarp stopped on purpose: $(state_get gated)"
  exit 0
fi
echo "ucarp is not running" >&2
exit 1
