package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/types"
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
	cc, err := q.consumer.Consume(q.decoding(h), jetstream.PullMaxMessages(256))
	if err != nil {
		return fmt.Errorf("queue: consuming: %w", err)
	}
	<-ctx.Done()
	// Stop fetching; messages already handed out stay unacked until their
	// handlers finish them or the process exits.
	cc.Stop()
	return nil
}

// decoding wraps h: undecodable messages are dead-lettered.
func (q *Queue) decoding(h Handler) jetstream.MessageHandler {
	return func(raw jetstream.Msg) {
		d, err := decode(raw.Subject(), raw.Headers(), raw.Data())
		m := &Msg{Delivery: d, q: q, raw: raw}
		if err != nil {
			m.Delivery = &Delivery{}
			_ = m.deadLetter(context.Background(), raw.Subject(), raw.Headers(), fmt.Sprintf("undecodable delivery: %v", err))
			return
		}
		h(m)
	}
}

// Park moves the delivery to its subscription's own line, where
// ConsumeParked reads it. It returns without waiting: the copy is published
// asynchronously and this message acked once JetStream has stored it, so
// parking costs the caller (the shared consumer) no round trip. If the
// copy is not stored, this message is handed out again at once. done, if
// not nil, is called when the copy is stored or has failed.
func (m *Msg) Park(done func()) error {
	f, err := m.q.js.PublishMsgAsync(m.message(parkedSubject(m.SubscriptionUID)))
	if err != nil {
		return fmt.Errorf("queue: parking %s: %w", m.ID, err)
	}
	go func() {
		select {
		case <-f.Ok():
			_ = m.raw.Ack()
		case <-f.Err():
			_ = m.raw.Nak()
		}
		if done != nil {
			done()
		}
	}()
	return nil
}

// ConsumeParked feeds the parked deliveries of one subscription to h, with
// at most max of them unfinished at once, until stop is called. stop also
// deletes the line's consumer: a stopped client's pull request would
// otherwise stay with the server and swallow the next parked deliveries
// until their ack wait ran out.
func (q *Queue) ConsumeParked(ctx context.Context, uid types.UID, max int, h Handler) (stop func(), err error) {
	name := parkedConsumerPrefix + string(uid)
	c, err := q.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "the parked deliveries of one busy subscription",
		FilterSubject: parkedSubject(uid),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       q.cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: max,
		Replicas:      q.cfg.Replicas,
		// Removed by the server when nobody reads it for a day.
		InactiveThreshold: 24 * time.Hour,
	})
	if err != nil {
		return nil, fmt.Errorf("queue: parked consumer for %s: %w", uid, err)
	}
	cc, err := c.Consume(q.decoding(h), jetstream.PullMaxMessages(max))
	if err != nil {
		return nil, fmt.Errorf("queue: consuming parked deliveries of %s: %w", uid, err)
	}
	return func() {
		cc.Stop()
		del, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = q.stream.DeleteConsumer(del, name)
	}, nil
}

// ParkedEmpty reports whether nothing of the subscription is parked, neither
// waiting nor being attempted: parked deliveries stay in the stream until
// acked, so the subject's message count tells, whatever consumer exists.
func (q *Queue) ParkedEmpty(ctx context.Context, uid types.UID) (bool, error) {
	info, err := q.stream.Info(ctx, jetstream.WithSubjectFilter(parkedSubject(uid)))
	if err != nil {
		return false, err
	}
	return info.State.Subjects[parkedSubject(uid)] == 0, nil
}

// ParkedSubscriptions returns the UIDs of subscriptions with parked
// deliveries, so a restarted dispatcher resumes reading them.
func (q *Queue) ParkedSubscriptions(ctx context.Context) ([]types.UID, error) {
	info, err := q.stream.Info(ctx, jetstream.WithSubjectFilter(parkedSubjectPrefix+">"))
	if err != nil {
		return nil, fmt.Errorf("queue: listing parked deliveries: %w", err)
	}
	var uids []types.UID
	for subject, n := range info.State.Subjects {
		if uid, ok := subjectUID(subject); ok && n > 0 {
			uids = append(uids, uid)
		}
	}
	return uids, nil
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
	uid, ok := subjectUID(subject)
	if !ok {
		uid = "unknown"
	}
	dl := nats.NewMsg(deadSubjectPrefix + string(uid))
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
