#!/usr/bin/env bash
# The chaos soak: a dedicated local control plane (.cluster-soak/, API audit log on, separate
# from the ones tests and the benchmark use), then benches/soak/ against it.
#
#   hack/soak.sh [--quick] [--seed N] [--scale N] [--minutes M] [--out DIR]
#
# --scale N: N times the sources, workloads and changes (10: 2,000 sources, 3,000 workloads,
# 20,000 changes). --minutes M: rounds of faults, each with its changes, until about M minutes.
#
# Prints the seed first and one closing line last; exits non-zero on any lost reload, extra
# rollout, write by a non-leader, panic, or a recovery slower than its goal. Controller logs
# and soak.json go to DIR (default target/soak). The control plane is stopped at the end.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

out=target/soak
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) args+=("$1") ;;
    --seed | --scale | --minutes) args+=("$1" "$2"); shift ;;
    --out) out=$2; shift ;;
    *) echo "soak: unknown argument $1 (see the top of hack/soak.sh)" >&2; exit 2 ;;
  esac
  shift
done

export RELOADER_CLUSTER_DIR="$repo/.cluster-soak" RELOADER_CLUSTER_AUDIT=1
hack/tools.sh > /dev/null
# Build before the control plane starts, so its clock does not run during a compile.
cargo bench --bench soak --no-run -q
if hack/cluster.sh status > /dev/null 2>&1; then
  echo "soak: a soak control plane is already up; stopping it for a clean run" >&2
  hack/cluster.sh down
fi
rm -f "$RELOADER_CLUSTER_DIR/logs/audit.log"
rm -rf "$out"
mkdir -p "$out"
trap 'hack/cluster.sh down' EXIT
eval "$(hack/cluster.sh up | tail -n 1)"
rc=0
cargo bench -q --bench soak -- --audit-log "$RELOADER_CLUSTER_DIR/logs/audit.log" \
  --cluster-script "$repo/hack/cluster.sh" --out "$out" "${args[@]}" || rc=$?
if [ "$rc" != 0 ]; then
  # The next run empties $out and the control plane's logs: keep this run's for diagnosis.
  kept="target/soak-failed/$(date -u +%Y%m%dT%H%M%S)"
  mkdir -p "$kept"
  cp -r "$out/." "$kept/"
  cp -r "$RELOADER_CLUSTER_DIR/logs" "$kept/control-plane"
  echo "soak: failed; its logs, the control plane's and the audit log are kept in $kept" >&2
fi
exit "$rc"
