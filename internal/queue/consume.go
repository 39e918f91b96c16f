package queue

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Msg is one fetched delivery. Exactly one of Done, Retry, DeadLetter or
// Drop finishes it; until then it stays unacked and survives a crash.
type Msg struct {
	*Delivery
	q   *Queue
	raw jetstream.Msg
}

// Handler receives fetched deliveries. It must not block for long: it hands
// the delivery to a worker and returns.
type Handler func(*Msg)

// Consume feeds deliveries to h until ctx ends, with at most MaxAckPending
// of them unfinished at once. Undecodable messages are dead-lettered.
func (q *Queue) Consume(ctx context.Context, h Handler) error {
	cc, err := q.consumer.Consume(func(raw jetstream.Msg) {
		d, err := decode(raw.Subject(), raw.Headers(), raw.Data())
		m := &Msg{Delivery: d, q: q, raw: raw}
		if err != nil {
			m.Delivery = &Delivery{}
			_ = m.deadLetter(context.Background(), raw.Subject(), raw.Headers(), fmt.Sprintf("undecodable delivery: %v", err))
			return
		}
		h(m)
	}, jetstream.PullMaxMessages(256))
	if err != nil {
		return fmt.Errorf("queue: consuming: %w", err)
	}
	<-ctx.Done()
	// Stop fetching; messages already handed out stay unacked until their
	// handlers finish them or the process exits.
	cc.Stop()
	return nil
}

// Done acks a delivered message: it leaves the queue.
func (m *Msg) Done(ctx context.Context) error {
	return m.raw.DoubleAck(ctx)
}

// Drop acks a message that will not be delivered (subscription gone,
// suspended, inactive or no longer permitted).
func (m *Msg) Drop(ctx context.Context) error {
	return m.raw.DoubleAck(ctx)
}

// Release gives an unstarted delivery back to the queue at once (a negative
// ack), so the next consumer need not wait for the ack wait to expire.
func (m *Msg) Release() error { return m.raw.Nak() }

// InProgress tells JetStream the delivery is still being attempted, so it
// is not handed out again while a slow endpoint answers.
func (m *Msg) InProgress() error { return m.raw.InProgress() }

// Retry schedules the next attempt at the given time, recording that
// attempts have now been made, and acks this message. JetStream publishes
// the scheduled delivery when it is due, even across restarts.
func (m *Msg) Retry(ctx context.Context, at time.Time, attempts int) error {
	next := *m.Delivery
	next.Attempts = attempts
	// One schedule per delivery and attempt count: a redelivered message
	// scheduling the same retry again replaces it rather than doubling it.
	sched := next.message(fmt.Sprintf("%s%s.%d", retrySubjectPrefix, next.ID, attempts))
	// Schedules have a resolution of one second; round up so no attempt
	// comes early.
	sched.Header.Set("Nats-Schedule", "@at "+at.UTC().Add(time.Second-1).Truncate(time.Second).Format(time.RFC3339))
	sched.Header.Set("Nats-Schedule-Target", deliverySubject(next.SubscriptionUID))
	if _, err := m.q.js.PublishMsg(ctx, sched); err != nil {
		return fmt.Errorf("queue: scheduling retry of %s: %w", next.ID, err)
	}
	return m.raw.DoubleAck(ctx)
}

// DeadLetter moves the delivery to the dead-letter stream with the reason,
// and acks it.
func (m *Msg) DeadLetter(ctx context.Context, reason string) error {
	return m.deadLetter(ctx, m.raw.Subject(), m.raw.Headers(), reason)
}

func (m *Msg) deadLetter(ctx context.Context, subject string, h nats.Header, reason string) error {
	dl := nats.NewMsg(deadSubjectPrefix + strings.TrimPrefix(subject, deliverySubjectPrefix))
	for k, v := range h {
		dl.Header[k] = v
	}
	if len(reason) > 1024 {
		reason = reason[:1024]
	}
	dl.Header.Set(hdrLastError, reason)
	dl.Data = m.raw.Data()
	if _, err := m.q.js.PublishMsg(ctx, dl); err != nil {
		return fmt.Errorf("queue: dead-lettering: %w", err)
	}
	return m.raw.DoubleAck(ctx)
}
