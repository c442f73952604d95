#!/usr/bin/env bash
# Brings the local control plane up (building what is missing) and runs the controller
# against it in the foreground, with any extra arguments passed through.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
echo ">> building the control plane components (cached after the first time)" >&2
hack/tools.sh > /dev/null
eval "$(hack/cluster.sh ensure | tail -n 1)"
echo ">> building the controller" >&2
cargo build --release --quiet
echo ">> running: target/release/reloader $* (KUBECONFIG=$KUBECONFIG); Ctrl-C stops it" >&2
exec target/release/reloader "$@"
