#!/usr/bin/env bash
# Builds the pinned Kubernetes components and tools from the Go module proxy into a cache
# outside the repository, and prints the directory that holds them all.
#
#   hack/tools.sh            build what is missing, print the bin directory
#   hack/tools.sh --check    print the bin directory if everything is cached, else exit 1
#
# Each tool has a wrapper module in hack/tools/<tool>/ (go.mod + go.sum committed). Its cache
# entry is keyed by a hash of that module, the Go version and the build flags, so changing a pin
# rebuilds only that tool. Builds go to <entry>.tmp and are renamed into place when complete;
# a flock per entry lets concurrent runs wait for each other instead of corrupting the cache.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tools="$here/tools"
root=${RELOADER_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-reloader-tools}
mkdir -p "$root"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-modcacherw
# A private build cache, removed once every tool is built: the binaries are what is kept, and
# the compiled packages of a cold build take about 5 GB that a CI machine may not have.
export GOCACHE="$root/go-build"
built=false

check_only=false
[ "${1:-}" = "--check" ] && check_only=true

# The pinned version of a module, from a wrapper's go.mod (either require form).
pin() { awk -v m="$2" '$1 == m && $0 !~ /=>/ {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$tools/$1/go.mod"; }
k8s_version=$(pin k8s k8s.io/kubernetes)
helm_version=$(pin helm helm.sh/helm/v3)
[ -n "$k8s_version" ] && [ -n "$helm_version" ] || { echo "cannot read the pins from $tools/*/go.mod" >&2; exit 1; }

# Version stamps make /version report the real release (clients and `helm` parse it). A fixed
# build date keeps rebuilds reproducible.
k8s_ldflags() {
  local v=$k8s_version minor
  minor=$(echo "$v" | cut -d. -f2)
  local ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    ld="$ld -X $p.gitCommit=0000000000000000000000000000000000000000 -X $p.buildDate=2026-01-01T00:00:00Z"
  done
  echo "$ld"
}

# tool name -> "packages|ldflags|tags"
spec() {
  case "$1" in
    k8s) echo "k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl|$(k8s_ldflags)|selinux,notest,grpcnotrace" ;;
    etcd) echo "go.etcd.io/etcd/server/v3|-s -w|" ;;
    kwok) echo "sigs.k8s.io/kwok/cmd/kwok|-s -w|" ;;
    helm) echo "helm.sh/helm/v3/cmd/helm|-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version|" ;;
    # promtool tests the chart's alerts (tests/alerts.rs).
    promtool) echo "github.com/prometheus/prometheus/cmd/promtool|-s -w -X github.com/prometheus/common/version.Version=$(pin promtool github.com/prometheus/prometheus)|" ;;
    *) echo "unknown tool $1" >&2; return 1 ;;
  esac
}

key_of() {
  local t=$1
  { cat "$tools/$t/go.mod" "$tools/$t/go.sum"; go version; go env GOOS GOARCH; spec "$t"; } | sha256sum | cut -c1-16
}

# Sets $entry to the tool's cache entry, building it if needed (not in --check mode).
build_one() {
  local t=$1 key dest s pkgs ld tags
  key=$(key_of "$t")
  dest="$root/$t-$key"
  entry=$dest
  if [ -e "$dest/.complete" ]; then return 0; fi
  if $check_only; then return 1; fi
  exec 9>"$dest.lock"
  flock 9
  built=true
  if [ ! -e "$dest/.complete" ]; then
    s=$(spec "$t")
    pkgs=${s%%|*}; s=${s#*|}; ld=${s%%|*}; tags=${s#*|}
    echo ">> building $t ($key) into $dest; this takes a while on a cold cache" >&2
    local start=$SECONDS
    rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
    if [ "$t" = etcd ]; then
      # etcd's main package is its module root, so `go build -o dir/` would name it "v3".
      (cd "$tools/$t" && go build -mod=readonly -trimpath -ldflags "$ld" -o "$dest.tmp/etcd" $pkgs) >&2
    else
      (cd "$tools/$t" && go build -mod=readonly -trimpath ${tags:+-tags "$tags"} -ldflags "$ld" -o "$dest.tmp/" $pkgs) >&2
    fi
    touch "$dest.tmp/.complete"
    mv "$dest.tmp" "$dest"
    echo ">> built $t in $((SECONDS - start)) s" >&2
  fi
  exec 9>&-
}

# Builders hold this lock shared; the build cache is removed only when no other run is building.
exec 8>"$root/.building.lock"
$check_only || flock -s 8

dirs=()
for t in etcd kwok helm promtool k8s; do
  build_one "$t" || { echo "tool $t is not built yet; run hack/tools.sh" >&2; exit 1; }
  dirs+=("$entry")
done

if $built && flock -n -x 8; then
  rm -rf "$GOCACHE"
fi
exec 8>&-

# One directory of symlinks per combination of tool entries, so callers need a single path.
combo=$(printf '%s\n' "${dirs[@]}" | sha256sum | cut -c1-16)
bin="$root/bin-$combo"
if [ ! -d "$bin" ]; then
  tmp=$(mktemp -d "$root/bin.XXXXXX")
  for d in "${dirs[@]}"; do
    for f in "$d"/*; do ln -s "$f" "$tmp/$(basename "$f")"; done
  done
  mv -T "$tmp" "$bin" 2>/dev/null || rm -rf "$tmp"
fi
echo "$bin"
