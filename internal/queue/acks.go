package queue

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
)

// ackBody is a JetStream ack.
var ackBody = []byte("+ACK")

// The timing of the queue's acker.
const (
	// ackRetryAfter is how long an ack may go unconfirmed before it is sent
	// again: confirmations take well under a millisecond, so it was lost
	// (a connection lost and re-established, a server restarted).
	ackRetryAfter = time.Second
	// ackGiveUpAfter is how long an ack is sent again. Past the ack wait the
	// server has handed the delivery out again anyway.
	ackGiveUpAfter = 30 * time.Second
)

// acker acks finished deliveries without making the caller wait for the
// server's confirmation, and still knows that every ack arrived: each ack
// carries a reply subject of its own under one subscription, the
// confirmations come back there, and an ack left unconfirmed for
// retryAfter is sent again, so a lost ack does not hand a finished
// delivery out again after the ack wait. Before a consumer is deleted, and
// before the connection closes, wait lets the acks in flight be confirmed:
// an ack the server had not applied when its consumer went would leave the
// delivery in the stream for the next reader.
//
// A synchronous ack (jetstream.Msg.DoubleAck) makes the same round trip
// with the attempt's worker waiting on it, and gives up at its timeout.
type acker struct {
	nc     *nats.Conn
	log    logr.Logger
	prefix string // of the reply subjects: an inbox of its own, then a sequence number
	sub    *nats.Subscription

	retryAfter, giveUpAfter time.Duration
	// applied, when set, is told of every ack the server confirmed: the
	// delivery has left the stream (the queue's change number).
	applied func()

	mu sync.Mutex
	// lose, in tests, counts acks to drop instead of sending them the first
	// time, as a lost connection would.
	lose    int
	seq     uint64
	pending map[string]*pendingAck // by reply subject
	stop    chan struct{}
	done    chan struct{}
	// closed makes close run once: a queue may be closed twice (a deferred
	// Close after an explicit one).
	closed sync.Once
}

// pendingAck is an ack sent and not confirmed yet.
type pendingAck struct {
	subject string // the delivery's ack subject
	first   time.Time
	sent    time.Time
}

// newAcker returns an acker on nc that sends an ack again after retryAfter
// unconfirmed, and gives up after giveUpAfter.
func newAcker(nc *nats.Conn, log logr.Logger, retryAfter, giveUpAfter time.Duration) (*acker, error) {
	a := &acker{
		nc: nc, log: log, prefix: nc.NewInbox() + ".",
		retryAfter: retryAfter, giveUpAfter: giveUpAfter,
		pending: map[string]*pendingAck{},
		stop:    make(chan struct{}), done: make(chan struct{}),
	}
	sub, err := nc.Subscribe(a.prefix+"*", a.confirmed)
	if err != nil {
		return nil, fmt.Errorf("queue: subscribing to ack confirmations: %w", err)
	}
	// Confirmations are tiny and handled at once; never drop one for a
	// burst of them.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("queue: ack confirmations: %w", err)
	}
	a.sub = sub
	go a.resend()
	return a, nil
}

// ack sends the ack of the delivery whose ack subject is subject. It
// returns once the ack is written to the connection; an error says it was
// not, and the delivery will be handed out again.
func (a *acker) ack(subject string) error {
	now := time.Now()
	a.mu.Lock()
	a.seq++
	reply := a.prefix + strconv.FormatUint(a.seq, 36)
	// Recorded before sending: the confirmation may come back at once.
	a.pending[reply] = &pendingAck{subject: subject, first: now, sent: now}
	lose := a.lose > 0
	if lose {
		a.lose--
	}
	a.mu.Unlock()
	if lose {
		return nil
	}
	if err := a.nc.PublishRequest(subject, reply, ackBody); err != nil {
		a.mu.Lock()
		delete(a.pending, reply)
		a.mu.Unlock()
		return err
	}
	return nil
}

// confirmed handles the server's answer to an ack: empty when it applied
// it, a no-responders status when nobody consumes on that subject any more
// (the consumer was deleted, and the delivery is in the stream still).
func (a *acker) confirmed(m *nats.Msg) {
	a.mu.Lock()
	p := a.pending[m.Subject]
	delete(a.pending, m.Subject)
	a.mu.Unlock()
	if p != nil && m.Header.Get("Status") == "503" {
		a.log.Info("acking a delivered message: its consumer is gone; it may be delivered again", "subject", p.subject)
	} else if p != nil && a.applied != nil {
		a.applied()
	}
}

// resend sends again the acks left unconfirmed for retryAfter, until they
// are confirmed or giveUpAfter has passed.
func (a *acker) resend() {
	defer close(a.done)
	t := time.NewTicker(a.retryAfter / 2)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case now := <-t.C:
			a.mu.Lock()
			for reply, p := range a.pending {
				switch {
				case now.Sub(p.first) > a.giveUpAfter:
					delete(a.pending, reply)
					a.log.Info("an ack was never confirmed; the delivered message may be delivered again", "subject", p.subject)
				case now.Sub(p.sent) > a.retryAfter:
					p.sent = now
					_ = a.nc.PublishRequest(p.subject, reply, ackBody)
				}
			}
			a.mu.Unlock()
		}
	}
}

// wait returns once every ack sent so far is confirmed (or given up), or
// ctx is done.
func (a *acker) wait(ctx context.Context) error {
	a.mu.Lock()
	waiting := make(map[string]bool, len(a.pending))
	for reply := range a.pending {
		waiting[reply] = true
	}
	a.mu.Unlock()
	for len(waiting) > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("queue: %d acks unconfirmed: %w", len(waiting), ctx.Err())
		case <-time.After(time.Millisecond):
		}
		a.mu.Lock()
		for reply := range waiting {
			if _, ok := a.pending[reply]; !ok {
				delete(waiting, reply)
			}
		}
		a.mu.Unlock()
	}
	return nil
}

// close waits for the acks in flight, up to timeout, and stops; later
// calls do nothing.
func (a *acker) close(timeout time.Duration) {
	a.closed.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := a.wait(ctx); err != nil {
			a.log.Info("closing the queue with acks unconfirmed; their deliveries may be delivered again", "error", err.Error())
		}
		close(a.stop)
		<-a.done
		_ = a.sub.Unsubscribe()
	})
}
