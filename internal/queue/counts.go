package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/types"
)

// SubscriptionCounts is what the queue holds for one subscription.
type SubscriptionCounts struct {
	// Backlog counts its deliveries queued, parked, held, in flight or
	// waiting for a retry.
	Backlog int64
	// DeadLetters counts its dead letters.
	DeadLetters int64
}

// Counts is what the queue holds, by subscription and by dead-letter reason.
type Counts struct {
	Subscriptions map[types.UID]SubscriptionCounts
	DeadLetters   map[string]int64
	// OldestReady is when the oldest delivery ready for an attempt (on the
	// shared consumer's subjects: waiting or in flight) was stored there;
	// zero when there is none. Waiting retries and the subscriptions' own
	// lines (parked or held) are not counted.
	OldestReady time.Time
	// Waiting counts the retries waiting for their time: JetStream makes
	// each a ready delivery when it falls due, which changes OldestReady
	// with nothing published, delivered or dead-lettered (Changes does
	// not move).
	Waiting int64
	// NextExpiry is when the oldest dead letter passes its retention and
	// leaves the queue, which Changes does not tell either; zero when
	// there are none.
	NextExpiry time.Time
}

// Counts reads the per-subject message counts of both streams: two
// requests, whatever the number of deliveries. The subjects name the
// subscription UID (and the dead-letter reason), so no message is read,
// except the oldest ready delivery's when there is one (a third request).
func (q *Queue) Counts(ctx context.Context) (Counts, error) {
	c := Counts{Subscriptions: map[types.UID]SubscriptionCounts{}, DeadLetters: map[string]int64{}}
	info, err := q.stream.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		return c, fmt.Errorf("queue: counting deliveries: %w", err)
	}
	ready := false
	for subject, n := range info.State.Subjects {
		if n > 0 && strings.HasPrefix(subject, deliverySubjectPrefix) {
			ready = true
		}
		if strings.HasPrefix(subject, retrySubjectPrefix) {
			c.Waiting += int64(n)
		}
		uid := subscriptionOfQueued(subject)
		if uid == "" {
			continue
		}
		s := c.Subscriptions[uid]
		s.Backlog += int64(n)
		c.Subscriptions[uid] = s
	}
	if ready {
		if c.OldestReady, err = q.oldestReady(ctx, info.State.FirstSeq); err != nil {
			return c, err
		}
	}
	info, err = q.dead.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		return c, fmt.Errorf("queue: counting dead letters: %w", err)
	}
	if info.State.Msgs > 0 {
		c.NextExpiry = info.State.FirstTime.Add(q.cfg.DeadLetterMaxAge)
	}
	for subject, n := range info.State.Subjects {
		rest, ok := strings.CutPrefix(subject, deadSubjectPrefix)
		if !ok {
			continue
		}
		uid, reason, _ := strings.Cut(rest, ".")
		s := c.Subscriptions[types.UID(uid)]
		s.DeadLetters += int64(n)
		c.Subscriptions[types.UID(uid)] = s
		c.DeadLetters[reason] += int64(n)
	}
	return c, nil
}

// oldestReady returns the stored time of the first message on the shared
// consumer's subjects from sequence from on: in a work-queue stream the
// lowest sequence is the oldest. Zero if it was acked meanwhile.
func (q *Queue) oldestReady(ctx context.Context, from uint64) (time.Time, error) {
	raw, err := q.stream.GetMsg(ctx, from, jetstream.WithGetMsgSubject(deliverySubjectPrefix+">"))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("queue: reading the oldest delivery: %w", err)
	}
	return raw.Time, nil
}

// subscriptionOfQueued returns the subscription UID a subject of the
// deliveries stream belongs to.
func subscriptionOfQueued(subject string) types.UID {
	if uid, ok := subjectUID(subject); ok {
		return uid
	}
	if rest, ok := strings.CutPrefix(subject, retrySubjectPrefix); ok {
		uid, _, _ := strings.Cut(rest, ".")
		return types.UID(uid)
	}
	return ""
}

// ParkedEmpty reports whether nothing of the subscription is parked, neither
// waiting nor being attempted: parked deliveries stay in the stream until
// acked, so the subject's message count tells, whatever consumer exists.
func (q *Queue) ParkedEmpty(ctx context.Context, uid types.UID) (bool, error) {
	n, err := q.ParkedCount(ctx, uid)
	return n == 0, err
}

// ParkedCount returns the number of parked (or held) deliveries of the
// subscription.
func (q *Queue) ParkedCount(ctx context.Context, uid types.UID) (int64, error) {
	info, err := q.stream.Info(ctx, jetstream.WithSubjectFilter(parkedSubject(uid)))
	if err != nil {
		return 0, err
	}
	return int64(info.State.Subjects[parkedSubject(uid)]), nil
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

// ExpireHeld moves the held deliveries of a subscription queued before
// cutoff to its dead letters (reason held-too-long), oldest first, and
// returns how many. Only for a line no consumer reads: a delivery being
// attempted is not held.
func (q *Queue) ExpireHeld(ctx context.Context, uid types.UID, cutoff time.Time) (int, error) {
	n := 0
	for seq := uint64(0); ; seq++ {
		raw, err := q.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(parkedSubject(uid)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("queue: reading held deliveries of %s: %w", uid, err)
		}
		seq = raw.Sequence
		queuedAt := raw.Time
		if d, err := decodeFor(uid, raw.Header, raw.Data); err == nil && !d.QueuedAt.IsZero() {
			queuedAt = d.QueuedAt
		}
		if !queuedAt.Before(cutoff) {
			// In order of arrival: the rest is younger.
			return n, nil
		}
		dl := q.deadLetterMsg(uid, ReasonHeldTooLong, "held longer than the dead-letter retention of "+q.cfg.DeadLetterMaxAge.String(), raw.Header, raw.Data)
		if _, err := q.js.PublishMsg(ctx, dl); err != nil {
			return n, fmt.Errorf("queue: dead-lettering a held delivery: %w", err)
		}
		if err := q.stream.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return n, fmt.Errorf("queue: removing an expired held delivery: %w", err)
		}
		n++
	}
}

// HoldMaxAge is how long a delivery may be held: the dead-letter retention.
func (q *Queue) HoldMaxAge() time.Duration { return q.cfg.DeadLetterMaxAge }
