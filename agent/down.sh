#!/bin/sh
# ucarp's downscript: this node is CARP backup. $1 interface, $2 VIP (ucarp passes them).
# ucarp runs it at start, when a preferred master advertises (the yield after two masters met, e.g. when
# two backups promoted together or a partition healed), and when the link loses carrier.
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
iface=$1
hook_register

from=$(state_get role init)
g=$(gen_bump)
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
  # A yielding master: ucarp may just have sent one last gratuitous ARP for this node (its delayed ARP
  # fires inside the advertisement it sends while yielding), and clients that followed it would find
  # nobody at this MAC once the VIP is gone. The preferred master reasserts with its own gratuitous ARP
  # when it processes that advertisement, which ucarp's 1 s capture batching can delay by up to a
  # second; so keep serving for KARP_DRAIN_SECONDS and let the VIP go only then, unless this node
  # became master again meanwhile.
  why="a preferred master advertised"
  # The drain needs no renewal (KARP_VIP_LIFETIME is longer): a full lease from now on.
  vip_renew "$iface"
  log "role=backup from=$from vip=$KARP_VIP iface=$iface reason=\"$why\" vip_released=after-${KARP_DRAIN_SECONDS}s"
  (
    sleep "$KARP_DRAIN_SECONDS"
    [ "$(state_get gen)" = "$g" ] && vip_del "$iface"
  ) </dev/null >/dev/null &
fi
report_role backup "$why"
exit 0
