#!/usr/bin/env bash
# Prints the path of the Prometheus operator's PrometheusRule CRD manifest, taken from the
# pinned prometheus-operator Go module, so the chart's PrometheusRule is validated against the
# schema the operator installs.
exec "$(dirname "$0")/module-file.sh" github.com/prometheus-operator/prometheus-operator v0.94.1 \
  example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml
