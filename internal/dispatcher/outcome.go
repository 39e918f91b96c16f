package dispatcher

import (
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Reporter receives the outcome of every attempt. Report must not block.
type Reporter interface {
	Report(Outcome)
}

// Outcome is the result of one attempt, for status.
type Outcome struct {
	Subscription types.NamespacedName
	UID          types.UID
	DeliveryID   string
	At           time.Time
	// Attempts made for this delivery, this one included.
	Attempts   int
	OK         bool
	StatusCode int
	// Message says why an attempt failed; it holds no secrets.
	Message string
	// Deactivated: this failure (410 Gone) made the subscription inactive.
	Deactivated bool
	// DeadLettered: the delivery exhausted its attempts.
	DeadLettered bool
	// CircuitOpenUntil is set when, after this attempt, the circuit breaker
	// of the endpoint's host is open: no delivery to that host is attempted
	// until then, when one probe attempt goes. Zero while it is closed.
	CircuitOpenUntil time.Time
}
