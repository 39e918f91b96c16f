// Package retry is the retry policy of deliveries: how long to wait before
// the next attempt, when to give up on a delivery, and when to deactivate a
// subscription. It only computes; it does no I/O and reads no clock.
package retry

import (
	"math"
	"math/rand/v2"
	"net/http"
	"time"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

// Jitter bounds: the computed delay is multiplied by a factor in
// [JitterMin, JitterMax), chosen by the random number.
const (
	JitterMin = 0.8
	JitterMax = 1.2
)

// Policy is a subscription's retry policy with an injectable source of
// randomness.
type Policy struct {
	// Delivery holds the settings; zero fields take the API defaults.
	Delivery subscriptions.Delivery
	// Rand returns a number in [0, 1) for the jitter; nil uses math/rand/v2.
	Rand func() float64
}

// Delay returns the wait before the next attempt; see the package function
// Delay.
func (p Policy) Delay(attempt int, retryAfter time.Duration) time.Duration {
	r := p.Rand
	if r == nil {
		r = rand.Float64
	}
	return Delay(p.Delivery, attempt, retryAfter, r())
}

// Exhausted reports whether attempts have used up MaxAttempts.
func (p Policy) Exhausted(attempts int) bool { return Exhausted(p.Delivery, attempts) }

// ShouldDeactivate reports whether the subscription should become inactive;
// see the package function ShouldDeactivate.
func (p Policy) ShouldDeactivate(failingSince, now time.Time, statusCode int) bool {
	return ShouldDeactivate(p.Delivery, failingSince, now, statusCode)
}

// Delay returns how long to wait before the next attempt of a delivery.
//
// attempt is the number of attempts already made (1 after the first
// failure; values below 1 count as 1). The base delay is
//
//	exponential: BackoffDelay * 2^(attempt-1)
//	linear:      BackoffDelay * attempt
//
// capped at BackoffMax, without overflow for any attempt. It is then
// jittered: multiplied by a factor in [0.8, 1.2) chosen by rnd (0.5 gives
// exactly 1; rnd outside [0, 1) is clamped), and never more than BackoffMax.
// A retryAfter (the endpoint's Retry-After) longer than that wins, capped at
// BackoffMax.
//
// Zero fields of d take the API defaults (5s, 1h, exponential); a
// BackoffMax below BackoffDelay is raised to it.
func Delay(d subscriptions.Delivery, attempt int, retryAfter time.Duration, rnd float64) time.Duration {
	d = withDefaults(d)
	base, ceiling := d.BackoffDelay, d.BackoffMax
	if attempt < 1 {
		attempt = 1
	}

	var delay time.Duration
	switch d.BackoffPolicy {
	case kubehookv1.BackoffLinear:
		// base * attempt, saturating at ceiling.
		if time.Duration(attempt) > ceiling/base {
			delay = ceiling
		} else {
			delay = min(base*time.Duration(attempt), ceiling)
		}
	default:
		// base * 2^(attempt-1), saturating at ceiling. base > 0 and
		// ceiling <= MaxInt64, so a shift past 62 always exceeds it.
		shift := attempt - 1
		if shift >= 63 || base > ceiling>>shift {
			delay = ceiling
		} else {
			delay = min(base<<shift, ceiling)
		}
	}

	delay = jitter(delay, ceiling, rnd)
	if retryAfter > delay {
		delay = min(retryAfter, ceiling)
	}
	return delay
}

// jitter multiplies delay by a factor in [JitterMin, JitterMax) chosen by
// rnd, never returning more than ceiling.
func jitter(delay, ceiling time.Duration, rnd float64) time.Duration {
	switch {
	case !(rnd >= 0): // negative or NaN
		rnd = 0
	case rnd >= 1:
		rnd = math.Nextafter(1, 0)
	}
	// 1 + (JitterMax-JitterMin)*(rnd-0.5) is exactly 1 for rnd = 0.5.
	f := float64(delay) * (1 + (JitterMax-JitterMin)*(rnd-0.5))
	// Rounding can reach the factor JitterMax for rnd just below 1; the
	// interval is half-open.
	if upper := float64(delay) * JitterMax; f >= upper {
		f = math.Nextafter(upper, 0)
	}
	if f >= float64(ceiling) {
		return ceiling
	}
	return time.Duration(f)
}

// Exhausted reports whether a delivery that has been attempted attempts
// times has used up MaxAttempts and must be given up (kept as a dead
// letter). A zero MaxAttempts takes the default.
func Exhausted(d subscriptions.Delivery, attempts int) bool {
	return attempts >= withDefaults(d).MaxAttempts
}

// ShouldDeactivate reports whether a subscription must become inactive:
// at once when the endpoint answered statusCode 410 Gone, or when it has
// been failing, with no success, since failingSince (zero while it
// succeeds) for at least DeactivateAfter as of now. A zero DeactivateAfter
// takes the default.
func ShouldDeactivate(d subscriptions.Delivery, failingSince, now time.Time, statusCode int) bool {
	if statusCode == http.StatusGone {
		return true
	}
	if failingSince.IsZero() {
		return false
	}
	return now.Sub(failingSince) >= withDefaults(d).DeactivateAfter
}

func withDefaults(d subscriptions.Delivery) subscriptions.Delivery {
	if d.MaxAttempts <= 0 {
		d.MaxAttempts = kubehookv1.DefaultMaxAttempts
	}
	if d.BackoffPolicy == "" {
		d.BackoffPolicy = kubehookv1.DefaultBackoffPolicy
	}
	if d.BackoffDelay <= 0 {
		d.BackoffDelay = kubehookv1.DefaultBackoffDelay
	}
	if d.BackoffMax <= 0 {
		d.BackoffMax = kubehookv1.DefaultBackoffMax
	}
	if d.BackoffMax < d.BackoffDelay {
		d.BackoffMax = d.BackoffDelay
	}
	if d.DeactivateAfter <= 0 {
		d.DeactivateAfter = kubehookv1.DefaultDeactivateAfter
	}
	return d
}
