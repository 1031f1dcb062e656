#!/bin/sh
# Baseline only: the up script a plain ucarp setup uses (ucarp's examples): add the VIP, nothing else.
exec ip addr add "$2/32" dev "$1"
