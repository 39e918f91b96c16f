package queue

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Reasons a delivery is dead-lettered; each is the last token of its
// dead-letter subject, so dead letters are counted by reason cheaply.
const (
	ReasonExhausted    = "exhausted"
	ReasonDeactivated  = "deactivated"
	ReasonInactive     = "inactive"
	ReasonNotPermitted = "key-not-permitted"
	ReasonHeldTooLong  = "held-too-long"
	ReasonHeldLimit    = "held-limit"
	ReasonUnrenderable = "unrenderable"
	ReasonUndecodable  = "undecodable"
)

// DeadLetterReasons lists every reason, for metrics that show each one.
var DeadLetterReasons = []string{ReasonExhausted, ReasonDeactivated, ReasonInactive, ReasonNotPermitted,
	ReasonHeldTooLong, ReasonHeldLimit, ReasonUnrenderable, ReasonUndecodable}

// Park moves the delivery to its subscription's own line, where
// ConsumeParked reads it: for a busy subscription, and for one whose
// deliveries are held (suspended, stalled) while no line consumer runs. It
// returns without waiting: the copy is published asynchronously and this
// message acked once JetStream has stored it, so parking costs the caller
// (the shared consumer) no round trip. If the copy is not stored, this
// message is handed out again at once. done, if not nil, is called when the
// copy is stored and this message acked, or the copy has failed.
func (m *Msg) Park(done func()) error {
	f, err := m.q.js.PublishMsgAsync(m.message(parkedSubject(m.SubscriptionUID)))
	if err != nil {
		return fmt.Errorf("queue: parking %s: %w", m.ID, err)
	}
	go func() {
		select {
		case <-f.Ok():
			// Confirmed, so done means the original has left the queue.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = m.raw.DoubleAck(ctx)
			cancel()
		case <-f.Err():
			_ = m.raw.Nak()
		}
		if done != nil {
			done()
		}
	}()
	return nil
}

// Parked reports whether the message was read from a parked line.
func (m *Msg) Parked() bool {
	return strings.HasPrefix(m.raw.Subject(), parkedSubjectPrefix)
}

// Done acks a delivered message: it leaves the queue.
func (m *Msg) Done(ctx context.Context) error {
	return m.raw.DoubleAck(ctx)
}

// AwaitAcks returns once the acks DoneAsync has sent so far are confirmed
// (or given up as lost), or ctx is done.
func (q *Queue) AwaitAcks(ctx context.Context) error { return q.acks.wait(ctx) }

// DoneAsync acks a delivered message like Done, without waiting for the
// server's confirmation: the queue awaits it on its own, sends the ack
// again if it was lost, and lets every ack in flight be confirmed before
// it deletes a consumer or closes. An error says the ack could not be
// sent, and the delivery will be handed out again.
func (m *Msg) DoneAsync() error {
	return m.q.acks.ack(m.raw.Reply())
}

// Drop acks a message that will never be delivered: its subscription no
// longer exists.
func (m *Msg) Drop(ctx context.Context) error {
	return m.raw.DoubleAck(ctx)
}

// Release gives an unstarted delivery back to the queue at once (a negative
// ack), unchanged, so the next consumer need not wait for the ack wait.
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
	sched := next.message(retrySubject(next.SubscriptionUID, next.ID, attempts))
	// Schedules have a resolution of one second; round up so no attempt
	// comes early.
	sched.Header.Set("Nats-Schedule", "@at "+at.UTC().Add(time.Second-1).Truncate(time.Second).Format(time.RFC3339))
	sched.Header.Set("Nats-Schedule-Target", deliverySubject(next.SubscriptionUID))
	if _, err := m.q.js.PublishMsg(ctx, sched); err != nil {
		return fmt.Errorf("queue: scheduling retry of %s: %w", next.ID, err)
	}
	return m.raw.DoubleAck(ctx)
}

// DeadLetter moves the delivery to its subscription's dead letters, with
// the reason (one of the Reason constants) and a message saying why, and
// acks it.
func (m *Msg) DeadLetter(ctx context.Context, reason, message string) error {
	return m.deadLetter(ctx, m.SubscriptionUID, reason, message)
}

func (m *Msg) deadLetter(ctx context.Context, uid types.UID, reason, message string) error {
	dl := m.q.deadLetterMsg(uid, reason, message, m.raw.Headers(), m.raw.Data())
	if _, err := m.q.js.PublishMsg(ctx, dl); err != nil {
		return fmt.Errorf("queue: dead-lettering: %w", err)
	}
	return m.raw.DoubleAck(ctx)
}
