#!/usr/bin/env bash
# Sets up a fresh Debian machine for karp's development and tests: Debian packages, Node >= 22, npm
# dependencies, and the Go-built control plane the integration tests run against. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# ucarp, iproute2, arping: the agent and its network-namespace lab; shellcheck: lints the agent's scripts;
# curl and socat: the lab's health checks and port forwards; gcc, libc6-dev, libbearssl-dev, libpcap0.8-dev and the
# aarch64 cross compiler: the agent's C helpers (agent/tls/build.sh); skopeo, docker-registry and apache2-utils (htpasswd):
# the release dry-run (test/e2e/image-registry.test.ts); containerd and runc: the image under the real
# runtime (test/runtime/containerd.ts starts an instance of its own; none depends on the system service);
# xz-utils, gpgv, binutils (readelf): the image build reads signed Debian indexes and ELF headers;
# iptables, util-linux (nsenter, unshare), hostname, openssl: the real-node lab (kube-proxy's rules, nodes'
# namespaces, certificate checks from inside them); stress-ng: the failover soak (bench/failover/real-nodes.ts) loads every core.
apt_packages=(ucarp iproute2 iputils-arping shellcheck curl socat procps git ca-certificates busybox-static gcc libc6-dev libbearssl-dev libpcap0.8-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross skopeo docker-registry apache2-utils containerd runc xz-utils gpgv binutils iptables util-linux hostname openssl stress-ng)
missing=()
for p in "${apt_packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "setup: need root to install ${missing[*]}" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# shellcheck source=scripts/ensure-node.sh
source scripts/ensure-node.sh
npm ci --no-audit --no-fund

bash lab/k8s/build.sh >/dev/null
echo "setup: done (Node $(node --version), control plane in $(bash lab/k8s/build.sh))" >&2
