package retry_test

import (
	"math"
	"testing"
	"time"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/retry"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

const noJitter = 0.5

// defaults is the delivery of a subscription that sets nothing.
func defaults() subscriptions.Delivery {
	return subscriptions.DeliveryFor(&kubehookv1.WebhookSubscriptionSpec{})
}

func TestDelayDefaultSchedule(t *testing.T) {
	want := []time.Duration{
		5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second,
		80 * time.Second, 160 * time.Second, 320 * time.Second, 640 * time.Second,
		1280 * time.Second, 2560 * time.Second,
		time.Hour, time.Hour, time.Hour, // 5120s and beyond: capped at backoffMax
	}
	for i, w := range want {
		attempt := i + 1
		if got := retry.Delay(defaults(), attempt, 0, noJitter); got != w {
			t.Errorf("attempt %d: delay %v, want %v", attempt, got, w)
		}
	}
}

func TestDelayZeroDeliveryTakesDefaults(t *testing.T) {
	for attempt := 1; attempt <= 15; attempt++ {
		if got, want := retry.Delay(subscriptions.Delivery{}, attempt, 0, noJitter), retry.Delay(defaults(), attempt, 0, noJitter); got != want {
			t.Errorf("attempt %d: zero Delivery gives %v, defaults give %v", attempt, got, want)
		}
	}
}

func TestDelayLinear(t *testing.T) {
	d := defaults()
	d.BackoffPolicy = kubehookv1.BackoffLinear
	d.BackoffDelay = 100 * time.Second
	d.BackoffMax = 450 * time.Second
	tests := []struct {
		attempt int
		want    time.Duration
	}{
		{-3, 100 * time.Second}, // below 1 counts as 1
		{0, 100 * time.Second},
		{1, 100 * time.Second},
		{2, 200 * time.Second},
		{3, 300 * time.Second},
		{4, 400 * time.Second},
		{5, 450 * time.Second},
		{10, 450 * time.Second},
		{100, 450 * time.Second},
		{math.MaxInt, 450 * time.Second},
	}
	for _, tt := range tests {
		if got := retry.Delay(d, tt.attempt, 0, noJitter); got != tt.want {
			t.Errorf("attempt %d: %v, want %v", tt.attempt, got, tt.want)
		}
	}
}

func TestDelayExponentialCap(t *testing.T) {
	d := subscriptions.Delivery{BackoffPolicy: kubehookv1.BackoffExponential, BackoffDelay: 100 * time.Millisecond, BackoffMax: time.Second}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second}
	for i, w := range want {
		if got := retry.Delay(d, i+1, 0, noJitter); got != w {
			t.Errorf("attempt %d: %v, want %v", i+1, got, w)
		}
	}
	// backoffMax equal to backoffDelay: every delay is that value.
	d = subscriptions.Delivery{BackoffDelay: time.Minute, BackoffMax: time.Minute}
	for _, attempt := range []int{1, 2, 50} {
		if got := retry.Delay(d, attempt, 0, noJitter); got != time.Minute {
			t.Errorf("delay == max, attempt %d: %v", attempt, got)
		}
	}
}

// TestDelayNoOverflow covers knative/eventing#9278: large attempt numbers
// must saturate at backoffMax, never wrap to a negative or small delay.
func TestDelayNoOverflow(t *testing.T) {
	policies := []kubehookv1.BackoffPolicy{kubehookv1.BackoffExponential, kubehookv1.BackoffLinear}
	maxes := []time.Duration{time.Second, time.Hour, 24 * time.Hour, time.Duration(math.MaxInt64)}
	for _, p := range policies {
		for _, ceiling := range maxes {
			d := subscriptions.Delivery{BackoffPolicy: p, BackoffDelay: time.Hour, BackoffMax: ceiling}
			if ceiling < d.BackoffDelay {
				d.BackoffDelay = 100 * time.Millisecond
			}
			prev := time.Duration(0)
			for attempt := 1; attempt <= 100; attempt++ {
				got := retry.Delay(d, attempt, 0, noJitter)
				if got <= 0 || got > ceiling || got < prev {
					t.Fatalf("%s max %v attempt %d: delay %v (previous %v)", p, ceiling, attempt, got, prev)
				}
				prev = got
			}
			for _, attempt := range []int{63, 64, 65, 100, 1000, math.MaxInt} {
				for _, rnd := range []float64{0, noJitter, 0.999} {
					if got := retry.Delay(d, attempt, 0, rnd); got <= 0 || got > ceiling {
						t.Errorf("%s max %v attempt %d rnd %v: delay %v", p, ceiling, attempt, rnd, got)
					}
				}
			}
		}
	}
	if got := retry.Delay(defaults(), 100, 0, noJitter); got != time.Hour {
		t.Errorf("default policy, attempt 100: %v, want 1h", got)
	}
}

func TestDelayJitterBounds(t *testing.T) {
	d := defaults()
	for attempt := 1; attempt <= 12; attempt++ {
		base := retry.Delay(d, attempt, 0, noJitter)
		low := time.Duration(float64(base) * 0.8)
		high := time.Duration(float64(base) * 1.2)
		for i := 0; i <= 1000; i++ {
			rnd := float64(i) / 1000
			if i == 1000 {
				rnd = 0.999
			}
			got := retry.Delay(d, attempt, 0, rnd)
			if got < low || got >= high && got != d.BackoffMax || got > d.BackoffMax {
				t.Fatalf("attempt %d rnd %v: %v outside [%v, %v) or above max %v", attempt, rnd, got, low, high, d.BackoffMax)
			}
		}
	}
	tests := []struct {
		attempt int
		rnd     float64
		want    time.Duration
	}{
		{1, 0, 4 * time.Second},            // factor 0.8
		{1, 0.25, 4500 * time.Millisecond}, // factor 0.9
		{1, 0.75, 5500 * time.Millisecond}, // factor 1.1
		{2, 0, 8 * time.Second},            // 10s * 0.8
		{1, -1, 4 * time.Second},           // clamped to 0
		{1, math.NaN(), 4 * time.Second},   // clamped to 0
		{11, 0, 48 * time.Minute},          // capped at 1h, then * 0.8
		{11, 0.25, 54 * time.Minute},       // 1h * 0.9
		{11, 0.999, time.Hour},             // 1h * 1.1996, never above backoffMax
		{100, 0.999, time.Hour},
	}
	for _, tt := range tests {
		if got := retry.Delay(d, tt.attempt, 0, tt.rnd); got != tt.want {
			t.Errorf("attempt %d rnd %v: %v, want %v", tt.attempt, tt.rnd, got, tt.want)
		}
	}
	// rnd >= 1 is clamped just below 1: the factor stays below 1.2.
	for _, rnd := range []float64{0.999, 1, 2, math.Inf(1)} {
		got := retry.Delay(d, 1, 0, rnd)
		if got < 5990*time.Millisecond || got >= 6*time.Second {
			t.Errorf("rnd %v: %v, want in [5.99s, 6s)", rnd, got)
		}
	}
	// Below the cap, jitter may raise the delay: 2560s * 1.1996 = 3070.976s.
	if got := retry.Delay(d, 10, 0, 0.999); got < 3070975*time.Millisecond || got > 3070977*time.Millisecond {
		t.Errorf("attempt 10 rnd 0.999: %v, want ~3070.976s", got)
	}
}

func TestPolicyRand(t *testing.T) {
	calls := 0
	p := retry.Policy{Delivery: defaults(), Rand: func() float64 { calls++; return 0 }}
	if got := p.Delay(1, 0); got != 4*time.Second {
		t.Errorf("Policy.Delay = %v, want 4s", got)
	}
	if calls != 1 {
		t.Errorf("Rand called %d times", calls)
	}
	// Without Rand, math/rand is used, within the jitter bounds.
	p.Rand = nil
	for range 100 {
		if got := p.Delay(1, 0); got < 4*time.Second || got >= 6*time.Second {
			t.Fatalf("Policy.Delay without Rand = %v", got)
		}
	}
	if !p.Exhausted(10) || p.Exhausted(9) {
		t.Error("Policy.Exhausted")
	}
	if !p.ShouldDeactivate(time.Time{}, time.Time{}, 410) {
		t.Error("Policy.ShouldDeactivate")
	}
}

func TestDelayRetryAfter(t *testing.T) {
	d := defaults() // 5s, 10s, 20s, ... capped at 1h
	tests := []struct {
		name       string
		attempt    int
		retryAfter time.Duration
		rnd        float64
		want       time.Duration
	}{
		{"none", 2, 0, noJitter, 10 * time.Second},
		{"negative ignored", 2, -time.Minute, noJitter, 10 * time.Second},
		{"below computed", 2, 3 * time.Second, noJitter, 10 * time.Second},
		{"equal to computed", 2, 10 * time.Second, noJitter, 10 * time.Second},
		{"above computed", 2, 2 * time.Minute, noJitter, 2 * time.Minute},
		{"above jittered computed only", 2, 11 * time.Second, 0, 11 * time.Second}, // jittered delay 8s
		{"below jittered computed", 2, 11 * time.Second, 0.999, 11996 * time.Millisecond},
		{"at max", 2, time.Hour, noJitter, time.Hour},
		{"above max", 2, 5 * time.Hour, noJitter, time.Hour},
		{"huge", 2, time.Duration(math.MaxInt64), noJitter, time.Hour},
		{"above max when capped", 20, 2 * time.Hour, noJitter, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := retry.Delay(d, tt.attempt, tt.retryAfter, tt.rnd)
			if tt.name == "below jittered computed" {
				// 10s * 1.1996: float rounding may cost a nanosecond.
				if got < 11995*time.Millisecond || got > 11996*time.Millisecond {
					t.Errorf("%v, want ~%v", got, tt.want)
				}
				return
			}
			if got != tt.want {
				t.Errorf("%v, want %v", got, tt.want)
			}
		})
	}
}

func TestExhausted(t *testing.T) {
	tests := []struct {
		max, attempts int
		want          bool
	}{
		{10, 0, false}, {10, 9, false}, {10, 10, true}, {10, 11, true},
		{1, 0, false}, {1, 1, true},
		{100, 99, false}, {100, 100, true},
		{0, 9, false}, {0, 10, true}, // zero takes the default, 10
	}
	for _, tt := range tests {
		if got := retry.Exhausted(subscriptions.Delivery{MaxAttempts: tt.max}, tt.attempts); got != tt.want {
			t.Errorf("max %d attempts %d: %v, want %v", tt.max, tt.attempts, got, tt.want)
		}
	}
}

func TestShouldDeactivate(t *testing.T) {
	now := time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)
	d := defaults() // 24h
	tests := []struct {
		name         string
		d            subscriptions.Delivery
		failingSince time.Time
		status       int
		want         bool
	}{
		{"succeeding", d, time.Time{}, 200, false},
		{"succeeding but 410", d, time.Time{}, 410, true},
		{"first failure", d, now, 503, false},
		{"failing 23h59m", d, now.Add(-24*time.Hour + time.Minute), 503, false},
		{"failing 24h-1ns", d, now.Add(-24*time.Hour + 1), 0, false},
		{"failing exactly 24h", d, now.Add(-24 * time.Hour), 0, true},
		{"failing 3 days", d, now.Add(-72 * time.Hour), 500, true},
		{"410 on first failure", d, now, 410, true},
		{"other 4xx", d, now.Add(-time.Hour), 404, false},
		{"no answer", d, now.Add(-time.Hour), 0, false},
		{"custom 1m, failing 59s", subscriptions.Delivery{DeactivateAfter: time.Minute}, now.Add(-59 * time.Second), 500, false},
		{"custom 1m, failing 1m", subscriptions.Delivery{DeactivateAfter: time.Minute}, now.Add(-time.Minute), 500, true},
		{"zero takes default 24h", subscriptions.Delivery{}, now.Add(-23 * time.Hour), 500, false},
		{"failingSince after now (clock skew)", d, now.Add(time.Hour), 500, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retry.ShouldDeactivate(tt.d, tt.failingSince, now, tt.status); got != tt.want {
				t.Errorf("%v, want %v", got, tt.want)
			}
		})
	}
}
