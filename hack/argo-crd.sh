#!/usr/bin/env bash
# Prints the path of the Argo Rollouts Rollout CRD manifest, taken from the pinned
# argo-rollouts Go module (downloaded into the Go module cache on first use).
set -euo pipefail
version=v1.9.0
export GOFLAGS=-modcacherw GOTOOLCHAIN=local
dir=$(cd "$(mktemp -d)" && go mod download -json "github.com/argoproj/argo-rollouts@$version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
crd="$dir/manifests/crds/rollout-crd.yaml"
[ -f "$crd" ] || { echo "argo-rollouts $version has no $crd" >&2; exit 1; }
echo "$crd"
