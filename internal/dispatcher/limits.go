package dispatcher

import (
	"net"
	"net/url"
	"strings"
	"sync"
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
}

// newLimits returns limits of concurrency attempts in all, share of them
// for subscriptions not known to be healthy, and perHost to one host.
func newLimits(concurrency, share, perHost int) *limits {
	return &limits{
		pool:    make(chan struct{}, concurrency),
		share:   make(chan struct{}, share),
		perHost: perHost,
		hosts:   map[string]*hostSlots{},
	}
}

// sems returns the semaphores an attempt takes, in order.
func (l *limits) sems(hs *hostSlots, inShare bool) []chan struct{} {
	if inShare {
		return []chan struct{}{hs.slots, l.share, l.pool}
	}
	return []chan struct{}{hs.slots, l.pool}
}

// tryAcquire takes a worker for an attempt to host at once, or nothing;
// inShare attempts also need a place in the share.
func (l *limits) tryAcquire(host string, inShare bool) (*grant, bool) {
	g := &grant{host: host, hs: l.use(host), inShare: inShare}
	sems := l.sems(g.hs, inShare)
	for i, sem := range sems {
		select {
		case sem <- struct{}{}:
		default:
			l.giveBack(g, sems[:i])
			return nil, false
		}
	}
	return g, true
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
	return g, true
}

// release frees what g holds.
func (l *limits) release(g *grant) { l.giveBack(g, l.sems(g.hs, g.inShare)) }

func (l *limits) giveBack(g *grant, taken []chan struct{}) {
	for _, sem := range taken {
		<-sem
	}
	l.unuse(g)
}

func (l *limits) use(host string) *hostSlots {
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
