{{/* The release's name prefix for every object. */}}
{{- define "pacer.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "pacer.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "pacer.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "pacer.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "pacer.etcdScheme" -}}
{{ if .Values.tls.enabled }}https{{ else }}http{{ end }}
{{- end -}}

{{/* etcd's client endpoints, comma-separated (PACER_ETCD). */}}
{{- define "pacer.etcdEndpoints" -}}
{{- if .Values.etcd.enabled -}}
{{- $name := include "pacer.fullname" . -}}
{{- $scheme := include "pacer.etcdScheme" . -}}
{{- $endpoints := list -}}
{{- range $i := until (int .Values.etcd.replicas) -}}
{{- $endpoints = append $endpoints (printf "%s://%s-etcd-%d.%s-etcd.%s.svc:%d" $scheme $name $i $name $.Release.Namespace (int $.Values.etcd.clientPort)) -}}
{{- end -}}
{{- join "," $endpoints -}}
{{- else -}}
{{- required "etcd.externalEndpoints is required when etcd.enabled is false" (join "," .Values.etcd.externalEndpoints) -}}
{{- end -}}
{{- end -}}
