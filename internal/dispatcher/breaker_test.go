package dispatcher

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kubehook/kubehook/internal/metrics"
)

// clock is a settable time for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// gauges reads the breaker state gauges, relative to base.
func gauges(base [2]float64) (open, halfOpen float64) {
	return testutil.ToFloat64(metrics.CircuitBreakerStates.WithLabelValues(metrics.BreakerOpen)) - base[0],
		testutil.ToFloat64(metrics.CircuitBreakerStates.WithLabelValues(metrics.BreakerHalfOpen)) - base[1]
}

func gaugeBase() [2]float64 {
	o, h := gauges([2]float64{})
	return [2]float64{o, h}
}

func expectGate(t *testing.T, what string, got gate, want gate) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: gate %d, want %d", what, got, want)
	}
}

// Consecutive failures to one host open its breaker; a success in between
// starts the count again, and other hosts are not affected.
func TestBreakerOpensAfterConsecutiveFailures(t *testing.T) {
	c := newClock()
	bs := newBreakers(3, 10*time.Second, time.Minute, c.Now)
	base, trips := gaugeBase(), testutil.ToFloat64(metrics.CircuitBreakerTrips)

	bs.done("a:80", false, hostDown)
	bs.done("a:80", false, hostDown)
	bs.done("a:80", false, hostUp) // resets
	bs.done("a:80", false, hostDown)
	if until := bs.done("a:80", false, hostDown); !until.IsZero() {
		t.Fatalf("open after 2 consecutive failures of 3")
	}
	g, _, _ := bs.peek("a:80")
	expectGate(t, "closed", g, pass)

	until := bs.done("a:80", false, hostDown)
	if want := c.Now().Add(10 * time.Second); !until.Equal(want) {
		t.Fatalf("open until %v, want %v", until, want)
	}
	g, at, _ := bs.admit("a:80")
	expectGate(t, "open", g, shut)
	if !at.Equal(until) || !bs.openUntil("a:80").Equal(until) {
		t.Fatalf("admit says until %v, openUntil %v; want %v", at, bs.openUntil("a:80"), until)
	}
	if g, _, _ := bs.admit("b:80"); g != pass {
		t.Fatalf("another host's gate %d, want pass", g)
	}
	// A failure of an attempt that started before the trip changes nothing.
	if u := bs.done("a:80", false, hostDown); !u.Equal(until) {
		t.Fatalf("a late failure moved the cool-down to %v", u)
	}
	// Neither do failures that never reached the host.
	bs.done("b:80", false, hostUnknown)
	if open, half := gauges(base); open != 1 || half != 0 {
		t.Fatalf("gauges open %v, half_open %v; want 1, 0", open, half)
	}
	if n := testutil.ToFloat64(metrics.CircuitBreakerTrips) - trips; n != 1 {
		t.Fatalf("%v trips, want 1", n)
	}
}

// After the cool-down one probe goes, the others wait for its result; a
// failed probe opens the breaker for twice as long, up to the cap; a
// successful one closes it.
func TestBreakerProbesOnceAndGrowsItsCooldown(t *testing.T) {
	c := newClock()
	bs := newBreakers(1, 10*time.Second, 25*time.Second, c.Now)
	base := gaugeBase()
	bs.done("h:443", false, hostDown)

	c.Advance(9 * time.Second)
	if g, _, _ := bs.admit("h:443"); g != shut {
		t.Fatalf("gate %d before the cool-down ended, want shut", g)
	}
	c.Advance(time.Second)
	if g, _, _ := bs.peek("h:443"); g != probe {
		t.Fatalf("peek %d after the cool-down, want probe", g)
	}
	if g, _, _ := bs.peek("h:443"); g != probe {
		t.Fatalf("peek took the probe")
	}
	g, _, _ := bs.admit("h:443")
	expectGate(t, "first after cool-down", g, probe)
	g, _, changed := bs.admit("h:443")
	expectGate(t, "second after cool-down", g, wait)
	if open, half := gauges(base); open != 0 || half != 1 {
		t.Fatalf("gauges open %v, half_open %v while probing; want 0, 1", open, half)
	}

	// Failed probe: 20s, then capped at 25s.
	until := bs.done("h:443", true, hostDown)
	expectWoken(t, changed, "by the probe's failure")
	if want := c.Now().Add(20 * time.Second); !until.Equal(want) {
		t.Fatalf("after a failed probe open until %v, want %v", until, want)
	}
	c.Advance(20 * time.Second)
	expectGate(t, "second probe", gateOnly(bs.admit("h:443")), probe)
	if until := bs.done("h:443", true, hostDown); !until.Equal(c.Now().Add(25 * time.Second)) {
		t.Fatalf("cool-down not capped: open until %v", until)
	}
	c.Advance(25 * time.Second)
	expectGate(t, "third probe", gateOnly(bs.admit("h:443")), probe)
	_, _, changed = bs.admit("h:443")
	if until := bs.done("h:443", true, hostUp); !until.IsZero() {
		t.Fatalf("open until %v after a successful probe", until)
	}
	expectWoken(t, changed, "by the probe's success")
	expectGate(t, "closed again", gateOnly(bs.admit("h:443")), pass)
	if open, half := gauges(base); open != 0 || half != 0 {
		t.Fatalf("gauges open %v, half_open %v after closing; want 0, 0", open, half)
	}

	// Closed means a fresh start: the next trip has the first cool-down.
	if until := bs.done("h:443", false, hostDown); !until.Equal(c.Now().Add(10 * time.Second)) {
		t.Fatalf("after closing, the next trip is open until %v, want the first cool-down", until)
	}
}

// A probe that was not made (or said nothing about the host) lets the next
// attempt probe, at once.
func TestBreakerAbandonedProbeLetsTheNextProbe(t *testing.T) {
	c := newClock()
	bs := newBreakers(1, time.Second, time.Second, c.Now)
	base := gaugeBase()
	bs.done("h:80", false, hostDown)
	c.Advance(time.Second)
	expectGate(t, "probe", gateOnly(bs.admit("h:80")), probe)
	_, _, changed := bs.admit("h:80")
	bs.abandon("h:80", true)
	expectWoken(t, changed, "when the probe was abandoned")
	expectGate(t, "after abandoning", gateOnly(bs.admit("h:80")), probe)
	if open, half := gauges(base); open != 0 || half != 1 {
		t.Fatalf("gauges open %v, half_open %v; want 0, 1", open, half)
	}
	bs.done("h:80", true, hostUp)
}

// A success of any attempt closes the breaker, even one that started
// before it opened; the probe in flight then changes nothing.
func TestBreakerClosesOnAnySuccess(t *testing.T) {
	c := newClock()
	bs := newBreakers(1, time.Second, time.Second, c.Now)
	base := gaugeBase()
	bs.done("h:80", false, hostDown)
	c.Advance(time.Second)
	expectGate(t, "probe", gateOnly(bs.admit("h:80")), probe)
	bs.done("h:80", false, hostUp)
	expectGate(t, "closed", gateOnly(bs.admit("h:80")), pass)
	bs.done("h:80", true, hostUp)
	if open, half := gauges(base); open != 0 || half != 0 {
		t.Fatalf("gauges open %v, half_open %v; want 0, 0", open, half)
	}
}

// A threshold of zero turns the breakers off.
func TestBreakerOff(t *testing.T) {
	bs := newBreakers(0, time.Second, time.Second, newClock().Now)
	for range 100 {
		bs.done("h:80", false, hostDown)
	}
	expectGate(t, "off", gateOnly(bs.admit("h:80")), pass)
	if len(bs.hosts) != 0 {
		t.Fatalf("%d hosts tracked with the breakers off", len(bs.hosts))
	}
}

func gateOnly(g gate, _ time.Time, _ <-chan struct{}) gate { return g }

// expectWoken fails the test unless changed, from admit, is closed: the
// waiters were woken by what came in between.
func expectWoken(t *testing.T, changed <-chan struct{}, by string) {
	t.Helper()
	select {
	case <-changed:
	default:
		t.Fatal("waiters not woken " + by)
	}
}

// A stopped dispatcher's breakers leave the metrics.
func TestBreakersForgottenAtStopLeaveTheMetrics(t *testing.T) {
	c := newClock()
	bs := newBreakers(1, time.Second, time.Second, c.Now)
	base := gaugeBase()
	bs.done("a:80", false, hostDown)
	bs.done("b:80", false, hostDown)
	c.Advance(time.Second)
	expectGate(t, "probe", gateOnly(bs.admit("b:80")), probe)
	if open, half := gauges(base); open != 1 || half != 1 {
		t.Fatalf("gauges open %v, half_open %v; want 1, 1", open, half)
	}
	bs.forgetAll()
	if open, half := gauges(base); open != 0 || half != 0 {
		t.Fatalf("gauges open %v, half_open %v after forgetting; want 0, 0", open, half)
	}
}
