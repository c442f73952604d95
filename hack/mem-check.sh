#!/usr/bin/env bash
# A quick memory figure: fills a scratch namespace of the local control plane with the
# benchmark's scale set (N Secrets: most 1–4 KiB, 1 % 100 KiB, 0.1 % 1 MiB, 10 % Helm releases;
# N ConfigMaps of 1–4 KiB; N/10 auto-annotated Deployments), starts the release controller,
# waits for its initial sync and start-up writes, and prints its resident set size. Extra
# arguments go to the controller. The side-by-side comparison is `make bench`.
#   hack/mem-check.sh [N] [controller flags...]   (default N: 10000)
# MEM_CHECK_KEEP=1 keeps the namespace, so runs with other flags skip the set-up;
# MEM_CHECK_BIN=path runs that build of the controller instead of target/release/reloader.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
n=${1:-10000}
shift || true
eval "$(hack/cluster.sh ensure | tail -n 1)"
PATH="$(hack/tools.sh --check):$PATH"
[ -n "${MEM_CHECK_NOBUILD:-}" ] || cargo build --release --quiet
ns=mem-check
if [ "$(kubectl get namespace "$ns" -o jsonpath='{.metadata.annotations.mem-check/n}' 2> /dev/null)" != "$n" ]; then
  kubectl delete namespace "$ns" --ignore-not-found --wait=true > /dev/null
  kubectl create namespace "$ns" > /dev/null
  echo ">> creating $n Secrets, $n ConfigMaps and $((n / 10)) Deployments" >&2
  python3 - "$n" << 'PY' | kubectl -n "$ns" create -f - > /dev/null
import base64, json, sys
n = int(sys.argv[1])
def filler(i, size):
    return (f"{i:08d}" * (size // 8 + 1))[:size]
items = []
for i in range(n):
    size = 1 << 20 if i % 1000 == 999 else 100 << 10 if i % 100 == 50 else 1024 + (i * 37) % 3072
    s = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"s-{i}"},
         "data": {"payload": base64.b64encode(filler(i, size).encode()).decode()}}
    if i % 10 == 3:
        s["type"] = "helm.sh/release.v1"
    items.append(s)
    items.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c-{i}"},
                  "data": {"v": filler(i + 7, 1024 + (i * 53) % 3072)}})
for i in range(n // 10):
    spec = {"containers": [{"name": "app", "image": "example.com/app:1",
                            "envFrom": [{"configMapRef": {"name": f"c-{(i * 13) % n}"}}],
                            "volumeMounts": [{"name": "s", "mountPath": "/s"}]}],
            "volumes": [{"name": "s", "secret": {"secretName": f"s-{(i * 7) % n}"}}]}
    items.append({"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": f"d-{i}", "annotations": {"reloader.stakater.com/auto": "true"}},
                  "spec": {"replicas": 0, "selector": {"matchLabels": {"app": f"d-{i}"}},
                           "template": {"metadata": {"labels": {"app": f"d-{i}"}}, "spec": spec}}})
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
PY
  kubectl annotate namespace "$ns" "mem-check/n=$n" > /dev/null
fi
log=$(mktemp)
${MEM_CHECK_BIN:-target/release/reloader} --metrics-addr=127.0.0.1:0 "$@" > "$log" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2> /dev/null || true
  [ -n "${MEM_CHECK_KEEP:-}" ] || kubectl delete namespace "$ns" --wait=false > /dev/null
}
trap cleanup EXIT
for _ in $(seq 1 600); do grep -q "initial sync complete" "$log" && break; sleep 0.1; done
grep -o "initial sync complete.*" "$log" >&2 || { cat "$log" >&2; exit 1; }
sleep 5
kib() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$pid/status"; }
# Heap in use (the allocator's count of live blocks, `reloader_heap_bytes`) varies far less from
# run to run than the RSS, which also holds what the allocator keeps: compare builds on it.
addr=$(grep -o 'addr=[0-9.:]*' "$log" | head -n 1 | cut -d= -f2)
heap=$(curl -fsS "http://$addr/metrics" | awk '$1 == "reloader_heap_bytes" {printf "%d", $2 / 1024}')
# CPU time so far (user + system, fields 14 and 15 of /proc/<pid>/stat, in clock ticks).
cpu=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$pid/stat")
echo "RSS after sync with the scale set of $n: $(kib VmRSS) kB (peak $(kib VmHWM) kB; anonymous $(kib RssAnon) kB, file-backed $(kib RssFile) kB); heap in use ${heap:-?} kB; CPU ${cpu} s"
