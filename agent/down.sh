#!/bin/sh
# ucarp's downscript: this node is CARP backup. $1 interface, $2 VIP (ucarp passes them).
# ucarp runs it at start, when a preferred master advertises (the yield after two masters met, e.g. when
# two backups promoted together or a partition healed), and when the link loses carrier.
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "${0%/*}/lib.sh"
iface=$1
hook_register

from=init
{ read -r from <"$KARP_STATE_DIR/role"; } 2>/dev/null
gen_bump
state_set role backup
if ! vip_held "$iface"; then
  why="not holding the VIP"
  [ "$from" = init ] && why="started ($(state_get start_reason "agent start")): listening for a master"
  log "role=backup from=$from vip=$KARP_VIP iface=$iface reason=\"$why\""
elif ! has_carrier "$iface"; then
  why="link lost carrier"
  vip_del "$iface"
  log "role=backup from=$from vip=$KARP_VIP iface=$iface reason=\"$why\" vip_released=now"
else
  # A yielding master: clients that followed its announcements would find nobody at this MAC once the
  # VIP is gone. The preferred master reasserts with a gratuitous ARP whenever it reads a non-preferred
  # master's advertisement ("Non-preferred master advertising" in its log), and every client updates its
  # ARP cache from that broadcast. Such an announcement may have gone out before this script started (ucarp
  # advertised once more just before running it), so karp-arp-watch, once bound, sends one more
  # advertisement as this node's ucarp did (karp-carp-leave with this node's advbase and advskew) and waits
  # for the answer; the VIP goes when it is seen, or after KARP_DRAIN_SECONDS at most, unless this node
  # became master again meanwhile.
  why="a preferred master advertised"
  watch_errors() { tr '\n"' '  ' <"$KARP_STATE_DIR/arp-watch.err"; }
  (
    now_cs
    start=$now
    no_drain=1
    case $KARP_DRAIN_SECONDS in *[1-9]*) no_drain= ;; esac
    if [ -n "$no_drain" ]; then
      released="KARP_DRAIN_SECONDS=$KARP_DRAIN_SECONDS"
    elif seen=$(
      # The address and skew this node's ucarp advertises with, as the agent started it.
      read -r src skew <"$KARP_STATE_DIR/advert" || { echo "no $KARP_STATE_DIR/advert" >&2; exit 3; }
      exec karp-arp-watch --iface "$iface" --ip "$KARP_VIP" --timeout "$KARP_DRAIN_SECONDS" -- karp-carp-leave --srcip "$src" \
        --vhid "$KARP_VHID" --vip "$KARP_VIP" --passfile "$KARP_PASSWORD_FILE" --advbase "$KARP_ADVBASE" --advskew "$skew"
    ) 2>"$KARP_STATE_DIR/arp-watch.err"; then
      released="gratuitous ARP from $seen"
    elif [ $? -eq 1 ]; then
      released="no gratuitous ARP from another node within ${KARP_DRAIN_SECONDS}s"
      # karp-carp-leave's complaint, if it had one: the question never went out.
      [ -s "$KARP_STATE_DIR/arp-watch.err" ] && log "warning=yield-advert-failed detail=\"$(watch_errors)\""
    else
      # No packet socket (no CAP_NET_RAW) or no karp-arp-watch: the fixed drain.
      log "warning=arp-watch-failed detail=\"$(watch_errors)\""
      sleep "$KARP_DRAIN_SECONDS"
      released="drained ${KARP_DRAIN_SECONDS}s"
    fi
    if [ "$(state_get gen)" = "$g" ] && vip_del "$iface"; then
      now_cs
      cs_seconds $((now - start))
      log "vip_released=now iface=$iface after=${seconds_text}s reason=\"$released\""
    fi
  ) </dev/null >/dev/null &
  # The drain needs no renewal (KARP_VIP_LIFETIME is longer than KARP_DRAIN_SECONDS): a full lease from now on.
  vip_renew "$iface"
  log "role=backup from=$from vip=$KARP_VIP iface=$iface reason=\"$why\" vip_released=on-successor-announcement max=${KARP_DRAIN_SECONDS}s"
fi
report_role backup "$why"
exit 0
