package subscriptions

import (
	"time"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

// Delivery is a subscription's delivery settings with defaults applied.
type Delivery struct {
	Timeout         time.Duration
	MaxAttempts     int
	BackoffPolicy   kubehookv1.BackoffPolicy
	BackoffDelay    time.Duration
	BackoffMax      time.Duration
	DeactivateAfter time.Duration
}

// DeliveryFor returns the delivery settings of spec, defaults applied.
func DeliveryFor(spec *kubehookv1.WebhookSubscriptionSpec) Delivery {
	return Delivery{
		Timeout:         spec.GetTimeout(),
		MaxAttempts:     spec.GetMaxAttempts(),
		BackoffPolicy:   spec.GetBackoffPolicy(),
		BackoffDelay:    spec.GetBackoffDelay(),
		BackoffMax:      spec.GetBackoffMax(),
		DeactivateAfter: spec.GetDeactivateAfter(),
	}
}
