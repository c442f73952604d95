#!/usr/bin/env bash
# A real, local Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and kwok (fake nodes and pods), as processes on the loopback interface.
#
#   hack/cluster.sh up              start it; the last line printed is `export KUBECONFIG=...`
#   hack/cluster.sh down            stop exactly the processes `up` started and remove their state
#   hack/cluster.sh status          say whether it is up
#   hack/cluster.sh ensure          start it unless it is up; prints the export line either way
#   hack/cluster.sh restart-apiserver|restart-etcd [SECONDS]
#                                   stop that component, wait SECONDS, start it again with the
#                                   same arguments, and wait for /readyz
#   hack/cluster.sh sa-kubeconfig NAMESPACE SERVICEACCOUNT [OUT]
#                                   write a kubeconfig holding a TokenRequest token of that
#                                   ServiceAccount (to run the controller with exactly its RBAC)
#
# State (certificates, kubeconfig, pids, etcd data) lives in $RELOADER_CLUSTER_DIR (default:
# .cluster/ in the repository); component logs in $RELOADER_CLUSTER_DIR/logs, kept after `down`
# so a failed run can be diagnosed.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${RELOADER_CLUSTER_DIR:-$repo/.cluster}
state="$dir/state"
logs="$dir/logs"
nodes=${RELOADER_CLUSTER_NODES:-2}

log() { echo "cluster: $*" >&2; }
die() { echo "cluster: error: $*" >&2; exit 1; }

# pid files are "<pid> <start time>" so a recycled pid is never mistaken for ours.
proc_start() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null; }
alive() {
  local f=$1 pid start
  [ -f "$f" ] || return 1
  read -r pid start < "$f"
  [ -n "$pid" ] && [ "$(proc_start "$pid")" = "$start" ]
}

is_up() {
  [ -d "$state" ] || return 1
  local f
  for f in "$state"/etcd.pid "$state"/kube-apiserver.pid; do alive "$f" && return 0; done
  return 1
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() { # name, then command...
  local name=$1; shift
  # setsid: the components outlive this script and are not hit by the terminal's signals;
  # they must not inherit the lock descriptors, or they would hold the locks forever.
  setsid "$@" > "$logs/$name.log" 2>&1 < /dev/null 8>&- 9>&- &
  local pid=$!
  echo "$pid $(proc_start "$pid")" > "$state/$name.pid"
}

tail_logs() {
  local f
  for f in "$logs"/*.log; do
    [ -f "$f" ] || continue
    echo "----- last lines of $f -----" >&2
    tail -n 25 "$f" >&2
  done
}

wait_for() { # description, timeout seconds, command...
  local what=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" > /dev/null 2>&1; do
    local f
    for f in "$state"/*.pid; do
      alive "$f" || { tail_logs; die "$(basename "$f" .pid) exited while waiting for $what (logs above, all in $logs)"; }
    done
    if [ $SECONDS -ge $deadline ]; then
      tail_logs
      die "timed out after ${timeout}s waiting for $what (logs above, all in $logs)"
    fi
    sleep 0.2
  done
}

certs() {
  local c="$state/pki"
  mkdir -p "$c"
  (
    cd "$c"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=reloader-test-ca \
      -keyout ca.key -out ca.crt 2> /dev/null
    openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver -keyout apiserver.key -out apiserver.csr 2> /dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' > srv.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile srv.ext -out apiserver.crt 2> /dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=admin" -keyout admin.key -out admin.csr 2> /dev/null
    printf 'extendedKeyUsage=clientAuth\n' > cli.ext
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile cli.ext -out admin.crt 2> /dev/null
    openssl genrsa -out sa.key 2048 2> /dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2> /dev/null
  )
}

kubeconfig() { # out, server
  local out=$1 server=$2 k="kubectl config --kubeconfig=$1"
  $k set-cluster local --server="$server" --certificate-authority="$state/pki/ca.crt" --embed-certs > /dev/null
  $k set-credentials admin --client-certificate="$state/pki/admin.crt" \
    --client-key="$state/pki/admin.key" --embed-certs > /dev/null
  $k set-context local --cluster=local --user=admin > /dev/null
  $k use-context local > /dev/null
}

node_manifest() {
  local i
  for i in $(seq 0 $((nodes - 1))); do
    cat << EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    node.alpha.kubernetes.io/ttl: "0"
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
status:
  allocatable: {cpu: "64", memory: 512Gi, pods: "1000"}
  capacity: {cpu: "64", memory: 512Gi, pods: "1000"}
---
EOF
  done
}

# kwok v0.8.0 ships no built-in stages: without pod-delete, old pods stay Terminating and no
# rollout ever finishes. Take the stage files from the kwok module we built from.
stages() {
  local s
  s=$(cd "$repo/hack/tools/kwok" && GOFLAGS=-modcacherw go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage
  local f
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
    pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    [ -f "$s/$f" ] || die "kwok stage file $s/$f is missing"
    cat "$s/$f"
    echo '---'
  done
}

up() {
  if is_up; then
    die "the local cluster is already up (state in $state). Use it with: export KUBECONFIG=$state/admin.kubeconfig, or run 'make cluster-down' first"
  fi
  local t0=$SECONDS bin
  bin=$("$repo/hack/tools.sh")
  export PATH="$bin:$PATH"
  rm -rf "$state" "$logs"
  mkdir -p "$state" "$logs"
  # A start that fails half-way stops what it started (logs stay for diagnosis).
  trap 'if [ $? -ne 0 ]; then down > /dev/null 2>&1 || true; fi' EXIT
  log "binaries from $bin; logs in $logs"
  certs

  local eport pport aport kport sport kwport
  eport=$(free_port); pport=$(free_port); aport=$(free_port)
  kport=$(free_port); sport=$(free_port); kwport=$(free_port)
  echo "$aport" > "$state/apiserver.port"

  start etcd etcd --name=local --data-dir="$state/etcd" \
    --listen-client-urls="http://127.0.0.1:$eport" --advertise-client-urls="http://127.0.0.1:$eport" \
    --listen-peer-urls="http://127.0.0.1:$pport" --initial-advertise-peer-urls="http://127.0.0.1:$pport" \
    --initial-cluster="local=http://127.0.0.1:$pport" \
    --unsafe-no-fsync --quota-backend-bytes=8589934592 --log-level=warn
  wait_for etcd 30 curl -fsS "http://127.0.0.1:$eport/health"

  local audit=()
  if [ -n "${RELOADER_CLUSTER_AUDIT:-}" ]; then
    cat > "$state/audit-policy.yaml" << 'EOF'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
EOF
    audit=(--audit-policy-file="$state/audit-policy.yaml" --audit-log-path="$logs/audit.log"
      --audit-log-format=json --audit-log-maxsize=2000)
  fi

  # API Priority and Fairness is on, as in any real cluster, at the default 600 seats. The
  # admin identity of the tests, the bench and the components is system:masters, which APF
  # exempts; a test puts the controller's ServiceAccount in a priority level that rejects.
  start kube-apiserver kube-apiserver --etcd-servers="http://127.0.0.1:$eport" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$aport" \
    --tls-cert-file="$state/pki/apiserver.crt" --tls-private-key-file="$state/pki/apiserver.key" \
    --client-ca-file="$state/pki/ca.crt" --authorization-mode=Node,RBAC \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$state/pki/sa.pub" --service-account-signing-key-file="$state/pki/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 --endpoint-reconciler-type=none --allow-privileged=true \
    --max-requests-inflight=400 --max-mutating-requests-inflight=200 \
    --profiling=false "${audit[@]}"
  kubeconfig "$state/admin.kubeconfig" "https://127.0.0.1:$aport"
  export KUBECONFIG="$state/admin.kubeconfig"
  wait_for "kube-apiserver /readyz" 60 curl -fsS --cacert "$state/pki/ca.crt" "https://127.0.0.1:$aport/readyz"

  start kube-controller-manager kube-controller-manager --kubeconfig="$state/admin.kubeconfig" \
    --leader-elect=false --bind-address=127.0.0.1 --secure-port="$kport" \
    --service-account-private-key-file="$state/pki/sa.key" --root-ca-file="$state/pki/ca.crt" \
    --use-service-account-credentials=false --concurrent-deployment-syncs=10 \
    --concurrent-replicaset-syncs=10 --kube-api-qps=500 --kube-api-burst=1000 --profiling=false
  start kube-scheduler kube-scheduler --kubeconfig="$state/admin.kubeconfig" --leader-elect=false \
    --bind-address=127.0.0.1 --secure-port="$sport" --kube-api-qps=500 --kube-api-burst=1000 --profiling=false
  stages > "$state/kwok-stages.yaml"
  start kwok kwok --kubeconfig="$state/admin.kubeconfig" --config="$state/kwok-stages.yaml" \
    --manage-all-nodes=true --node-lease-duration-seconds=40 --cidr=10.244.0.0/16 --node-ip=10.0.0.1 \
    --server-address="127.0.0.1:$kwport"

  wait_for "kube-controller-manager /healthz" 60 curl -fsSk "https://127.0.0.1:$kport/healthz"
  wait_for "kube-scheduler /healthz" 60 curl -fsSk "https://127.0.0.1:$sport/healthz"
  node_manifest | kubectl apply -f - > /dev/null
  wait_for "nodes Ready" 60 kubectl wait --for=condition=Ready node --all --timeout=1s
  wait_for "the default ServiceAccount" 60 kubectl -n default get serviceaccount default

  log "up in $((SECONDS - t0)) s: $(kubectl get nodes --no-headers | wc -l) Ready fake nodes, apiserver on 127.0.0.1:$aport"
  log "stop it with: make cluster-down"
  trap - EXIT
  echo "export KUBECONFIG=$state/admin.kubeconfig"
}

down() {
  if ! is_up; then
    [ -d "$state" ] && rm -rf "$state"
    log "the local cluster is not running; nothing to stop"
    return 0
  fi
  local name f pid start
  # Stop in reverse order of dependency so components do not spam errors on their way out.
  for name in reloader-demo kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    f="$state/$name.pid"
    alive "$f" || continue
    read -r pid start < "$f"
    kill "$pid" 2> /dev/null || true
    for _ in $(seq 1 50); do alive "$f" || break; sleep 0.1; done
    if alive "$f"; then kill -9 "$pid" 2> /dev/null || true; fi
  done
  rm -rf "$state"
  log "stopped; logs kept in $logs"
}

restart_component() { # component (etcd or kube-apiserver), seconds to stay down
  local name=$1 down=${2:-0} f="$state/$1.pid" pid start args
  is_up || die "the local cluster is not running"
  PATH="$("$repo/hack/tools.sh" --check):$PATH"
  read -r pid start < "$f"
  mapfile -d '' args < "/proc/$pid/cmdline"
  kill "$pid" 2> /dev/null || true
  for _ in $(seq 1 100); do alive "$f" || break; sleep 0.1; done
  if alive "$f"; then kill -9 "$pid" 2> /dev/null || true; fi
  log "$name stopped; down for ${down}s"
  sleep "$down"
  mv "$logs/$name.log" "$logs/$name.before-restart.log"
  start "$name" "${args[@]}"
  # kube-apiserver's /readyz includes etcd, so one probe covers either restart.
  wait_for "kube-apiserver /readyz" 60 curl -fsS --cacert "$state/pki/ca.crt" "https://127.0.0.1:$(cat "$state/apiserver.port")/readyz"
  log "$name restarted with the same arguments"
}

sa_kubeconfig() {
  local ns=${1:?namespace} sa=${2:?serviceaccount} out=${3:-$state/sa-$1-$2.kubeconfig}
  is_up || die "the local cluster is not running: run 'make cluster-up' first"
  PATH="$("$repo/hack/tools.sh" --check):$PATH"
  export KUBECONFIG="$state/admin.kubeconfig"
  local token aport
  token=$(kubectl -n "$ns" create token "$sa" --duration=2h)
  aport=$(cat "$state/apiserver.port")
  local k="kubectl config --kubeconfig=$out"
  $k set-cluster local --server="https://127.0.0.1:$aport" --certificate-authority="$state/pki/ca.crt" --embed-certs > /dev/null
  $k set-credentials "$sa" --token="$token" > /dev/null
  $k set-context local --cluster=local --user="$sa" --namespace="$ns" > /dev/null
  $k use-context local > /dev/null
  echo "$out"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status)
    if is_up; then echo "up: export KUBECONFIG=$state/admin.kubeconfig"; else echo "down"; exit 1; fi ;;
  ensure)
    # Up unless already up; concurrent callers (parallel test binaries) wait for one start.
    mkdir -p "$dir"
    exec 8> "$dir/.lock"
    flock 8
    if is_up; then echo "export KUBECONFIG=$state/admin.kubeconfig"; else up; fi ;;
  sa-kubeconfig) shift; sa_kubeconfig "$@" ;;
  restart-apiserver) shift; restart_component kube-apiserver "$@" ;;
  restart-etcd) shift; restart_component etcd "$@" ;;
  *) echo "usage: $0 up|down|status|ensure|sa-kubeconfig NAMESPACE SERVICEACCOUNT [OUT]|restart-apiserver|restart-etcd [SECONDS]" >&2; exit 2 ;;
esac
