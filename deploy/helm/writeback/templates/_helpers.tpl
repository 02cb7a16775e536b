{{- define "writeback.fullname" -}}
{{- printf "%s" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "writeback.labels" -}}
app.kubernetes.io/name: writeback
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "writeback.selector" -}}
app.kubernetes.io/name: writeback
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "writeback.image" -}}
{{- printf "%s-%s:%s" .root.Values.image.repository .component (default .root.Chart.AppVersion .root.Values.image.tag) -}}
{{- end -}}

{{/* Environment shared by worker and starter: Temporal connection and logging. */}}
{{- define "writeback.temporalEnv" -}}
- name: TEMPORAL_ADDRESS
  value: {{ .Values.temporal.address | quote }}
- name: TEMPORAL_NAMESPACE
  value: {{ .Values.temporal.namespace | quote }}
- name: LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- if .Values.temporal.tls.enabled }}
- name: TEMPORAL_TLS_CERT
  value: /etc/temporal-tls/tls.crt
- name: TEMPORAL_TLS_KEY
  value: /etc/temporal-tls/tls.key
- name: TEMPORAL_TLS_CA
  value: /etc/temporal-tls/ca.crt
{{- with .Values.temporal.tls.serverName }}
- name: TEMPORAL_TLS_SERVER_NAME
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- if .Values.temporal.apiKey.secretName }}
- name: TEMPORAL_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.temporal.apiKey.secretName }}
      key: {{ .Values.temporal.apiKey.key }}
{{- end }}
{{- end -}}

{{- define "writeback.temporalVolumeMounts" -}}
{{- if .Values.temporal.tls.enabled }}
- name: temporal-tls
  mountPath: /etc/temporal-tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "writeback.temporalVolumes" -}}
{{- if .Values.temporal.tls.enabled }}
- name: temporal-tls
  secret:
    secretName: {{ required "temporal.tls.secretName is required with temporal.tls.enabled" .Values.temporal.tls.secretName }}
{{- end }}
{{- end -}}

{{/* writeback.seconds: a Go duration (90s, 1m, 1h, 1m30s, 500ms) as whole seconds, rounded up. The
     schema admits only such durations, so every part matches. */}}
{{- define "writeback.seconds" -}}
{{- $unit := dict "ns" 0.000000001 "us" 0.000001 "µs" 0.000001 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 -}}
{{- $total := 0.0 -}}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h)" (toString .) -1 -}}
{{- $n := regexFind "^[0-9]+(\\.[0-9]+)?" . | float64 -}}
{{- $total = addf $total (mulf $n (get $unit (regexReplaceAll "^[0-9]+(\\.[0-9]+)?" . ""))) -}}
{{- end -}}
{{- ceil $total | int -}}
{{- end -}}

{{/* writeback.serviceAccountName: the component's ServiceAccount (.root, .component). */}}
{{- define "writeback.serviceAccountName" -}}
{{- $v := index .root.Values .component -}}
{{- $name := dig "serviceAccount" "name" "" $v -}}
{{- if dig "serviceAccount" "create" true $v -}}
{{- default (printf "%s-%s" (include "writeback.fullname" .root) .component) $name -}}
{{- else -}}
{{- default "default" $name -}}
{{- end -}}
{{- end -}}

{{/* writeback.podSpecCommon: what every pod of the release shares (.root, .component): its ServiceAccount
     without a token, the pull secrets, the pod security context, and the component's scheduling. */}}
{{- define "writeback.podSpecCommon" -}}
{{- $v := index .root.Values .component -}}
serviceAccountName: {{ include "writeback.serviceAccountName" . }}
automountServiceAccountToken: false
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* writeback.amqpEnv: the RabbitMQ connection (URL from its Secret; AMQPS files) for the starter's pods. */}}
{{- define "writeback.amqpEnv" -}}
- name: AMQP_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.rabbitmq.urlSecret.name }}
      key: {{ .Values.rabbitmq.urlSecret.key }}
{{- if .Values.rabbitmq.tls.enabled }}
- name: AMQP_CA_FILE
  value: /etc/amqp-tls/ca.crt
{{- if dig "tls" "clientCertificate" false .Values.rabbitmq }}
- name: AMQP_CERT_FILE
  value: /etc/amqp-tls/tls.crt
- name: AMQP_KEY_FILE
  value: /etc/amqp-tls/tls.key
{{- end }}
{{- end }}
{{- end -}}

{{/* writeback.tlsMounts / writeback.tlsVolumes: the Temporal and AMQP TLS Secrets of a pod that talks to
     both; rendered only when one is on (an empty list would render as null). */}}
{{- define "writeback.tlsMounts" -}}
{{- if or .Values.temporal.tls.enabled .Values.rabbitmq.tls.enabled }}
volumeMounts:
  {{- include "writeback.temporalVolumeMounts" . | nindent 2 }}
  {{- if .Values.rabbitmq.tls.enabled }}
  - name: amqp-tls
    mountPath: /etc/amqp-tls
    readOnly: true
  {{- end }}
{{- end }}
{{- end -}}

{{- define "writeback.tlsVolumes" -}}
{{- if or .Values.temporal.tls.enabled .Values.rabbitmq.tls.enabled }}
volumes:
  {{- include "writeback.temporalVolumes" . | nindent 2 }}
  {{- if .Values.rabbitmq.tls.enabled }}
  - name: amqp-tls
    secret:
      secretName: {{ required "rabbitmq.tls.secretName is required with rabbitmq.tls.enabled" .Values.rabbitmq.tls.secretName }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* writeback.workerBuilds: the worker Deployments to render, as a JSON list of {name, build, image, zero}.
     One Deployment named <release>-worker, except in a rollout (versioning.strategy rollout with a
     previous build): then one per build, each named for its build, so the replaced build's workers
     keep running beside the new ones while the rollout Job ramps and judges. The previous build keeps
     the image its workers run now (read from the cluster; previousImageTag where none runs), and a
     build's Deployment that a rollout scaled to 0 stays at 0 (zero): an upgrade that keeps the values
     does not bring the losing build's workers back. */}}
{{- define "writeback.workerBuilds" -}}
{{- $v := .Values.worker.versioning -}}
{{- $repo := printf "%s-worker" .Values.image.repository -}}
{{- $image := printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) -}}
{{- $base := printf "%s-worker" (include "writeback.fullname" .) -}}
{{- if include "writeback.rollout" . -}}
{{- $prev := $v.rollout.previousBuildId -}}
{{- $live := include "writeback.liveWorkers" . | fromJson -}}
{{- $new := dict "name" (printf "%s-%s" $base $v.buildId) "build" $v.buildId "image" $image -}}
{{- $old := dict "name" (printf "%s-%s" $base $prev) "build" $prev
      "image" (dig "builds" $prev "image" (printf "%s:%s" $repo (default $prev $v.rollout.previousImageTag)) $live) -}}
{{- range $b := list $new $old -}}
{{- $_ := set $b "zero" (and (hasKey $live.replicas $b.name) (eq (int (get $live.replicas $b.name)) 0)) -}}
{{- end -}}
{{- list $new $old | toJson -}}
{{- else -}}
{{- list (dict "name" $base "build" $v.buildId "image" $image "zero" false) | toJson -}}
{{- end -}}
{{- end -}}

{{/* writeback.liveWorkers: the release's worker Deployments in the cluster (none under helm template),
     as JSON: builds (by build ID: {image, name, replicas}) and replicas (by Deployment name). */}}
{{- define "writeback.liveWorkers" -}}
{{- $out := dict "builds" dict "replicas" dict -}}
{{- range (lookup "apps/v1" "Deployment" .Release.Namespace "").items -}}
{{- $l := .metadata.labels | default dict -}}
{{- if and (eq (get $l "app.kubernetes.io/instance") $.Release.Name) (eq (get $l "app.kubernetes.io/component") "worker") -}}
{{- $c := index .spec.template.spec.containers 0 -}}
{{- $build := "" -}}
{{- range $c.env }}{{ if eq .name "TEMPORAL_BUILD_ID" }}{{ $build = .value }}{{ end }}{{ end -}}
{{- $_ := set $out.replicas .metadata.name (int .spec.replicas) -}}
{{- if $build -}}
{{- $_ := set $out.builds $build (dict "image" $c.image "name" .metadata.name "replicas" (int .spec.replicas)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $out | toJson -}}
{{- end -}}

{{/* writeback.rollout: non-empty when this release rolls its build out in judged ramp steps. Build IDs
     name Deployments then: DNS labels, checked here. */}}
{{- define "writeback.rollout" -}}
{{- $v := .Values.worker.versioning -}}
{{- if and $v.deploymentName (eq (dig "strategy" "set-current" $v) "rollout") (dig "rollout" "previousBuildId" "" $v) -}}
{{- if ne $v.rollout.previousBuildId $v.buildId -}}
{{- range list $v.buildId $v.rollout.previousBuildId -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9.]{0,38}[a-z0-9])?$" .) -}}
{{- fail (printf "worker.versioning build %q: with strategy rollout a build ID names a Deployment: lower-case letters, digits, '-' and '.', at most 40" .) -}}
{{- end -}}
{{- end -}}
true
{{- end -}}
{{- end -}}
{{- end -}}
