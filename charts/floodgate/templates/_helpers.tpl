{{/* Common labels. */}}
{{- define "floodgate.labels" -}}
app.kubernetes.io/name: floodgate
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* Selector labels of a component (manager, shed). */}}
{{- define "floodgate.selector" -}}
app.kubernetes.io/name: floodgate
app.kubernetes.io/component: {{ . }}
{{- end }}

{{- define "floodgate.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The watched namespaces, comma-separated ("" for every namespace). */}}
{{- define "floodgate.watchNamespaces" -}}
{{ join "," .Values.watchNamespaces }}
{{- end }}

{{/* The redirect allowlist, from the ConfigMap both components read. */}}
{{- define "floodgate.redirectEnv" -}}
- name: FLOODGATE_SHED_REDIRECT_HOSTS
  valueFrom: {configMapKeyRef: {name: floodgate-config, key: shed-redirect-hosts, optional: true}}
{{- end }}

{{- define "floodgate.podScheduling" -}}
{{- with .priority }}
priorityClassName: {{ . }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector: {{ toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations: {{ toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity: {{ toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* manager.dataPlaneControllers as --data-plane-controllers reads it: controller=data-plane, sorted. */}}
{{- define "floodgate.dataPlaneControllers" -}}
{{- $pairs := list -}}
{{- range $controller, $dataPlane := .Values.manager.dataPlaneControllers -}}
{{- $pairs = append $pairs (printf "%s=%s" $controller $dataPlane) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{/* The probe key's file in both pods ("" when confirmation is off). */}}
{{- define "floodgate.probeKeyFile" -}}
{{- if .Values.confirm.enabled }}/etc/floodgate/probe-key/key{{ end }}
{{- end }}

{{/* --confirm-address: data-plane=URL pairs, sorted. */}}
{{- define "floodgate.confirmAddresses" -}}
{{- $pairs := list }}
{{- range $dataPlane, $url := .Values.confirm.addresses }}
{{- $pairs = append $pairs (printf "%s=%s" $dataPlane $url) }}
{{- end }}
{{- join "," (sortAlpha $pairs) }}
{{- end }}

{{- define "floodgate.probeKeyMount" -}}
{{- if .Values.confirm.enabled -}}
volumeMounts:
- {name: probe-key, mountPath: /etc/floodgate/probe-key, readOnly: true}
{{- end }}
{{- end }}

{{- define "floodgate.probeKeyVolume" -}}
{{- if .Values.confirm.enabled -}}
volumes:
- name: probe-key
  secret: {secretName: floodgate-probe-key}
{{- end }}
{{- end }}
