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
is_uint() { case $1 in '' | *[!0-9]*) return 1 ;; esac }
uint_in() { is_uint "$1" && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; } # value min max
is_seconds() { case $1 in '' | .* | *. | *[!0-9.]* | *.*.*) return 1 ;; esac }
is_ipv4() {
  printf '%s\n' "$1" | awk -F. 'NF != 4 { exit 1 } { for (i = 1; i <= 4; i++) if ($i !~ /^[0-9]+$/ || $i > 255) exit 1 }'
}

# --- configuration --------------------------------------------------------------------------------------
[ -n "${KARP_VIP:-}" ] || die "KARP_VIP is not set"
is_ipv4 "$KARP_VIP" || die "KARP_VIP=$KARP_VIP is not an IPv4 address"
uint_in "${KARP_VHID:-}" 1 255 || die "KARP_VHID=${KARP_VHID:-} is not 1-255"
KARP_ADVBASE=${KARP_ADVBASE:-1}
uint_in "$KARP_ADVBASE" 1 255 || die "KARP_ADVBASE=$KARP_ADVBASE is not 1-255"
KARP_DEADRATIO=${KARP_DEADRATIO:-3}
uint_in "$KARP_DEADRATIO" 1 255 || die "KARP_DEADRATIO=$KARP_DEADRATIO is not 1-255"
KARP_ADVSKEW=${KARP_ADVSKEW:-auto}
[ "$KARP_ADVSKEW" = auto ] || { is_uint "$KARP_ADVSKEW" && [ "$KARP_ADVSKEW" -le 255 ]; } || die "KARP_ADVSKEW=$KARP_ADVSKEW is not auto or 0-255"
KARP_SKEW_STEP=${KARP_SKEW_STEP:-4}
uint_in "$KARP_SKEW_STEP" 0 36 || die "KARP_SKEW_STEP=$KARP_SKEW_STEP is not 0-36"
KARP_PREEMPT=${KARP_PREEMPT:-false}
case $KARP_PREEMPT in true | false) ;; *) die "KARP_PREEMPT=$KARP_PREEMPT is not true or false" ;; esac
uint_in "$KARP_VIP_PREFIX" 0 32 || die "KARP_VIP_PREFIX=$KARP_VIP_PREFIX is not 0-32"
is_seconds "$KARP_DRAIN_SECONDS" || die "KARP_DRAIN_SECONDS=$KARP_DRAIN_SECONDS is not a number of seconds"
KARP_PASSWORD_FILE=${KARP_PASSWORD_FILE:-/etc/karp/password}
[ -r "$KARP_PASSWORD_FILE" ] || die "password file $KARP_PASSWORD_FILE is not readable"
# ucarp keeps the first line of the file; its key holds 20 bytes with the terminating NUL.
pwlen=$(head -n 1 "$KARP_PASSWORD_FILE" | tr -d '\n' | wc -c)
uint_in "$pwlen" 1 19 || die "the password in $KARP_PASSWORD_FILE must be 1-19 bytes (is $pwlen)"
KARP_HEALTH_URL=${KARP_HEALTH_URL:-}
KARP_HEALTH_INTERVAL=${KARP_HEALTH_INTERVAL:-0.5}
KARP_HEALTH_TIMEOUT=${KARP_HEALTH_TIMEOUT:-1}
KARP_HEALTH_FAILURES=${KARP_HEALTH_FAILURES:-2}
KARP_HEALTH_SUCCESSES=${KARP_HEALTH_SUCCESSES:-2}
is_seconds "$KARP_HEALTH_INTERVAL" || die "KARP_HEALTH_INTERVAL=$KARP_HEALTH_INTERVAL is not a number of seconds"
is_seconds "$KARP_HEALTH_TIMEOUT" || die "KARP_HEALTH_TIMEOUT=$KARP_HEALTH_TIMEOUT is not a number of seconds"
uint_in "$KARP_HEALTH_FAILURES" 1 1000 || die "KARP_HEALTH_FAILURES=$KARP_HEALTH_FAILURES is not >= 1"
uint_in "$KARP_HEALTH_SUCCESSES" 1 1000 || die "KARP_HEALTH_SUCCESSES=$KARP_HEALTH_SUCCESSES is not >= 1"
# A backup notices a silent master after advbase x deadratio plus up to two advertisement periods (ucarp
# checks its timers once per period and reads packets up to 1 s late); wait that long for a successor.
KARP_HANDOVER_TIMEOUT=${KARP_HANDOVER_TIMEOUT:-$((KARP_ADVBASE * (KARP_DEADRATIO + 2) + 2))}
is_uint "$KARP_HANDOVER_TIMEOUT" || die "KARP_HANDOVER_TIMEOUT=$KARP_HANDOVER_TIMEOUT is not whole seconds"
interval=1
[ -n "$KARP_HEALTH_URL" ] && interval=$KARP_HEALTH_INTERVAL

mkdir -p "$KARP_STATE_DIR" || die "cannot create KARP_STATE_DIR=$KARP_STATE_DIR"
rm -f "$KARP_STATE_DIR/ucarp.pid" "$KARP_STATE_DIR/gated" "$KARP_STATE_DIR/gen" "$KARP_STATE_DIR"/.auth.*
state_set role init
state_set agent.pid $$

# --- interface, source address, stale VIP -------------------------------------------------------------
# A predecessor that crashed (or was SIGKILLed) leaves the VIP where it was; nobody advertises for it now.
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
  sleep 1
done

if [ "$KARP_ADVSKEW" = auto ]; then
  # Distinct, small, stable per node: the last octet of the source address picks one of 8 steps.
  last=${src##*.}
  skew=$(((last % 8) * KARP_SKEW_STEP))
else
  skew=$KARP_ADVSKEW
fi

# --- ucarp ---------------------------------------------------------------------------------------------
ucarp_pid=
start_ucarp() { # why
  state_set start_reason "$1"
  state_set role init
  set -- --interface="$iface" --srcip="$src" --vhid="$KARP_VHID" --passfile="$KARP_PASSWORD_FILE" \
    --addr="$KARP_VIP" --advbase="$KARP_ADVBASE" --advskew="$skew" --deadratio="$KARP_DEADRATIO" \
    --upscript="$here/up.sh" --downscript="$here/down.sh" --shutdown
  [ "$KARP_PREEMPT" = true ] && set -- "$@" --preempt
  ucarp "$@" </dev/null 3>&- &
  ucarp_pid=$!
  state_set ucarp.pid "$ucarp_pid"
}

# Not kill -0: a child that died stays a zombie until waited for.
ucarp_alive() {
  [ -n "$ucarp_pid" ] || return 1
  { read -r st <"/proc/$ucarp_pid/stat"; } 2>/dev/null || return 1
  case $st in *") Z "* | *") X "*) return 1 ;; esac
  return 0
}

stop_ucarp() { # signal
  [ -n "$ucarp_pid" ] || return 0
  kill "-$1" "$ucarp_pid" 2>/dev/null
  wait "$ucarp_pid" 2>/dev/null
  ucarp_pid=
  rm -f "$KARP_STATE_DIR/ucarp.pid"
}

# Make-before-break: ucarp never tells the backups it leaves, so they take over only when its
# advertisements stop for the dead interval. Stop advertising, keep answering for the VIP meanwhile, and
# let it go once another node answers ARP for it (or after KARP_HANDOVER_TIMEOUT, e.g. a single node).
handover() { # to-role reason
  stop_ucarp KILL
  from=$(state_get role init)
  gen_bump >/dev/null
  state_set role backup
  released=none successor=none
  if vip_held "$iface"; then
    deadline=$(($(date +%s) + KARP_HANDOVER_TIMEOUT))
    successor=timeout
    while [ "$(date +%s)" -lt "$deadline" ]; do
      # arping -D exits 1 when some host answered for the address: only a new holder does.
      if ! arping -D -q -c 1 -w 1 -I "$iface" "$KARP_VIP" >/dev/null 2>&1; then
        successor=seen
        # Give the successor's own gratuitous ARP time to go out before this node stops answering.
        sleep 0.3
        break
      fi
    done
    vip_del "$iface"
    released=now
  fi
  log "role=$1 from=$from vip=$KARP_VIP iface=$iface reason=\"$2\" successor=$successor vip_released=$released"
  if [ "$1" = stopped ]; then report_role backup "$2" wait; else report_role backup "$2"; fi
}

stopping=0
shutdown_agent() {
  trap '' TERM INT
  if [ "$(state_get role)" = master ]; then
    handover stopped "shutdown: handed the VIP over"
  else
    from=$(state_get role init)
    stop_ucarp TERM
    gen_bump >/dev/null
    # A node draining after a yield still holds the VIP; the preferred master is there already.
    vip_held "$iface" && vip_del "$iface"
    log "role=stopped from=$from vip=$KARP_VIP iface=$iface reason=\"shutdown\""
  fi
  rm -f "$KARP_STATE_DIR/agent.pid" "$KARP_STATE_DIR/gated"
  exit 0
}
trap 'stopping=1' TERM INT

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
nap() {
  if [ "$nap_read" = true ]; then
    # shellcheck disable=SC3045 # only when the test above found -t
    read -r -t "$1" _ <&3
    return 0
  fi
  sleep "$1" 3>&- &
  napper=$!
  wait "$napper" 2>/dev/null
  kill "$napper" 2>/dev/null
}

health_ok() {
  set -- -fsS -k -o /dev/null -m "$KARP_HEALTH_TIMEOUT"
  if [ -r "$KARP_TOKEN_FILE" ]; then
    hdr="$KARP_STATE_DIR/.auth.health"
    read -r token <"$KARP_TOKEN_FILE"
    (umask 077 && printf 'Authorization: Bearer %s\n' "$token" >"$hdr")
    set -- "$@" -H "@$hdr"
  fi
  curl "$@" "$KARP_HEALTH_URL" 2>"$KARP_STATE_DIR/health.err" 3>&- &
  checker=$!
  wait "$checker"
  rc=$?
  [ "$rc" -gt 128 ] && kill "$checker" 2>/dev/null
  return "$rc"
}

log "starting vip=$KARP_VIP/$KARP_VIP_PREFIX vhid=$KARP_VHID iface=$iface src=$src advbase=$KARP_ADVBASE advskew=$skew deadratio=$KARP_DEADRATIO preempt=$KARP_PREEMPT health=${KARP_HEALTH_URL:-off}"
gated=0 fails=0 oks=0
if [ -n "$KARP_HEALTH_URL" ]; then
  gated=1
  state_set gated "waiting for the first healthy check"
  state_set role backup
else
  start_ucarp "agent start"
fi

while :; do
  [ "$stopping" = 1 ] && shutdown_agent
  if [ "$gated" = 0 ] && ! ucarp_alive; then
    wait "$ucarp_pid" 2>/dev/null
    status=$?
    ucarp_pid=
    handover stopped "ucarp exited with status $status"
    rm -f "$KARP_STATE_DIR/agent.pid"
    exit 1
  fi
  if [ -n "$KARP_HEALTH_URL" ]; then
    if health_ok; then
      fails=0 oks=$((oks + 1))
      if [ "$gated" = 1 ] && [ "$oks" -ge "$KARP_HEALTH_SUCCESSES" ]; then
        gated=0
        rm -f "$KARP_STATE_DIR/gated"
        start_ucarp "health check passed $oks times"
      fi
    elif [ "$stopping" = 0 ]; then
      oks=0 fails=$((fails + 1))
      if [ "$gated" = 0 ] && [ "$fails" -ge "$KARP_HEALTH_FAILURES" ]; then
        gated=1
        err=$(tr '\n"' "  " <"$KARP_STATE_DIR/health.err" 2>/dev/null | sed 's/ *$//')
        why="health check failed $fails times: ${err:-no answer}"
        state_set gated "$why"
        if [ "$(state_get role)" = master ]; then
          handover backup "$why"
        else
          from=$(state_get role init)
          stop_ucarp TERM
          log "role=backup from=$from vip=$KARP_VIP iface=$iface reason=\"$why\" eligible=false"
        fi
      fi
    fi
  fi
  [ "$stopping" = 1 ] || nap "$interval"
done
