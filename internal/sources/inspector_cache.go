package sources

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

type failure struct {
	err error
	at  time.Time
}

type inspectCall struct {
	done chan struct{}
	res  inspection
	err  error
}

func (i *RemoteInspector) inspect(ctx context.Context, repository, digest string) (inspection, error) {
	if _, err := v1.NewHash(digest); err != nil {
		return inspection{}, fmt.Errorf("inspecting %s@%s: %w", repository, digest, err)
	}
	if res, ok := i.cache.get(digest); ok {
		return res, nil
	}
	key := repository + "@" + digest
	i.mu.Lock()
	if f, ok := i.failed[key]; ok {
		if i.opts.Now().Sub(f.at) < i.opts.FailureTTL {
			i.mu.Unlock()
			return inspection{}, f.err
		}
		delete(i.failed, key)
	}
	c, ok := i.inflight[key]
	if !ok {
		c = &inspectCall{done: make(chan struct{})}
		i.inflight[key] = c
		go func() {
			// Detached from the caller, bounded by the timeout: a registry
			// that gave up on a slow answer retries and finds the result.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), i.opts.Timeout)
			defer cancel()
			c.res, c.err = i.fetch(fctx, repository, digest)
			if c.err == nil {
				i.cache.add(digest, c.res)
			}
			i.mu.Lock()
			delete(i.inflight, key)
			if c.err != nil {
				i.rememberFailure(key, c.err)
			}
			i.mu.Unlock()
			close(c.done)
		}()
	}
	i.mu.Unlock()
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		return inspection{}, fmt.Errorf("inspecting %s: %w", key, ctx.Err())
	}
}

// rememberFailure records a failed inspection; i.mu is held. Expired
// entries are dropped when the map reaches the cache size.
func (i *RemoteInspector) rememberFailure(key string, err error) {
	now := i.opts.Now()
	if len(i.failed) >= i.opts.CacheSize {
		for k, f := range i.failed {
			if now.Sub(f.at) >= i.opts.FailureTTL {
				delete(i.failed, k)
			}
		}
		if len(i.failed) >= i.opts.CacheSize {
			return
		}
	}
	i.failed[key] = failure{err: err, at: now}
}

// lruCache is a bounded, concurrency-safe least-recently-used cache.
type lruCache struct {
	mu    sync.Mutex
	max   int
	ll    *list.List
	items map[string]*list.Element
}

type lruEntry struct {
	key string
	val inspection
}

func newLRU(max int) *lruCache {
	return &lruCache{max: max, ll: list.New(), items: map[string]*list.Element{}}
}

func (c *lruCache) get(key string) (inspection, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		return inspection{}, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*lruEntry).val, true
}

func (c *lruCache) add(key string, val inspection) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		e.Value.(*lruEntry).val = val
		c.ll.MoveToFront(e)
		return
	}
	c.items[key] = c.ll.PushFront(&lruEntry{key: key, val: val})
	for c.ll.Len() > c.max {
		oldest := c.ll.Back()
		c.ll.Remove(oldest)
		delete(c.items, oldest.Value.(*lruEntry).key)
	}
}

func (c *lruCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
