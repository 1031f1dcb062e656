#!/usr/bin/env bash
# Builds the pinned control plane (kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, kubectl, kubelet, etcd,
# kwok) and crictl (the CRI client the container-runtime tests drive containerd with) from the Go module
# proxy into a cache outside the repo, keyed by the version of every module built. Rebuilds only what is
# missing; Go's build and module caches make a rebuild after a cache wipe take about a minute.
# Prints the directory that holds the binaries on its last line.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
module_version() { # module go.mod: the version a go.mod requires, in either require form
  awk -v m="$1" '{ if ($1 == "require") { $1 = ""; $0 = $0 } } $1 == m && $2 ~ /^v/ { print $2; exit }' "$2"
}
k8s_version=$(module_version k8s.io/kubernetes "$here/go.mod")
kwok_version=$(module_version sigs.k8s.io/kwok "$here/kwok/go.mod")
crictl_version=$(module_version sigs.k8s.io/cri-tools "$here/crictl/go.mod")
cache_root=${KARP_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/karp/cluster}
out="$cache_root/k8s-$k8s_version-kwok-$kwok_version-crictl-$crictl_version"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubectl kubelet etcd kwok crictl)

missing=()
for b in "${binaries[@]}"; do [ -x "$out/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -eq 0 ]; then echo "$out"; exit 0; fi

if ! command -v go >/dev/null 2>&1; then
  for candidate in /usr/local/go/bin/go /usr/lib/go/bin/go; do
    [ -x "$candidate" ] && PATH="$(dirname "$candidate"):$PATH" && break
  done
fi
command -v go >/dev/null 2>&1 || { echo "build.sh: no Go toolchain on PATH (Go >= 1.24 is needed to build the test control plane)" >&2; exit 1; }

echo "build.sh: building ${missing[*]} (Kubernetes $k8s_version, kwok $kwok_version, crictl $crictl_version) into $out" >&2
echo "build.sh: a cold build takes about 10 minutes on 2 cores (527 s measured, plus module downloads); later builds reuse Go's caches" >&2
start=$(date +%s)
mkdir -p "$out"
staging=$(mktemp -d "$out.tmp.XXXXXX")
trap 'rm -rf "$staging"' EXIT

minor=${k8s_version#v*.}; minor=${minor%%.*}
major=${k8s_version#v}; major=${major%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

k8s_pkgs=()
for b in "${missing[@]}"; do
  case $b in
    kube-*|kubectl|kubelet) k8s_pkgs+=("k8s.io/kubernetes/cmd/$b") ;;
    etcd) k8s_pkgs+=("./cmd/etcd") ;;
  esac
done
export CGO_ENABLED=0 GOFLAGS=-mod=readonly
if [ ${#k8s_pkgs[@]} -gt 0 ]; then
  (cd "$here" && go build -trimpath -ldflags "$ldflags" -o "$staging/" "${k8s_pkgs[@]}")
fi
if [[ " ${missing[*]} " == *" kwok "* ]]; then
  (cd "$here/kwok" && go build -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$kwok_version" -o "$staging/kwok" sigs.k8s.io/kwok/cmd/kwok)
fi
if [[ " ${missing[*]} " == *" crictl "* ]]; then
  (cd "$here/crictl" && go build -trimpath -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$crictl_version" -o "$staging/crictl" sigs.k8s.io/cri-tools/cmd/crictl)
fi
for b in "${missing[@]}"; do mv -f "$staging/$b" "$out/$b"; done
echo "build.sh: built in $(( $(date +%s) - start )) s" >&2
echo "$out"
