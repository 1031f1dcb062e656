#!/bin/sh
# Builds karp-tls for one architecture against the wolfSSL of a Debian sysroot:
#   agent/tls/build.sh amd64|arm64 SYSROOT OUT-FILE
# SYSROOT holds usr/include/wolfssl and usr/lib/<triplet>/libwolfssl.so (what `dpkg-deb -x` of
# libwolfssl-dev and libwolfssl35 of that architecture gives; / with the host's libwolfssl-dev). The
# compiler is <triplet>-gcc: x86_64-linux-gnu-gcc (Debian gcc) or aarch64-linux-gnu-gcc
# (gcc-aarch64-linux-gnu, with libc6-dev-arm64-cross). The program is linked dynamically: the image
# carries libwolfssl.so.35 and glibc from the same pinned packages.
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
cc=$triplet-gcc
command -v "$cc" >/dev/null || { echo "$0: $cc not found (Debian: gcc or gcc-aarch64-linux-gnu)" >&2; exit 1; }
[ -r "$sysroot/usr/include/wolfssl/ssl.h" ] || { echo "$0: no wolfSSL headers in $sysroot/usr/include/wolfssl (libwolfssl-dev)" >&2; exit 1; }
libdir=$sysroot/usr/lib/$triplet
[ -e "$libdir/libwolfssl.so" ] || { echo "$0: no $libdir/libwolfssl.so (libwolfssl-dev and libwolfssl35)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Only wolfssl/ from the sysroot goes on the include path: with SYSROOT=/ a whole usr/include would put
# the host's C library headers in front of a cross compiler's own.
mkdir "$work/include"
ln -s "$sysroot/usr/include/wolfssl" "$work/include/wolfssl"

mkdir -p "$(dirname "$out")"
"$cc" -std=gnu11 -Os -Wall -Wextra -Werror \
  -fstack-protector-strong -fPIE -pie -Wl,-z,relro,-z,now -Wl,--as-needed \
  -ffile-prefix-map="$here"=. -ffile-prefix-map="$work"=. -ffile-prefix-map="$sysroot"=/ \
  -I"$work/include" "$here/karp-tls.c" \
  -L"$libdir" -Wl,-rpath-link,"$libdir" -lwolfssl \
  -Wl,--build-id=sha1 -s -o "$work/karp-tls"
mv -f "$work/karp-tls" "$out"
