package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// SharedBucket is a JetStream key-value bucket every replica reads: values
// shared for a while (tag resolutions), expiring after their TTL.
type SharedBucket struct {
	kv jetstream.KeyValue
}

// SharedBucket creates or opens the key-value bucket name whose values
// live for ttl, replicated like the streams.
func (q *Queue) SharedBucket(ctx context.Context, name string, ttl time.Duration) (*SharedBucket, error) {
	var kv jetstream.KeyValue
	err := retrying(ctx, "creating key-value bucket "+name, func() (err error) {
		kv, err = q.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:   name,
			TTL:      ttl,
			Storage:  jetstream.FileStorage,
			Replicas: q.cfg.Replicas,
			History:  1,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("queue: key-value bucket %s: %w", name, err)
	}
	return &SharedBucket{kv: kv}, nil
}

// Put stores value under key.
func (b *SharedBucket) Put(ctx context.Context, key string, value []byte) error {
	_, err := b.kv.Put(ctx, key, value)
	return err
}

// Get returns the value of key, or nil when there is none.
func (b *SharedBucket) Get(ctx context.Context, key string) ([]byte, error) {
	e, err := b.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return e.Value(), nil
}
