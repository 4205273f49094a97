{{/*
Chart name, truncated to 63 characters (the limit of a label value).
*/}}
{{- define "trading-agent-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects. A release named like the chart is not repeated
("trading-agent-operator", not "trading-agent-operator-trading-agent-operator").
*/}}
{{- define "trading-agent-operator.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "trading-agent-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object of the chart. managed-by is Helm here: the operator itself only watches
objects labelled app.kubernetes.io/managed-by=trading-agent-operator, so it never adopts these.
*/}}
{{- define "trading-agent-operator.labels" -}}
helm.sh/chart: {{ include "trading-agent-operator.chart" . }}
{{ include "trading-agent-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: trading-agent
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels: stable across upgrades (a Deployment's selector cannot change).
*/}}
{{- define "trading-agent-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "trading-agent-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount the operator runs as.
*/}}
{{- define "trading-agent-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "trading-agent-operator.fullname" .) .Values.serviceAccount.name }}
{{- else if .Values.serviceAccount.name }}
{{- .Values.serviceAccount.name }}
{{- else }}
{{- fail "serviceAccount.name: name an existing ServiceAccount when serviceAccount.create is false" }}
{{- end }}
{{- end }}

{{/*
The leader-election Lease's name.
*/}}
{{- define "trading-agent-operator.leaseName" -}}
{{- default (include "trading-agent-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
Whether the registry webhook is served: enabled, and a token Secret named (the operator serves no
webhook without a token).
*/}}
{{- define "trading-agent-operator.webhookServed" -}}
{{- if and .Values.webhook.enabled .Values.webhook.tokenSecret.name }}true{{ end }}
{{- end }}

{{/*
Name of the webhook Service and of its EndpointSlice (which the leader points at itself).
*/}}
{{- define "trading-agent-operator.webhookName" -}}
{{- printf "%s-webhook" (include "trading-agent-operator.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{/*
Where the webhook's TLS Secret is mounted.
*/}}
{{- define "trading-agent-operator.webhookTlsDir" -}}
/etc/trading-agent-operator/webhook-tls
{{- end }}

{{/*
The operator image: repository@digest when a digest is given (what runs is exactly what was
tested), else repository:tag (tag defaulting to the chart's appVersion).
*/}}
{{- define "trading-agent-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
Checks across values that the schema cannot express with a clear message.
*/}}
{{- define "trading-agent-operator.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail (printf "leaderElection.enabled: must be true when replicaCount is %d (above 1): otherwise every replica reconciles and they fight over the same objects" (int .Values.replicaCount)) }}
{{- end }}
{{- if ge (int .Values.leaderElection.leaseGraceSeconds) (int .Values.leaderElection.leaseDurationSeconds) }}
{{- fail (printf "leaderElection.leaseGraceSeconds (%d) must be less than leaderElection.leaseDurationSeconds (%d)" (int .Values.leaderElection.leaseGraceSeconds) (int .Values.leaderElection.leaseDurationSeconds)) }}
{{- end }}
{{- if and .Values.webhook.enabled (eq (int .Values.webhook.port) (int .Values.metrics.port)) }}
{{- fail (printf "webhook.port (%d) must differ from metrics.port" (int .Values.webhook.port)) }}
{{- end }}
{{- end }}

{{/*
The operator's rules outside leader election, one per API call it makes (see operator/src):
each is shared by the ClusterRole and, with watchNamespace, the namespaced Role.
*/}}
{{- define "trading-agent-operator.rules" -}}
# The controller lists and watches TradingAgents (operator/src/reconcile/controller.rs: Controller::new).
- apiGroups: ["tradingagents.dev"]
  resources: ["tradingagents"]
  verbs: ["get", "list", "watch"]
# Status is written by server-side apply on the status subresource (reconcile/report.rs: write_status).
- apiGroups: ["tradingagents.dev"]
  resources: ["tradingagents/status"]
  verbs: ["get", "patch"]
# Children carry a controller owner reference with blockOwnerDeletion; clusters running the
# OwnerReferencesPermissionEnforcement admission plugin require this to set it.
- apiGroups: ["tradingagents.dev"]
  resources: ["tradingagents/finalizers"]
  verbs: ["update"]
# Owned children: watched by label, applied with server-side apply (patch, and create when the
# apply creates the object). The garbage collector deletes them with their TradingAgent.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch"]
# The api PodDisruptionBudget is also deleted when the api drops to one replica.
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# One NetworkPolicy per role when spec.networkPolicy.enabled (reconcile/build/network_policy.rs),
# deleted again when it is turned off.
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Pods of the managed Deployments are watched (by label) for the image they really run:
# status.components.<role>.digest comes from their containers' imageID.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
# Read by name only: the database Secret (spec.database.secretRef, checked before anything is
# applied) and the imagePullSecrets the digest resolver authenticates with. Never listed.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# Backtests (operator/src/backtest/controller.rs): watched, their status written by server-side
# apply; their Jobs (owner reference with blockOwnerDeletion, hence backtests/finalizers) watched
# by label and created once; the Job's pods read for the container's termination message (the
# summary), covered by the pods rule above.
- apiGroups: ["tradingagents.dev"]
  resources: ["backtests"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["tradingagents.dev"]
  resources: ["backtests/status"]
  verbs: ["get", "patch"]
- apiGroups: ["tradingagents.dev"]
  resources: ["backtests/finalizers"]
  verbs: ["update"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create"]
# Events for `kubectl describe ta` and `kubectl describe backtest` (kube-runtime's Recorder:
# events.k8s.io/v1, create, then patch to count repeats).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
