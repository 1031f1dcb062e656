# shellcheck shell=sh
# Shared by entrypoint.sh, the ucarp hooks (up.sh, down.sh) and healthcheck.sh; sourced, never run.
# Everything here works with busybox (ip, arping, awk, sed, date) in the image and with iproute2,
# iputils-arping and dash in the lab.

KARP_STATE_DIR=${KARP_STATE_DIR:-/run/karp}
KARP_VIP_PREFIX=${KARP_VIP_PREFIX:-32}
KARP_TOKEN_FILE=${KARP_TOKEN_FILE:-/var/run/secrets/kubernetes.io/serviceaccount/token}
KARP_CA_FILE=${KARP_CA_FILE:-/var/run/secrets/kubernetes.io/serviceaccount/ca.crt}
KARP_DRAIN_SECONDS=${KARP_DRAIN_SECONDS:-1.2}
KARP_REPORT_TIMEOUT=${KARP_REPORT_TIMEOUT:-5}

# Centiseconds since boot in $now: a monotonic clock read without starting a process.
now_cs() {
  read -r now _ </proc/uptime
  now=$((${now%%.*} * 100 + 1${now#*.} - 100))
}

# Centiseconds as seconds with two decimals in $seconds_text ("1.05"), without a process.
cs_seconds() { # centiseconds
  # shellcheck disable=SC2034 # for the caller
  seconds_text=$(($1 / 100)).$(($1 % 100 / 10))$(($1 % 10))
}

# Another CARP group on this vhid: a master whose advertisements ucarp rejects ("Bad digest": another
# password or another VIP), e.g. the nodes not yet rolled while the DaemonSet rolls out a new password.
# The agent reads ucarp's messages and writes the time it last saw one (centiseconds since boot) to the
# state file "foreign". A live master's advertisements reach ucarp at most advbase + 28/256 s apart plus
# one 1 s capture batch; silence for longer than twice advbase + 0.5 s (foreign_cs, centiseconds) means
# it stopped advertising.
foreign_window() {
  foreign_cs=$((${KARP_ADVBASE:-1} * 200 + 50))
}

foreign_heard() {
  foreign_seen=''
  { read -r foreign_seen <"$KARP_STATE_DIR/foreign"; } 2>/dev/null
  [ -n "$foreign_seen" ] || return 1
  now_cs
  foreign_window
  [ $((now - foreign_seen)) -lt "$foreign_cs" ]
}

# One line on stderr, key=value, so a log search for "role=" finds every transition.
log() {
  printf '%s karp node=%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${NODE_NAME:-?}" "$*" >&2
}

# State files hold one line. Read with the shell's own read (no cat process): the hooks run on the VIP's
# path, and ucarp sends its gratuitous ARP only once up.sh has returned.
# state_read sets state_value, which costs no process; state_get prints it, for a command substitution
# (a forked shell) where that is clearer and the path is not a periodic one.
state_read() { # name [default]
  state_value=${2:-}
  { IFS= read -r state_value || [ -n "$state_value" ]; } 2>/dev/null <"$KARP_STATE_DIR/$1"
}

state_get() { # name [default]
  state_read "$@"
  printf '%s' "$state_value"
}

# Written through a temp file and rename so a concurrent reader never sees a half-written value.
state_set() { # name value
  printf '%s\n' "$2" >"$KARP_STATE_DIR/.$1.$$" && mv -f "$KARP_STATE_DIR/.$1.$$" "$KARP_STATE_DIR/$1"
}

# The generation grows on every up and down; a delayed action remembers it and acts only if nothing
# happened since. The next one in g.
gen_bump() {
  g=0
  { read -r g <"$KARP_STATE_DIR/gen"; } 2>/dev/null
  g=$((g + 1))
  state_set gen "$g"
}

# ucarp waits for its hooks, but a hook outlives a killed ucarp. Each hook registers first (hook.<pid> in
# the state dir, until it exits): the agent, once it killed ucarp, waits for the registered hooks before it
# looks at the VIP (entrypoint.sh, hooks_settle).
hook_register() {
  : >"$KARP_STATE_DIR/hook.$$"
  trap 'rm -f "$KARP_STATE_DIR/hook.$$"' EXIT
}

# True while the ucarp that runs this hook is still the agent's ucarp (still this process's parent: a
# killed ucarp's children are adopted at once) and nothing moved the generation past $1. Checked after
# hook_register, so a hook the agent did not wait for always finds its ucarp gone.
# Whether the ucarp that ran this hook is still the agent's: its parent (a ucarp the agent killed leaves its
# hook to be adopted by another process).
hook_parent_current() {
  { read -r st <"/proc/$$/stat"; } 2>/dev/null || return 1
  st=${st##*") "} # state ppid ...
  st=${st#* }
  current_ucarp=''
  { read -r current_ucarp <"$KARP_STATE_DIR/ucarp.pid"; } 2>/dev/null
  [ "${st%% *}" = "$current_ucarp" ]
}

hook_current() { # generation
  hook_parent_current || return 1
  current_gen=''
  { read -r current_gen <"$KARP_STATE_DIR/gen"; } 2>/dev/null
  [ "$current_gen" = "$1" ]
}

vip_held() { # iface
  ip -4 addr show dev "$1" 2>/dev/null | grep -q -F " inet $KARP_VIP/"
}

# The VIP is a lease: it goes on the interface with a lifetime of KARP_VIP_LIFETIME seconds (entrypoint.sh
# sets and exports it), which the agent renews while this node holds the VIP on purpose; when nobody renews
# it (the agent was SIGKILLed, or every process of the node died), the kernel removes it. "replace" adds
# the VIP or, when it is there already, renews it.
vip_add() { # iface
  out=$(ip addr replace "$KARP_VIP/$KARP_VIP_PREFIX" dev "$1" valid_lft "$KARP_VIP_LIFETIME" preferred_lft "$KARP_VIP_LIFETIME" 2>&1) && return 0
  log "error=vip-add iface=$1 detail=\"$out\""
  return 1
}

# Another KARP_VIP_LIFETIME seconds for the VIP. The kernel ignores NLM_F_CREATE for IPv4, so this adds a VIP
# that is missing as "ip addr add" would: call it only while this node holds the VIP on purpose.
# Runs every half second on a master: one short "ip" process, no command substitution (another fork). A
# failure is logged once for as long as it stays the same.
vip_renew() { # iface
  if ip addr change "$KARP_VIP/$KARP_VIP_PREFIX" dev "$1" valid_lft "$KARP_VIP_LIFETIME" preferred_lft "$KARP_VIP_LIFETIME" \
    2>"$KARP_STATE_DIR/renew.err"; then
    renew_failing=''
    return 0
  fi
  renew_err=$(tr '\n"' '  ' <"$KARP_STATE_DIR/renew.err")
  [ "$renew_err" = "${renew_failing:-}" ] || log "error=vip-renew iface=$1 detail=\"$renew_err\""
  renew_failing=$renew_err
  return 1
}

vip_del() { # iface
  vip_held "$1" || return 0
  out=$(ip addr del "$KARP_VIP/$KARP_VIP_PREFIX" dev "$1" 2>&1) && return 0
  # Another prefix length than ours (e.g. a predecessor with another KARP_VIP_PREFIX): remove what is there.
  len=$(ip -4 addr show dev "$1" | awk -v vip="$KARP_VIP" '$1 == "inet" { split($2, a, "/"); if (a[1] == vip) { print a[2]; exit } }')
  if [ -n "$len" ] && ip addr del "$KARP_VIP/$len" dev "$1" 2>/dev/null; then return 0; fi
  log "error=vip-del iface=$1 detail=\"$out\""
  return 1
}

# Every interface that carries the VIP, one per line (a crashed predecessor may have left it anywhere).
vip_interfaces() {
  ip -4 addr show 2>/dev/null | awk -v vip="$KARP_VIP" '
    /^[0-9]+:/ { name = $2; sub(/:$/, "", name); sub(/@.*/, "", name) }
    $1 == "inet" { split($2, a, "/"); if (a[1] == vip) print name }'
}

has_carrier() { # iface
  [ "$(cat "/sys/class/net/$1/carrier" 2>/dev/null)" = 1 ]
}

# Gratuitous ARP in reply mode, complementing the request-mode one ucarp sends itself; skipped as soon as
# this node is no longer master, so it never points clients at a node that let the VIP go.
garp() { # iface
  [ "$(state_get role)" = master ] && vip_held "$1" && arping -q -A -c 1 -w 1 -I "$1" "$KARP_VIP" >/dev/null 2>&1
  return 0
}

# Two reply-mode gratuitous ARPs 1 s apart, in the background (each skipped once this node let the VIP go).
announce() { # iface
  (garp "$1"; sleep 1; garp "$1") </dev/null >/dev/null 2>&1 3>&- &
}

# Best-effort role report: the pod condition karp.io/role (status True, reason Master or Backup,
# lastTransitionTime when the role changed, which karp status shows and compares with the container's start
# to spot a stale report) and an Event, through the API server with the pod's service-account token. The
# condition goes through the pods/status subresource, the only pod access the agent has (it cannot change
# a pod's spec), as a strategic merge patch keyed by type, so the kubelet's own conditions stay as they are.
# Runs in the background and never holds up the VIP path; the condition always carries the role current
# at sending time, so reports racing each other still end on the right one.
report_role() { # role reason [wait]
  [ -n "${KUBERNETES_SERVICE_HOST:-}" ] && [ -n "${POD_NAME:-}" ] && [ -n "${POD_NAMESPACE:-}" ] || return 0
  [ -r "$KARP_TOKEN_FILE" ] || return 0
  # An agent about to exit waits (the VIP is already dealt with): a background report would die with it.
  if [ "${3:-}" = wait ]; then
    report_role_now "$1" "$2" once </dev/null >/dev/null
  else
    (report_role_now "$1" "$2" </dev/null >/dev/null &)
  fi
}

# A condition that did not get through is sent again, 1, 2, 4, 8 and then every 10 s, for as long as the
# role stays the same (a change starts a report of its own): after a node's power loss the Service can
# still route a request to the dead node's API server, and karp status would show the old role for good.
# An agent about to exit ("once") tries once.
report_role_now() { # role reason [once]
  api_endpoint
  api=/api/v1/namespaces/$POD_NAMESPACE
  # The token stays in this shell: karp-tls gets it on stdin, after the server proved who it is.
  token=
  read -r token <"$KARP_TOKEN_FILE"
  # The server's answers (mktemp: reports running side by side in one process's subshells share its $$).
  answer=$(mktemp "$KARP_STATE_DIR/.answer.XXXXXX") || return 0
  case $1 in master) why=BecameMaster ;; *) why=BecameBackup ;; esac
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  event=$(printf '{"apiVersion":"v1","kind":"Event","metadata":{"generateName":"%s.","namespace":"%s"},"involvedObject":{"apiVersion":"v1","kind":"Pod","name":"%s","namespace":"%s"},"reason":"%s","message":"%s","type":"Normal","source":{"component":"karp-agent","host":"%s"},"reportingComponent":"karp.io/agent","reportingInstance":"%s","firstTimestamp":"%s","lastTimestamp":"%s","count":1}' \
    "$POD_NAME" "$POD_NAMESPACE" "$POD_NAME" "$POD_NAMESPACE" "$why" "${NODE_NAME:-} is $1 for $KARP_VIP: $2" \
    "${NODE_NAME:-}" "${NODE_NAME:-}" "$now" "$now")
  api_call POST "$api/events" application/json "$event"
  [ "$code" = 201 ] || log "warning=report-event http=$code role=$1"
  tries=0 failures=0 delay=1
  while [ "$tries" -lt 3 ]; do
    sent=$(state_get role "$1")
    case $sent in master) reason=Master ;; *) sent=backup reason=Backup ;; esac
    api_call PATCH "$api/pods/$POD_NAME/status" application/strategic-merge-patch+json \
      "{\"status\":{\"conditions\":[{\"type\":\"karp.io/role\",\"status\":\"True\",\"reason\":\"$reason\",\"message\":\"${NODE_NAME:-} is $sent for $KARP_VIP\",\"lastTransitionTime\":\"$now\"}]}}"
    now_role=$(state_get role "$sent")
    [ "$now_role" = master ] || now_role=backup
    if [ "$code" != 200 ]; then
      failures=$((failures + 1))
      [ "$failures" = 1 ] && log "warning=report-role http=$code role=$sent"
      if [ "${3:-}" = once ] || [ "$now_role" != "$sent" ]; then break; fi
      # A second at a time, and only while the agent runs (it removes agent.pid as it exits).
      waited=0
      while [ "$waited" -lt "$delay" ] && agent_running; do
        sleep 1
        waited=$((waited + 1))
      done
      agent_running || break
      delay=$((delay * 2))
      [ "$delay" -le 10 ] || delay=10
      continue
    fi
    [ "$failures" = 0 ] || log "report_role=sent role=$sent failures=$failures"
    failures=0 tries=$((tries + 1))
    [ "$now_role" = "$sent" ] && break
  done
  rm -f "$answer"
}

# One attempt to put whether this node may take the VIP into its pod's status: the condition karp.io/eligible
# (True, or False while a gate keeps it out of CARP: cordoned, a failing health check, a first check not
# done), which the other agents read to rank themselves (entrypoint.sh). On success the value goes to the
# state file eligible.sent; the agent tries again while it differs. Keyed by type, so the role stays.
report_eligible() { # True|False
  [ -n "${KUBERNETES_SERVICE_HOST:-}" ] && [ -n "${POD_NAME:-}" ] && [ -n "${POD_NAMESPACE:-}" ] || return 0
  [ -r "$KARP_TOKEN_FILE" ] || return 0
  api_endpoint
  token=
  read -r token <"$KARP_TOKEN_FILE"
  answer=$(mktemp "$KARP_STATE_DIR/.answer.XXXXXX") || return 0
  case $1 in True) reason=Eligible ;; *) reason=Gated ;; esac
  api_call PATCH "/api/v1/namespaces/$POD_NAMESPACE/pods/$POD_NAME/status" application/strategic-merge-patch+json \
    "{\"status\":{\"conditions\":[{\"type\":\"karp.io/eligible\",\"status\":\"$1\",\"reason\":\"$reason\",\"lastTransitionTime\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"}]}}"
  rm -f "$answer"
  if [ "$code" = 200 ]; then
    state_set eligible.sent "$1"
    rm -f "$KARP_STATE_DIR/eligible.err"
  else
    # Once per failure, not at every retry.
    [ "$(state_get eligible.err)" = "$code" ] || log "warning=report-eligible http=$code eligible=$1"
    state_set eligible.err "$code"
  fi
}

agent_running() {
  agent_pid=''
  { read -r agent_pid <"$KARP_STATE_DIR/agent.pid"; } 2>/dev/null
  [ -n "$agent_pid" ] && kill -0 "$agent_pid" 2>/dev/null
}

# Where the API server is, as karp-tls --connect takes it, in api_host: KUBERNETES_SERVICE_HOST (an IPv6
# address in brackets) and KUBERNETES_SERVICE_PORT.
api_endpoint() {
  api_host=$KUBERNETES_SERVICE_HOST
  case $api_host in *:*) api_host="[$api_host]" ;; esac
  api_host=$api_host:${KUBERNETES_SERVICE_PORT:-443}
}

# One request to the API server (KUBERNETES_SERVICE_HOST, whose certificate must name that address and be
# signed by KARP_CA_FILE) within KARP_REPORT_TIMEOUT; sets code to the HTTP status, 000 without an answer.
api_call() { # method path content-type body
  http_request "$1" "$2" "$api_host" "$token" "$3" "$4" 2>/dev/null |
    karp-tls --connect "$api_host" --name "$KUBERNETES_SERVICE_HOST" --ca "$KARP_CA_FILE" \
      --timeout "$KARP_REPORT_TIMEOUT" >"$answer" 2>/dev/null
  http_status "$answer"
}

# HTTP/1.1 for karp-tls's stdin (agent/tls: a TLS pipe that reads its stdin only once the server's
# certificate verified, so the token goes to the verified server or nowhere). printf is a shell builtin
# (dash, busybox ash): the token never appears on a command line. "Connection: close" makes the server end
# the connection after its answer, which is what ends karp-tls. (The periodic GETs need no shell writer:
# karp-tls --get writes them.)
http_request() { # method path host [token [content-type body]]
  printf '%s %s HTTP/1.1\r\nHost: %s\r\n' "$1" "$2" "$3"
  [ -n "${4:-}" ] && printf 'Authorization: Bearer %s\r\n' "$4"
  # Content-Length counts bytes, whatever the locale thinks of characters.
  [ -n "${5:-}" ] && printf 'Content-Type: %s\r\nContent-Length: %s\r\n' "$5" "$(($(printf '%s' "$6" | wc -c)))"
  printf 'Connection: close\r\n\r\n%s' "${6:-}"
}

# Sets code to the status of the HTTP answer in the file ("HTTP/1.1 200 OK" gives 200), or 000.
http_status() { # file
  line=
  { IFS= read -r line; } 2>/dev/null <"$1"
  case $line in
    HTTP/1.[01]" "[1-5][0-9][0-9]*)
      code=${line#HTTP/1.? }
      code=${code%"${code#???}"}
      ;;
    *) code=000 ;;
  esac
}
