package dispatcher

import (
	"net"
	"net/url"
	"strings"
	"sync"
)

// limits are the workers shared by all subscriptions: the pool, the share
// of it that subscriptions not known to be healthy may hold, and the slots
// of each endpoint host. Each is a semaphore (a buffered channel), taken in
// one order (host, failing share, pool) by every attempt, so waiting for
// them cannot deadlock, and handed to waiters in order of arrival.
type limits struct {
	pool, failing chan struct{}
	perHost       int

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
	failing bool
}

func newLimits(concurrency, failing, perHost int) *limits {
	return &limits{
		pool:    make(chan struct{}, concurrency),
		failing: make(chan struct{}, failing),
		perHost: perHost,
		hosts:   map[string]*hostSlots{},
	}
}

// tryAcquire takes a worker for an attempt to host at once, or nothing.
// failing attempts also need a place in the failing share.
func (l *limits) tryAcquire(host string, failing bool) (*grant, bool) {
	g := &grant{host: host, hs: l.use(host), failing: failing}
	select {
	case g.hs.slots <- struct{}{}:
	default:
		l.unuse(g)
		return nil, false
	}
	if failing {
		select {
		case l.failing <- struct{}{}:
		default:
			<-g.hs.slots
			l.unuse(g)
			return nil, false
		}
	}
	select {
	case l.pool <- struct{}{}:
		return g, true
	default:
		if failing {
			<-l.failing
		}
		<-g.hs.slots
		l.unuse(g)
		return nil, false
	}
}

// acquire waits for a worker for an attempt to host, until stop is closed.
func (l *limits) acquire(host string, failing bool, stop <-chan struct{}) (*grant, bool) {
	g := &grant{host: host, hs: l.use(host), failing: failing}
	select {
	case g.hs.slots <- struct{}{}:
	case <-stop:
		l.unuse(g)
		return nil, false
	}
	if failing {
		select {
		case l.failing <- struct{}{}:
		case <-stop:
			<-g.hs.slots
			l.unuse(g)
			return nil, false
		}
	}
	select {
	case l.pool <- struct{}{}:
		return g, true
	case <-stop:
		if failing {
			<-l.failing
		}
		<-g.hs.slots
		l.unuse(g)
		return nil, false
	}
}

// release frees what g holds.
func (l *limits) release(g *grant) {
	<-l.pool
	if g.failing {
		<-l.failing
	}
	<-g.hs.slots
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
