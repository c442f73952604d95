#!/usr/bin/env bash
# The demo: builds what is missing, starts the local control plane, installs examples/auto,
# starts the controller, changes a ConfigMap and shows the Deployment rolling to a new
# ReplicaSet with Ready pods. `make demo-stop` (or `make cluster-down`) ends it.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
bold() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

bold "Kubernetes components (built from the Go module proxy once, ~15 min on 2 cores; cached after)"
bin=$(hack/tools.sh)
export PATH="$bin:$PATH"
bold "Starting the local control plane"
eval "$(hack/cluster.sh ensure | tail -n 1)"
kubectl get nodes
bold "Building the controller (release)"
cargo build --release
bold "Installing examples/auto into namespace demo"
# A fresh namespace each time, so the demo starts from the example as written.
kubectl delete namespace demo --ignore-not-found --wait=true > /dev/null
kubectl create namespace demo > /dev/null
kubectl -n demo apply -f examples/auto/manifests.yaml
# Slow the rollout down a little (pods count as available after 2 s, one at a time), so it can
# be watched; none of this touches the pod template.
kubectl -n demo patch deployment web --type merge \
  -p '{"spec":{"replicas":3,"minReadySeconds":2,"strategy":{"rollingUpdate":{"maxSurge":1,"maxUnavailable":0}}}}' > /dev/null
kubectl -n demo rollout status deployment/web --timeout=60s

state="$repo/.cluster/state"
logs="$repo/.cluster/logs"
if [ -f "$state/reloader-demo.pid" ] && kill -0 "$(cut -d' ' -f1 "$state/reloader-demo.pid")" 2> /dev/null; then
  kill "$(cut -d' ' -f1 "$state/reloader-demo.pid")" || true
  sleep 1
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
bold "Starting the controller (log: .cluster/logs/reloader-demo.log, metrics: http://127.0.0.1:$port/metrics)"
setsid target/release/reloader --namespaces=demo --metrics-addr="127.0.0.1:$port" > "$logs/reloader-demo.log" 2>&1 < /dev/null &
pid=$!
echo "$pid $(awk '{print $22}' "/proc/$pid/stat")" > "$state/reloader-demo.pid"
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/ready" > /dev/null 2>&1 && break
  sleep 0.2
done
echo "ready: $(curl -fsS "http://127.0.0.1:$port/ready")"
sleep 1
echo
kubectl -n demo get replicasets -l app=web

bold "Changing ConfigMap web-config"
kubectl -n demo patch configmap web-config --type merge -p "{\"data\":{\"GREETING\":\"hello at $(date +%T)\"}}"
old=$(kubectl -n demo get deployment web -o jsonpath='{.metadata.annotations.deployment\.kubernetes\.io/revision}')

bold "The rollout, live"
last=""
start=$SECONDS
while [ $((SECONDS - start)) -lt 30 ]; do
  now=$(kubectl -n demo get replicasets -l app=web --no-headers -o custom-columns='REPLICASET:.metadata.name,DESIRED:.spec.replicas,READY:.status.readyReplicas,REVISION:.metadata.annotations.deployment\.kubernetes\.io/revision' | sort -k4 -n)
  if [ "$now" != "$last" ]; then
    printf '\n[%3ss]  REPLICASET  DESIRED  READY  REVISION\n' "$((SECONDS - start))"
    echo "$now" | sed 's/^/         /'
    last=$now
  fi
  rev=$(kubectl -n demo get deployment web -o jsonpath='{.metadata.annotations.deployment\.kubernetes\.io/revision}')
  if [ "$rev" != "$old" ] && kubectl -n demo rollout status deployment/web --timeout=1s > /dev/null 2>&1; then
    break
  fi
  sleep 0.3
done
printf '\n[%3ss]  rolled out:\n' "$((SECONDS - start))"
kubectl -n demo get replicasets -l app=web
echo
kubectl -n demo get pods -l app=web -o wide
bold "What the controller said"
grep -E "Changes detected|adopting|Starting" "$logs/reloader-demo.log" | sed 's/^/  /' || true
bold "What the controller sees now (reloader explain)"
target/release/reloader explain deployment/web -n demo

cat << EOF

==> Poke at it
  export KUBECONFIG=$KUBECONFIG
  export PATH=$bin:\$PATH
  kubectl -n demo patch configmap web-config --type merge -p '{"data":{"GREETING":"again"}}'
  kubectl -n demo get rs -l app=web -w
  target/release/reloader explain deployment/web -n demo
  curl -s http://127.0.0.1:$port/metrics | grep ^reloader_
  tail -f .cluster/logs/reloader-demo.log

==> Stop it
  make demo-stop        # the controller and the local control plane
EOF
