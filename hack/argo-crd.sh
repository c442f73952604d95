#!/usr/bin/env bash
# Prints the path of the Argo Rollouts Rollout CRD manifest, taken from the pinned
# argo-rollouts Go module.
exec "$(dirname "$0")/module-file.sh" github.com/argoproj/argo-rollouts v1.9.0 manifests/crds/rollout-crd.yaml
