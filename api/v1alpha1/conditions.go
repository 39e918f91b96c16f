package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Annotations kubehook reads.
const (
	// RegistryNamespacesAnnotation, on a Namespace, lists (comma-separated)
	// the registry namespaces its subscriptions may use as keys; "*" allows
	// every registry namespace and the empty key. Without it, a namespace may
	// use the registry namespace of the same name only.
	RegistryNamespacesAnnotation = "kubehook.io/registry-namespaces"
	// TestAnnotation: a new value sends the sample payload of spec.type once.
	TestAnnotation = "kubehook.io/test"
	// ReactivateAnnotation: a new value makes an inactive subscription active again.
	ReactivateAnnotation = "kubehook.io/reactivate"
	// ReplayAnnotation: a new value queues every dead letter of the
	// subscription again, with its original webhook-id.
	ReplayAnnotation = "kubehook.io/replay"
	// PurgeDeadLettersAnnotation: a new value deletes every dead letter of
	// the subscription.
	PurgeDeadLettersAnnotation = "kubehook.io/purge-dead-letters"
	// AuthorIDAnnotation holds the creator's Kubernetes user UID (the name
	// when the user has none); the DTR API shows it as authorID.
	AuthorIDAnnotation = "kubehook.io/author-id"
	// AuthorAnnotation holds the creator's Kubernetes user name.
	AuthorAnnotation = "kubehook.io/author"
)

// Condition types, following kstatus: Ready always; Reconciling and Stalled
// only while true.
const (
	ReadyCondition       = "Ready"
	ReconcilingCondition = "Reconciling"
	StalledCondition     = "Stalled"
)

// Reasons set on the conditions.
const (
	// SucceededReason: registered and delivering.
	SucceededReason = "Succeeded"
	// ProgressingReason: the reconciler is working on a new generation.
	ProgressingReason = "Progressing"
	// SuspendedReason: spec.suspend is true.
	SuspendedReason = "Suspended"
	// SecretNotFoundReason: a referenced Secret does not exist.
	SecretNotFoundReason = "SecretNotFound"
	// InvalidSecretReason: a referenced Secret holds unusable data.
	InvalidSecretReason = "InvalidSecret"
	// InvalidTLSReason: tlsCert or the TLS Secret does not parse.
	InvalidTLSReason = "InvalidTLS"
	// InvalidSpecReason: the spec breaks a rule admission should have caught.
	InvalidSpecReason = "InvalidSpec"
	// KeyNotPermittedReason: the namespace may not use the key's registry namespace.
	KeyNotPermittedReason = "KeyNotPermitted"
	// InactiveReason: deliveries stopped after a long failure streak or a 410.
	InactiveReason = "Inactive"
)

// GetConditions returns the status conditions.
func (in *WebhookSubscription) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the status conditions.
func (in *WebhookSubscription) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }
