#!/bin/sh
# The pod's probes. Liveness (no argument, or "live"): succeeds while ucarp runs, or while the agent
# deliberately keeps it stopped because the local API server is unhealthy, the node is cordoned or another
# agent of the vhid runs on the node (restarting the pod would not help then). Readiness ("ready"): the same, except while the agent still
# waits for its first checks: a rolling update must not replace the next node's agent before this one
# runs ucarp (or knows why it must not), or the group could lose its last backup in the middle.
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "${0%/*}/lib.sh"

mode=${1:-live}
case $mode in
  live | ready) ;;
  *)
    echo "healthcheck.sh: unknown mode \"$mode\": live (the default) or ready" >&2
    exit 2
    ;;
esac

# A process that died but was not yet waited for is a zombie; it counts as gone.
alive() { # pid-file expected-name
  state_read "$1"
  pid=$state_value
  [ -n "$pid" ] || return 1
  { read -r st <"/proc/$pid/stat"; } 2>/dev/null || return 1
  case $st in *"($2) "[RSDIWP]" "*) return 0 ;; esac
  return 1
}

# Builtins only (state_read, not a command substitution): the kubelet runs this every few seconds.
if alive ucarp.pid ucarp; then
  state_read role unknown
  echo "ucarp running (role $state_value)"
  exit 0
fi
state_read agent.pid
if [ -r "$KARP_STATE_DIR/gated" ] && [ -n "$state_value" ] && kill -0 "$state_value" 2>/dev/null; then
  state_read gated
  why=$state_value
  case $mode:$why in
    ready:*"waiting for the first"*)
      echo "not ready: ucarp not started yet, $why" >&2
      exit 1
      ;;
  esac
  echo "ucarp stopped on purpose: $why"
  exit 0
fi
echo "ucarp is not running" >&2
exit 1
