package dtrapi

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/util/cache"
)

// CodeTooManyRequests: the client sent more requests than its rate allows.
const CodeTooManyRequests = "TOO_MANY_REQUESTS"

// clientLimits is a token bucket per client address: a client that floods
// the API (with or without a valid token) waits, and others do not. The
// address is the connection's peer: behind a proxy that is the proxy, so
// give the proxy its own limits. X-Forwarded-For is not trusted; any
// client can write it.
type clientLimits struct {
	mu    sync.Mutex // one bucket per address, however many arrive at once
	rate  rate.Limit
	burst int
	now   func() time.Time
	// buckets maps an address to its *rate.Limiter; one idle for an hour is
	// forgotten (a full bucket again), and the least recently used makes
	// room.
	buckets *cache.LRUExpireCache
}

// maxClients bounds the buckets kept.
const maxClients = 16384

// bucketTTL is how long an unused bucket is kept. Longer than any bucket
// takes to fill up again, so forgetting one gives a client nothing.
const bucketTTL = time.Hour

func newClientLimits(perSecond float64, burst int) *clientLimits {
	return &clientLimits{
		rate: rate.Limit(perSecond), burst: max(burst, 1), now: time.Now,
		buckets: cache.NewLRUExpireCache(maxClients),
	}
}

// admit says whether a request from addr may be served now, and if not,
// how long the client should wait.
func (l *clientLimits) admit(addr string) (bool, time.Duration) {
	host := hostOf(addr)
	l.mu.Lock()
	b, ok := l.buckets.Get(host)
	if !ok {
		b = rate.NewLimiter(l.rate, l.burst)
	}
	l.buckets.Add(host, b, bucketTTL)
	l.mu.Unlock()
	lim := b.(*rate.Limiter)
	now := l.now()
	if lim.AllowN(now, 1) {
		return true, 0
	}
	// The wait for the next token, not taking it: a refused request costs
	// the client nothing more.
	r := lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return false, wait
}

// limited refuses a request over its client's rate with 429 and a
// Retry-After in whole seconds.
func (l *clientLimits) limited(w http.ResponseWriter, r *http.Request) bool {
	if l == nil {
		return false
	}
	ok, wait := l.admit(r.RemoteAddr)
	if ok {
		return false
	}
	secs := max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, &apiError{status: http.StatusTooManyRequests, code: CodeTooManyRequests,
		message: fmt.Sprintf("too many requests from %s: at most %g a second (bursts of %d); retry in %ds", hostOf(r.RemoteAddr), float64(l.rate), l.burst, secs)})
	return true
}

func hostOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
