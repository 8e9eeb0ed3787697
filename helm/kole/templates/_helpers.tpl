{{/*
Names. fullname is the release name, with "-kole" appended unless the release
name already contains the chart name; every resource is <fullname>-<part>.
*/}}
{{- define "kole.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kole.fullname" -}}
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

{{/* The kole-apiserver Deployment, Service and ServiceAccount. */}}
{{- define "kole.apiserver.fullname" -}}
{{- printf "%s-apiserver" (include "kole.fullname" .) }}
{{- end }}

{{- define "kole.mosquitto.fullname" -}}
{{- printf "%s-mosquitto" (include "kole.fullname" .) }}
{{- end }}

{{- define "kole.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kole.apiserver.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kole.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels shared by every object; selector labels add the component. */}}
{{- define "kole.labels" -}}
helm.sh/chart: {{ include "kole.chart" . }}
app.kubernetes.io/name: {{ include "kole.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kole
{{- end }}

{{- define "kole.apiserver.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kole.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: apiserver
{{- end }}

{{- define "kole.mosquitto.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kole.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: mosquitto
{{- end }}

{{- define "kole.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* DNS names of a Service in the release namespace, short to fully qualified. */}}
{{- define "kole.serviceDNSNames" -}}
{{- $svc := index . 0 }}
{{- $ns := index . 1 }}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson }}
{{- end }}

{{/* Secret holding kole-apiserver's serving certificate (tls.crt, tls.key). */}}
{{- define "kole.servingSecretName" -}}
{{- if eq .Values.certificates.mode "external" }}
{{- default (printf "%s-serving" (include "kole.apiserver.fullname" .)) .Values.certificates.external.secretName }}
{{- else }}
{{- printf "%s-serving" (include "kole.apiserver.fullname" .) }}
{{- end }}
{{- end }}

{{/* Secret holding kole-apiserver's MQTT client credentials, or "" for none. */}}
{{- define "kole.mqttSecretName" -}}
{{- if .Values.mosquitto.enabled }}
{{- if eq .Values.mosquitto.certificates.mode "external" }}
{{- required "mosquitto.certificates.external.clientSecret is required with mosquitto.certificates.mode=external" .Values.mosquitto.certificates.external.clientSecret }}
{{- else }}
{{- printf "%s-client" (include "kole.mosquitto.fullname" .) }}
{{- end }}
{{- else }}
{{- .Values.mqtt.existingSecret }}
{{- end }}
{{- end }}

{{/* The broker URL kole-apiserver dials, or "" for no MQTT bridge. */}}
{{- define "kole.mqttBroker" -}}
{{- if .Values.mosquitto.enabled }}
{{- printf "mqtts://%s-cloud.%s.svc:%d" (include "kole.mosquitto.fullname" .) .Release.Namespace (int .Values.mosquitto.cloud.port) }}
{{- else }}
{{- .Values.mqtt.broker }}
{{- end }}
{{- end }}

{{/* Mount path and file names of the MQTT credentials (fixed: the e2e harness and docs rely on them). */}}
{{- define "kole.mqttDir" -}}/etc/kole/mqtt{{- end }}

{{/*
Checks of combinations the schema cannot express; rendered from the
Deployment so that every install passes through them.
*/}}
{{- define "kole.validate" -}}
{{- if and .Values.mosquitto.enabled .Values.mqtt.broker }}
{{- fail "set either mqtt.broker (an external broker) or mosquitto.enabled (the in-chart broker), not both" }}
{{- end }}
{{- if and .Values.mqtt.broker (not (regexMatch "^(tcp|mqtts)://[^/:]+:[0-9]+$" .Values.mqtt.broker)) }}
{{- fail (printf "mqtt.broker must look like tcp://host:port or mqtts://host:port, got %q" .Values.mqtt.broker) }}
{{- end }}
{{- if and (not .Values.mosquitto.enabled) .Values.mqtt.existingSecret (not (or .Values.mqtt.secretKeys.password .Values.mqtt.secretKeys.ca .Values.mqtt.secretKeys.cert)) }}
{{- fail "mqtt.existingSecret is set but mqtt.secretKeys names none of its keys (password, ca, cert/key)" }}
{{- end }}
{{- if ne (empty .Values.mqtt.secretKeys.cert) (empty .Values.mqtt.secretKeys.key) }}
{{- fail "mqtt.secretKeys.cert and mqtt.secretKeys.key go together" }}
{{- end }}
{{- if and .Values.service.externalName (ne (int .Values.service.port) (int .Values.apiserver.securePort)) }}
{{- fail "with service.externalName the aggregator dials externalName:service.port, so apiserver.securePort must equal service.port" }}
{{- end }}
{{- if and .Values.mosquitto.enabled .Values.mosquitto.devices.passwords.enabled (not .Values.mosquitto.devices.passwords.existingSecret) }}
{{- fail "mosquitto.devices.passwords.existingSecret (a Secret with a mosquitto_passwd file under devices.passwd) is required when mosquitto.devices.passwords.enabled" }}
{{- end }}
{{- if and .Values.persistence.existingClaim (not .Values.persistence.enabled) }}
{{- fail "persistence.existingClaim needs persistence.enabled" }}
{{- end }}
{{- end }}
