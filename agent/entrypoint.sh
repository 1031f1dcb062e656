#!/bin/sh
# karp agent: holds the API server VIP on this node while ucarp says it is CARP master.
# The container's command. Configuration comes from the environment (see README.md); the hooks and
# helpers are found beside this file, so the image and the lab run the very same files.
set -u
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$here/lib.sh"

die() {
  log "fatal=\"$*\""
  exit 2
}
# A value as a message may show it: at most 80 bytes, and every byte outside printable ASCII (and \ and ")
# as \xHH, so a newline or an escape sequence in the environment cannot forge or garble a log line.
shown() {
  value=$1 LC_ALL=C awk 'BEGIN {
    for (i = 1; i < 256; i++) ord[sprintf("%c", i)] = i
    v = ENVIRON["value"]; n = length(v); out = ""
    for (i = 1; i <= n && i <= 80; i++) {
      c = substr(v, i, 1); o = ord[c]
      out = out ((o >= 32 && o < 127 && c != "\\" && c != "\"") ? c : sprintf("\\x%02x", o))
    }
    printf "%s%s", out, (n > 80 ? "..." : "")
  }'
}
refuse() { # name value what-is-allowed
  die "$1=$(shown "$2") is not $3"
}
# Every check matches the whole value (case patterns, never a line-by-line grep or awk): a value with a
# newline or anything after the expected text is refused.
is_uint() { case $1 in '' | *[!0-9]*) return 1 ;; esac }
uint_in() { is_uint "$1" && [ ${#1} -le 9 ] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; } # value min max
is_seconds() { case $1 in '' | .* | *. | *[!0-9.]* | *.*.*) return 1 ;; esac && [ ${#1} -le 9 ]; }
is_positive_seconds() { is_seconds "$1" && case $1 in *[1-9]*) ;; *) false ;; esac }
is_ipv4() {
  case $1 in '' | *[!0-9.]* | .* | *. | *..*) return 1 ;; esac
  # Only digits and dots are left, so the unquoted split below cannot glob.
  set -f
  old_ifs=$IFS IFS=.
  # shellcheck disable=SC2086
  set -- $1
  IFS=$old_ifs
  set +f
  [ $# -eq 4 ] || return 1
  for octet; do
    case $octet in 0 | [1-9] | [1-9][0-9] | [1-9][0-9][0-9]) [ "$octet" -le 255 ] || return 1 ;; *) return 1 ;; esac
  done
}
# Linux interface names, as the CLI's --interface takes them.
is_ifname() {
  case $1 in '' | -* | . | .. | *[!A-Za-z0-9._@-]*) return 1 ;; esac
  [ ${#1} -le 15 ]
}
is_hostname() { case $1 in '' | -* | .* | *[!A-Za-z0-9.-]*) return 1 ;; esac && [ ${#1} -le 253 ]; }

# Seconds (digits, at most one dot) to centiseconds, in $cs.
to_cs() {
  w=${1%%.*} f=${1#*.}
  [ "$f" = "$1" ] && f=
  w=${w#"${w%%[!0]*}"}
  f=${f}00
  f=${f%"${f#??}"}
  cs=$((${w:-0} * 100 + 1$f - 100))
}

# --- configuration --------------------------------------------------------------------------------------
[ -n "${KARP_VIP:-}" ] || die "KARP_VIP is not set"
is_ipv4 "$KARP_VIP" || refuse KARP_VIP "$KARP_VIP" "an IPv4 address"
uint_in "${KARP_VHID:-}" 1 255 || refuse KARP_VHID "${KARP_VHID:-}" "1-255"
KARP_ADVBASE=${KARP_ADVBASE:-1}
uint_in "$KARP_ADVBASE" 1 255 || refuse KARP_ADVBASE "$KARP_ADVBASE" "1-255"
KARP_DEADRATIO=${KARP_DEADRATIO:-3}
uint_in "$KARP_DEADRATIO" 1 255 || refuse KARP_DEADRATIO "$KARP_DEADRATIO" "1-255"
KARP_ADVSKEW=${KARP_ADVSKEW:-auto}
[ "$KARP_ADVSKEW" = auto ] || uint_in "$KARP_ADVSKEW" 0 255 || refuse KARP_ADVSKEW "$KARP_ADVSKEW" "auto or 0-255"
KARP_SKEW_STEP=${KARP_SKEW_STEP:-4}
uint_in "$KARP_SKEW_STEP" 0 36 || refuse KARP_SKEW_STEP "$KARP_SKEW_STEP" "0-36"
KARP_PREEMPT=${KARP_PREEMPT:-false}
case $KARP_PREEMPT in true | false) ;; *) refuse KARP_PREEMPT "$KARP_PREEMPT" "true or false" ;; esac
[ -z "${KARP_INTERFACE:-}" ] || is_ifname "$KARP_INTERFACE" ||
  refuse KARP_INTERFACE "$KARP_INTERFACE" 'an interface name (1-15 letters, digits and . - _ @, not starting with -)'
uint_in "$KARP_VIP_PREFIX" 0 32 || refuse KARP_VIP_PREFIX "$KARP_VIP_PREFIX" "0-32"
is_seconds "$KARP_DRAIN_SECONDS" || refuse KARP_DRAIN_SECONDS "$KARP_DRAIN_SECONDS" "a number of seconds"
is_positive_seconds "$KARP_REPORT_TIMEOUT" || refuse KARP_REPORT_TIMEOUT "$KARP_REPORT_TIMEOUT" "a number of seconds above 0"
KARP_PASSWORD_FILE=${KARP_PASSWORD_FILE:-/etc/karp/password}
[ -r "$KARP_PASSWORD_FILE" ] || die "password file KARP_PASSWORD_FILE=$(shown "$KARP_PASSWORD_FILE") is not readable"
# ucarp keeps the first line of the file; its key holds 20 bytes with the terminating NUL.
pwlen=$(head -n 1 "$KARP_PASSWORD_FILE" | tr -d '\n' | wc -c)
uint_in "$pwlen" 1 19 || die "the password in $(shown "$KARP_PASSWORD_FILE") must be 1-19 bytes (is $pwlen)"
KARP_HEALTH_URL=${KARP_HEALTH_URL:-}
KARP_HEALTH_SERVER_NAME=${KARP_HEALTH_SERVER_NAME:-kubernetes}
KARP_HEALTH_INTERVAL=${KARP_HEALTH_INTERVAL:-0.5}
KARP_HEALTH_TIMEOUT=${KARP_HEALTH_TIMEOUT:-1}
KARP_HEALTH_FAILURES=${KARP_HEALTH_FAILURES:-2}
KARP_HEALTH_SUCCESSES=${KARP_HEALTH_SUCCESSES:-2}
is_positive_seconds "$KARP_HEALTH_INTERVAL" || refuse KARP_HEALTH_INTERVAL "$KARP_HEALTH_INTERVAL" "a number of seconds above 0"
is_positive_seconds "$KARP_HEALTH_TIMEOUT" || refuse KARP_HEALTH_TIMEOUT "$KARP_HEALTH_TIMEOUT" "a number of seconds above 0"
uint_in "$KARP_HEALTH_FAILURES" 1 1000 || refuse KARP_HEALTH_FAILURES "$KARP_HEALTH_FAILURES" "1-1000"
uint_in "$KARP_HEALTH_SUCCESSES" 1 1000 || refuse KARP_HEALTH_SUCCESSES "$KARP_HEALTH_SUCCESSES" "1-1000"
is_hostname "$KARP_HEALTH_SERVER_NAME" || refuse KARP_HEALTH_SERVER_NAME "$KARP_HEALTH_SERVER_NAME" "a DNS name"
# always: no ucarp until the health check passed KARP_HEALTH_SUCCESSES times. after-first-ready (a static pod
# that bootstraps a cluster: its API server cannot be ready before the VIP it serves on is up): ucarp at
# once, and failing checks take the node out only once the check has passed that often.
KARP_HEALTH_GATE=${KARP_HEALTH_GATE:-always}
case $KARP_HEALTH_GATE in always | after-first-ready) ;; *) refuse KARP_HEALTH_GATE "$KARP_HEALTH_GATE" "always or after-first-ready" ;; esac

# The health URL names where to connect; an https server must then prove, with a certificate the cluster
# CA (KARP_CA_FILE) signed for KARP_HEALTH_SERVER_NAME, that it is the API server before the token is sent.
# (Serving certificates carry the name "kubernetes" everywhere, but not always 127.0.0.1.) Over plain
# http nothing can be verified, so no token goes there.
health_scheme='' health_host='' health_port='' health_path=''
if [ -n "$KARP_HEALTH_URL" ]; then
  url_allowed='an http:// or https:// URL of the form SCHEME://HOST[:PORT]/PATH'
  case $KARP_HEALTH_URL in
    https://*) health_scheme=https health_port=443 ;;
    http://*) health_scheme=http health_port=80 ;;
    *) refuse KARP_HEALTH_URL "$KARP_HEALTH_URL" "$url_allowed" ;;
  esac
  rest=${KARP_HEALTH_URL#*://}
  authority=${rest%%/*}
  health_path=${rest#"$authority"}
  case $authority in
    \[*\]) health_host=$authority ;;
    \[*\]:*) health_host="${authority%%]:*}]" health_port=${authority##*]:} ;;
    *:*) health_host=${authority%%:*} health_port=${authority#*:} ;;
    *) health_host=$authority ;;
  esac
  host_ok=false
  case $health_host in
    \[*\])
      inner=${health_host#?}
      inner=${inner%?}
      case $inner in '' | *[!0-9A-Fa-f:.]*) ;; *) host_ok=true ;; esac
      ;;
    *) is_hostname "$health_host" && host_ok=true ;;
  esac
  case $health_path in '' | /*) ;; *) host_ok=false ;; esac
  case $health_path in *[!A-Za-z0-9._~/?=\&%:@+,-]*) host_ok=false ;; esac
  uint_in "$health_port" 1 65535 || host_ok=false
  [ "$host_ok" = true ] || refuse KARP_HEALTH_URL "$KARP_HEALTH_URL" "$url_allowed"
  [ -n "$health_path" ] || health_path=/
  if [ "$health_scheme" = https ] && ! [ -r "$KARP_CA_FILE" ]; then
    die "KARP_CA_FILE=$(shown "$KARP_CA_FILE") is not readable: it verifies the server of KARP_HEALTH_URL"
  fi
fi
# A backup notices a silent master after advbase x deadratio plus up to two advertisement periods (ucarp
# checks its timers once per period and reads packets up to 1 s late). In a password roll-out the nodes
# on the new password only listen while this one holds the VIP, and run ucarp as usual only once its
# advertisements stopped for 2 x advbase + 0.5 s (foreign_tick), noticed within one pass of their loop
# (up to 1.5 s); wait that long for a successor too.
KARP_HANDOVER_TIMEOUT=${KARP_HANDOVER_TIMEOUT:-$((KARP_ADVBASE * (KARP_DEADRATIO + 4) + 4))}
uint_in "$KARP_HANDOVER_TIMEOUT" 0 100000 || refuse KARP_HANDOVER_TIMEOUT "$KARP_HANDOVER_TIMEOUT" "whole seconds"
# A graceful stop (SIGTERM) ends within this many seconds, whatever the network does: the handover is cut
# short to fit and the last role report is abandoned at the deadline. It must stay below the pod's
# terminationGracePeriodSeconds (15), which also covers the up to 1.3 s before a busy agent notices the
# signal; after that the kubelet SIGKILLs the agent, and a SIGKILLed agent leaves the VIP behind until its
# lease runs out (KARP_VIP_LIFETIME).
KARP_STOP_TIMEOUT=${KARP_STOP_TIMEOUT:-12}
uint_in "$KARP_STOP_TIMEOUT" 2 3600 || refuse KARP_STOP_TIMEOUT "$KARP_STOP_TIMEOUT" "2-3600 seconds"
KARP_NODE_INTERVAL=${KARP_NODE_INTERVAL:-2}
is_positive_seconds "$KARP_NODE_INTERVAL" || refuse KARP_NODE_INTERVAL "$KARP_NODE_INTERVAL" "a number of seconds above 0"
KARP_RANK_STEP=${KARP_RANK_STEP:-4}
uint_in "$KARP_RANK_STEP" 0 63 || refuse KARP_RANK_STEP "$KARP_RANK_STEP" "0-63 advertisement periods"
# Both set by the DaemonSet (the pod template's labels, and the revision its pods carry), or neither.
KARP_PEER_SELECTOR=${KARP_PEER_SELECTOR:-}
case $KARP_PEER_SELECTOR in *[!A-Za-z0-9._/=,-]*) refuse KARP_PEER_SELECTOR "$KARP_PEER_SELECTOR" "a label selector of key=value pairs" ;; esac
KARP_REVISION=${KARP_REVISION:-}
case $KARP_REVISION in *[!A-Za-z0-9._-]*) refuse KARP_REVISION "$KARP_REVISION" "a label value (the pod's controller-revision-hash)" ;; esac
# NODE_NAME goes into a request path (and every log line): a Kubernetes node name or nothing.
if [ -n "${NODE_NAME:-}" ] && ! is_hostname "$NODE_NAME"; then
  name=$NODE_NAME NODE_NAME=
  refuse NODE_NAME "$name" "a node name"
fi
interval=1
[ -n "$KARP_HEALTH_URL" ] && interval=$KARP_HEALTH_INTERVAL
# The VIP is a lease (lib.sh, vip_add): the kernel removes it KARP_VIP_LIFETIME seconds after its last
# renewal. It must outlast the dead interval (advbase x deadratio: after an agent crash the node's API
# server still serves through the VIP until a backup takes over), the drain of a yielding master (which
# renews once, when the drain starts) and the longest a healthy master's loop goes without renewing: one
# health check (KARP_HEALTH_TIMEOUT) and the pause before it. The default is one second more than that.
to_cs "$KARP_DRAIN_SECONDS"
lease_floor=$cs
[ $((KARP_ADVBASE * KARP_DEADRATIO * 100)) -gt "$lease_floor" ] && lease_floor=$((KARP_ADVBASE * KARP_DEADRATIO * 100))
to_cs "$interval"
loop_pause=$cs
if [ -n "$KARP_HEALTH_URL" ]; then
  to_cs "$KARP_HEALTH_TIMEOUT"
  loop_pause=$((loop_pause + cs))
fi
# and one ARP probe (at most 1 s) while another CARP group advertises on this vhid (foreign_tick)
loop_pause=$((loop_pause + 100))
[ "$loop_pause" -gt "$lease_floor" ] && lease_floor=$loop_pause
lease_min=$((lease_floor / 100 + 1)) lease_max=86400
[ "$lease_min" -gt "$lease_max" ] && lease_max=$lease_min
KARP_VIP_LIFETIME=${KARP_VIP_LIFETIME:-$((lease_floor / 100 + 1))}
uint_in "$KARP_VIP_LIFETIME" "$lease_min" "$lease_max" || refuse KARP_VIP_LIFETIME "$KARP_VIP_LIFETIME" \
  "whole seconds from $lease_min to $lease_max (longer than the dead interval, KARP_DRAIN_SECONDS and one health check with the pause before it)"
# For the hooks, which add the VIP (up.sh also waits for another CARP group: foreign_heard in lib.sh; a
# yielding down.sh advertises once more, as ucarp does).
export KARP_VIP_LIFETIME KARP_ADVBASE KARP_VHID KARP_PASSWORD_FILE

mkdir -p "$KARP_STATE_DIR" || die "cannot create KARP_STATE_DIR=$(shown "$KARP_STATE_DIR")"
rm -f "$KARP_STATE_DIR/ucarp.pid" "$KARP_STATE_DIR/gated" "$KARP_STATE_DIR/eligible.sent" "$KARP_STATE_DIR/holding" "$KARP_STATE_DIR/gen" "$KARP_STATE_DIR"/.auth.* "$KARP_STATE_DIR"/.answer.* "$KARP_STATE_DIR"/hook.*
state_set role init
state_set agent.pid $$

# --- processes -----------------------------------------------------------------------------------------
# Running, and not a zombie (a child that died stays one until waited for; kill -0 would say it lives).
proc_alive() { # pid
  [ -n "$1" ] || return 1
  { read -r st <"/proc/$1/stat"; } 2>/dev/null || return 1
  case $st in *") Z "* | *") X "*) return 1 ;; esac
  return 0
}

# Sends the signal to a process and everything it started, as /proc shows them now.
kill_tree() { # signal pid
  # shellcheck disable=SC2046 # one pid per word
  kill "-$1" $(cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$2" '
    { pid = $1; sub(/.*\) /, ""); parent[pid] = $2 }
    END {
      keep[root] = 1; more = 1
      while (more) { more = 0; for (p in parent) if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; more = 1 } }
      for (p in keep) print p
    }') 2>/dev/null
}

# --- ucarp ---------------------------------------------------------------------------------------------
ucarp_pid='' listening='' ucarp_deadratio='' ucarp_skew=''
# ucarp reads advertisements through libpcap, which on Linux hands them over in batches of up to a second
# unless the capture is in immediate mode; karp-pcap-immediate.so (agent/tls), preloaded, opens it so.
capture=immediate capture_preload=$here/karp-pcap-immediate.so
[ -r "$capture_preload" ] || capture="batched (no $capture_preload)" capture_preload=''
start_ucarp() { # why [hold|listen]
  state_set start_reason "$1"
  neutral='' listening=''
  rank_deadratio
  rank_skew
  ucarp_skew=$advskew
  # What down.sh's yield advertises as this node's ucarp would.
  state_set advert "$src $advskew"
  # A listener (foreign_tick) waits 255 advertisement periods before it would elect itself: never, in practice.
  [ "${2:-}" = listen ] && listening=1 deadratio=255
  ucarp_deadratio=$deadratio
  # A node that holds the VIP (see hold_vip) stays its holder until ucarp is elected or another node
  # answers for the VIP: --neutral keeps ucarp from running the down script at start, which would take
  # the VIP off as if this node had yielded to a preferred master.
  if [ "${2:-}" = hold ]; then neutral=--neutral; else state_set role init; fi
  set -- --interface="$iface" --srcip="$src" --vhid="$KARP_VHID" --passfile="$KARP_PASSWORD_FILE" \
    --addr="$KARP_VIP" --advbase="$KARP_ADVBASE" --advskew="$advskew" --deadratio="$deadratio" \
    --upscript="$here/up.sh" --downscript="$here/down.sh" --shutdown
  [ "$KARP_PREEMPT" = true ] && set -- "$@" --preempt
  [ -n "$neutral" ] && set -- "$@" "$neutral"
  # A leaving master's advertisement (carp_leave) times out every backup whose dead interval is shorter
  # than what it announces, all at once; karp-pcap-immediate.so holds it back 40 ms per 1/256 s of skew
  # above 1, and drops it if a backup that held back less advertises meanwhile. Two nodes' automatic skews
  # differ by KARP_SKEW_STEP (4) at least: 160 ms apart, well beyond the time from a takeover to its first
  # advertisement (up.sh sends it first thing: 21-42 ms in the agent lab, loaded). 25 ms per step (100 ms
  # apart) let two backups take over together in CI, where up.sh, which then advertised only once it had
  # put the VIP on, took 150 ms. Rank 0 (skew 1) holds nothing back.
  hold_ms=0
  [ "$advskew" -gt 1 ] && hold_ms=$(((advskew - 1) * 40))
  dead_ms=$((KARP_ADVBASE * deadratio * 1000))
  # ucarp's warnings (and its hooks' log lines) go through the nap FIFO: nap reads and passes them on,
  # and notes another CARP group's advertisements on the way (ucarp_said).
  if [ "$nap_read" = true ]; then
    PCAP_IMMEDIATE_HOLD_MS=$hold_ms PCAP_IMMEDIATE_DEAD_MS=$dead_ms LD_PRELOAD=$capture_preload ucarp "$@" </dev/null 2>&3 3>&- &
  else
    PCAP_IMMEDIATE_HOLD_MS=$hold_ms PCAP_IMMEDIATE_DEAD_MS=$dead_ms LD_PRELOAD=$capture_preload ucarp "$@" </dev/null 3>&- &
  fi
  ucarp_pid=$!
  state_set ucarp.pid "$ucarp_pid"
}

# A hook of ours (up.sh or down.sh, or a subshell of one), not some process that got a dead hook's pid.
is_hook() { # pid
  { cmd=$(tr '\0' ' ' <"/proc/$1/cmdline"); } 2>/dev/null || return 1
  case $cmd in *"$here/up.sh "* | *"$here/down.sh "*) return 0 ;; esac
  return 1
}

# ucarp waits for its hooks, but killing ucarp does not stop a hook that is running: an up.sh could add the
# VIP after this agent looked for it. Every hook registers (hook.<pid>) before it checks that its ucarp
# still runs (hook_current, lib.sh); so once ucarp is dead, waiting for the registered hooks is enough:
# a hook that registers later finds ucarp gone and adds nothing. One that takes longer than 2 s is killed
# with whatever it started.
hooks_settle() {
  now_cs
  hooks_until=$((now + 200))
  for hook in "$KARP_STATE_DIR"/hook.*; do
    [ -e "$hook" ] || continue
    hook_pid=${hook##*/hook.}
    proc_alive "$hook_pid" && is_hook "$hook_pid" && log "waiting_for_hook=$hook_pid reason=\"ucarp stopped while its hook ran\""
    while proc_alive "$hook_pid" && is_hook "$hook_pid"; do
      now_cs
      if [ "$now" -ge "$hooks_until" ]; then
        kill_tree KILL "$hook_pid"
        log "warning=hook-killed pid=$hook_pid reason=\"still running 2 s after ucarp stopped\""
        break
      fi
      lease_renew
      nap 0.05
    done
    rm -f "$hook"
  done
}

# SIGKILL: no more advertisements, and no down script (the agent itself decides what happens to the VIP).
stop_ucarp() {
  if [ -n "$ucarp_pid" ]; then
    kill -KILL "$ucarp_pid" 2>/dev/null
    wait "$ucarp_pid" 2>/dev/null
    ucarp_pid=
    rm -f "$KARP_STATE_DIR/ucarp.pid"
  fi
  hooks_settle
  nap_drain
}

# --- stopping ------------------------------------------------------------------------------------------
# Set once, when the agent starts to stop (SIGTERM, or ucarp gone): everything after must end by then.
stop_deadline=
stop_clock() {
  [ -n "$stop_deadline" ] && return 0
  now_cs
  stop_deadline=$((now + KARP_STOP_TIMEOUT * 100))
}

# The last role report of an agent about to exit runs in the foreground (a background one would die with
# the agent) but never past the stop deadline: each request gets at most the time left, and whatever is
# still running at the deadline is killed.
final_report() { # reason
  now_cs
  to_cs "$KARP_REPORT_TIMEOUT"
  left=$((stop_deadline - now))
  [ "$cs" -lt "$left" ] && left=$cs
  if [ "$left" -lt 10 ]; then
    log "warning=report-skipped role=backup reason=\"the stop deadline is near\""
    return 0
  fi
  secs=$((left / 100)).$((left % 100 / 10))
  (
    # shellcheck disable=SC2030 # this subshell's own timeout
    KARP_REPORT_TIMEOUT=$secs
    report_role backup "$1" wait
  ) 3>&- &
  reporter=$!
  report_until=$((now + left))
  while proc_alive "$reporter"; do
    now_cs
    if [ "$now" -ge "$report_until" ]; then
      kill_tree KILL "$reporter"
      log "warning=report-abandoned role=backup after=${secs}s"
      break
    fi
    nap 0.1
  done
  wait "$reporter" 2>/dev/null
}

# A backup takes over at once from a master that announces an advertisement interval longer than its own
# dead interval (ucarp: "Putting MASTER DOWN (going to time out)"): karp-carp-leave (agent/tls) sends that
# advertisement, signed with the group's password, once this node's ucarp is stopped. A listener (deadratio
# 255, foreign_tick) does not react to it.
leave_advbase=$((KARP_ADVBASE * KARP_DEADRATIO + 1))
[ "$leave_advbase" -le 255 ] || leave_advbase=255
carp_leave() {
  if leave_out=$(karp-carp-leave --srcip "$src" --vhid "$KARP_VHID" --vip "$KARP_VIP" --passfile "$KARP_PASSWORD_FILE" \
    --advbase "$leave_advbase" 2>&1 </dev/null 3>&-); then
    log "carp_leave=sent advbase=$leave_advbase reason=\"the backups take over without waiting out the dead interval\""
  else
    log "warning=carp-leave-failed detail=\"$(printf '%s' "$leave_out" | tr '\n"' '  ')\""
  fi
}

# Whether another host answers ARP for the VIP (only a new holder does): probes 0.25 s apart, four in all,
# true at the first answer. busybox arping waits whole seconds for a reply, so one probe at a time would
# notice a successor up to 1 s late, and both nodes would hold the VIP that much longer.
successor_answers() {
  probes='' sent=0 answered=1
  while :; do
    if [ "$sent" -lt 4 ]; then
      # arping -D exits 1 when some host answered for the address (busybox: and on an error, as ever here).
      arping -D -q -c 1 -w 1 -I "$iface" "$KARP_VIP" </dev/null >/dev/null 2>&1 3>&- &
      probes="$probes $!" sent=$((sent + 1))
    fi
    running=''
    for probe in $probes; do
      if proc_alive "$probe"; then
        running="$running $probe"
      elif ! wait "$probe"; then
        answered=0
      fi
    done
    probes=$running
    [ "$answered" = 0 ] || { [ -z "$probes" ] && [ "$sent" -ge 4 ]; } && break
    sleep 0.25
  done
  for probe in $probes; do
    kill "$probe" 2>/dev/null
    wait "$probe" 2>/dev/null
  done
  return "$answered"
}

# Make-before-break: ucarp never tells the backups it leaves, so they take over only when its
# advertisements stop for the dead interval. Stop advertising, keep answering for the VIP meanwhile, and
# let it go once another node answers ARP for it (or after KARP_HANDOVER_TIMEOUT, e.g. a single node).
# When stopping, the wait ends 2.2 s before the stop deadline (one more round of probes and the 0.3 s fit).
# With "keep" (a cordoned node, whose API server is fine) a VIP nobody else takes stays: see hold_vip.
# With "leave" (its API server is dead: clients already fail) a master also tells the backups to take over
# now (carp_leave); elsewhere the VIP is served meanwhile, and a slower handover costs nothing.
handover() { # to-role reason [keep|leave]
  stop_ucarp
  now_cs
  handover_began=$now
  from=$(state_get role init)
  [ "${3:-}" = leave ] && [ "$from" = master ] && carp_leave
  gen_bump
  state_set role backup
  released=none successor=none
  if vip_held "$iface"; then
    now_cs
    limit=$((now + KARP_HANDOVER_TIMEOUT * 100))
    successor=timeout
    while :; do
      [ -n "$stop_deadline" ] && [ $((stop_deadline - 220)) -lt "$limit" ] && limit=$((stop_deadline - 220))
      now_cs
      [ "$now" -lt "$limit" ] || break
      # Held on purpose until a successor answers: a round of probes takes up to 1.75 s, the lease outlasts it.
      vip_renew "$iface"
      if successor_answers; then
        successor=seen
        # Give the successor's own gratuitous ARP time to go out before this node stops answering.
        sleep 0.3
        break
      fi
    done
    if [ "$successor" = timeout ] && [ "${3:-}" = keep ]; then
      hold_vip "$2"
      return 0
    fi
    vip_del "$iface"
    released=now
  fi
  rm -f "$KARP_STATE_DIR/holding"
  now_cs
  cs_seconds $((now - handover_began))
  log "role=$1 from=$from vip=$KARP_VIP iface=$iface reason=\"$2\" successor=$successor vip_released=$released after=${seconds_text}s"
  if [ "$1" = stopped ]; then final_report "$2"; else report_role backup "$2"; fi
}

# A cordoned master that found no successor keeps the VIP: its API server is fine, and letting the VIP go
# would cut every client off (a single control-plane node, or all the others cordoned or unhealthy). It
# stays out of CARP (no ucarp while cordoned) and keeps answering for the VIP until another node does
# (hold_probe), e.g. one that gets uncordoned, or until this node may run ucarp again.
hold_vip() { # reason
  : >"$KARP_STATE_DIR/holding"
  state_set role master
  why="$1, but no other node took the VIP within $KARP_HANDOVER_TIMEOUT s: holding it until one does"
  log "role=master from=$from vip=$KARP_VIP iface=$iface reason=\"$why\" successor=timeout vip_released=no eligible=false"
  report_role master "$why"
}

# While holding: one ARP probe (at most 1 s); once another node answers for the VIP, clients can be sent
# there, so this node lets it go as at the end of a handover. Not if this node's own ucarp (started
# --neutral once the node may run it again) was elected meanwhile: up.sh then moved the generation.
hold_probe() {
  [ -e "$KARP_STATE_DIR/holding" ] || return 0
  state_read gen
  g=$state_value
  if arping -D -q -c 1 -w 1 -I "$iface" "$KARP_VIP" >/dev/null 2>&1; then
    # Nobody else answers: still this node's to hold (and to put back, when its lease lapsed).
    vip_renew "$iface"
    now_cs
    lease_at=$now
    return 0
  fi
  sleep 0.3
  state_read gen
  [ -e "$KARP_STATE_DIR/holding" ] && [ "$state_value" = "$g" ] || return 0
  rm -f "$KARP_STATE_DIR/holding"
  state_set role backup
  vip_del "$iface"
  why="another node took the VIP"
  [ -n "$node_gate" ] && why="$node_gate: $why"
  log "role=backup from=master vip=$KARP_VIP iface=$iface reason=\"$why\" successor=seen vip_released=now"
  report_role backup "$why"
}

# --- the lease -----------------------------------------------------------------------------------------
# While this node holds the VIP on purpose its lease is renewed about every half second: as master (role
# master: elected by CARP, or a cordoned holder, see hold_vip) from the main loop and from hooks_settle, and
# during a handover by the handover itself. Never once the node let the VIP go: whatever removes the VIP
# sets another role first, and up.sh sets master only once the VIP is on. A renewal adds a missing VIP
# (ip addr change, lib.sh), so a master without one is a lapsed lease; and since down.sh (another process)
# can remove the VIP while a renewal is on its way, the role is read again afterwards.
lease_cs=$((KARP_VIP_LIFETIME * 100))
lease_at=''
lease_renew() {
  lease_role=''
  { read -r lease_role <"$KARP_STATE_DIR/role"; } 2>/dev/null
  if [ "$lease_role" != master ]; then
    lease_at=''
    return 0
  fi
  now_cs
  [ -n "$lease_at" ] && [ $((now - lease_at)) -lt 40 ] && return 0
  lapsed=''
  if [ -n "$lease_at" ] && [ $((now - lease_at)) -ge "$lease_cs" ]; then
    # This shell did not run for a whole lifetime (a frozen or starved container) and the kernel has taken
    # the VIP off. ucarp, still master, kept advertising, so no other node took it: put it back.
    lapsed=$((now - lease_at))
    lapsed=$((lapsed / 100)).$((lapsed % 100 / 10))
    log "warning=vip-lease-lapsed vip=$KARP_VIP iface=$iface unrenewed=${lapsed}s lifetime=${KARP_VIP_LIFETIME}s"
    if [ -e "$KARP_STATE_DIR/holding" ]; then
      # Out of CARP: another node may have taken the VIP meanwhile. hold_probe puts it back only if none
      # answers for it, and lets it go otherwise.
      hold_probe
      return 0
    fi
  fi
  vip_renew "$iface"
  now_cs
  lease_at=$now
  { read -r lease_role <"$KARP_STATE_DIR/role"; } 2>/dev/null
  # down.sh removes the VIP at once only when the link lost carrier; anything else it releases later.
  [ "$lease_role" = master ] || has_carrier "$iface" || vip_del "$iface"
  if [ -n "$lapsed" ] && [ "$lease_role" = master ]; then
    log "vip_restored=$KARP_VIP iface=$iface reason=\"the lease lapsed while this node was master\""
    (garp "$iface" </dev/null >/dev/null 2>&1 3>&- &)
  fi
}

# --- another CARP group on this vhid ----------------------------------------------------------------------
# While the DaemonSet rolls out a new password, the rolled nodes and the others are two CARP groups that
# cannot hear each other (ucarp drops the other's advertisements as "Bad digest"), and each would elect a
# master: two holders. So a node that hears the other group's master while not holding the VIP asks who
# answers for the VIP; when a node does, it only listens: its ucarp runs with --deadratio 255, so it is
# never elected and sends no advertisement and no gratuitous ARP (which would point clients at a node
# without the VIP). When the other group's master falls silent (it stops for a handover and keeps
# answering for the VIP until a successor does, so clients see no gap) the node runs ucarp as usual again
# and its group elects a master. When nobody answers for the VIP, that group is not holding it (another
# VIP on the same vhid): the node ignores it until it falls silent.
# A node that ucarp elects just before it heard the other group is "deferred" (up.sh): CARP master without
# the VIP; it takes the VIP when nobody answers for it, and listens otherwise. A holder that hears the
# other group keeps the VIP and announces it again (ucarp_said); every foreign_cs it checks that no other
# node answers for it too, and if one does (both took it at once), the higher MAC address lets it go.
foreign_probe_at=0 foreign_ignored=''
foreign_tick() {
  [ -n "$ucarp_pid" ] && [ "$nap_read" = true ] || return 0
  nap_drain
  foreign_role=''
  { read -r foreign_role <"$KARP_STATE_DIR/role"; } 2>/dev/null
  now_cs
  if [ -z "$foreign_at" ] || [ $((now - foreign_at)) -ge "$foreign_cs" ]; then
    foreign_ignored=''
    if [ -n "$listening" ]; then
      restart_ucarp "the other CARP group's master stopped advertising"
    elif [ "$foreign_role" = deferred ]; then
      foreign_take "$(state_get gen)" "the other CARP group's master stopped advertising"
    fi
    return 0
  fi
  if [ "$foreign_role" = master ]; then
    foreign_duplicate
    return 0
  fi
  [ -e "$KARP_STATE_DIR/holding" ] && return 0
  [ -n "$foreign_ignored" ] && [ "$foreign_role" != deferred ] && return 0
  [ $((now - foreign_probe_at)) -ge 100 ] || return 0
  foreign_probe_at=$now
  state_read gen
  g=$state_value
  # arping -D exits 0 when no host answered for the address (two probes, 1 s apart).
  if arping -D -q -c 2 -w 2 -I "$iface" "$KARP_VIP" >/dev/null 2>&1; then
    foreign_ignored=1
    rm -f "$KARP_STATE_DIR/foreign"
    log "foreign_group=ignored vhid=$KARP_VHID reason=\"nobody answers for the VIP: the other group holds another address\""
    if [ "$foreign_role" = deferred ]; then
      foreign_take "$g" "nobody answers for the VIP"
    elif [ -n "$listening" ]; then
      restart_ucarp "nobody answers for the VIP"
    fi
  elif [ -z "$listening" ]; then
    foreign_ignored=''
    from=$foreign_role
    stop_ucarp
    gen_bump
    state_set role backup
    why="another CARP group's master advertises and a node answers for the VIP: listening until that master stops"
    log "role=backup from=$from vip=$KARP_VIP iface=$iface reason=\"$why\" listening=true"
    [ "$from" = deferred ] && report_role backup "$why"
    start_ucarp "$why" listen
  fi
}

# Runs ucarp as usual again (as backup: its group elects a master within the dead interval).
restart_ucarp() { # why
  stop_ucarp
  log "role=backup from=$(state_get role init) vip=$KARP_VIP iface=$iface reason=\"$1\" listening=false"
  start_ucarp "$1"
}

# A holder that hears another group: is it the only node answering for the VIP? Only the same answer twice
# in a row, foreign_cs apart, counts: a master of this node's own group that yielded (down.sh) keeps
# answering for KARP_DRAIN_SECONDS.
foreign_other=''
foreign_duplicate() {
  [ $((now - foreign_probe_at)) -ge "$foreign_cs" ] && ! [ -e "$KARP_STATE_DIR/holding" ] || return 0
  foreign_probe_at=$now
  answer=$(arping -D -c 1 -w 1 -I "$iface" "$KARP_VIP" 2>/dev/null) && foreign_other='' && return 0
  other=$(printf '%s\n' "$answer" | sed -n 's/.*reply from [^ ]* \[\([0-9A-Fa-f:]*\)\].*/\1/p' | tr A-F a-f)
  seen=$foreign_other
  foreign_other=$other
  [ -n "$other" ] && [ "$other" = "$seen" ] || return 0
  mine=$(tr A-F a-f <"/sys/class/net/$iface/address")
  if awk -v mine="$mine" -v other="$other" 'BEGIN { exit !(mine > other) }'; then
    gen_bump
    state_set role deferred
    vip_del "$iface"
    why="$other answers for the VIP too while another CARP group advertises: the lower MAC address keeps it"
    log "role=deferred from=master vip=$KARP_VIP iface=$iface reason=\"$why\" vip_released=now"
    report_role backup "$why"
  else
    log "warning=vip-also-held other=$other vip=$KARP_VIP iface=$iface reason=\"another CARP group advertises: the lower MAC address, this node's, keeps the VIP\""
    (garp "$iface") </dev/null >/dev/null 2>&1 3>&- &
  fi
}

# A deferred node takes the VIP as up.sh would have. The hook that can run meanwhile is down.sh (this
# node's ucarp is master already): when it moved the generation, its decision stands.
foreign_take() { # generation reason
  [ "$(state_get gen)" = "$1" ] || return 0
  vip_add "$iface" || return 0
  state_set role master
  if [ "$(state_get gen)" != "$1" ]; then
    state_set role backup
    vip_del "$iface"
    return 0
  fi
  now_cs
  lease_at=$now
  log "role=master from=deferred vip=$KARP_VIP/$KARP_VIP_PREFIX iface=$iface reason=\"$2\""
  announce "$iface"
  report_role master "$2"
}

stopping=0
shutdown_agent() {
  trap '' TERM INT
  stop_clock
  polls_stop
  stop_ucarp
  # A node draining after a yield holds the VIP too: the preferred master answers for it already.
  if [ "$(state_get role)" = master ] || vip_held "$iface"; then
    handover stopped "shutdown: handed the VIP over"
  else
    from=$(state_get role init)
    gen_bump
    state_set role backup
    log "role=stopped from=$from vip=$KARP_VIP iface=$iface reason=\"shutdown\""
  fi
  rm -f "$KARP_STATE_DIR/agent.pid" "$KARP_STATE_DIR/gated"
  end_reports
  exit 0
}

# Role reports still retrying (report_role_now, lib.sh) end with the agent. In a pod they would die with
# it anyway; elsewhere (a lab, a shell) they would go on for up to a request's timeout. SIGHUP to the
# agent's process group, which the agent itself ignores from here on.
end_reports() {
  trap '' HUP
  kill -HUP 0 2>/dev/null
}
trap 'stopping=1; stop_clock' TERM INT

# Interruptible sleep: a trapped signal ends it at once. Where the shell's read has a timeout (busybox ash,
# the image's shell) it waits on a FIFO nobody writes, which saves a sleep process that would otherwise
# be alive nearly all the time; elsewhere (dash) sleep runs in the background and wait is interrupted.
rm -f "$KARP_STATE_DIR/nap"
nap_read=false
if mkfifo "$KARP_STATE_DIR/nap" 2>/dev/null && exec 3<>"$KARP_STATE_DIR/nap"; then
  # shellcheck disable=SC3045 # feature-tested here: dash rejects -t with status 2
  (read -r -t 0.01 _ <&3) 2>/dev/null
  [ $? -ne 2 ] && nap_read=true
fi
# Lines in the FIFO are ucarp's messages (start_ucarp): each one is passed on and the wait goes on.
nap() {
  if [ "$nap_read" = true ]; then
    to_cs "$1"
    now_cs
    nap_until=$((now + cs)) nap_for=$1
    while :; do
      nap_line=''
      # shellcheck disable=SC3045 # only when the test above found -t
      read -r -t "$nap_for" nap_line <&3 || return 0
      ucarp_said "$nap_line"
      now_cs
      [ "$now" -lt "$nap_until" ] || return 0
      cs_seconds $((nap_until - now))
      nap_for=$seconds_text
    done
  fi
  sleep "$1" 3>&- &
  napper=$!
  wait "$napper" 2>/dev/null
  kill "$napper" 2>/dev/null
}

# What ucarp wrote and nap has not read yet, now: a decision about another CARP group must not rest on
# advertisements still waiting in the FIFO.
nap_drain() {
  [ "$nap_read" = true ] || return 0
  while :; do
    nap_line=''
    # shellcheck disable=SC3045 # only when the test above found -t
    read -r -t 0.01 nap_line <&3 || return 0
    ucarp_said "$nap_line"
  done
}

foreign_at=''
foreign_window
ucarp_said() { # line
  printf '%s\n' "$1" >&2
  case $1 in
    *"Bad digest"*)
      now_cs
      if [ -z "$foreign_at" ] || [ $((now - foreign_at)) -ge "$foreign_cs" ]; then
        log "warning=foreign-carp-group vhid=$KARP_VHID iface=$iface reason=\"ucarp rejects advertisements for vhid $KARP_VHID (another password or VIP), e.g. while a new password rolls out\""
        # Its master's gratuitous ARP, sent when it was elected, may have turned clients away from here.
        [ "$(state_get role)" = master ] && announce "$iface"
      fi
      foreign_at=$now
      [ -n "$foreign_ignored" ] || state_set foreign "$now"
      ;;
  esac
}

# One check of KARP_HEALTH_URL within KARP_HEALTH_TIMEOUT: true for a 2xx answer; why not in health.err.
health_ok() {
  if [ "$health_scheme" = https ]; then
    # karp-tls reads the token file only after the server proved to be the API server: the token reaches
    # it or nobody.
    set -- --name "$KARP_HEALTH_SERVER_NAME" --ca "$KARP_CA_FILE" --host "$KARP_HEALTH_SERVER_NAME:$health_port" \
      --token-file "$KARP_TOKEN_FILE"
  else
    set -- --plain --host "$health_host:$health_port"
  fi
  # In the background, so that a signal ends the wait at once. karp-tls writes the request itself: one
  # process per check.
  karp-tls --connect "$health_host:$health_port" "$@" --get "$health_path" --timeout "$KARP_HEALTH_TIMEOUT" \
    >"$KARP_STATE_DIR/health.out" 2>"$KARP_STATE_DIR/health.err" 3>&- &
  checker=$!
  wait "$checker"
  rc=$?
  if [ "$rc" -gt 128 ]; then
    kill "$checker" 2>/dev/null
    return "$rc"
  fi
  [ "$rc" = 0 ] || return 1
  http_status "$KARP_STATE_DIR/health.out"
  case $code in 2??) return 0 ;; esac
  printf 'HTTP status %s\n' "$code" >"$KARP_STATE_DIR/health.err"
  return 1
}

# --- the node: cordoned or not -------------------------------------------------------------------------
# kubectl cordon and drain mark the Node unschedulable, and drain leaves DaemonSet pods running: a drained
# holder would keep the VIP until the node goes down, and clients would see a crash-sized outage. So the
# agent reads its own Node (GET /api/v1/nodes/$NODE_NAME, the one thing its ClusterRole allows) every
# KARP_NODE_INTERVAL, in the background, so the health loop never waits for it. A cordoned node hands the
# VIP over and stays out of CARP until uncordoned. Only a definite answer counts: when the API server
# cannot be reached or refuses (401, 403, 404), the last known state stays, and a first check that fails
# counts as not cordoned; losing the VIP because the API is unreachable would be the worst time. (ucarp
# waits for that first check, at most KARP_REPORT_TIMEOUT, so a restarted agent on a cordoned node never
# runs it.)
node_check=off
if [ -n "${KUBERNETES_SERVICE_HOST:-}" ] && [ -n "${NODE_NAME:-}" ]; then
  node_check=on
  api_endpoint
fi
to_cs "$KARP_NODE_INTERVAL"
node_every=$cs
node_poller='' node_due=0 node_failing='' peers_due=''
# Why the node keeps this agent out of CARP; empty: it does not.
node_gate=''
[ "$node_check" = on ] && node_gate="waiting for the first check of node $NODE_NAME"

# A GET of the API server in the background, its pid in getter: the answer in one piece, no chunked framing
# (HTTP/1.0), for the searches that read it, in <name>.out, and what went wrong in <name>.err.
api_get_start() { # path name
  # shellcheck disable=SC2031 # final_report's subshell changes KARP_REPORT_TIMEOUT for itself alone
  karp-tls --connect "$api_host" --name "$KUBERNETES_SERVICE_HOST" --ca "$KARP_CA_FILE" --timeout "$KARP_REPORT_TIMEOUT" \
    --get "$1" --host "$api_host" --token-file "$KARP_TOKEN_FILE" >"$KARP_STATE_DIR/$2.out" 2>"$KARP_STATE_DIR/$2.err" 3>&- &
  getter=$!
}

# The finished GET of api_get_start (pid, name): why empty when the answer is a 200 (in <name>.out, code set),
# else what went wrong.
api_get_finish() { # pid name
  wait "$1"
  rc=$?
  why=
  if [ "$rc" != 0 ]; then
    why=$(one_line "$KARP_STATE_DIR/$2.err")
    why=${why:-karp-tls exited with status $rc}
  else
    http_status "$KARP_STATE_DIR/$2.out"
    [ "$code" = 200 ] || why="HTTP status $code"
  fi
}

# Ends the reads of the Node and of the peers that still run.
polls_stop() {
  for getter in $node_poller $peers_poller; do
    kill "$getter" 2>/dev/null
    wait "$getter" 2>/dev/null
  done
  node_poller='' peers_poller=''
}

# A poll still running gets up to 0.3 s to end before this pass starts processes of its own (ip, the health
# check's karp-tls, awk): the pod's memory peak is what runs at once, and a poll usually ends in tens of ms.
# A slow API server (a poll waits up to KARP_REPORT_TIMEOUT) delays a pass by no more than that.
polls_settle() {
  settles=0
  while [ "$settles" -lt 15 ] && [ "$stopping" = 0 ] && { proc_alive "$node_poller" || proc_alive "$peers_poller"; }; do
    settles=$((settles + 1))
    nap 0.02
  done
}

# One poll of the Node and one of the peers per KARP_NODE_INTERVAL, and the probe of a node holding the VIP
# outside CARP. The peers' GET starts only once the Node's has ended: each is a karp-tls (up to 1.8 MB) and
# a forked shell, and the pod's memory peak is what runs at once.
node_tick() {
  if [ -n "$peers_due" ] && [ -z "$node_poller" ] && [ -z "$peers_poller" ]; then
    peers_due=''
    api_get_start "/api/v1/namespaces/$POD_NAMESPACE/pods?labelSelector=$peers_query" peers
    peers_poller=$getter
  fi
  now_cs
  [ "$now" -ge "$node_due" ] || return 0
  node_due=$((now + node_every))
  hold_probe
  [ -n "$node_poller" ] || { api_get_start "/api/v1/nodes/$NODE_NAME" node; node_poller=$getter; }
  [ "$peers_check" = on ] || return 0
  peers_due=1
  eligible_report
}

# The finished poll: cordoned (spec.unschedulable true), not cordoned, or no definite answer.
node_answer() {
  api_get_finish "$node_poller" node
  node_poller=
  if [ -z "$why" ] && ! grep -q -F '{"kind":"Node",' "$KARP_STATE_DIR/node.out"; then
    why="the answer is not a Node"
  fi
  first=false
  case $node_gate in "waiting for"*) first=true ;; esac
  if [ -n "$why" ]; then
    assumed=uncordoned
    [ "$node_gate" = "node cordoned" ] && assumed=cordoned
    if [ "$why" != "$node_failing" ]; then
      node_failing=$why
      log "warning=node-check-failing reason=\"$why\" assumed=$assumed"
    fi
    if [ "$first" = true ]; then
      node_gate=
      gate_opened "the node check failed: taken as not cordoned"
    fi
    return 0
  fi
  if [ -n "$node_failing" ]; then
    node_failing=
    log "node_check=ok"
  fi
  # JSON strings escape their quotes, so these bytes can only be the field itself: spec.unschedulable.
  if grep -q -F '"unschedulable":true' "$KARP_STATE_DIR/node.out"; then
    [ "$node_gate" = "node cordoned" ] || node_cordoned
  elif [ "$first" = true ]; then
    node_gate=
    gate_opened "node $NODE_NAME is not cordoned"
  elif [ -n "$node_gate" ]; then
    node_gate=
    if [ "$gated" = 1 ]; then
      log "node=uncordoned eligible=false reason=\"$health_why\""
      gates_file
    else
      log "node=uncordoned eligible=true"
      gate_opened "node uncordoned"
    fi
  fi
}

node_cordoned() {
  node_gate="node cordoned"
  gates_file
  if [ -z "$ucarp_pid" ] && ! vip_held "$iface"; then
    # Out of CARP already (health gate, or the first check): nothing to hand over.
    log "node=cordoned eligible=false"
    return 0
  fi
  stop_ucarp
  if [ "$(state_get role)" = master ] || vip_held "$iface"; then
    handover backup "node cordoned" keep
  else
    from=$(state_get role init)
    gen_bump
    state_set role backup
    log "role=backup from=$from vip=$KARP_VIP iface=$iface reason=\"node cordoned\" eligible=false"
    report_role backup "node cordoned"
  fi
}

# --- rank among the peers ------------------------------------------------------------------------------
# When a master goes silent, every backup's timer fires advbase x deadratio later, within a few 1/256 s of the
# others (their skews), and ucarp reads packets in one-second batches: two or three backups promote before
# any hears another, and all but one then yield after a drain. In a password roll-out the listeners of the
# new group restart ucarp up to ~1.6 s apart, which no skew covers either. So the agents rank themselves:
# each lists the pods of its own DaemonSet revision (KARP_PEER_SELECTOR, KARP_REVISION) every node check,
# and counts the peers that could take the VIP before it: Ready, not stopping, not master, not out of CARP
# (karp.io/eligible False), on a node whose name sorts before its own. Rank r waits KARP_RANK_STEP more
# advertisement periods per rank before it takes over: rank 0 as plain ucarp would, rank 1 only once rank 0
# had time to promote and be heard (a second for the capture batch on top of the restart spread). A
# leaving master's advertisement (carp_leave: advbase x deadratio + 1) times out rank 0 alone. Without an
# answer from the API the rank stays as it was; an agent that never had one is rank 0 (plain ucarp).
peers_check=off
if [ "$node_check" = on ] && [ -n "$KARP_PEER_SELECTOR" ] && [ -n "$KARP_REVISION" ] && [ -n "${POD_NAMESPACE:-}" ]; then
  peers_check=on
  peers_query=$(printf '%s' "$KARP_PEER_SELECTOR,controller-revision-hash=$KARP_REVISION" | sed 's|/|%2F|g; s|=|%3D|g; s|,|%2C|g')
fi
rank=0 rank_known='' peers_poller='' peers_failing=''

# The dead ratio this node's ucarp runs with as a backup of its rank, in deadratio.
rank_deadratio() {
  deadratio=$((KARP_DEADRATIO + rank * KARP_RANK_STEP))
  [ "$deadratio" -le 254 ] || deadratio=254
}

# The skew this node's ucarp runs with, in advskew. A backup takes over about 3 x (advbase + skew/256) s
# after the master's last advertisement (Why these defaults, agent/README.md), so every 1/256 s of skew
# costs 3/256 s of failover. The per-node skews keep backups apart only while nothing else does; once the
# peers check ranked this node, the rank does (the next backup waits KARP_RANK_STEP more periods), and rank
# 0 runs with skew 1, the least that still times out on the third wake-up. A KARP_ADVSKEW set by hand stays.
rank_skew() {
  advskew=$skew
  [ "$KARP_ADVSKEW" = auto ] && [ -n "$rank_known" ] && [ "$rank" = 0 ] && advskew=1
}

# This node's rank in the PodList in the file: the peers before it that could take the VIP. The API server
# writes compact JSON: a pod begins with {"metadata":{"name": (nothing nested starts so), a condition is
# one object without nested braces, and a quote inside a string is escaped, so these patterns can only
# match the fields themselves. Fails when this node's own pod is not in the list.
peers_rank() { # file
  awk -v me="$NODE_NAME" '
    { body = body $0 }
    END {
      n = split(body, pods, /[{]"metadata":[{]"name":/)
      rank = 0; found = 0
      for (i = 2; i <= n; i++) {
        p = pods[i]
        if (!match(p, /"nodeName":"[^"]*"/)) continue
        node = substr(p, RSTART + 12, RLENGTH - 13)
        if (node == me) { found = 1; continue }
        if (p ~ /"deletionTimestamp":"/) continue
        if (p !~ /[{]"type":"Ready",[^}]*"status":"True"/) continue
        if (p ~ /[{]"type":"karp[.]io\/role",[^}]*"reason":"Master"/) continue
        if (p ~ /[{]"type":"karp[.]io\/eligible",[^}]*"status":"False"/) continue
        if ((node "") < (me "")) rank++
      }
      if (!found) exit 1
      print rank
    }' "$1"
}

# The finished poll: a new rank, or the old one kept when there is no definite answer.
peers_answer() {
  api_get_finish "$peers_poller" peers
  peers_poller=
  new_rank=
  # Through a file, not a command substitution: that would fork a shell (1-1.6 MB) beside awk.
  if [ -z "$why" ] && { ! peers_rank "$KARP_STATE_DIR/peers.out" >"$KARP_STATE_DIR/rank" || ! state_read rank ||
    ! uint_in "$state_value" 0 1000; }; then
    why="this node's pod is not among the pods of selector $KARP_PEER_SELECTOR and revision $KARP_REVISION"
  fi
  [ -n "$why" ] || new_rank=$state_value
  if [ -n "$why" ]; then
    if [ "$why" != "$peers_failing" ]; then
      peers_failing=$why
      log "warning=peers-check-failing reason=\"$why\" rank=$rank"
    fi
    return 0
  fi
  if [ -n "$peers_failing" ]; then
    peers_failing=
    log "peers_check=ok"
  fi
  if [ "$new_rank" != "$rank" ] || [ -z "$rank_known" ]; then
    rank=$new_rank rank_known=1
    rank_deadratio
    rank_skew
    log "rank=$rank deadratio=$deadratio advskew=$advskew reason=\"$rank ready and eligible agents of this revision that are not master run on nodes named before $NODE_NAME\""
  fi
  rank_apply
}

# A backup's ucarp runs with the dead interval of the node's rank: restart it when they differ. A backup
# sends nothing, so only its timer starts anew. Not while it holds or drains the VIP, listens to another
# CARP group, or a hook runs: those end on their own, and the next check comes.
rank_apply() {
  rank_deadratio
  rank_skew
  [ -n "$ucarp_pid" ] && [ -z "$listening" ] && { [ "$ucarp_deadratio" != "$deadratio" ] || [ "$ucarp_skew" != "$advskew" ]; } || return 0
  state_read role
  [ "$state_value" = backup ] && ! [ -e "$KARP_STATE_DIR/holding" ] && ! vip_held "$iface" || return 0
  for hook in "$KARP_STATE_DIR"/hook.*; do [ -e "$hook" ] && return 0; done
  restart_ucarp "rank $rank: dead ratio $deadratio, skew $advskew"
}

# Whether this node may take the VIP, in its pod's status (karp.io/eligible), for the other agents' ranks.
# Sent again at the next node check while the last attempt failed.
eligible_reporter=''
eligible_report() {
  [ "$peers_check" = on ] || return 0
  [ -n "$eligible_reporter" ] && proc_alive "$eligible_reporter" && return 0
  eligible_reporter=''
  want=True
  [ -e "$KARP_STATE_DIR/gated" ] && want=False
  state_read eligible.sent
  [ "$state_value" = "$want" ] && return 0
  report_eligible "$want" </dev/null >/dev/null 3>&- &
  eligible_reporter=$!
}

# --- eligibility ---------------------------------------------------------------------------------------
# ucarp runs only while neither gate holds this node back: the health gate (gated, health_why) and the
# node gate (node_gate). The state file "gated" says why it does not run, for healthcheck.sh.
gates_file() {
  why=
  [ "$gated" = 1 ] && why=$health_why
  [ -n "$node_gate" ] && why=${why:+$why; }$node_gate
  if [ -n "$why" ]; then state_set gated "$why"; else rm -f "$KARP_STATE_DIR/gated"; fi
  eligible_report
}

gate_opened() { # what opened it
  gates_file
  [ "$gated" = 0 ] && [ -z "$node_gate" ] && [ -z "$ucarp_pid" ] || return 0
  if [ -e "$KARP_STATE_DIR/holding" ]; then start_ucarp "$1" hold; else start_ucarp "$1"; fi
}

# --- one agent per vhid per node -----------------------------------------------------------------------
# ucarp ignores the packets of its own source address, so two agents of one vhid on one node (the static pod
# and the DaemonSet's pod during a bootstrap handover) would each elect itself, blind to the other, and
# either could remove the VIP the other holds (a start's stale-VIP removal, a stop that found no successor).
# So an agent takes the node's lock for its vhid before it touches the VIP or starts ucarp, and holds it
# for its whole life: karp-node-lock (agent/tls) binds the abstract AF_UNIX name karp-agent/vhid/<vhid>,
# which belongs to the network namespace (every host-network pod of the node sees it) and which the kernel
# frees when that process ends; it ends with this shell, even a SIGKILLed one. A second agent waits, out
# of CARP and ready, and tries again every KARP_HEALTH_INTERVAL.
lock_name=karp-agent/vhid/$KARP_VHID
locker=''
# One attempt: true when held (by the child in locker); else lock_rc is karp-node-lock's exit status
# (3: another process holds the name) and lock_err its message.
lock_take() {
  rm -f "$KARP_STATE_DIR/lock.out"
  karp-node-lock --name "$lock_name" --parent $$ </dev/null >"$KARP_STATE_DIR/lock.out" 2>"$KARP_STATE_DIR/lock.err" 3>&- &
  locker=$!
  # It binds at once, then says "held" and stays, or exits.
  while proc_alive "$locker"; do
    state_read lock.out
    [ "$state_value" = held ] && return 0
    nap 0.01
  done
  wait "$locker"
  lock_rc=$?
  locker=''
  lock_err=$(one_line "$KARP_STATE_DIR/lock.err")
  [ "$lock_rc" = 3 ] && return 1
  # No lock to be had (no karp-node-lock, no AF_UNIX socket): running without it could be the double
  # election this lock prevents, so the agent exits and the kubelet restarts it.
  log "fatal=\"cannot take the node's lock $lock_name: ${lock_err:-karp-node-lock exited with status $lock_rc}\""
  rm -f "$KARP_STATE_DIR/agent.pid"
  exit 1
}

# A stop before this agent did anything: nothing to hand over.
stop_unstarted() { # from
  log "role=stopped from=$1 vip=$KARP_VIP reason=\"shutdown\""
  rm -f "$KARP_STATE_DIR/agent.pid" "$KARP_STATE_DIR/gated"
  end_reports
  exit 0
}

lock_wait() {
  lock_take && return 0
  why="another agent of vhid $KARP_VHID runs on this node (it holds the lock $lock_name): waiting until it exits"
  log "warning=vhid-taken vhid=$KARP_VHID reason=\"$why\" eligible=false"
  state_set gated "$why"
  while :; do
    eligible_report
    nap "$KARP_HEALTH_INTERVAL"
    [ "$stopping" = 1 ] && stop_unstarted waiting
    lock_take && break
  done
  rm -f "$KARP_STATE_DIR/gated"
  log "node_lock=held vhid=$KARP_VHID reason=\"the other agent of vhid $KARP_VHID on this node has exited\""
}

# An error file as one log-safe line: newlines and quotes blanked, trailing blanks cut; empty if none.
one_line() { # file
  tr '\n"' "  " <"$1" 2>/dev/null | sed 's/ *$//'
}

# Why the health gate holds this node out, after $fails failed checks (err: the last check's error).
health_failed() {
  err=$(one_line "$KARP_STATE_DIR/health.err")
  health_why="health check failed $fails times: ${err:-no answer}"
}

lock_wait

# --- interface, source address, stale VIP -------------------------------------------------------------
# A predecessor that crashed (or was SIGKILLed) leaves the VIP where it was until its lease runs out (or for
# good: an agent before leases, or a hand-made address); nobody advertises for it now.
for stale in $(vip_interfaces); do
  vip_del "$stale" && log "stale_vip_removed=$KARP_VIP iface=$stale"
done

tries=0
while :; do
  if [ -n "${KARP_INTERFACE:-}" ]; then
    iface=$KARP_INTERFACE
    src=$(ip -4 addr show dev "$iface" 2>/dev/null | awk -v vip="$KARP_VIP" '$1 == "inet" { split($2, a, "/"); if (a[1] != vip) { print a[1]; exit } }')
    route="interface $iface"
  else
    route=$(ip route get "$KARP_VIP" 2>&1 | head -n 1)
    iface=$(printf '%s\n' "$route" | sed -n 's/.* dev \([^ ]*\).*/\1/p')
    src=$(printf '%s\n' "$route" | sed -n 's/.* src \([^ ]*\).*/\1/p')
    case $route in *" via "*) die "KARP_VIP $KARP_VIP is not on a directly connected network ($route); set KARP_INTERFACE" ;; esac
  fi
  [ -n "$iface" ] && [ -n "$src" ] && break
  tries=$((tries + 1))
  [ "$tries" -ge 10 ] && die "no interface and source address for $KARP_VIP ($route)"
  nap 1
  [ "$stopping" = 1 ] && stop_unstarted init
done

if [ "$KARP_ADVSKEW" = auto ]; then
  # Distinct, small, stable per node: the last octet of the source address picks one of 8 steps. Never 0: a
  # backup with skew 0 reaches its deadline exactly on its third wake-up and often misses it by microseconds,
  # which costs a fourth advertisement period (agent/README.md, Why these defaults).
  last=${src##*.}
  skew=$((1 + (last % 8) * KARP_SKEW_STEP))
else
  skew=$KARP_ADVSKEW
fi

log "starting vip=$KARP_VIP/$KARP_VIP_PREFIX vhid=$KARP_VHID iface=$iface src=$src advbase=$KARP_ADVBASE advskew=$skew deadratio=$KARP_DEADRATIO preempt=$KARP_PREEMPT health=${KARP_HEALTH_URL:-off} health_gate=$KARP_HEALTH_GATE node_check=$node_check capture=\"$capture\""
gated=0 fails=0 oks=0 failing_logged='' health_why='' health_armed=1
if [ -n "$KARP_HEALTH_URL" ]; then
  if [ "$KARP_HEALTH_GATE" = after-first-ready ]; then
    health_armed=''
  else
    gated=1 health_why="waiting for the first healthy check"
  fi
fi
if [ "$gated" = 1 ] || [ -n "$node_gate" ]; then
  gates_file
  state_set role backup
else
  start_ucarp "agent start"
fi

# ucarp or the node's lock gone: hand over and exit 1, so the kubelet restarts the agent.
fail_stop() { # reason
  trap '' TERM INT
  stop_clock
  polls_stop
  handover stopped "$1"
  rm -f "$KARP_STATE_DIR/agent.pid"
  end_reports
  exit 1
}

while :; do
  [ "$stopping" = 1 ] && shutdown_agent
  if [ -n "$ucarp_pid" ] && ! proc_alive "$ucarp_pid"; then
    wait "$ucarp_pid" 2>/dev/null
    status=$?
    ucarp_pid=
    rm -f "$KARP_STATE_DIR/ucarp.pid"
    fail_stop "ucarp exited with status $status"
  fi
  if ! proc_alive "$locker"; then
    wait "$locker" 2>/dev/null
    fail_stop "karp-node-lock, which held the node's lock $lock_name, exited with status $?"
  fi
  polls_settle
  # Before the health check and the node check start their karp-tls: its ip and those seldom run at once.
  lease_renew
  [ -n "$node_poller" ] && ! proc_alive "$node_poller" && node_answer
  [ -n "$peers_poller" ] && ! proc_alive "$peers_poller" && peers_answer
  if [ -n "$KARP_HEALTH_URL" ] && [ "$stopping" = 0 ]; then
    if health_ok; then
      fails=0 oks=$((oks + 1)) failing_logged=
      if [ -z "$health_armed" ] && [ "$oks" -ge "$KARP_HEALTH_SUCCESSES" ]; then
        health_armed=1
        log "health_gate=armed reason=\"health check passed $oks times: from now on $KARP_HEALTH_FAILURES failed checks take this node out of CARP\""
      fi
      if [ "$gated" = 1 ] && [ "$oks" -ge "$KARP_HEALTH_SUCCESSES" ]; then
        gated=0 health_why=
        [ -z "$node_gate" ] || log "health=ok eligible=false reason=\"$node_gate\""
        gate_opened "health check passed $oks times"
      fi
    elif [ "$stopping" = 0 ]; then
      oks=0 fails=$((fails + 1))
      if [ "$gated" = 0 ] && [ -n "$health_armed" ] && [ "$fails" -ge "$KARP_HEALTH_FAILURES" ]; then
        gated=1
        health_failed
        failing_logged=${err:-no answer}
        gates_file
        stop_ucarp
        if [ "$(state_get role)" = master ] || vip_held "$iface"; then
          handover backup "$health_why" leave
        else
          from=$(state_get role init)
          gen_bump
          state_set role backup
          log "role=backup from=$from vip=$KARP_VIP iface=$iface reason=\"$health_why\" eligible=false"
          report_role backup "$health_why"
        fi
      elif [ "$gated" = 1 ] || [ -z "$health_armed" ]; then
        # A first wait that failed as often as a running node would fail before it gives up: no longer
        # waiting, but out for a known reason (and so ready: healthcheck.sh).
        if [ "$gated" = 1 ] && [ "$fails" -ge "$KARP_HEALTH_FAILURES" ] && [ "$health_why" = "waiting for the first healthy check" ]; then
          health_failed
          gates_file
        fi
        # A gated node says why its checks fail, once per reason: one that never passed (e.g. an API
        # server that refuses TLS 1.2, which karp-tls speaks) would otherwise say nothing at all. So does
        # a node whose gate is not armed yet, which stays in CARP.
        err=
        { read -r err <"$KARP_STATE_DIR/health.err"; } 2>/dev/null
        if [ "${err:-no answer}" != "$failing_logged" ]; then
          failing_logged=${err:-no answer}
          err=$(one_line "$KARP_STATE_DIR/health.err")
          if [ "$gated" = 1 ]; then
            log "warning=health-check-failing reason=\"${err:-no answer}\" eligible=false"
          else
            log "warning=health-check-failing reason=\"${err:-no answer}\" eligible=true health_gate=unarmed detail=\"KARP_HEALTH_GATE=after-first-ready: failing checks keep this node in CARP until the health check has passed $KARP_HEALTH_SUCCESSES times\""
          fi
        fi
      fi
    fi
  fi
  # After the health check, so that its karp-tls and this one seldom run at the same time.
  [ "$node_check" = on ] && [ "$stopping" = 0 ] && node_tick
  # Again after each step that can wait up to a second (the health check, foreign_tick's ARP probes): a
  # starved machine stretches every step of a pass, and the lease must outlast the longest gap between
  # renewals, not a whole pass. Within 0.4 s of the last renewal this reads two files and forks nothing.
  lease_renew
  [ "$stopping" = 1 ] || foreign_tick
  lease_renew
  [ "$stopping" = 1 ] || nap "$interval"
done
