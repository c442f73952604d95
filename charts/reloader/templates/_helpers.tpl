{{- define "reloader.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "reloader.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "reloader.namespace" -}}
{{- default .Release.Namespace .Values.namespace -}}
{{- end -}}

{{- define "reloader.selectorLabels" -}}
app.kubernetes.io/name: {{ include "reloader.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "reloader.labels" -}}
{{ include "reloader.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "reloader.serviceAccountName" -}}
{{- if .Values.reloader.serviceAccount.create -}}
{{- default (include "reloader.fullname" .) .Values.reloader.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.reloader.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "reloader.image" -}}
{{- $repo := .Values.image.repository -}}
{{- if .Values.global.imageRegistry -}}{{- $repo = printf "%s/%s" .Values.global.imageRegistry $repo -}}{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The namespaces of scoped mode: the release namespace plus the list, sorted, deduplicated. */}}
{{- define "reloader.scopedNamespaces" -}}
{{- $list := .Values.reloader.namespaces -}}
{{- if kindIs "string" $list -}}{{- $list = splitList "," $list -}}{{- end -}}
{{- $all := list (include "reloader.namespace" .) -}}
{{- range $list -}}{{- if trim . -}}{{- $all = append $all (trim .) -}}{{- end -}}{{- end -}}
{{- $all | uniq | sortAlpha | join "," -}}
{{- end -}}

{{- define "reloader.ha" -}}
{{- if or .Values.reloader.enableHA (gt (int .Values.reloader.deployment.replicas) 1) -}}true{{- end -}}
{{- end -}}

{{/* RBAC rules the controller needs, derived from the values; shared by the ClusterRole and the Roles. */}}
{{- define "reloader.rules" -}}
{{- $r := .Values.reloader -}}
{{- $sources := list -}}
{{- if not $r.ignoreConfigMaps }}{{ $sources = append $sources "configmaps" }}{{ end -}}
{{- if not $r.ignoreSecrets }}{{ $sources = append $sources "secrets" }}{{ end -}}
{{- if $sources }}
- apiGroups: [""]
  resources: {{ toJson $sources }}
  verbs: ["get", "list", "watch"]
{{- end }}
{{- if and .cluster $r.namespaceSelector }}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
{{- end }}
- apiGroups: ["apps"]
  resources: ["deployments", "daemonsets", "statefulsets"]
  verbs: ["get", "list", "watch", "patch"]
{{- if not $r.ignoreCronJobs }}
- apiGroups: ["batch"]
  resources: ["cronjobs"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
{{- if not $r.ignoreJobs }}
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "patch", "create", "delete"]
{{- else if not $r.ignoreCronJobs }}
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["create"]
{{- end }}
{{- if $r.isArgoRollouts }}
- apiGroups: ["argoproj.io"]
  resources: ["rollouts"]
  verbs: ["get", "list", "watch", "patch", "update"]
{{- end }}
{{- if $r.enableCSIIntegration }}
- apiGroups: ["secrets-store.csi.x-k8s.io"]
  resources: ["secretproviderclasspodstatuses", "secretproviderclasses"]
  verbs: ["get", "list", "watch"]
{{- end }}
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}

{{/* The controller's arguments, from the values (Reloader's flags where they exist). */}}
{{- define "reloader.args" -}}
{{- $r := .Values.reloader -}}
{{- if $r.autoReloadAll }}
- --auto-reload-all=true
{{- end }}
{{- if $r.isArgoRollouts }}
- --is-Argo-Rollouts=true
{{- end }}
{{- if $r.enableCSIIntegration }}
- --enable-csi-integration=true
{{- end }}
{{- if $r.ignoreSecrets }}
- --resources-to-ignore=secrets
{{- end }}
{{- if $r.ignoreConfigMaps }}
- --resources-to-ignore=configmaps
{{- end }}
{{- if and $r.ignoreJobs $r.ignoreCronJobs }}
- --ignored-workload-types=jobs,cronjobs
{{- else if $r.ignoreJobs }}
- --ignored-workload-types=jobs
{{- else if $r.ignoreCronJobs }}
- --ignored-workload-types=cronjobs
{{- end }}
{{- if $r.reloadOnCreate }}
- --reload-on-create=true
{{- end }}
{{- if $r.reloadOnDelete }}
- --reload-on-delete=true
{{- end }}
{{- if $r.syncAfterRestart }}
- --sync-after-restart=true
{{- end }}
{{- if ne $r.reloadStrategy "default" }}
- --reload-strategy={{ $r.reloadStrategy }}
{{- end }}
{{- if $r.watchGlobally }}
{{- if $r.ignoreNamespaces }}
- --namespaces-to-ignore={{ $r.ignoreNamespaces }}
{{- end }}
{{- if $r.namespaceSelector }}
- --namespace-selector={{ $r.namespaceSelector }}
{{- end }}
{{- else if $r.namespaces }}
- --namespaces={{ include "reloader.scopedNamespaces" . }}
{{- end }}
{{- if $r.resourceLabelSelector }}
- --resource-label-selector={{ $r.resourceLabelSelector }}
{{- end }}
{{- with $r.logFormat }}
- --log-format={{ . }}
{{- end }}
{{- with $r.logLevel }}
- --log-level={{ . }}
{{- end }}
{{- if include "reloader.ha" . }}
- --enable-ha=true
{{- with $r.leaderElection }}
- --leader-election-lease-duration={{ .leaseDuration }}
- --leader-election-renew-deadline={{ .renewDeadline }}
- --leader-election-retry-period={{ .retryPeriod }}
{{- end }}
{{- end }}
{{- with $r.webhookUrl }}
- --webhook-url={{ . }}
{{- end }}
- --debounce={{ $r.debounce }}
- --debounce-quiet={{ $r.debounceQuiet }}
- --min-reload-interval={{ $r.minReloadInterval }}
- --flap-limit={{ $r.flapLimit }}
- --flap-window={{ $r.flapWindow }}
- --flap-settle={{ $r.flapSettle }}
- --flap-hold-max={{ $r.flapHoldMax }}
- --adoption-writes-per-second={{ int64 $r.adoptionWritesPerSecond }}
- --rollout-timeout={{ $r.rolloutTimeout }}
{{- if $r.maxConcurrentRollouts }}
- --max-concurrent-rollouts={{ int64 $r.maxConcurrentRollouts }}
{{- end }}
{{- if $r.haltOnFailedRollouts }}
- --halt-on-failed-rollouts={{ int64 $r.haltOnFailedRollouts }}
{{- end }}
{{- if $r.dryRun }}
- --dry-run=true
{{- end }}
{{- $flags := dict "configmap" "configmap-annotation" "secret" "secret-annotation" "auto" "auto-annotation" "secret_auto" "secret-auto-annotation" "configmap_auto" "configmap-auto-annotation" "search" "auto-search-annotation" "match" "search-match-annotation" "ignore" "ignore-annotation" "pausePeriod" "pause-deployment-annotation" "pauseTime" "pause-deployment-time-annotation" }}
{{- range $k, $v := $r.custom_annotations }}
- --{{ get $flags $k | required (printf "reloader.custom_annotations.%s is not a known key" $k) }}={{ $v }}
{{- end }}
{{- end -}}
