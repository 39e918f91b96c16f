package v1alpha1

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// keyPattern is a registry namespace or repository path: lower-case
// components separated by "/", as in the distribution reference grammar. The
// CRD carries the same pattern.
var keyPattern = regexp.MustCompile(`^([a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*)?$`)

// ValidateSpec checks, in Go, the critical rules the CRD enforces at
// admission, so objects stored before a rule existed are caught too.
func ValidateSpec(s *WebhookSubscriptionSpec) error {
	var errs []error
	if !slices.Contains(EventTypes, s.Type) {
		errs = append(errs, fmt.Errorf("type %q is not a known event type", s.Type))
	}
	if len(s.Key) > 255 || !keyPattern.MatchString(s.Key) {
		errs = append(errs, fmt.Errorf("key %q is not a registry namespace or repository path", s.Key))
	}
	switch s.Type.Scope() {
	case GlobalScope:
		if s.Key != "" {
			errs = append(errs, fmt.Errorf("%s is a global event: key must be empty", s.Type))
		}
	case NamespaceScope:
		if strings.Contains(s.Key, "/") {
			errs = append(errs, fmt.Errorf("%s is scoped to a registry namespace: key must not be a repository", s.Type))
		}
	}
	if err := ValidateEndpoint(s.Endpoint); err != nil {
		errs = append(errs, err)
	}
	if f := s.GetPayloadFormat(); f != PayloadFormatDTR && f != PayloadFormatCloudEvents {
		errs = append(errs, fmt.Errorf("payloadFormat %q is not DTR or CloudEvents", f))
	}
	if p := s.GetBackoffPolicy(); p != BackoffExponential && p != BackoffLinear {
		errs = append(errs, fmt.Errorf("backoffPolicy %q is not exponential or linear", p))
	}
	if s.GetBackoffMax() < s.GetBackoffDelay() {
		errs = append(errs, errors.New("backoffMax must be at least backoffDelay"))
	}
	errs = append(errs,
		inRange("timeout", s.GetTimeout(), time.Second, 5*time.Minute),
		inRange("backoffDelay", s.GetBackoffDelay(), 100*time.Millisecond, time.Hour),
		inRange("backoffMax", s.GetBackoffMax(), time.Second, 24*time.Hour),
		inRange("deactivateAfter", s.GetDeactivateAfter(), time.Minute, 720*time.Hour),
	)
	if n := s.GetMaxAttempts(); n < 1 || n > 100 {
		errs = append(errs, fmt.Errorf("maxAttempts %d is not between 1 and 100", n))
	}
	return errors.Join(errs...)
}

// MaxEndpointLength bounds spec.endpoint, as the CRD does.
const MaxEndpointLength = 2048

// ValidateEndpoint checks that endpoint is an absolute http or https URL with
// a host and without credentials (those belong in headersSecretRef).
func ValidateEndpoint(endpoint string) error {
	if len(endpoint) > MaxEndpointLength {
		return fmt.Errorf("endpoint is longer than %d characters", MaxEndpointLength)
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return fmt.Errorf("endpoint %q must be an absolute http:// or https:// URL with a host", endpoint)
	}
	if u.User != nil {
		return errors.New("endpoint must not contain credentials; put an Authorization header in headersSecretRef")
	}
	return nil
}

func inRange(field string, d, lo, hi time.Duration) error {
	if d < lo || d > hi {
		return fmt.Errorf("%s %s is not between %s and %s", field, d, lo, hi)
	}
	return nil
}
