{{/*
The sidecar in a team's own pod, as a Kubernetes native sidecar (an init container with restartPolicy: Always,
Kubernetes >= 1.29): started before the app, stopped after it, restarted on its own.

In an app chart that lists this chart as a dependency (with coordinator.enabled and injector.enabled false,
and sidecar.coordinator set to the txmesh release), under the pod spec:

  initContainers:
    {{- include "txmesh.sidecar" (dict "service" "inventory" "appPort" 8080 "top" $ "values" .Values.txmesh) | nindent 4 }}
  volumes:
    {{- include "txmesh.sidecar.volume" (dict "service" "inventory" "top" $ "values" .Values.txmesh) | nindent 4 }}

With credentials (the default) the volumes include the Secret <credentials.serviceKeySecretPrefix><service>
holding the service's key; the app mounts the same Secret for its participant routes. "values" defaults to .top.Values (inside this chart). Leave out the volume when the pod brings its own volume
named txmesh-sidecar-data (a StatefulSet's volumeClaimTemplate): that is the PVC option.
*/}}

{{- define "txmesh.sidecar.volumeName" -}}txmesh-sidecar-data{{- end -}}
{{- define "txmesh.sidecar.keyVolumeName" -}}txmesh-service-key{{- end -}}

{{/* The service key's volume: the Secret <credentials.serviceKeySecretPrefix><service> (the injector appends the service). */}}
{{- define "txmesh.sidecar.keyVolumeSource" -}}
name: {{ include "txmesh.sidecar.keyVolumeName" . }}
secret:
  secretName: {{ printf "%s%s" .values.credentials.serviceKeySecretPrefix .service | quote }}
  defaultMode: 288 # 0440: read-only for the user and its group
{{- end -}}

{{/* The container, with the service and app port given through env, so the injector fills only those two. */}}
{{- define "txmesh.sidecar.container" -}}
{{- $v := .values -}}
{{- $port := int $v.sidecar.port -}}
{{- $metricsPort := int $v.sidecar.metricsPort -}}
{{- $probePort := int $v.sidecar.probePort -}}
{{- if eq $port $metricsPort }}{{ fail "sidecar.metricsPort must differ from sidecar.port" }}{{ end -}}
{{- if or (eq $probePort $port) (eq $probePort $metricsPort) }}{{ fail "sidecar.probePort must differ from sidecar.port and sidecar.metricsPort" }}{{ end -}}
name: txmesh-sidecar
{{- $tag := $v.image.tag | default (ternary .top.Chart.AppVersion "" (eq .top.Chart.Name "txmesh")) | required "set txmesh.image.tag (the txmesh version) in the app chart's values" }}
image: {{ printf "%s:%s" $v.image.repository $tag | quote }}
imagePullPolicy: {{ $v.image.pullPolicy }}
restartPolicy: Always
args:
  - sidecar
  - --service=$(TXMESH_SERVICE)
  - --service-url=http://127.0.0.1:$(TXMESH_APP_PORT)
  - --coordinator={{ include "txmesh.coordinatorUrls" . }}
  - --host=0.0.0.0
  - --port={{ $port }}
  - --metrics-host=0.0.0.0
  - --metrics-port={{ $metricsPort }}
  # The kubelet's probes on a port and a thread of their own: under load they wait neither behind the
  # proxied traffic nor for the event loop.
  - --probe-port={{ $probePort }}
  - --advertise-url=http://$(TXMESH_POD_IP):{{ $port }}
  - --data=/var/lib/txmesh-sidecar
  - --log-level={{ $v.sidecar.logLevel }}
  {{- if $v.credentials.enabled }}
  - --key-file=/etc/txmesh/service-key/service.key
  {{- else }}
  - --insecure
  {{- end }}
  {{- range $v.sidecar.extraArgs }}
  - {{ . | quote }}
  {{- end }}
env:
  - name: TXMESH_SERVICE
    value: {{ .service | quote }}
  - name: TXMESH_APP_PORT
    value: {{ .appPort | toString | quote }}
  - name: TXMESH_POD_IP
    valueFrom:
      fieldRef:
        fieldPath: status.podIP
  {{- with $v.otelEnv }}{{ include "txmesh.otelEnv" $v | trim | nindent 2 }}{{ end }}
ports:
  - name: txmesh-sidecar
    containerPort: {{ $port }}
    protocol: TCP
  # Scraped by the chart's PodMonitor by this name, in whichever pod the sidecar runs.
  - name: txmesh-metrics
    containerPort: {{ $metricsPort }}
    protocol: TCP
  - name: txmesh-probes
    containerPort: {{ $probePort }}
    protocol: TCP
# Ready once every shard accepted the registration: as a native sidecar, the app container starts only
# then, so the app's first transaction cannot meet TXM_UNKNOWN_SERVICE. The sidecar itself gives up
# after --ready-timeout (60 s), as this probe does.
startupProbe:
  httpGet:
    path: /txmesh/v1/ready
    port: txmesh-probes
  periodSeconds: 1
  failureThreshold: 60
readinessProbe:
  httpGet:
    path: /txmesh/v1/ready
    port: txmesh-probes
  periodSeconds: 5
livenessProbe:
  httpGet:
    path: /txmesh/v1/health
    port: txmesh-probes
  periodSeconds: 10
  failureThreshold: 3
resources:
  {{- toYaml $v.sidecar.resources | nindent 2 }}
securityContext:
  {{- include "txmesh.containerSecurityContext" (dict "values" $v) | nindent 2 }}
volumeMounts:
  - name: {{ include "txmesh.sidecar.volumeName" . }}
    mountPath: /var/lib/txmesh-sidecar
  {{- if $v.credentials.enabled }}
  - name: {{ include "txmesh.sidecar.keyVolumeName" . }}
    mountPath: /etc/txmesh/service-key
    readOnly: true
  {{- end }}
{{- end -}}

{{/* One initContainers list entry: (dict "service" S "appPort" P "top" $ ["values" V]). */}}
{{- define "txmesh.sidecar" -}}
{{- $ctx := dict "service" (required "txmesh.sidecar needs service" .service) "appPort" (required "txmesh.sidecar needs appPort" .appPort) "top" .top "values" (default .top.Values .values) -}}
{{- include "txmesh.sidecar.container" $ctx | indent 2 | trimPrefix "  " | printf "- %s" }}
{{- end -}}

{{/*
The volumes list entries: the sidecar's data volume (sidecar.dataVolume, emptyDir by default) and, with
credentials, the service's key from its Secret: (dict "service" S "top" $ ["values" V]).
*/}}
{{- define "txmesh.sidecar.volume" -}}
{{- $v := default .top.Values .values -}}
- name: {{ include "txmesh.sidecar.volumeName" . }}
  {{- toYaml $v.sidecar.dataVolume | nindent 2 }}
{{- if $v.credentials.enabled }}
{{- $ctx := dict "service" (required "txmesh.sidecar.volume needs service (its key's Secret is named after it)" .service) "values" $v }}
{{ include "txmesh.sidecar.keyVolumeSource" $ctx | indent 2 | trimPrefix "  " | printf "- %s" }}
{{- end }}
{{- end -}}

{{/* What the injector adds, as JSON for its ConfigMap: the container (service and port left empty) and the volume. */}}
{{- define "txmesh.sidecar.injected" -}}
{{- $ctx := dict "service" "" "appPort" "" "top" . "values" .Values -}}
{{- $container := include "txmesh.sidecar.container" $ctx | fromYaml -}}
{{- $volume := merge (dict "name" (include "txmesh.sidecar.volumeName" .)) (deepCopy .Values.sidecar.dataVolume) -}}
{{- $injected := dict "container" $container "volume" $volume -}}
{{- if .Values.credentials.enabled -}}
{{- $_ := set $injected "keyVolume" (include "txmesh.sidecar.keyVolumeSource" (dict "service" "" "values" .Values) | fromYaml) -}}
{{- end -}}
{{- $injected | toPrettyJson -}}
{{- end -}}
