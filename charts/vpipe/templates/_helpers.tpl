{{/* Names: "<release>-vpipe", or the release name when it already says vpipe. */}}
{{- define "vpipe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vpipe.fullname" -}}
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

{{- define "vpipe.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "vpipe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component: (dict "ctx" . "component" "operator") */}}
{{- define "vpipe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vpipe.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "vpipe.componentLabels" -}}
{{ include "vpipe.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "vpipe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-operator" (include "vpipe.fullname" .)) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "vpipe.tag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{- define "vpipe.operatorImage" -}}
{{- $repo := default (printf "%s/vpipe-operator" .Values.image.registry) .Values.operator.image.repository }}
{{- printf "%s:%s" $repo (default (include "vpipe.tag" .) .Values.operator.image.tag) }}
{{- end }}

{{- define "vpipe.proxyImage" -}}
{{- $repo := default (printf "%s/vpipe-proxy" .Values.image.registry) .Values.proxy.image.repository }}
{{- printf "%s:%s" $repo (default (include "vpipe.tag" .) .Values.proxy.image.tag) }}
{{- end }}

{{- define "vpipe.webhookServiceName" -}}
{{- printf "%s-webhook" (include "vpipe.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vpipe.webhookSecretName" -}}
{{- printf "%s-webhook-tls" (include "vpipe.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* kopf peering: on with more than one replica, or when asked for. */}}
{{- define "vpipe.peering" -}}
{{- if or .Values.operator.peering.enabled (gt (int .Values.operator.replicas) 1) }}true{{ end }}
{{- end }}

{{/* The restricted-profile container securityContext every vpipe container runs with. */}}
{{- define "vpipe.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Namespaces the webhook never sees: the release's own, kube-system, and the listed ones. */}}
{{- define "vpipe.excludedNamespaces" -}}
{{- $ns := list .Release.Namespace "kube-system" }}
{{- range .Values.webhook.excludeNamespaces }}{{ $ns = append $ns . }}{{ end }}
{{- toJson (uniq $ns) }}
{{- end }}

{{/*
Gateway worker processes: gateway.workers, or for "auto" the CPU limit rounded up (else the
CPU request, else 1). Quantities: plain numbers or millicores ("1500m").
*/}}
{{- define "vpipe.gatewayWorkers" -}}
{{- $workers := toString .Values.gateway.workers -}}
{{- if ne $workers "auto" -}}
{{- $workers -}}
{{- else -}}
{{- $resources := .Values.gateway.resources | default dict -}}
{{- $limits := $resources.limits | default dict -}}
{{- $requests := $resources.requests | default dict -}}
{{- $cpu := toString (coalesce $limits.cpu $requests.cpu "1") -}}
{{- $cores := ternary (divf (trimSuffix "m" $cpu) 1000) (float64 $cpu) (hasSuffix "m" $cpu) -}}
{{- max 1 (int (ceil $cores)) -}}
{{- end -}}
{{- end -}}
