package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/types"
)

// hdrDeadReason is the reason of a dead letter, as in its subject.
const hdrDeadReason = "Kubehook-Dead-Reason"

// maxLastError bounds the failure message kept with a dead letter.
const maxLastError = 1024

// deadLetterMsg is the dead letter of a delivery of subscription uid: its
// kubehook headers and body, with the reason and the failure message.
func (q *Queue) deadLetterMsg(uid types.UID, reason, message string, h nats.Header, data []byte) *nats.Msg {
	dl := nats.NewMsg(deadSubject(uid, reason))
	for k, v := range h {
		// Only kubehook's own headers: JetStream's (schedules, message IDs)
		// mean nothing in the dead-letter stream.
		if strings.HasPrefix(k, "Kubehook-") {
			dl.Header[k] = v
		}
	}
	if len(message) > maxLastError {
		message = message[:maxLastError]
	}
	dl.Header.Set(hdrLastError, message)
	dl.Header.Set(hdrDeadReason, reason)
	dl.Data = data
	return dl
}

// DeadLetter is one kept delivery, as listed by DeadLettersOf.
type DeadLetter struct {
	Delivery
	Reason    string
	LastError string
	At        time.Time
}

// DeadLettersOf returns the dead letters of one subscription, oldest first,
// at most limit of them (0: all).
func (q *Queue) DeadLettersOf(ctx context.Context, uid types.UID, limit int) ([]DeadLetter, error) {
	var out []DeadLetter
	err := q.eachDeadLetter(ctx, uid, func(seq uint64, raw *jetstream.RawStreamMsg) (bool, error) {
		d, err := decodeFor(uid, raw.Header, raw.Data)
		if err != nil {
			d = &Delivery{SubscriptionUID: uid, Event: raw.Data}
		}
		out = append(out, DeadLetter{Delivery: *d, Reason: raw.Header.Get(hdrDeadReason), LastError: raw.Header.Get(hdrLastError), At: raw.Time})
		return limit == 0 || len(out) < limit, nil
	})
	return out, err
}

// eachDeadLetter calls fn for every dead letter of uid in stream order until
// fn returns false.
func (q *Queue) eachDeadLetter(ctx context.Context, uid types.UID, fn func(seq uint64, raw *jetstream.RawStreamMsg) (bool, error)) error {
	subject := deadSubjectPrefix + string(uid) + ".*"
	for seq := uint64(0); ; seq++ {
		raw, err := q.dead.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("queue: reading dead letters of %s: %w", uid, err)
		}
		seq = raw.Sequence
		more, err := fn(seq, raw)
		if err != nil || !more {
			return err
		}
	}
}

// Replay queues every dead letter of the subscription again as a delivery,
// with its webhook-id, attempts counted afresh, and removes it from the dead
// letters. It returns how many were queued. Each is queued before it is
// removed, so a crash in between replays it twice at worst; its JetStream
// message ID is derived from the dead letter, so even that is stored once
// within the duplicate window.
func (q *Queue) Replay(ctx context.Context, uid types.UID) (int, error) {
	n := 0
	err := q.eachDeadLetter(ctx, uid, func(seq uint64, raw *jetstream.RawStreamMsg) (bool, error) {
		d, err := decodeFor(uid, raw.Header, raw.Data)
		if err != nil {
			// Not a delivery that can be attempted; it stays where it is.
			return true, nil
		}
		d.Attempts = 0
		d.QueuedAt = time.Now()
		m := d.message(deliverySubject(uid))
		// Not the delivery ID: that one may still be in the duplicate window.
		if _, err := q.js.PublishMsg(ctx, m, jetstream.WithMsgID(d.ID+".replay."+strconv.FormatUint(seq, 10))); err != nil {
			return false, fmt.Errorf("queue: replaying %s: %w", d.ID, err)
		}
		if err := q.dead.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return false, fmt.Errorf("queue: removing replayed dead letter %s: %w", d.ID, err)
		}
		n++
		return true, nil
	})
	return n, err
}

// PurgeDeadLetters removes every dead letter of the subscription and
// returns how many there were.
func (q *Queue) PurgeDeadLetters(ctx context.Context, uid types.UID) (int, error) {
	subjects := deadSubjectPrefix + string(uid) + ".*"
	// Only this subscription's subjects are counted, not the whole queue.
	info, err := q.dead.Info(ctx, jetstream.WithSubjectFilter(subjects))
	if err != nil {
		return 0, fmt.Errorf("queue: counting dead letters of %s: %w", uid, err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	if err := q.dead.Purge(ctx, jetstream.WithPurgeSubject(subjects)); err != nil {
		return 0, fmt.Errorf("queue: purging dead letters of %s: %w", uid, err)
	}
	return n, nil
}
