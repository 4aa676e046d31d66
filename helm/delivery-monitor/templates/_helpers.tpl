{{/* Chart name, truncated to the 63 characters a label allows. */}}
{{- define "delivery-monitor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release-chart unless the release already names it. */}}
{{- define "delivery-monitor.fullname" -}}
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

{{- define "delivery-monitor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "delivery-monitor.labels" -}}
helm.sh/chart: {{ include "delivery-monitor.chart" . }}
{{ include "delivery-monitor.selectorLabels" . }}
app.kubernetes.io/version: {{ (.Values.image.tag | default .Chart.AppVersion) | toString | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: delivery-monitor
{{- end }}

{{- define "delivery-monitor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "delivery-monitor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "delivery-monitor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "delivery-monitor.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "delivery-monitor.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}
{{- end }}

{{- define "delivery-monitor.configMapName" -}}
{{- default (include "delivery-monitor.fullname" .) .Values.existingConfigMap }}
{{- end }}

{{/*
"true" when the database is SQLite: no existingSecret, and the URL empty (the
default, /data/monitor.db) or a sqlite URL. A Secret is taken to hold a
shareable database URL (PostgreSQL).
*/}}
{{- define "delivery-monitor.sqlite" -}}
{{- if and (not .Values.database.existingSecret) (or (not .Values.database.url) (hasPrefix "sqlite" .Values.database.url)) }}true{{ end }}
{{- end }}

{{/* Refuse what cannot work, whatever the schema let through. */}}
{{- define "delivery-monitor.validate" -}}
{{- if and (include "delivery-monitor.sqlite" .) (gt (int .Values.replicaCount) 1) }}
{{- fail (printf "replicaCount is %d but the database is SQLite, which one process owns: several replicas need PostgreSQL (set database.existingSecret to a Secret holding a postgresql+asyncpg:// URL, or database.url)" (int .Values.replicaCount)) }}
{{- end }}
{{- if and (not (include "delivery-monitor.sqlite" .)) (not .Values.secretKey.existingSecret) }}
{{- fail "the database is PostgreSQL but secretKey.existingSecret is empty: every replica must encrypt subscription secrets with the same MONITOR_SECRET_KEY, and the service refuses to start without it (create a Secret holding a Fernet key and set secretKey.existingSecret)" }}
{{- end }}
{{- end }}
