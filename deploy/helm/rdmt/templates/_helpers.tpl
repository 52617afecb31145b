{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "rdmt.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name; component suffixes are added to it, so it is kept short. */}}
{{- define "rdmt.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "rdmt.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rdmt.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rdmt.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "rdmt.labels" -}}
helm.sh/chart: {{ include "rdmt.chart" . }}
{{ include "rdmt.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rdmt
{{- end }}

{{- define "rdmt.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* A secretKeyRef environment variable when the Secret's name is set; nothing otherwise. */}}
{{- define "rdmt.secretEnv" -}}
{{- if .ref.name }}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ .ref.name | quote }}
      key: {{ .ref.key | quote }}
{{- end }}
{{- end }}

{{/* Settings and secrets of every RDMT container (docs/deployment.md). */}}
{{- define "rdmt.env" -}}
- name: RDMT_KAFKA_BOOTSTRAP
  value: {{ .Values.kafka.bootstrap | quote }}
- name: RDMT_TOPIC_PREFIX
  value: {{ .Values.kafka.topicPrefix | quote }}
- name: RDMT_KAFKA_SECURITY_PROTOCOL
  value: {{ .Values.kafka.securityProtocol | quote }}
{{- with .Values.kafka.sasl.mechanism }}
- name: RDMT_KAFKA_SASL_MECHANISM
  value: {{ . | quote }}
{{- end }}
{{- with .Values.kafka.sasl.username }}
- name: RDMT_KAFKA_SASL_USERNAME
  value: {{ . | quote }}
{{- end }}
{{- include "rdmt.secretEnv" (dict "env" "RDMT_KAFKA_SASL_PASSWORD" "ref" .Values.kafka.sasl.passwordSecret) }}
{{- if .Values.store.urlSecret.name }}
{{- include "rdmt.secretEnv" (dict "env" "RDMT_STORE_URL" "ref" .Values.store.urlSecret) }}
{{- else }}
- name: RDMT_STORE_URL
  value: {{ .Values.store.url | quote }}
{{- end }}
{{- with .Values.schemaRegistry.url }}
- name: RDMT_SCHEMA_REGISTRY_URL
  value: {{ . | quote }}
{{- end }}
{{- include "rdmt.secretEnv" (dict "env" "RDMT_SCHEMA_REGISTRY_AUTH" "ref" .Values.schemaRegistry.authSecret) }}
{{- include "rdmt.secretEnv" (dict "env" "RDMT_SLACK_WEBHOOK_URL" "ref" .Values.secrets.slackWebhookUrl) }}
{{- include "rdmt.secretEnv" (dict "env" "RDMT_SMTP_PASSWORD" "ref" .Values.secrets.smtpPassword) }}
- name: RDMT_METRICS_PORT
  value: {{ .Values.metrics.port | quote }}
- name: RDMT_METRICS_HOST
  value: {{ .Values.metrics.bindAddress | quote }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
One monitor's settings, as YAML: its entry in `monitors` merged over monitorDefaultsByName.<name>, merged over
monitorDefaults. Arguments: root, entry. Use with `include ... | fromYaml`.
*/}}
{{- define "rdmt.monitor" -}}
{{- $byName := get .root.Values.monitorDefaultsByName .entry.name | default dict }}
{{- $monitor := mergeOverwrite (deepCopy .root.Values.monitorDefaults) (deepCopy $byName) (deepCopy .entry) }}
{{- $_ := set $monitor "component" (printf "monitor-%s" (replace "_" "-" $monitor.name)) }}
{{- toYaml $monitor }}
{{- end }}

{{/* The ServiceAccount of every pod. */}}
{{- define "rdmt.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rdmt.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
One Deployment running `rdmt <args> --config /etc/rdmt/rdmt.yaml --metrics-port PORT`.
Arguments (a dict): root (the chart context), component, replicas, resources, args, autoscaling, sizeLimit,
staticMember (static consumer-group membership named after the pod).
*/}}
{{- define "rdmt.deployment" -}}
{{- $root := .root -}}
{{- $component := .component -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "rdmt.fullname" $root }}-{{ $component }}
  labels:
    {{- include "rdmt.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ $component }}
spec:
  {{- if not .autoscaling }}
  replicas: {{ .replicas }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "rdmt.selectorLabels" $root | nindent 6 }}
      app.kubernetes.io/component: {{ $component }}
  template:
    metadata:
      labels:
        {{- include "rdmt.labels" $root | nindent 8 }}
        app.kubernetes.io/component: {{ $component }}
        {{- with $root.Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
        {{- if $root.Values.metrics.scrapeAnnotations }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ $root.Values.metrics.port | quote }}
        prometheus.io/path: {{ $root.Values.metrics.path | quote }}
        {{- end }}
        {{- with $root.Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      serviceAccountName: {{ include "rdmt.serviceAccountName" $root }}
      # The services never call the Kubernetes API.
      automountServiceAccountToken: false
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      containers:
        - name: {{ $component }}
          image: {{ include "rdmt.image" $root | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args:
            {{- toYaml (concat .args (list "--config" "/etc/rdmt/rdmt.yaml" "--metrics-port" (toString $root.Values.metrics.port))) | nindent 12 }}
          env:
            {{- include "rdmt.env" $root | nindent 12 }}
            {{- if eq $component "evaluator" }}
            # Partition-local state (RocksDB) on the work volume, restored from the changelog topics when lost.
            - name: RDMT_STATE_DIR
              value: /var/lib/rdmt/state
            {{- end }}
            {{- if and .staticMember $root.Values.kafka.staticMembership }}
            # A container restarted in the same pod rejoins under the same id and gets its partitions back at once;
            # static membership needs the classic protocol (docs/streaming.md).
            - name: RDMT_KAFKA_GROUP_PROTOCOL
              value: classic
            - name: RDMT_KAFKA_GROUP_INSTANCE_ID
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            {{- end }}
          ports:
            - name: metrics
              containerPort: {{ $root.Values.metrics.port }}
              protocol: TCP
          livenessProbe:
            httpGet:
              path: /healthz
              port: metrics
            initialDelaySeconds: {{ $root.Values.probes.liveness.initialDelaySeconds }}
            periodSeconds: {{ $root.Values.probes.liveness.periodSeconds }}
            timeoutSeconds: {{ $root.Values.probes.liveness.timeoutSeconds }}
            failureThreshold: {{ $root.Values.probes.liveness.failureThreshold }}
          readinessProbe:
            httpGet:
              path: /readyz
              port: metrics
            initialDelaySeconds: {{ $root.Values.probes.readiness.initialDelaySeconds }}
            periodSeconds: {{ $root.Values.probes.readiness.periodSeconds }}
            timeoutSeconds: {{ $root.Values.probes.readiness.timeoutSeconds }}
            failureThreshold: {{ $root.Values.probes.readiness.failureThreshold }}
          resources:
            {{- toYaml .resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: config
              mountPath: /etc/rdmt
              readOnly: true
            - name: data
              mountPath: {{ $root.Values.data.mountPath }}
            - name: work
              mountPath: /var/lib/rdmt
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: config
          configMap:
            name: {{ include "rdmt.fullname" $root }}-config
        - name: data
          {{- if $root.Values.data.existingClaim }}
          persistentVolumeClaim:
            claimName: {{ $root.Values.data.existingClaim }}
            readOnly: {{ $root.Values.data.readOnly }}
          {{- else }}
          emptyDir: {}
          {{- end }}
        - name: work
          {{- if .sizeLimit }}
          emptyDir:
            sizeLimit: {{ .sizeLimit }}
          {{- else }}
          emptyDir: {}
          {{- end }}
        - name: tmp
          emptyDir: {}
      {{- with $root.Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}

{{/* The metrics Service of one component. Arguments: root, component. */}}
{{- define "rdmt.metricsService" -}}
{{- $root := .root -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "rdmt.fullname" $root }}-{{ .component }}-metrics
  labels:
    {{- include "rdmt.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  type: {{ $root.Values.metrics.service.type }}
  selector:
    {{- include "rdmt.selectorLabels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
  ports:
    - name: metrics
      port: {{ $root.Values.metrics.port }}
      targetPort: metrics
      protocol: TCP
{{- end }}
