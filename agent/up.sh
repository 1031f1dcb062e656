#!/bin/sh
# ucarp's upscript: this node became CARP master. $1 interface, $2 VIP (ucarp passes them).
# ucarp waits for this script and sends its own gratuitous ARP right after it, so it does only what must
# happen before: advertise, and put the VIP on the interface. Everything slower runs in the background.
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
. "${0%/*}/lib.sh"
iface=$1
hook_register
# ucarp advertises as master only once this script returns. The other backups hold a leaving master's
# advertisement back (karp-pcap-immediate.so) only 40 ms per 1/256 s of skew more than this node, and each
# process this script starts costs milliseconds, tens of them on a busy node: advertise first, as ucarp
# will (unless the agent has stopped that ucarp), so they hear of the new master before their hold ends.
hook_parent_current && (
  read -r src skew <"$KARP_STATE_DIR/advert" || exit 0
  exec karp-carp-leave --srcip "$src" --vhid "$KARP_VHID" --vip "$KARP_VIP" --passfile "$KARP_PASSWORD_FILE" \
    --advbase "$KARP_ADVBASE" --advskew "$skew"
) </dev/null >/dev/null 3>&- &
from=init
{ read -r from <"$KARP_STATE_DIR/role"; } 2>/dev/null
gen_bump
# Killing ucarp does not stop this script: once the agent stopped the ucarp that ran it, add nothing.
if ! hook_current "$g"; then
  log "up=skipped vip=$KARP_VIP iface=$iface reason=\"the ucarp that ran this hook was stopped\""
  exit 0
fi
# Another CARP group's master advertises on this vhid (a password roll-out in progress): it, or a node
# of its group, may hold the VIP. Unless this node holds the VIP already, it waits: the agent's
# foreign_tick (entrypoint.sh) takes the VIP once that master stops advertising or nobody answers for it.
if foreign_heard && ! vip_held "$iface"; then
  state_set role deferred
  why="elected, but another CARP group (another password or VIP) advertises vhid $KARP_VHID: waiting until its master stops or nobody answers for the VIP"
  log "role=deferred from=$from vip=$KARP_VIP iface=$iface reason=\"$why\""
  report_role backup "$why"
  exit 0
fi
# The VIP first, then the role: the agent renews the VIP's lease while the role is master, and a renewal
# would add a VIP that is not there yet.
vip_add "$iface"
state_set role master
# ucarp sends its gratuitous ARP once this script returns: the rest (a log line with the time, the reports,
# more announcements) goes on in the background.
(
  # A node that held the VIP outside CARP (cordoned, no successor: entrypoint.sh, handover) is master now.
  rm -f "$KARP_STATE_DIR/holding"
  case ${KARP_PREEMPT:-false} in
    true) why="elected: no preferred master advertised within the dead interval, or this node preempted a slower one" ;;
    *) why="elected: no preferred master advertised within the dead interval" ;;
  esac
  log "role=master from=$from vip=$KARP_VIP/$KARP_VIP_PREFIX iface=$iface reason=\"$why\""
  # Two more announcements in reply mode (some switches and hosts only learn from replies); each one is
  # skipped once this node has let the VIP go.
  announce "$iface"
  report_role master "$why"
) </dev/null >/dev/null 3>&- &
exit 0
