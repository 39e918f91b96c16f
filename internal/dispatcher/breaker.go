package dispatcher

import (
	"sync"
	"time"

	"github.com/kubehook/kubehook/internal/metrics"
)

// gate is what a host's circuit breaker says about one more attempt.
type gate int

const (
	// pass: the breaker is closed; attempt.
	pass gate = iota
	// probe: the cool-down is over and no probe is in flight; the attempt
	// admitted now is the probe (peek only says one would be).
	probe
	// wait: a probe is in flight; its result decides, so wait for it.
	wait
	// shut: the breaker is open until a time; attempt nothing before.
	shut
)

// hostHealth is what one attempt says about its endpoint's host.
type hostHealth int

const (
	// hostUnknown: the attempt says nothing about the host (it was not
	// made, was cancelled, or never reached the host).
	hostUnknown hostHealth = iota
	// hostUp: the host answered something other than 5xx.
	hostUp
	// hostDown: no answer (connection error, timeout) or 5xx.
	hostDown
)

// maxTrackedHosts bounds the breakers kept; beyond it closed ones, which
// hold only a count of recent failures, are forgotten.
const maxTrackedHosts = 1 << 16

// breakers holds a circuit breaker per endpoint host (host:port). After
// threshold consecutive failed attempts to a host, from whichever
// subscriptions, its breaker opens: nothing is attempted there for a
// cool-down, then one probe attempt is let through (half-open). The probe's
// success closes the breaker; its failure opens it again for twice the
// cool-down, up to maxCooldown. Written here rather than taken from a
// library: the dispatcher needs the time an open breaker half-opens (to
// schedule what waits for it) and an injected clock, which
// github.com/sony/gobreaker does not offer.
type breakers struct {
	threshold             int
	cooldown, maxCooldown time.Duration
	now                   func() time.Time

	mu    sync.Mutex
	hosts map[string]*breaker
}

// breaker is one host's. A host with no failure since its last success
// has none.
type breaker struct {
	// failures counts consecutive failed attempts.
	failures int
	// open is set from the trip until a success: open while now < until,
	// half-open after.
	open     bool
	until    time.Time
	cooldown time.Duration
	// probing is set while the half-open breaker's probe is in flight.
	probing bool
	// changed is closed, and replaced, when a probe ends, for those
	// waiting on its result.
	changed chan struct{}
}

// newBreakers returns breakers opening after threshold consecutive
// failures; threshold <= 0 never opens.
func newBreakers(threshold int, cooldown, maxCooldown time.Duration, now func() time.Time) *breakers {
	return &breakers{threshold: threshold, cooldown: cooldown, maxCooldown: max(maxCooldown, cooldown), now: now, hosts: map[string]*breaker{}}
}

// peek says what an attempt to host would be told now, without taking the
// probe: shut comes with the time the breaker half-opens, wait with a
// channel closed when the probe in flight ends.
func (bs *breakers) peek(host string) (gate, time.Time, <-chan struct{}) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	return bs.gateOf(bs.hosts[host], false)
}

// admit is peek for an attempt about to start: when it is told probe, it
// is the probe, and the others wait until done or abandon reports it.
func (bs *breakers) admit(host string) (gate, time.Time, <-chan struct{}) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	return bs.gateOf(bs.hosts[host], true)
}

func (bs *breakers) gateOf(b *breaker, take bool) (gate, time.Time, <-chan struct{}) {
	switch {
	case b == nil || !b.open:
		return pass, time.Time{}, nil
	case b.probing:
		return wait, time.Time{}, b.changed
	case bs.now().Before(b.until):
		return shut, b.until, nil
	}
	if take {
		b.probing = true
		metrics.CircuitBreakerStates.WithLabelValues(metrics.BreakerOpen).Dec()
		metrics.CircuitBreakerStates.WithLabelValues(metrics.BreakerHalfOpen).Inc()
	}
	return probe, time.Time{}, nil
}

// done records the outcome of an attempt admitted by admit (wasProbe when
// it was told probe) and returns the time the breaker half-opens when it
// is open now, zero when it is closed.
func (bs *breakers) done(host string, wasProbe bool, h hostHealth) time.Time {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b := bs.hosts[host]
	if b != nil && wasProbe && b.probing {
		b.probing = false
		metrics.CircuitBreakerStates.WithLabelValues(metrics.BreakerHalfOpen).Dec()
		metrics.CircuitBreakerStates.WithLabelValues(metrics.BreakerOpen).Inc()
		close(b.changed)
		b.changed = make(chan struct{})
	}
	switch h {
	case hostUp:
		// Any answer shows the host is up, whichever attempt brought it.
		if b != nil {
			bs.close(host, b)
		}
		return time.Time{}
	case hostDown:
		if b == nil {
			if bs.threshold <= 0 {
				return time.Time{}
			}
			bs.forgetClosed()
			b = &breaker{changed: make(chan struct{})}
			bs.hosts[host] = b
		}
		b.failures++
		switch {
		case wasProbe && b.open:
			b.cooldown = min(2*b.cooldown, bs.maxCooldown)
			b.until = bs.now().Add(b.cooldown)
		case !b.open && b.failures >= bs.threshold:
			b.open, b.cooldown = true, bs.cooldown
			b.until = bs.now().Add(b.cooldown)
			metrics.CircuitBreakerStates.WithLabelValues(metrics.BreakerOpen).Inc()
			metrics.CircuitBreakerTrips.Inc()
		}
	}
	if b == nil || !b.open {
		return time.Time{}
	}
	return b.until
}

// abandon frees the probe of an attempt that was not made after all, or
// whose outcome says nothing about the host: the next attempt probes.
func (bs *breakers) abandon(host string, wasProbe bool) {
	if wasProbe {
		bs.done(host, true, hostUnknown)
	}
}

// openUntil returns when host's breaker half-opens, zero when it is not
// open (closed, or half-open).
func (bs *breakers) openUntil(host string) time.Time {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if b := bs.hosts[host]; b != nil && b.open && bs.now().Before(b.until) {
		return b.until
	}
	return time.Time{}
}

// forgetAll forgets every breaker, taking them out of the metrics, when the
// dispatcher stops.
func (bs *breakers) forgetAll() {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	for host, b := range bs.hosts {
		bs.close(host, b)
	}
}

// close forgets host's breaker after a success; mu is held.
func (bs *breakers) close(host string, b *breaker) {
	if b.open {
		state := metrics.BreakerOpen
		if b.probing {
			state = metrics.BreakerHalfOpen
		}
		metrics.CircuitBreakerStates.WithLabelValues(state).Dec()
	}
	close(b.changed)
	delete(bs.hosts, host)
}

// forgetClosed drops the closed breakers once there are too many hosts; mu
// is held. Their counts of failures start again from zero.
func (bs *breakers) forgetClosed() {
	if len(bs.hosts) < maxTrackedHosts {
		return
	}
	for host, b := range bs.hosts {
		if !b.open {
			close(b.changed)
			delete(bs.hosts, host)
		}
	}
}
