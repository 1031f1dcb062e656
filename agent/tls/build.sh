#!/bin/sh
# Builds one of the agent's C helpers (the OUT-FILE's name says which: the source is that name + .c here,
# e.g. karp-tls), for one architecture with the BearSSL of a Debian sysroot:
#   agent/tls/build.sh amd64|arm64 SYSROOT OUT-FILE
# SYSROOT holds usr/include/bearssl.h, usr/include/bearssl/ and usr/lib/<triplet>/libbearssl.a (what
# `dpkg-deb -x` of libbearssl-dev of that architecture gives; / with the host's libbearssl-dev). The
# compiler is <triplet>-gcc: x86_64-linux-gnu-gcc (Debian gcc) or aarch64-linux-gnu-gcc
# (gcc-aarch64-linux-gnu, with libc6-dev-arm64-cross). BearSSL is linked in statically, glibc
# dynamically: the image needs libc6 only (and, on arm64, ld-linux-aarch64.so.1 of libc6, which holds
# the stack protector's guard).
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
if [ ! -r "$here/$program.c" ]; then
  allowed=
  for source in "$here"/*.c; do
    name=${source##*/}
    allowed="$allowed ${name%.c}"
  done
  echo "$0: OUT-FILE is named $program, which has no $program.c here; allowed:$allowed" >&2
  exit 2
fi
cc=$triplet-gcc
command -v "$cc" >/dev/null || { echo "$0: $cc not found (Debian: gcc or gcc-aarch64-linux-gnu)" >&2; exit 1; }
[ -r "$sysroot/usr/include/bearssl.h" ] || { echo "$0: no $sysroot/usr/include/bearssl.h (libbearssl-dev)" >&2; exit 1; }
library=$sysroot/usr/lib/$triplet/libbearssl.a
[ -r "$library" ] || { echo "$0: no $library (libbearssl-dev)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Only BearSSL's headers from the sysroot go on the include path: with SYSROOT=/ a whole usr/include
# would put the host's C library headers in front of a cross compiler's own.
mkdir "$work/include"
ln -s "$sysroot/usr/include/bearssl.h" "$sysroot/usr/include/bearssl" "$work/include/"

mkdir -p "$(dirname "$out")"
"$cc" -std=gnu11 -Os -Wall -Wextra -Werror \
  -fstack-protector-strong -fPIE -pie -Wl,-z,relro,-z,now -Wl,--as-needed \
  -ffile-prefix-map="$here"=. -ffile-prefix-map="$work"=. -ffile-prefix-map="$sysroot"=/ \
  -I"$work/include" "$here/$program.c" "$library" \
  -Wl,--build-id=sha1 -s -o "$work/$program"
mv -f "$work/$program" "$out"
