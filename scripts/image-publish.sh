#!/usr/bin/env bash
# Pushes the multi-arch image of an OCI layout (its index, every manifest and blob, digests unchanged) to a
# registry, prints the pushed index digest on stdout, and fails unless the registry then serves exactly the
# local index, by tag and by digest.
#
#   scripts/image-publish.sh [--tls-verify=false] [--authfile FILE] [--cert-dir DIR] <oci-layout-dir> <tag> <repository>
#
# e.g. scripts/image-publish.sh build/image/oci v0.1.0 registry.example:5000/karp-agent
# Credentials come only from an auth file (`skopeo login --authfile FILE --password-stdin REGISTRY`, or the
# REGISTRY_AUTH_FILE variable skopeo reads), never from this command line: argv is visible to every process
# and ends up in logs. --tls-verify=false is for a plain-http registry (a test registry on 127.0.0.1).
set -euo pipefail

usage() {
  echo "usage: $0 [--tls-verify=false] [--authfile FILE] [--cert-dir DIR] <oci-layout-dir> <tag> <repository>" >&2
  exit 2
}

copy_opts=(--retry-times 3)
inspect_opts=(--retry-times 3)
while [ $# -gt 0 ]; do
  case "$1" in
    --tls-verify=true | --tls-verify=false)
      copy_opts+=("--dest-${1#--}")
      inspect_opts+=("$1")
      ;;
    --authfile | --cert-dir)
      [ $# -ge 2 ] || usage
      copy_opts+=("--dest-${1#--}" "$2")
      inspect_opts+=("$1" "$2")
      shift
      ;;
    --authfile=* | --cert-dir=*)
      option=${1%%=*}
      copy_opts+=("--dest-${option#--}" "${1#*=}")
      inspect_opts+=("$option" "${1#*=}")
      ;;
    -*creds* | -*password* | -*token*)
      echo "image-publish: credentials are taken only from an auth file (--authfile or REGISTRY_AUTH_FILE), not from the command line" >&2
      exit 2
      ;;
    --) shift; break ;;
    -*) echo "image-publish: unknown option ${1%%=*}" >&2; usage ;;
    *) break ;;
  esac
  shift
done
[ $# -eq 3 ] || usage
layout=$1 tag=$2 repository=$3
if [ ! -f "$layout/index.json" ] || [ ! -f "$layout/oci-layout" ]; then
  echo "image-publish: $layout is not an OCI image layout" >&2
  exit 2
fi
case "$repository" in
  docker://* | *@* ) echo "image-publish: give the repository without a transport, tag or digest (e.g. ghcr.io/owner/karp-agent)" >&2; exit 2 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The digest of the index as the layout holds it: what the registry must end up serving.
skopeo inspect --raw "oci:$layout:$tag" >"$work/local.json"
local_digest=$(skopeo manifest-digest "$work/local.json")
echo "image-publish: pushing oci:$layout:$tag ($local_digest) to $repository:$tag" >&2

# --all: the index and every image in it; --preserve-digests: fail rather than let skopeo rewrite a manifest.
skopeo copy --all --preserve-digests --digestfile "$work/pushed" "${copy_opts[@]}" \
  "oci:$layout:$tag" "docker://$repository:$tag" >&2
pushed_digest=$(cat "$work/pushed")

skopeo inspect --raw "${inspect_opts[@]}" "docker://$repository:$tag" >"$work/by-tag.json"
served_digest=$(skopeo manifest-digest "$work/by-tag.json")
skopeo inspect --raw "${inspect_opts[@]}" "docker://$repository@$local_digest" >"$work/by-digest.json"

status=0
if [ "$pushed_digest" != "$local_digest" ]; then
  echo "image-publish: skopeo pushed $pushed_digest, the layout's index is $local_digest" >&2
  status=1
fi
if [ "$served_digest" != "$local_digest" ]; then
  echo "image-publish: $repository:$tag is $served_digest, the layout's index is $local_digest" >&2
  status=1
fi
if ! cmp -s "$work/local.json" "$work/by-digest.json"; then
  echo "image-publish: $repository@$local_digest is not byte-for-byte the layout's index" >&2
  status=1
fi
[ "$status" -eq 0 ] || exit "$status"
echo "image-publish: $repository:$tag serves $local_digest" >&2
echo "$local_digest"
