package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kubehook/kubehook/internal/metrics"
)

// Msg is one fetched delivery. Exactly one of Done, Retry, DeadLetter, Drop,
// Park or Release finishes it; until then it stays unacked and survives a
// crash.
type Msg struct {
	*Delivery
	q   *Queue
	raw jetstream.Msg
}

// Handler receives fetched deliveries. It must not block for long: it hands
// the delivery to a worker and returns.
type Handler func(*Msg)

// restartDelay is the pause before a consumer that stopped by itself (its
// consumer deleted, the connection lost for good) is consumed again.
const restartDelay = time.Second

// Consume feeds deliveries to h until ctx ends, with at most MaxAckPending
// of them unfinished at once. Undecodable messages are dead-lettered.
// Consumer errors are logged and counted; a consumption that ends by itself
// is started again, recreating the consumer if it was deleted.
func (q *Queue) Consume(ctx context.Context, h Handler) error {
	consumer := q.consumer
	stuck := make(chan struct{}, 1)
	for {
		cc, err := consumer.Consume(q.decoding(h), jetstream.PullMaxMessages(256),
			jetstream.PullExpiry(idlePullExpiry), jetstream.PullHeartbeat(pullHeartbeat), q.errHandler(ctx, ConsumerName, stuck))
		if err != nil {
			q.consumerErrors.Add(1)
			metrics.ConsumerErrorsTotal.WithLabelValues(metrics.ConsumerShared).Inc()
			log.FromContext(ctx).Error(err, "consuming deliveries; trying again", "consumer", ConsumerName)
		} else {
			select {
			case <-ctx.Done():
				// Stop fetching; messages already handed out stay unacked
				// until their handlers finish them or the process exits.
				cc.Stop()
				return nil
			case <-cc.Closed():
				q.consumerErrors.Add(1)
				metrics.ConsumerErrorsTotal.WithLabelValues(metrics.ConsumerShared).Inc()
				log.FromContext(ctx).Info("delivery consumer stopped by itself; consuming again", "consumer", ConsumerName)
			case <-stuck:
				cc.Stop()
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(restartDelay):
		}
		if c, err := q.stream.CreateOrUpdateConsumer(ctx, q.sharedConsumerConfig()); err == nil {
			consumer = c
		}
	}
}

// errHandler logs and counts what goes wrong while consuming: missed
// heartbeats, a deleted consumer, a lost connection.
//
// A pull that found no responder (a consumer just created whose group has
// no leader yet) is not pulled again until the heartbeat times out, 30s
// later: stuck is signalled, so the caller consumes again at once.
func (q *Queue) errHandler(ctx context.Context, consumer string, stuck chan<- struct{}) jetstream.PullConsumeOpt {
	kind := metrics.ConsumerShared
	if consumer != ConsumerName {
		kind = metrics.ConsumerParked
	}
	return jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if errors.Is(err, context.Canceled) {
			return
		}
		q.consumerErrors.Add(1)
		metrics.ConsumerErrorsTotal.WithLabelValues(kind).Inc()
		log.FromContext(ctx).Error(err, "consuming deliveries", "consumer", consumer)
		if errors.Is(err, nats.ErrNoResponders) {
			select {
			case stuck <- struct{}{}:
			default:
			}
		}
	})
}

// decoding wraps h: undecodable messages are dead-lettered.
func (q *Queue) decoding(h Handler) jetstream.MessageHandler {
	return func(raw jetstream.Msg) {
		d, err := decode(raw.Subject(), raw.Headers(), raw.Data())
		m := &Msg{Delivery: d, q: q, raw: raw}
		if err != nil {
			m.Delivery = &Delivery{}
			uid, ok := subjectUID(raw.Subject())
			if !ok {
				uid = "unknown"
			}
			_ = m.deadLetter(context.Background(), uid, ReasonUndecodable, fmt.Sprintf("undecodable delivery: %v", err))
			return
		}
		h(m)
	}
}

// Line is the running consumer of one subscription's parked deliveries.
type Line struct {
	q    *Queue
	name string
	stop chan struct{}
	done chan struct{}
}

// ConsumeParked feeds the parked deliveries of one subscription to h, in
// order of arrival, with at most max of them unfinished at once, until the
// line is stopped. Like Consume, it restarts a consumption that ends by
// itself.
func (q *Queue) ConsumeParked(ctx context.Context, uid types.UID, max int, h Handler) (*Line, error) {
	name := parkedConsumerPrefix + string(uid)
	cfg := jetstream.ConsumerConfig{
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
	}
	c, err := q.stream.CreateOrUpdateConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("queue: parked consumer for %s: %w", uid, err)
	}
	stuck := make(chan struct{}, 1)
	cc, err := c.Consume(q.decoding(h), jetstream.PullMaxMessages(max), q.errHandler(ctx, name, stuck))
	if err != nil {
		return nil, fmt.Errorf("queue: consuming parked deliveries of %s: %w", uid, err)
	}
	l := &Line{q: q, name: name, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			select {
			case <-l.stop:
				cc.Stop()
				return
			case <-cc.Closed():
				metrics.ConsumerErrorsTotal.WithLabelValues(metrics.ConsumerParked).Inc()
				log.FromContext(ctx).Info("parked consumer stopped by itself; consuming again", "consumer", name)
			case <-stuck:
				cc.Stop()
				cc = nil
			}
			for cc == nil || isClosed(cc) {
				select {
				case <-l.stop:
					return
				case <-time.After(restartDelay):
				}
				if c, err = q.stream.CreateOrUpdateConsumer(ctx, cfg); err != nil {
					continue
				}
				if cc, err = c.Consume(q.decoding(h), jetstream.PullMaxMessages(max), q.errHandler(ctx, name, stuck)); err != nil {
					cc = nil
				}
			}
		}
	}()
	return l, nil
}

func isClosed(cc jetstream.ConsumeContext) bool {
	select {
	case <-cc.Closed():
		return true
	default:
		return false
	}
}

// Stop stops fetching. The line's consumer is kept, so deliveries already
// handed out can still be acked (at shutdown, or while in-flight attempts
// finish); Delete removes it once they are.
func (l *Line) Stop() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

// Delete stops the line and deletes its consumer: a stopped client's pull
// request would otherwise stay with the server and swallow the next parked
// deliveries until their ack wait ran out. Unacked deliveries stay parked.
func (l *Line) Delete() {
	l.Stop()
	// The acks of the line's deliveries must reach the server before the
	// consumer goes, or those deliveries stay and come again. Unconfirmed
	// for long, they are lost: the consumer goes all the same.
	waitCtx, cancelWait := context.WithTimeout(context.Background(), 5*time.Second)
	_ = l.q.acks.wait(waitCtx)
	cancelWait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.q.stream.DeleteConsumer(ctx, l.name)
}
