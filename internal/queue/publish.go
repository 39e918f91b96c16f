package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Publish stores the deliveries durably and returns once JetStream has
// acknowledged every one of them; callers answer their own clients only
// after it returns. Messages are published asynchronously and their acks
// awaited together, so a batch costs about one round trip, not one each.
// The delivery ID doubles as the JetStream message ID, so publishing the
// same batch again (a client's retry) stores nothing twice within the
// duplicate window. Deliveries without QueuedAt get the current time.
func (q *Queue) Publish(ctx context.Context, deliveries []Delivery) error {
	futures := make([]jetstream.PubAckFuture, 0, len(deliveries))
	now := time.Now()
	for i := range deliveries {
		d := &deliveries[i]
		if d.QueuedAt.IsZero() {
			d.QueuedAt = now
		}
		f, err := q.js.PublishMsgAsync(d.message(deliverySubject(d.SubscriptionUID)), jetstream.WithMsgID(d.ID))
		if err != nil {
			return fmt.Errorf("queue: publishing delivery %s: %w", d.ID, err)
		}
		futures = append(futures, f)
	}
	var errs []error
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			errs = append(errs, err)
		case <-ctx.Done():
			return fmt.Errorf("queue: waiting for publish acks: %w", ctx.Err())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("queue: %d of %d deliveries not stored: %w", len(errs), len(deliveries), errors.Join(errs...))
	}
	return nil
}
