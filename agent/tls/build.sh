#!/bin/sh
# Builds one of the agent's C helpers for one architecture against a Debian sysroot; the OUT-FILE's name
# says which: a program (karp-tls) from that name + .c here, or a shared object for LD_PRELOAD
# (karp-pcap-immediate.so) from the name without .so + .c:
#   agent/tls/build.sh amd64|arm64 SYSROOT OUT-FILE
# SYSROOT holds the headers (and static libraries) of the build packages that the source includes:
# BearSSL's usr/include/bearssl.h, usr/include/bearssl/ and usr/lib/<triplet>/libbearssl.a
# (libbearssl-dev), libpcap's usr/include/pcap/ (libpcap0.8-dev): what `dpkg-deb -x` of those packages
# of that architecture gives; / with the host's. The compiler is <triplet>-gcc: x86_64-linux-gnu-gcc
# (Debian gcc) or aarch64-linux-gnu-gcc (gcc-aarch64-linux-gnu, with libc6-dev-arm64-cross). BearSSL is
# linked in statically, glibc dynamically: the image needs libc6 only (and, on arm64,
# ld-linux-aarch64.so.1 of libc6, which holds the stack protector's guard). A shared object links
# nothing but glibc: the libpcap functions it calls are those of the program it is preloaded into.
# The same inputs (source, sysroot, compiler) give the same bytes: no paths, no timestamps, no symbols,
# and a build-id that is a hash of the rest.
set -eu
usage() {
  echo "usage: $0 amd64|arm64 SYSROOT OUT-FILE" >&2
  exit 2
}
[ $# -eq 3 ] || usage
case $1 in
  amd64) triplet=x86_64-linux-gnu ;;
  arm64) triplet=aarch64-linux-gnu ;;
  *) usage ;;
esac
sysroot=$(cd "$2" && pwd)
out=$3
here=$(cd "$(dirname "$0")" && pwd)
program=$(basename "$out")
name=${program%.so}
source=$here/$name.c
if [ ! -r "$source" ]; then
  sources=
  for each in "$here"/*.c; do sources="$sources ${each##*/}"; done
  echo "$0: OUT-FILE is named $program, which has no $name.c here (OUT-FILE is a source's name without .c, or with .so in place of .c for a shared object); sources:$sources" >&2
  exit 2
fi
cc=$triplet-gcc
command -v "$cc" >/dev/null || { echo "$0: $cc not found (Debian: gcc or gcc-aarch64-linux-gnu)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Only the build packages' own headers from the sysroot go on the include path: with SYSROOT=/ a whole
# usr/include would put the host's C library headers in front of a cross compiler's own.
mkdir "$work/include"
set --
if grep -q '^#include <bearssl.h>' "$source"; then
  [ -r "$sysroot/usr/include/bearssl.h" ] || { echo "$0: no $sysroot/usr/include/bearssl.h (libbearssl-dev)" >&2; exit 1; }
  library=$sysroot/usr/lib/$triplet/libbearssl.a
  [ -r "$library" ] || { echo "$0: no $library (libbearssl-dev)" >&2; exit 1; }
  set -- "$library"
  ln -s "$sysroot/usr/include/bearssl.h" "$sysroot/usr/include/bearssl" "$work/include/"
fi
if grep -q '^#include <pcap/pcap.h>' "$source"; then
  [ -r "$sysroot/usr/include/pcap/pcap.h" ] || { echo "$0: no $sysroot/usr/include/pcap/pcap.h (libpcap0.8-dev)" >&2; exit 1; }
  ln -s "$sysroot/usr/include/pcap" "$work/include/"
fi
if [ "$name" = "$program" ]; then set -- -fPIE -pie "$@"; else set -- -fPIC -shared "$@"; fi

mkdir -p "$(dirname "$out")"
"$cc" -std=gnu11 -Os -Wall -Wextra -Werror \
  -fstack-protector-strong -Wl,-z,relro,-z,now -Wl,--as-needed \
  -ffile-prefix-map="$here"=. -ffile-prefix-map="$work"=. -ffile-prefix-map="$sysroot"=/ \
  -I"$work/include" "$source" "$@" \
  -Wl,--build-id=sha1 -s -o "$work/$program"
mv -f "$work/$program" "$out"
