# Sourced, not run: puts a Node.js >= 22 first on PATH. Uses the machine's Node when it is new enough,
# otherwise installs Node 24 (the current LTS) from the npm registry, which ships it as a package.
# shellcheck shell=bash
karp_node_major() { "${1:-node}" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

if [ "$(karp_node_major)" -lt 22 ]; then
  karp_node_dir=${KARP_NODE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/karp/node24}
  karp_node_bin="$karp_node_dir/node_modules/node/bin"
  if [ "$(karp_node_major "$karp_node_bin/node")" -lt 22 ]; then
    echo "ensure-node: Node $(node --version 2>/dev/null || echo none) is older than 22; installing Node 24 into $karp_node_dir" >&2
    mkdir -p "$karp_node_dir"
    # The node package's preinstall step links the platform binary that it ships; it downloads nothing.
    printf '{"private": true, "allowScripts": {"node": true}}\n' > "$karp_node_dir/package.json"
    (cd "$karp_node_dir" && npm install --no-audit --no-fund node@24 >&2)
  fi
  [ "$(karp_node_major "$karp_node_bin/node")" -ge 22 ] || { echo "ensure-node: could not install Node 24" >&2; return 1; }
  export PATH="$karp_node_bin:$PATH"
fi
