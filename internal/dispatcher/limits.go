package dispatcher

import (
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// class is what the dispatcher knows of a subscription's health.
type class int

const (
	// healthy: its last attempt succeeded.
	healthy class = iota
	// unproven: no attempt of it has finished (it is new, or was idle for
	// long).
	unproven
	// failing: its last attempt failed.
	failing
)

// limits are the workers shared by all subscriptions: the pool, the share
// of it that attempts of subscriptions not known to be healthy may hold,
// and the slots of each endpoint host. Each is a semaphore (a buffered
// channel), taken in one order (host, share, pool) by every attempt, so
// waiting for them cannot deadlock, and handed to waiters in order of
// arrival.
type limits struct {
	pool, share chan struct{}
	perHost     int
	// poolStuck is set when a wait for a worker of the pool ran out, until
	// an attempt gives one back.
	poolStuck atomic.Bool

	mu    sync.Mutex
	hosts map[string]*hostSlots
}

// hostSlots are one host's; users counts the attempts holding or waiting
// for one, so the entry is dropped when none does.
type hostSlots struct {
	slots chan struct{}
	users int
}

// grant is what one admitted attempt holds of the shared limits.
type grant struct {
	host    string
	hs      *hostSlots
	inShare bool
	// pooled: it holds its worker of the pool. A grant from tryReserve may
	// not yet; awaitPool waits for it.
	pooled bool
}

// newLimits returns limits of concurrency attempts in all, share of them
// for subscriptions not known to be healthy, and perHost to one host. A
// per-host limit of the pool's size or more bounds nothing the pool does
// not, and is not kept: its slots would only fill up before the pool's and
// set deliveries aside as if their host were busy.
func newLimits(concurrency, share, perHost int) *limits {
	if perHost >= concurrency {
		perHost = 0
	}
	return &limits{
		pool:    make(chan struct{}, concurrency),
		share:   make(chan struct{}, share),
		perHost: perHost,
		hosts:   map[string]*hostSlots{},
	}
}

// sems returns the semaphores an attempt takes, in order; hs is nil
// without a per-host limit.
func (l *limits) sems(hs *hostSlots, inShare bool) []chan struct{} {
	sems := make([]chan struct{}, 0, 3)
	if hs != nil {
		sems = append(sems, hs.slots)
	}
	if inShare {
		sems = append(sems, l.share)
	}
	return append(sems, l.pool)
}

// tryAcquire takes a worker for an attempt to host at once, or nothing;
// inShare attempts also need a place in the share.
func (l *limits) tryAcquire(host string, inShare bool) (*grant, bool) {
	g, ok := l.tryReserve(host, inShare)
	if ok && !g.pooled {
		l.release(g)
		return nil, false
	}
	return g, ok
}

// tryReserve takes, at once, the limits that set one endpoint apart from
// another: the host's slot and, for inShare attempts, a place in the share;
// nothing when one of them is full. It takes the pool's worker too when one
// is free (g.pooled); else awaitPool waits for it.
func (l *limits) tryReserve(host string, inShare bool) (*grant, bool) {
	g := &grant{host: host, hs: l.use(host), inShare: inShare}
	sems := l.sems(g.hs, inShare)
	own := sems[:len(sems)-1] // all but the pool, the last
	for i, sem := range own {
		select {
		case sem <- struct{}{}:
		default:
			l.giveBack(g, own[:i])
			return nil, false
		}
	}
	select {
	case l.pool <- struct{}{}:
		g.pooled = true
	default:
	}
	return g, true
}

// poolTurnover is how long awaitPool waits for a worker of a full pool. A
// pool whose attempts end frees workers far more often (at 1,000
// deliveries/s, one a millisecond); one that frees none for this long is
// held by slow attempts. It is longer than the stalls of a busy machine or
// of a container throttled by its CPU quota (100 ms periods), which would
// park deliveries for nothing.
const poolTurnover = 500 * time.Millisecond

// awaitPool waits for g's worker of the pool, if it has none yet, for at
// most poolTurnover; once a wait has run out, it does not wait again until
// an attempt gives its worker back. It reports whether g has its worker;
// false also when stop is closed. Waiters get workers in order of arrival.
func (l *limits) awaitPool(g *grant, stop <-chan struct{}) bool {
	if g.pooled {
		return true
	}
	if l.poolStuck.Load() {
		return false
	}
	wait := time.NewTimer(poolTurnover)
	defer wait.Stop()
	select {
	case l.pool <- struct{}{}:
		g.pooled = true
		return true
	case <-stop:
	case <-wait.C:
		l.poolStuck.Store(true)
	}
	return false
}

// acquire waits for a worker for an attempt to host, until stop or cancel
// is closed.
func (l *limits) acquire(host string, inShare bool, stop, cancel <-chan struct{}) (*grant, bool) {
	g := &grant{host: host, hs: l.use(host), inShare: inShare}
	sems := l.sems(g.hs, inShare)
	for i, sem := range sems {
		select {
		case sem <- struct{}{}:
		case <-stop:
			l.giveBack(g, sems[:i])
			return nil, false
		case <-cancel:
			l.giveBack(g, sems[:i])
			return nil, false
		}
	}
	g.pooled = true
	return g, true
}

// release frees what g holds.
func (l *limits) release(g *grant) {
	sems := l.sems(g.hs, g.inShare)
	if !g.pooled {
		sems = sems[:len(sems)-1]
	}
	l.giveBack(g, sems)
	if g.pooled && l.poolStuck.Load() {
		l.poolStuck.Store(false)
	}
}

func (l *limits) giveBack(g *grant, taken []chan struct{}) {
	for _, sem := range taken {
		<-sem
	}
	l.unuse(g)
}

func (l *limits) use(host string) *hostSlots {
	if l.perHost == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	hs := l.hosts[host]
	if hs == nil {
		hs = &hostSlots{slots: make(chan struct{}, l.perHost)}
		l.hosts[host] = hs
	}
	hs.users++
	return hs
}

func (l *limits) unuse(g *grant) {
	if g.hs == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if g.hs.users--; g.hs.users == 0 && l.hosts[g.host] == g.hs {
		delete(l.hosts, g.host)
	}
}

// hostOf returns the host of an endpoint URL as the limits and breakers
// know it: lower-case host and port, the port of the scheme when none is
// given, so https://Hooks.example.com and https://hooks.example.com:443
// are one host. An endpoint that is no URL is "" (it is never sent).
func hostOf(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return ""
	}
	port := u.Port()
	if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "https":
			port = "443"
		default:
			port = "80"
		}
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}
