#!/usr/bin/env bash
# A quick memory figure: creates N Secrets (2 KiB each) and N ConfigMaps in a scratch namespace
# of the local control plane, starts the release controller, waits for its initial sync and
# prints its resident set size. The full side-by-side comparison is the benchmark's job.
#   hack/mem-check.sh [N]   (default 5000)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
n=${1:-5000}
eval "$(hack/cluster.sh ensure | tail -n 1)"
PATH="$(hack/tools.sh --check):$PATH"
cargo build --release --quiet
ns=mem-check
kubectl delete namespace "$ns" --ignore-not-found --wait=true > /dev/null
kubectl create namespace "$ns" > /dev/null
payload=$(head -c 1536 /dev/urandom | base64 -w0)
gen() { # kind count
  python3 - "$1" "$2" "$payload" << 'PY'
import json, sys
kind, n, payload = sys.argv[1], int(sys.argv[2]), sys.argv[3]
items = []
for i in range(n):
    if kind == "Secret":
        items.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"s-{i}"}, "data": {"k": payload}})
    else:
        items.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c-{i}"}, "data": {"k": payload[:2048]}})
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
PY
}
echo ">> creating $n Secrets and $n ConfigMaps" >&2
gen Secret "$n" | kubectl -n "$ns" create -f - > /dev/null
gen ConfigMap "$n" | kubectl -n "$ns" create -f - > /dev/null
log=$(mktemp)
target/release/reloader --metrics-addr=127.0.0.1:0 > "$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; kubectl delete namespace "$ns" --wait=false > /dev/null' EXIT
for _ in $(seq 1 600); do grep -q "initial sync complete" "$log" && break; sleep 0.1; done
grep "initial sync complete" "$log" >&2
sleep 3
echo "RSS after sync with $n Secrets + $n ConfigMaps: $(awk '/VmRSS/{print $2, $3}' /proc/$pid/status) (peak $(awk '/VmHWM/{print $2, $3}' /proc/$pid/status))"
