package v1alpha1

import "time"

// Defaults of the delivery settings, used when a field is unset. The field
// comments of DeliverySpec state the same values.
const (
	DefaultTimeout         = 10 * time.Second
	DefaultMaxAttempts     = 10
	DefaultBackoffPolicy   = BackoffExponential
	DefaultBackoffDelay    = 5 * time.Second
	DefaultBackoffMax      = time.Hour
	DefaultDeactivateAfter = 24 * time.Hour
)

// GetPayloadFormat returns spec.payloadFormat, DTR when unset.
func (s *WebhookSubscriptionSpec) GetPayloadFormat() PayloadFormat {
	if s.PayloadFormat == "" {
		return PayloadFormatDTR
	}
	return s.PayloadFormat
}

// GetTimeout returns delivery.timeout, DefaultTimeout when unset.
func (s *WebhookSubscriptionSpec) GetTimeout() time.Duration {
	if s.Delivery == nil || s.Delivery.Timeout == nil {
		return DefaultTimeout
	}
	return s.Delivery.Timeout.Duration
}

// GetMaxAttempts returns delivery.maxAttempts, DefaultMaxAttempts when unset.
func (s *WebhookSubscriptionSpec) GetMaxAttempts() int {
	if s.Delivery == nil || s.Delivery.MaxAttempts == nil {
		return DefaultMaxAttempts
	}
	return int(*s.Delivery.MaxAttempts)
}

// GetBackoffPolicy returns delivery.backoffPolicy, exponential when unset.
func (s *WebhookSubscriptionSpec) GetBackoffPolicy() BackoffPolicy {
	if s.Delivery == nil || s.Delivery.BackoffPolicy == "" {
		return DefaultBackoffPolicy
	}
	return s.Delivery.BackoffPolicy
}

// GetBackoffDelay returns delivery.backoffDelay, DefaultBackoffDelay when unset.
func (s *WebhookSubscriptionSpec) GetBackoffDelay() time.Duration {
	if s.Delivery == nil || s.Delivery.BackoffDelay == nil {
		return DefaultBackoffDelay
	}
	return s.Delivery.BackoffDelay.Duration
}

// GetBackoffMax returns delivery.backoffMax, DefaultBackoffMax when unset.
func (s *WebhookSubscriptionSpec) GetBackoffMax() time.Duration {
	if s.Delivery == nil || s.Delivery.BackoffMax == nil {
		return DefaultBackoffMax
	}
	return s.Delivery.BackoffMax.Duration
}

// GetDeactivateAfter returns delivery.deactivateAfter, DefaultDeactivateAfter when unset.
func (s *WebhookSubscriptionSpec) GetDeactivateAfter() time.Duration {
	if s.Delivery == nil || s.Delivery.DeactivateAfter == nil {
		return DefaultDeactivateAfter
	}
	return s.Delivery.DeactivateAfter.Duration
}
