#!/usr/bin/env bash
# Prints the path of the Prometheus operator's PrometheusRule CRD manifest, taken from the
# pinned prometheus-operator Go module (downloaded into the Go module cache on first use), so
# the chart's PrometheusRule is validated against the schema the operator installs.
set -euo pipefail
version=v0.94.1
export GOFLAGS=-modcacherw GOTOOLCHAIN=local
dir=$(cd "$(mktemp -d)" && go mod download -json "github.com/prometheus-operator/prometheus-operator@$version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
crd="$dir/example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml"
[ -f "$crd" ] || { echo "prometheus-operator $version has no $crd" >&2; exit 1; }
echo "$crd"
