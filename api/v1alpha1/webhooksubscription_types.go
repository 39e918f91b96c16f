package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// EventType names a registry event, as Docker Trusted Registry (DTR) did.
// +kubebuilder:validation:Enum=TAG_PUSH;TAG_PULL;TAG_DELETE;MANIFEST_PUSH;MANIFEST_PULL;MANIFEST_DELETE;SCAN_COMPLETED;SCAN_FAILED;PROMOTION;PUSH_MIRRORING;POLL_MIRRORING;REPO_EVENT;REPO_CREATED;REPO_UPDATED;REPO_DELETED;SCANNER_UPDATE_COMPLETED;CHART_PUSH;CHART_PULL;CHART_DELETE
type EventType string

// The event types of the DTR webhook API.
const (
	TagPush                EventType = "TAG_PUSH"
	TagPull                EventType = "TAG_PULL"
	TagDelete              EventType = "TAG_DELETE"
	ManifestPush           EventType = "MANIFEST_PUSH"
	ManifestPull           EventType = "MANIFEST_PULL"
	ManifestDelete         EventType = "MANIFEST_DELETE"
	ScanCompleted          EventType = "SCAN_COMPLETED"
	ScanFailed             EventType = "SCAN_FAILED"
	Promotion              EventType = "PROMOTION"
	PushMirroring          EventType = "PUSH_MIRRORING"
	PollMirroring          EventType = "POLL_MIRRORING"
	RepoEvent              EventType = "REPO_EVENT"
	RepoCreated            EventType = "REPO_CREATED"
	RepoUpdated            EventType = "REPO_UPDATED"
	RepoDeleted            EventType = "REPO_DELETED"
	ScannerUpdateCompleted EventType = "SCANNER_UPDATE_COMPLETED"
	ChartPush              EventType = "CHART_PUSH"
	ChartPull              EventType = "CHART_PULL"
	ChartDelete            EventType = "CHART_DELETE"
)

// EventTypes lists every event type, in the order of the DTR documentation.
var EventTypes = []EventType{
	TagPush, TagPull, TagDelete, ManifestPush, ManifestPull, ManifestDelete,
	ScanCompleted, ScanFailed, Promotion, PushMirroring, PollMirroring,
	RepoEvent, RepoCreated, RepoUpdated, RepoDeleted, ScannerUpdateCompleted,
	ChartPush, ChartPull, ChartDelete,
}

// Scope says which keys an event type accepts.
type Scope int

const (
	// RepositoryScope types take a registry namespace ("ns") or repository ("ns/repo") key.
	RepositoryScope Scope = iota
	// NamespaceScope types take a registry namespace key ("ns") only.
	NamespaceScope
	// GlobalScope types take no key.
	GlobalScope
)

// Scope returns the key scope of the event type.
func (t EventType) Scope() Scope {
	switch t {
	case RepoEvent, RepoCreated, RepoUpdated, RepoDeleted:
		return NamespaceScope
	case ScannerUpdateCompleted:
		return GlobalScope
	default:
		return RepositoryScope
	}
}

// PayloadFormat is the body format of a delivery.
// +kubebuilder:validation:Enum=DTR;CloudEvents
type PayloadFormat string

const (
	// PayloadFormatDTR sends the DTR wrapper {"type", "createdAt", "contents"}.
	PayloadFormatDTR PayloadFormat = "DTR"
	// PayloadFormatCloudEvents sends a CloudEvents 1.0 event in structured JSON mode.
	PayloadFormatCloudEvents PayloadFormat = "CloudEvents"
)

// BackoffPolicy is how the delay between attempts grows.
// +kubebuilder:validation:Enum=exponential;linear
type BackoffPolicy string

const (
	// BackoffExponential waits backoffDelay * 2^(attempt-1), capped at backoffMax, with jitter.
	BackoffExponential BackoffPolicy = "exponential"
	// BackoffLinear waits backoffDelay * attempt, capped at backoffMax, with jitter.
	BackoffLinear BackoffPolicy = "linear"
)

// SecretReference names a Secret in the subscription's namespace.
type SecretReference struct {
	// name of the Secret, in the namespace of the WebhookSubscription.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
}

// WebhookSubscriptionSpec says which registry events to deliver, and where.
// The field names of the DTR webhook API (type, key, endpoint,
// skipTLSVerification, tlsCert) are kept, so a DTR request body is a valid spec.
//
// +kubebuilder:validation:XValidation:rule="self.type != 'SCANNER_UPDATE_COMPLETED' || !has(self.key) || size(self.key) == 0",message="SCANNER_UPDATE_COMPLETED is a global event: key must be empty"
// +kubebuilder:validation:XValidation:rule="!(self.type in ['REPO_EVENT', 'REPO_CREATED', 'REPO_UPDATED', 'REPO_DELETED']) || !has(self.key) || !self.key.contains('/')",message="repository events (REPO_*) are scoped to a registry namespace: key must be a namespace such as 'acme', not a repository"
type WebhookSubscriptionSpec struct {
	// type is the event type to deliver. Repository events (TAG_*,
	// MANIFEST_*, SCAN_*, PROMOTION, *_MIRRORING, CHART_*) take a namespace or
	// repository key; REPO_CREATED, REPO_UPDATED, REPO_DELETED and REPO_EVENT
	// (all three, with contents.event naming which) take a namespace key;
	// SCANNER_UPDATE_COMPLETED is global and takes no key.
	// +required
	Type EventType `json:"type"`

	// key scopes the subscription: a registry namespace ("acme") matches every
	// repository in it, a repository ("acme/app", or nested "acme/team/app")
	// matches that repository only. Empty matches every repository; only
	// Kubernetes namespaces that may use every registry namespace (annotation
	// kubehook.io/registry-namespaces: "*") may leave it empty.
	// +optional
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^([a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*)?$`
	Key string `json:"key,omitempty"`

	// endpoint is the absolute http or https URL that receives the events as
	// POST requests.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''",message="endpoint must be an absolute http:// or https:// URL with a host"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*@')",message="endpoint must not contain credentials; put an Authorization header in headersSecretRef"
	Endpoint string `json:"endpoint"`

	// skipTLSVerification turns off verification of the endpoint's TLS
	// certificate. Defaults to false: certificates are verified.
	// +optional
	SkipTLSVerification bool `json:"skipTLSVerification,omitempty"`

	// tlsCert is a PEM bundle of CA certificates (or the endpoint's
	// self-signed certificate) trusted in addition to the system roots.
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	// +kubebuilder:validation:XValidation:rule="size(self) == 0 || (self.contains('-----BEGIN CERTIFICATE-----') && self.contains('-----END CERTIFICATE-----'))",message="tlsCert must be PEM: one or more -----BEGIN CERTIFICATE----- blocks"
	TLSCert string `json:"tlsCert,omitempty"`

	// tlsSecretRef names a Secret with TLS material for the endpoint: ca.crt
	// (PEM CA certificates to trust) and/or tls.crt with tls.key (a client
	// certificate for mutual TLS).
	// +optional
	TLSSecretRef *SecretReference `json:"tlsSecretRef,omitempty"`

	// signingSecretRef names a Secret whose every data value is a Standard
	// Webhooks secret ("whsec_" followed by base64 of 24 to 64 bytes). Each one
	// adds a "v1," signature to the webhook-signature header, so a secret is
	// rotated by adding the new key and later removing the old one.
	// +optional
	SigningSecretRef *SecretReference `json:"signingSecretRef,omitempty"`

	// headersSecretRef names a Secret whose every data key is an extra HTTP
	// header sent with each delivery (for example Authorization), its value
	// the header value.
	// +optional
	HeadersSecretRef *SecretReference `json:"headersSecretRef,omitempty"`

	// payloadFormat is the body format: DTR (default) sends
	// {"type", "createdAt", "contents"}; CloudEvents sends a CloudEvents 1.0
	// event in structured JSON mode with type io.kubehook.<type>.
	// +optional
	PayloadFormat PayloadFormat `json:"payloadFormat,omitempty"`

	// suspend stops deliveries while true; events that occur meanwhile are
	// not delivered. Defaults to false.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// delivery tunes timeouts, retries and deactivation. Every field has a
	// default.
	// +optional
	Delivery *DeliverySpec `json:"delivery,omitempty"`
}

// DeliverySpec tunes how deliveries are attempted and retried.
//
// +kubebuilder:validation:XValidation:rule="(has(self.backoffMax) ? duration(self.backoffMax) : duration('1h')) >= (has(self.backoffDelay) ? duration(self.backoffDelay) : duration('5s'))",message="backoffMax must be at least backoffDelay (defaults: backoffDelay 5s, backoffMax 1h)"
type DeliverySpec struct {
	// timeout bounds one HTTP attempt, from connecting to reading the
	// response. Between 1s and 5m; defaults to 10s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('5m')",message="timeout must be between 1s and 5m"
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// maxAttempts is how many times one event is attempted before it is given
	// up and kept as a dead letter. Between 1 and 100; defaults to 10.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	MaxAttempts *int32 `json:"maxAttempts,omitempty"`

	// backoffPolicy is how the wait between attempts grows: exponential
	// (default; backoffDelay doubled after each attempt) or linear
	// (backoffDelay times the attempt number). Both are capped at backoffMax
	// and jittered by up to 20%. A Retry-After header from the endpoint is
	// honoured up to backoffMax.
	// +optional
	BackoffPolicy BackoffPolicy `json:"backoffPolicy,omitempty"`

	// backoffDelay is the wait before the first retry. Between 100ms and 1h;
	// defaults to 5s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('100ms') && duration(self) <= duration('1h')",message="backoffDelay must be between 100ms and 1h"
	BackoffDelay *metav1.Duration `json:"backoffDelay,omitempty"`

	// backoffMax caps the wait between attempts. Between 1s and 24h, and at
	// least backoffDelay; defaults to 1h.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('24h')",message="backoffMax must be between 1s and 24h"
	BackoffMax *metav1.Duration `json:"backoffMax,omitempty"`

	// deactivateAfter marks the subscription inactive when it has been
	// failing, with no success, for this long. Between 1m and 720h (30 days);
	// defaults to 24h. An HTTP 410 Gone answer deactivates at once.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('720h')",message="deactivateAfter must be between 1m and 720h"
	DeactivateAfter *metav1.Duration `json:"deactivateAfter,omitempty"`
}

// DeliveryFailure describes the last failed attempt.
type DeliveryFailure struct {
	// statusCode is the HTTP status the endpoint answered, or 0 when no
	// answer was received (timeout, refused connection, TLS error).
	// +optional
	StatusCode int32 `json:"statusCode,omitempty"`

	// message says what went wrong, with secrets masked.
	// +optional
	Message string `json:"message,omitempty"`
}

// TestDeliveryStatus is the outcome of the last test delivery requested with
// the kubehook.io/test annotation.
type TestDeliveryStatus struct {
	// request is the value of the kubehook.io/test annotation this outcome
	// answers.
	// +optional
	Request string `json:"request,omitempty"`

	// requestedAt is when kubehook saw the request.
	// +optional
	RequestedAt *metav1.Time `json:"requestedAt,omitempty"`

	// sentAt is when the sample payload was sent.
	// +optional
	SentAt *metav1.Time `json:"sentAt,omitempty"`

	// statusCode is the HTTP status the endpoint answered, 0 when none.
	// +optional
	StatusCode int32 `json:"statusCode,omitempty"`

	// message describes the outcome.
	// +optional
	Message string `json:"message,omitempty"`
}

// DeadLetterAction is the outcome of the last replay or purge of the
// subscription's dead letters, requested with an annotation.
type DeadLetterAction struct {
	// request is the value of the annotation this outcome answers.
	// +optional
	Request string `json:"request,omitempty"`

	// requestedAt is when kubehook acted on the request.
	// +optional
	RequestedAt *metav1.Time `json:"requestedAt,omitempty"`

	// count is how many dead letters were replayed (queued again) or purged.
	// +optional
	Count int64 `json:"count"`

	// message says what went wrong, when something did.
	// +optional
	Message string `json:"message,omitempty"`
}

// WebhookSubscriptionStatus is the observed state of a WebhookSubscription.
type WebhookSubscriptionStatus struct {
	// observedGeneration is the generation of the spec last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions hold Ready, and Reconciling or Stalled while they are true
	// (kstatus conventions).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// lastSuccessfulAt is when an event was last delivered with a 2xx answer.
	// Absent until the first success.
	// +optional
	LastSuccessfulAt *metav1.Time `json:"lastSuccessfulAt,omitempty"`

	// lastAttemptAt is when a delivery was last attempted.
	// +optional
	LastAttemptAt *metav1.Time `json:"lastAttemptAt,omitempty"`

	// lastFailureAt is when an attempt last failed.
	// +optional
	LastFailureAt *metav1.Time `json:"lastFailureAt,omitempty"`

	// failingSince is the first failure of the current failure streak; absent
	// while deliveries succeed.
	// +optional
	FailingSince *metav1.Time `json:"failingSince,omitempty"`

	// lastFailure describes the last failed attempt.
	// +optional
	LastFailure *DeliveryFailure `json:"lastFailure,omitempty"`

	// consecutiveFailures counts failed attempts since the last success.
	// +optional
	ConsecutiveFailures int64 `json:"consecutiveFailures,omitempty"`

	// circuitOpenUntil is set while the circuit breaker of the endpoint's
	// host (host and port) is open: after consecutive failed attempts to
	// that host (no answer, timeouts, 5xx), from any subscription, nothing
	// is sent there until this time, when one probe attempt goes; its
	// success closes the breaker, its failure opens it for longer.
	// Deliveries wait meanwhile; the wait counts as no attempt and never
	// makes a dead letter. Absent while the breaker is closed.
	// +optional
	CircuitOpenUntil *metav1.Time `json:"circuitOpenUntil,omitempty"`

	// inactive is true when deliveries stopped because the endpoint failed for
	// longer than deactivateAfter or answered 410 Gone. A spec change or a new
	// value of the kubehook.io/reactivate annotation makes it active again.
	// +optional
	Inactive bool `json:"inactive"`

	// lastHandledReactivate is the value of the kubehook.io/reactivate
	// annotation last acted on.
	// +optional
	LastHandledReactivate string `json:"lastHandledReactivate,omitempty"`

	// lastTest is the outcome of the last test delivery.
	// +optional
	LastTest *TestDeliveryStatus `json:"lastTest,omitempty"`

	// backlog counts the deliveries queued for this subscription: waiting,
	// in flight, waiting for a retry, or held while it is suspended or
	// stalled. Refreshed with the coalesced status writes, not per event.
	// +optional
	Backlog int64 `json:"backlog"`

	// deadLetters counts this subscription's dead letters: deliveries given
	// up (attempts exhausted, the subscription inactive or its key no
	// longer permitted, held too long), kept for the dead-letter retention
	// (7 days by default). A new value of the kubehook.io/replay annotation
	// delivers them again; kubehook.io/purge-dead-letters deletes them.
	// +optional
	DeadLetters int64 `json:"deadLetters"`

	// lastReplay is the outcome of the last kubehook.io/replay request.
	// +optional
	LastReplay *DeadLetterAction `json:"lastReplay,omitempty"`

	// lastPurge is the outcome of the last kubehook.io/purge-dead-letters
	// request.
	// +optional
	LastPurge *DeadLetterAction `json:"lastPurge,omitempty"`
}

// WebhookSubscription delivers registry events of one type, for a registry
// namespace or repository, to an HTTP endpoint, as Docker Trusted Registry
// webhooks did.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=whsub,categories=kubehook
// +kubebuilder:selectablefield:JSONPath=`.spec.type`
// +kubebuilder:selectablefield:JSONPath=`.spec.key`
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Key",type=string,JSONPath=`.spec.key`
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.spec.endpoint`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Inactive",type=boolean,JSONPath=`.status.inactive`
// +kubebuilder:printcolumn:name="Last-Success",type=date,JSONPath=`.status.lastSuccessfulAt`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Backlog",type=integer,priority=1,JSONPath=`.status.backlog`
// +kubebuilder:printcolumn:name="Dead-Letters",type=integer,priority=1,JSONPath=`.status.deadLetters`
// +kubebuilder:printcolumn:name="Author",type=string,priority=1,JSONPath=`.metadata.annotations.kubehook\.io/author`
// +kubebuilder:printcolumn:name="Message",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Ready")].message`
type WebhookSubscription struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec says which events to deliver, and where.
	// +required
	Spec WebhookSubscriptionSpec `json:"spec"`

	// status reports whether the subscription is delivering.
	// +optional
	Status WebhookSubscriptionStatus `json:"status,omitempty"`
}

// WebhookSubscriptionList is a list of WebhookSubscriptions.
//
// +kubebuilder:object:root=true
type WebhookSubscriptionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WebhookSubscription `json:"items"`
}

func init() {
	SchemeBuilder.Register(&WebhookSubscription{}, &WebhookSubscriptionList{})
}
