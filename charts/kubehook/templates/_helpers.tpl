{{/* The chart name. */}}
{{- define "kubehook.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every resource name. */}}
{{- define "kubehook.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "kubehook.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "kubehook.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select kubehook's Pods. */}}
{{- define "kubehook.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubehook.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kubehook.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubehook.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Fails on a mode the chart does not know. */}}
{{- define "kubehook.cluster" -}}
{{- if eq .Values.mode "cluster" }}true{{ else if ne .Values.mode "embedded" }}{{ fail (printf "mode must be embedded or cluster, not %q" .Values.mode) }}{{ end }}
{{- end }}

{{/*
A manifest of config/ copied into manifests/ (one document), renamed with
the full name and labelled as the chart's: the chart and `make deploy`
install the same rules.
*/}}
{{- define "kubehook.manifest" -}}
{{- $ctx := index . 0 }}
{{- $obj := index . 1 }}
{{- $_ := set $obj.metadata "name" (printf "%s-%s" (include "kubehook.fullname" $ctx) $obj.metadata.name) }}
{{- $labels := merge (include "kubehook.labels" $ctx | fromYaml) (omit (default dict $obj.metadata.labels) "app.kubernetes.io/managed-by" "app.kubernetes.io/name") }}
{{- $_ := set $obj.metadata "labels" $labels }}
{{- if hasKey $obj.metadata "namespace" }}
{{- $_ := set $obj.metadata "namespace" $ctx.Release.Namespace }}
{{- end }}
{{- toYaml $obj }}
{{- end }}

{{/* kubehook's arguments, from the values. */}}
{{- define "kubehook.args" -}}
- --health-probe-bind-address=:8081
{{- if .Values.metrics.secure }}
- --metrics-bind-address=:8443
{{- if .Values.metrics.tls.secretName }}
- --metrics-cert-path=/etc/kubehook/metrics-tls
{{- end }}
{{- else }}
- --metrics-bind-address=:8080
- --metrics-secure=false
{{- end }}
- --events-bind-address=:8090
{{- if .Values.sources.tls.secretName }}
- --events-tls-cert-file=/etc/kubehook/events-tls/tls.crt
- --events-tls-key-file=/etc/kubehook/events-tls/tls.key
{{- end }}
{{- if .Values.dtrApi.enabled }}
- --api-bind-address=:8091
{{- if .Values.dtrApi.tls.secretName }}
- --api-tls-cert-file=/etc/kubehook/api-tls/tls.crt
- --api-tls-key-file=/etc/kubehook/api-tls/tls.key
{{- end }}
{{- with .Values.dtrApi.rateLimit }}
- --api-rate-limit={{ . }}
{{- end }}
{{- with .Values.dtrApi.rateBurst }}
- --api-rate-burst={{ . }}
{{- end }}
{{- else }}
- --api-bind-address=0
{{- end }}
{{- if include "kubehook.cluster" . }}
- --leader-elect
- --leader-election-namespace={{ default .Release.Namespace .Values.leaderElection.namespace }}
- --nats-url={{ required "nats.url is required in cluster mode" .Values.nats.url }}
- --nats-replicas={{ .Values.nats.replicas }}
{{- if .Values.nats.credentials.secretName }}
- --nats-creds=/etc/kubehook/nats/{{ .Values.nats.credentials.key }}
{{- end }}
{{- else }}
- --data-dir=/var/lib/kubehook
{{- with .Values.embedded.syncInterval }}
- --nats-sync-interval={{ . }}
{{- end }}
{{- end }}
- --tenancy={{ .Values.config.tenancy }}
{{- with .Values.config.deliveryConcurrency }}
- --delivery-concurrency={{ . }}
{{- end }}
{{- with .Values.config.maxInFlightPerSubscription }}
- --max-in-flight-per-subscription={{ . }}
{{- end }}
{{- with .Values.config.maxInFlightPerHost }}
- --max-in-flight-per-host={{ . }}
{{- end }}
{{- if not (kindIs "invalid" .Values.config.breakerThreshold) }}
- --breaker-threshold={{ .Values.config.breakerThreshold }}
{{- end }}
{{- with .Values.config.breakerCooldown }}
- --breaker-cooldown={{ . }}
{{- end }}
{{- with .Values.config.statusSyncPeriod }}
- --status-sync-period={{ . }}
{{- end }}
{{- with .Values.config.shutdownGracePeriod }}
- --shutdown-grace-period={{ . }}
{{- end }}
{{- with .Values.config.allowEndpointCIDRs }}
- --allow-endpoint-cidrs={{ join "," . }}
{{- end }}
{{- with .Values.config.denyEndpointCIDRs }}
- --deny-endpoint-cidrs={{ join "," . }}
{{- end }}
{{- if .Values.config.perSubscriptionMetrics }}
- --per-subscription-metrics
{{- end }}
{{- with .Values.registry.url }}
- --registry-url={{ . }}
{{- end }}
{{- with .Values.registry.host }}
- --registry-host={{ . }}
{{- end }}
{{- with .Values.registry.credentialsSecret }}
- --registry-credentials-secret={{ $.Release.Namespace }}/{{ . }}
{{- end }}
{{- with .Values.sources.tokensSecret }}
- --source-tokens-secret={{ $.Release.Namespace }}/{{ . }}
{{- end }}
{{- range .Values.config.extraArgs }}
- {{ . }}
{{- end }}
{{- end }}

{{/* Seconds the kubelet waits at shutdown: the grace period and 10s more. */}}
{{- define "kubehook.terminationGracePeriod" -}}
{{- $d := default "20s" .Values.config.shutdownGracePeriod }}
{{- $s := 20 }}
{{- if hasSuffix "m" $d }}{{ $s = mul (trimSuffix "m" $d | atoi) 60 }}{{ else if hasSuffix "s" $d }}{{ $s = trimSuffix "s" $d | atoi }}{{ end }}
{{- add $s 10 }}
{{- end }}
