package sources

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
//
// With several replicas the HEAD and the GET may reach different ones:
// resolutions are then also kept in a store every replica reads (Share).
type TagResolutions struct {
	window time.Duration
	// entries holds a resolution per resolutionKey, for window (wall
	// clock) at most, the least recently used making room when full.
	entries *cache.LRUExpireCache
	shared  SharedResolutions
}

// SharedResolutions keeps resolutions where every replica reads them, for
// the resolution window (a JetStream key-value bucket with that TTL).
type SharedResolutions interface {
	Put(ctx context.Context, key string, value []byte) error
	// Get returns nil and no error when the key is absent.
	Get(ctx context.Context, key string) ([]byte, error)
}

// Share makes the resolutions shared through s as well. Call before use.
func (r *TagResolutions) Share(s SharedResolutions) { r.shared = s }

// Window is how long a resolution is kept.
func (r *TagResolutions) Window() time.Duration { return r.window }

// sharedKey is the store's key of a resolution: a hash, since repository
// names and User-Agents hold characters keys may not.
func (k resolutionKey) sharedKey() string {
	h := sha256.Sum256([]byte(k.repository + "\x00" + k.digest + "\x00" + k.client))
	return hex.EncodeToString(h[:16])
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

// remember records that client resolved tag to digest at at. A failure
// to share it costs only the pairing on another replica: that GET is still
// a MANIFEST_PULL.
func (r *TagResolutions) remember(ctx context.Context, repository, digest, client, tag string, at time.Time) {
	if r == nil || tag == "" || digest == "" {
		return
	}
	k, v := resolutionKey{repository, digest, client}, resolution{tag: tag, at: at}
	r.entries.Add(k, v, r.window)
	if r.shared != nil {
		if data, err := json.Marshal(sharedResolution{Tag: v.tag, At: v.at}); err == nil {
			_ = r.shared.Put(ctx, k.sharedKey(), data)
		}
	}
}

// sharedResolution is a resolution as stored for other replicas.
type sharedResolution struct {
	Tag string    `json:"tag"`
	At  time.Time `json:"at"`
}

// take returns the tag client resolved to digest shortly before at.
func (r *TagResolutions) take(ctx context.Context, repository, digest, client string, at time.Time) (string, bool) {
	if r == nil || digest == "" {
		return "", false
	}
	k := resolutionKey{repository, digest, client}
	var v resolution
	if e, ok := r.entries.Get(k); ok {
		v = e.(resolution)
	} else if r.shared == nil {
		return "", false
	} else {
		data, err := r.shared.Get(ctx, k.sharedKey())
		var sr sharedResolution
		if err != nil || data == nil || json.Unmarshal(data, &sr) != nil || sr.Tag == "" {
			return "", false
		}
		v = resolution{tag: sr.Tag, at: sr.At}
	}
	if d := at.Sub(v.at); d < 0 || d > r.window {
		return "", false
	}
	return v.tag, true
}
