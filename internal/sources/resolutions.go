package sources

import (
	"net"
	"time"

	"k8s.io/apimachinery/pkg/util/cache"
)

// TagResolutions remembers the tags clients resolve with HEAD, so that the
// GET by digest that follows is reported as a pull of that tag. Docker and
// containerd pull that way: HEAD /v2/<repo>/manifests/<tag> to learn the
// digest, then GET /v2/<repo>/manifests/<digest>. The registry reports both
// as pulls; the HEAD alone cannot be told from the existence check of a
// push, and the GET alone carries no tag. Together they are a TAG_PULL.
//
// A resolution is matched to the GET of the same repository and digest from
// the same client (address without port, and User-Agent) made within the
// window after it. It is kept for the whole window, not used up, so that a
// notification the registry sends again (kubehook answered 503) maps the
// same way. Times are the events' own timestamps.
type TagResolutions struct {
	window time.Duration
	// entries holds a resolution per resolutionKey, for window (wall
	// clock) at most, the least recently used making room when full.
	entries *cache.LRUExpireCache
}

type resolutionKey struct {
	repository, digest, client string
}

type resolution struct {
	tag string
	at  time.Time
}

// NewTagResolutions remembers at most max resolutions, each for window.
func NewTagResolutions(window time.Duration, max int) *TagResolutions {
	return &TagResolutions{window: window, entries: cache.NewLRUExpireCache(max)}
}

// clientOf identifies the client of a request: its address without the
// port (each connection has its own) and its User-Agent.
func clientOf(addr, userAgent string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	return addr + "\x00" + userAgent
}

// remember records that client resolved tag to digest at at.
func (r *TagResolutions) remember(repository, digest, client, tag string, at time.Time) {
	if r == nil || tag == "" || digest == "" {
		return
	}
	r.entries.Add(resolutionKey{repository, digest, client}, resolution{tag: tag, at: at}, r.window)
}

// take returns the tag client resolved to digest shortly before at.
func (r *TagResolutions) take(repository, digest, client string, at time.Time) (string, bool) {
	if r == nil || digest == "" {
		return "", false
	}
	e, ok := r.entries.Get(resolutionKey{repository, digest, client})
	if !ok {
		return "", false
	}
	v := e.(resolution)
	if d := at.Sub(v.at); d < 0 || d > r.window {
		return "", false
	}
	return v.tag, true
}
