#!/usr/bin/env bash
# The benchmark: a dedicated local control plane (.cluster-bench/, API audit log on, separate
# from the one tests use), then every scenario of benches/cluster/ against each controller.
#
#   hack/bench.sh [--quick] [--repeat N] [--out DIR] [--reloader-bin PATH] [--only churn|waves|sustained|fanout|scale|requests]
#                [--ours-bin PATH] [--scale N]
#
# Results go to bench/ (or target/bench-quick/ with --quick): results.json, RESULTS.md,
# plot.svg, and each controller's logs. The control plane is stopped at the end.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

out=bench
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) out=target/bench-quick; args+=("$1") ;;
    --out) out=$2; shift ;;
    --repeat | --reloader-bin | --ours-bin | --scale | --only) args+=("$1" "$2"); shift ;;
    *) echo "bench: unknown argument $1 (see the top of hack/bench.sh)" >&2; exit 2 ;;
  esac
  shift
done

export RELOADER_CLUSTER_DIR="$repo/.cluster-bench" RELOADER_CLUSTER_AUDIT=1
hack/tools.sh > /dev/null
# The pinned kubectl, for the scenarios that apply files as a user does.
PATH="$(hack/tools.sh --check):$PATH"
if hack/cluster.sh status > /dev/null 2>&1; then
  echo "bench: a benchmark control plane is already up; stopping it for a clean run" >&2
  hack/cluster.sh down
fi
rm -f "$RELOADER_CLUSTER_DIR/logs/audit.log"
trap 'hack/cluster.sh down' EXIT
eval "$(hack/cluster.sh up | tail -n 1)"
mkdir -p "$out"
start=$SECONDS
cargo bench --bench cluster -- --audit-log "$RELOADER_CLUSTER_DIR/logs/audit.log" --out "$out" "${args[@]}"
echo "bench: done in $((SECONDS - start)) s; results in $out/RESULTS.md" >&2
