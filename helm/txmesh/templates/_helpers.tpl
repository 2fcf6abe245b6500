{{/* Names, labels and the shard URLs every sidecar is given. */}}

{{- define "txmesh.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "txmesh.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains (include "txmesh.name" .) .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "txmesh.name" .) | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "txmesh.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "txmesh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Labels of txmesh's own pods: the injector's webhook skips them (objectSelector). */}}
{{- define "txmesh.controlPlaneLabel" -}}
txmesh.io/control-plane: "true"
{{- end -}}

{{/* Selector labels of one component: (dict "top" $ "component" "coordinator") */}}
{{- define "txmesh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "txmesh.name" .top }}
app.kubernetes.io/instance: {{ .top.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "txmesh.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "txmesh.coordinator.name" -}}
{{- printf "%s-coordinator" (include "txmesh.fullname" .) -}}
{{- end -}}

{{- define "txmesh.coordinator.headless" -}}
{{- printf "%s-coordinator-headless" (include "txmesh.fullname" .) -}}
{{- end -}}

{{- define "txmesh.injector.name" -}}
{{- printf "%s-injector" (include "txmesh.fullname" .) -}}
{{- end -}}

{{/*
Every shard's stable URL, comma-separated in shard order: the StatefulSet pod k is shard k and the headless
Service gives it the DNS name <statefulset>-k.<headless>.<namespace>.svc. Called with (dict "top" $ "values" V),
V being this chart's values (an app chart passes .Values.txmesh).
*/}}
{{- define "txmesh.coordinatorUrls" -}}
{{- $v := .values -}}
{{- $own := eq .top.Chart.Name "txmesh" -}}
{{- $fullname := $v.sidecar.coordinator.fullname | default (ternary (include "txmesh.fullname" .top) "" $own) | required "set txmesh.sidecar.coordinator.fullname (the fullname of the txmesh release, e.g. txmesh) in the app chart's values" -}}
{{- $namespace := default .top.Release.Namespace $v.sidecar.coordinator.namespace -}}
{{- $urls := list -}}
{{- range $i := until (int $v.coordinator.shards) -}}
{{- $urls = append $urls (printf "http://%s-coordinator-%d.%s-coordinator-headless.%s.svc:%d" $fullname $i $fullname $namespace (int $v.coordinator.port)) -}}
{{- end -}}
{{- join "," $urls -}}
{{- end -}}

{{- define "txmesh.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The container securityContext of every txmesh container: (dict "values" V). */}}
{{- define "txmesh.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .values.securityContext.runAsUser }}
runAsGroup: {{ .values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Env list entries from otelEnv (OTEL_* of the coordinator and sidecars), sorted by name. Takes the values. */}}
{{- define "txmesh.otelEnv" -}}
{{- range $name, $value := .otelEnv }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* The Secret that holds the cluster secret (key cluster.secret). */}}
{{- define "txmesh.clusterSecretName" -}}
{{- .Values.credentials.existingSecret | default (printf "%s-cluster-secret" (include "txmesh.fullname" .)) -}}
{{- end -}}
