#!/bin/sh
# Baseline only: the down script a plain ucarp setup uses (ucarp's examples): remove the VIP.
ip addr del "$2/32" dev "$1" 2>/dev/null
exit 0
