package dispatcher

import (
	"fmt"
	"testing"
	"time"
)

// One host holds at most its per-host slots, whatever the pool has left;
// another host is not affected, and a released slot is free again.
func TestLimitsBoundAttemptsPerHost(t *testing.T) {
	l := newLimits(100, 50, 3)
	var held []*grant
	for i := range 3 {
		g, ok := l.tryAcquire("a:80", false)
		if !ok {
			t.Fatalf("attempt %d to a:80 refused below the per-host limit", i)
		}
		held = append(held, g)
	}
	if _, ok := l.tryAcquire("a:80", false); ok {
		t.Fatal("a fourth attempt to a:80 admitted with a per-host limit of 3")
	}
	g, ok := l.tryAcquire("b:80", false)
	if !ok {
		t.Fatal("another host refused while a:80 is full")
	}
	l.release(g)
	l.release(held[0])
	if g, ok := l.tryAcquire("a:80", false); !ok {
		t.Fatal("a released slot of a:80 is not free again")
	} else {
		held[0] = g
	}
	for _, g := range held {
		l.release(g)
	}
	if len(l.hosts) != 0 || len(l.pool) != 0 {
		t.Fatalf("after releasing everything: %d hosts tracked, %d workers taken", len(l.hosts), len(l.pool))
	}
}

// Attempts in the share of the not-healthy hold at most that share of the
// pool; the others get the rest, and only the pool bounds them.
func TestLimitsKeepTheNotHealthyToTheirShare(t *testing.T) {
	l := newLimits(8, 3, 100)
	var held []*grant
	take := func(host string, inShare bool) bool {
		g, ok := l.tryAcquire(host, inShare)
		if ok {
			held = append(held, g)
		}
		return ok
	}
	for i := range 3 {
		if !take(fmt.Sprintf("dead-%d:80", i), true) {
			t.Fatalf("attempt %d refused within the share", i)
		}
	}
	if take("dead-3:80", true) {
		t.Fatal("a fourth attempt admitted in a share of 3")
	}
	for i := range 5 {
		if !take("ok:80", false) {
			t.Fatalf("attempt %d outside the share refused while it is full", i)
		}
	}
	if take("ok:80", false) {
		t.Fatal("an attempt admitted beyond the pool")
	}
	// A refusal takes nothing: the host slots of refused attempts are free.
	if _, tracked := l.hosts["dead-3:80"]; tracked {
		t.Fatal("a refused attempt kept a host slot")
	}
	for _, g := range held {
		l.release(g)
	}
	if len(l.pool) != 0 || len(l.share) != 0 || len(l.hosts) != 0 {
		t.Fatalf("after releasing everything: pool %d, share %d, hosts %d", len(l.pool), len(l.share), len(l.hosts))
	}
}

// A subscription's first attempt counts against the share only once it is
// known to fail; an unproven one's further attempts do.
func TestOnlyFailingAndFurtherUnprovenAttemptsAreInTheShare(t *testing.T) {
	for _, tc := range []struct {
		c        class
		inflight int
		want     bool
	}{
		{healthy, 0, false}, {healthy, 5, false},
		{unproven, 0, false}, {unproven, 1, true},
		{failing, 0, true}, {failing, 1, true},
	} {
		if got := inShare(tc.c, tc.inflight); got != tc.want {
			t.Errorf("inShare(%d, %d) = %v, want %v", tc.c, tc.inflight, got, tc.want)
		}
	}
}

// A waiting acquire gets the slot freed by a release; closing stop ends
// the wait with nothing taken.
func TestLimitsAcquireWaitsForAFreedSlot(t *testing.T) {
	l := newLimits(1, 1, 1)
	g, _ := l.tryAcquire("a:80", false)
	stop := make(chan struct{})
	got := make(chan *grant)
	go func() {
		g, _ := l.acquire("a:80", true, stop, nil)
		got <- g
	}()
	l.release(g)
	g = <-got
	if g == nil || !g.inShare {
		t.Fatalf("acquire = %+v after a release, want a grant in the share", g)
	}

	waiting := make(chan bool)
	go func() {
		_, ok := l.acquire("a:80", false, stop, nil)
		waiting <- ok
	}()
	close(stop)
	if <-waiting {
		t.Fatal("acquire succeeded after stop while the only slot was taken")
	}
	l.release(g)
	if len(l.pool) != 0 || len(l.share) != 0 || len(l.hosts) != 0 {
		t.Fatalf("after stop and release: pool %d, share %d, hosts %d", len(l.pool), len(l.share), len(l.hosts))
	}
}

func TestHostOf(t *testing.T) {
	for endpoint, want := range map[string]string{
		"https://Hooks.Example.com/a":     "hooks.example.com:443",
		"https://hooks.example.com:443/b": "hooks.example.com:443",
		"http://hooks.example.com/c?x=1":  "hooks.example.com:80",
		"http://127.0.0.1:8080/d":         "127.0.0.1:8080",
		"http://127.0.0.1:8081/d":         "127.0.0.1:8081",
		"https://[::1]/e":                 "[::1]:443",
		"not a url":                       "",
		"http://%zz/":                     "",
	} {
		if got := hostOf(endpoint); got != want {
			t.Errorf("hostOf(%q) = %q, want %q", endpoint, got, want)
		}
	}
}

// When only the pool is full, tryReserve takes the rest and leaves the
// worker to awaitPool, which gets the next one given back: a per-host limit
// of the pool's size is not kept, as its slots would fill first. A wait that
// runs out marks the pool stuck: the next one does not wait, until an
// attempt gives a worker back.
func TestReserveWaitsForThePoolAlone(t *testing.T) {
	l := newLimits(2, 1, 2)
	a, _ := l.tryAcquire("a:80", false)
	b, _ := l.tryAcquire("a:80", false)
	g, ok := l.tryReserve("a:80", false)
	if !ok || g.pooled {
		t.Fatalf("tryReserve with the pool full = %+v, %v; want a grant without its worker", g, ok)
	}
	stop := make(chan struct{})
	got := make(chan bool)
	go func() { got <- l.awaitPool(g, stop) }()
	l.release(a)
	if !<-got {
		t.Fatal("awaitPool did not get the worker given back")
	}

	h, _ := l.tryReserve("b:80", false)
	begin := time.Now()
	if l.awaitPool(h, stop) {
		t.Fatal("awaitPool got a worker of a full pool")
	}
	if waited := time.Since(begin); waited < poolTurnover {
		t.Fatalf("awaitPool gave up after %s; want %s", waited, poolTurnover)
	}
	begin = time.Now()
	if l.awaitPool(h, stop) || time.Since(begin) > poolTurnover/2 {
		t.Fatal("awaitPool waited on a pool marked stuck")
	}
	l.release(b)
	if !l.awaitPool(h, stop) {
		t.Fatal("awaitPool did not get the worker given back to a stuck pool")
	}
	l.release(g)
	l.release(h)
	if len(l.hosts) != 0 || len(l.pool) != 0 {
		t.Fatalf("after releasing everything: %d hosts tracked, %d workers taken", len(l.hosts), len(l.pool))
	}
}
