{{/* The chart name, or nameOverride. */}}
{{- define "stepline.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The prefix of every object's name. */}}
{{- define "stepline.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "stepline.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "stepline.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "stepline.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "stepline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: stepline
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The operator pods' selector: the ServiceMonitor and PodMonitor select name + component. */}}
{{- define "stepline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stepline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "stepline.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "stepline.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* "true" when approvals are on: the value, and a cluster that serves MutatingAdmissionPolicy v1
(Kubernetes 1.36+); "" otherwise. */}}
{{- define "stepline.approvals" -}}
{{- if and .Values.approvals.enabled (semverCompare ">=1.36.0-0" .Capabilities.KubeVersion.Version) -}}
true
{{- end }}
{{- end }}

{{- define "stepline.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The rules on Stepline's own kinds and the workloads it owns, granted cluster-wide (ClusterRole) or
per watched namespace (Role). Derived from operator/stepline/kube.py and controllers/*.py:
- stepline.io: kopf watches all three kinds and patches servicesteps/workflows (its progress
  annotations); kube.py merge-patches their status; ownerReferences with blockOwnerDeletion on the
  objects built for a ServiceStep need update on servicesteps/finalizers.
- deployments, services, HPAs: kopf indexes and watches them (get/list/watch); kube.py applies them
  server-side (patch, plus create when the object is new) and deletes them.
- endpointslices: controllers/endpoints.py follows the steps' slices (get/list/watch) to send each
  call to a ready replica (engine/balancing.py).
- events: kopf.info / kopf.warn post Events (create), and kopf aggregates repeats (patch).
- workflowruns delete: controllers/workflowruns/history.py prunes finished runs past a workflow's retention.
- workflowschedules: kopf watches them (event handlers only: it writes nothing to them); kube.py
  merge-patches their status; controllers/workflowschedules/ creates their runs (create on
  workflowruns), sets spec.cancel on a run it replaces (server-side apply: patch, granted above)
  and deletes runs past the history limits; the runs' controller ownerReference with
  blockOwnerDeletion needs update on workflowschedules/finalizers.
- approvals (when approvals are on): controllers/approvals/ follows them (get/list/watch), adds
  an ownerReference to the run by server-side apply (patch) and writes their status (patch).
*/}}
{{- define "stepline.workloadRules" -}}
- apiGroups: [stepline.io]
  resources: [servicesteps, workflows, workflowruns]
  verbs: [get, list, watch, patch]
- apiGroups: [stepline.io]
  resources: [servicesteps/status, workflows/status, workflowruns/status]
  verbs: [get, patch]
- apiGroups: [stepline.io]
  resources: [servicesteps/finalizers]
  verbs: [update]
- apiGroups: [stepline.io]
  resources: [workflowruns]
  verbs: [delete]
- apiGroups: [stepline.io]
  resources: [workflowschedules]
  verbs: [get, list, watch]
- apiGroups: [stepline.io]
  resources: [workflowschedules/status]
  verbs: [get, patch]
- apiGroups: [stepline.io]
  resources: [workflowschedules/finalizers]
  verbs: [update]
- apiGroups: [stepline.io]
  resources: [workflowruns]
  verbs: [create]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- if include "stepline.approvals" . }}
- apiGroups: [stepline.io]
  resources: [approvals]
  verbs: [get, list, watch, patch]
- apiGroups: [stepline.io]
  resources: [approvals/status]
  verbs: [get, patch]
{{- end }}
{{- end }}
