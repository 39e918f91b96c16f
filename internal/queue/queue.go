// Package queue is kubehook's durable delivery queue on NATS JetStream.
//
// Every delivery (one event for one subscription) is a message on subject
// kubehook.deliveries.<subscription UID> of the work-queue stream
// KUBEHOOK_DELIVERIES. One durable pull consumer feeds the dispatcher; a
// message is acked only once its delivery is finished (2xx, dropped or
// dead-lettered), so a killed process loses nothing: unacked messages are
// delivered again after the ack wait.
//
// A subscription that cannot keep up has its deliveries moved, once, to its
// own subject kubehook.parked.<UID>, read by a consumer of its own whose
// ack-pending window is the subscription's in-flight limit: its backlog then
// waits in the stream, not in memory, and costs the other subscriptions
// nothing. The same line holds the deliveries of a suspended or stalled
// subscription, with no consumer reading it until the subscription resumes.
//
// A retry is not a negative ack: the next attempt is published as a message
// schedule (Nats-Schedule "@at <time>") that JetStream itself turns into a new
// delivery message when it is due, and the current message is acked. Waiting
// retries therefore occupy no consumer slots, which keeps one failing
// endpoint from filling the consumer's ack-pending window. Given-up
// deliveries go to the bounded dead-letter stream KUBEHOOK_DEAD_LETTERS, on
// subject kubehook.dead.<UID>.<reason>, from where they can be replayed.
//
// A delivered message's ack is sent without its worker waiting for the
// server's confirmation: the queue awaits the confirmations itself, sends
// an ack again when it was lost, and lets the acks in flight be confirmed
// before it deletes a consumer or closes (acks.go).
//
// It must not decide what becomes of a delivery: it stores, hands out,
// moves and counts what the intake and the dispatcher tell it to.
package queue

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// Names of the streams, subjects and consumer.
const (
	StreamName       = "KUBEHOOK_DELIVERIES"
	DeadLetterStream = "KUBEHOOK_DEAD_LETTERS"
	ConsumerName     = "kubehook-dispatcher"

	deliverySubjectPrefix = "kubehook.deliveries."
	parkedSubjectPrefix   = "kubehook.parked."
	retrySubjectPrefix    = "kubehook.retries."
	deadSubjectPrefix     = "kubehook.dead."
	parkedConsumerPrefix  = "kubehook-parked-"
)

// Config says where the queue lives and how it is bounded.
type Config struct {
	// DataDir holds the embedded server's file store. Ignored with URL.
	DataDir string
	// SyncInterval is how often the embedded file store is fsynced; a
	// killed process loses nothing, a lost machine may lose this much.
	// Zero keeps the NATS default (2 minutes).
	SyncInterval time.Duration
	// URL of an external NATS server or cluster; empty runs one embedded.
	URL string
	// NATSOptions (credentials, TLS) for the external server.
	NATSOptions []nats.Option
	// Replicas of the streams on an external cluster (1 embedded).
	Replicas int
	// AckWait is how long a fetched delivery may stay unacked before
	// JetStream delivers it again; in-flight attempts extend it.
	AckWait time.Duration
	// MaxAckPending bounds the deliveries held by this process at once.
	MaxAckPending int
	// DeadLetterMaxAge and DeadLetterMaxMsgs bound the dead-letter stream.
	DeadLetterMaxAge  time.Duration
	DeadLetterMaxMsgs int64
}

// Defaults fill in unset Config fields.
func (c Config) withDefaults() Config {
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = 4096
	}
	if c.DeadLetterMaxAge == 0 {
		c.DeadLetterMaxAge = 7 * 24 * time.Hour
	}
	if c.DeadLetterMaxMsgs == 0 {
		c.DeadLetterMaxMsgs = 100_000
	}
	return c
}

// Queue is an open connection to the delivery streams.
type Queue struct {
	cfg      Config
	srv      *server.Server // nil with an external server
	nc       *nats.Conn
	js       jetstream.JetStream
	acks     *acker // sends the acks of delivered messages (Msg.DoneAsync)
	stream   jetstream.Stream
	dead     jetstream.Stream
	consumer jetstream.Consumer
	// changes counts what is stored and removed (Changes).
	changes changeLog
	// consumerErrors counts what went wrong consuming (ConsumerErrors).
	consumerErrors atomic.Uint64
}

// Open starts the embedded server (or connects to cfg.URL) and creates or
// updates the streams and the dispatcher's consumer.
func Open(ctx context.Context, cfg Config) (*Queue, error) {
	cfg = cfg.withDefaults()
	q := &Queue{cfg: cfg}
	var err error
	if cfg.URL == "" {
		if cfg.DataDir == "" {
			return nil, errors.New("queue: a data directory is needed for the embedded NATS server")
		}
		if q.srv, err = startEmbedded(cfg); err != nil {
			return nil, err
		}
		q.nc, err = nats.Connect("", append([]nats.Option{nats.InProcessServer(q.srv), nats.Name("kubehook")}, cfg.NATSOptions...)...)
	} else {
		q.nc, err = nats.Connect(cfg.URL, append([]nats.Option{nats.Name("kubehook"), nats.MaxReconnects(-1)}, cfg.NATSOptions...)...)
	}
	if err != nil {
		q.Close()
		return nil, fmt.Errorf("queue: connecting to NATS: %w", err)
	}
	js, err := jetstream.New(q.nc)
	if err != nil {
		q.Close()
		return nil, fmt.Errorf("queue: %w", err)
	}
	q.js = notingJetStream{JetStream: js, log: &q.changes}
	// An external server may be shared with other replicas, whose changes
	// count too.
	if q.srv == nil {
		if err := q.changes.share(q.nc); err != nil {
			q.Close()
			return nil, fmt.Errorf("queue: %w", err)
		}
	}
	if err := q.setupRetrying(ctx); err != nil {
		q.Close()
		return nil, err
	}
	if q.acks, err = newAcker(q.nc, log.FromContext(ctx), ackRetryAfter, ackGiveUpAfter); err != nil {
		q.Close()
		return nil, err
	}
	// A confirmed ack is a delivery gone from the queue.
	q.acks.applied = q.changes.noteChange
	return q, nil
}

func startEmbedded(cfg Config) (*server.Server, error) {
	opts := &server.Options{
		ServerName:         "kubehook",
		JetStream:          true,
		StoreDir:           filepath.Join(cfg.DataDir, "jetstream"),
		DontListen:         true, // reached in-process only
		NoSigs:             true,
		SyncInterval:       cfg.SyncInterval,
		JetStreamMaxMemory: 64 << 20,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("queue: embedded NATS server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("queue: embedded NATS server did not become ready")
	}
	return srv, nil
}

// setupAttempts bounds retrying: about a minute and a half in all.
const setupAttempts = 7

// setupRetrying runs setup until it succeeds.
func (q *Queue) setupRetrying(ctx context.Context) error {
	return retrying(ctx, "setting up the queue", func() error { return q.setup(ctx) })
}

// retrying runs an idempotent JetStream setup step until it succeeds: a
// NATS cluster that has just formed (or several replicas creating the same
// replicated stream at once) may leave a request unanswered for a while,
// which is worth waiting for, not exiting.
func retrying(ctx context.Context, what string, fn func() error) error {
	delay := time.Second
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || attempt == setupAttempts {
			return err
		}
		log.FromContext(ctx).Info(what+" failed; trying again", "error", err.Error(), "in", delay)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

func (q *Queue) setup(ctx context.Context) error {
	var err error
	q.stream, err = q.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName,
		Description: "kubehook deliveries: one message per event and subscription, removed when acked",
		Subjects:    []string{deliverySubjectPrefix + ">", parkedSubjectPrefix + ">", retrySubjectPrefix + ">"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    q.cfg.Replicas,
		Duplicates:  2 * time.Minute,
		// Retries wait as message schedules inside the stream.
		AllowMsgSchedules: true,
	})
	if err != nil {
		return fmt.Errorf("queue: stream %s: %w", StreamName, err)
	}
	q.dead, err = q.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        DeadLetterStream,
		Description: "kubehook deliveries given up (attempts exhausted, subscription inactive or not permitted, held too long), kept for replay",
		Subjects:    []string{deadSubjectPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    q.cfg.Replicas,
		MaxAge:      q.cfg.DeadLetterMaxAge,
		MaxMsgs:     q.cfg.DeadLetterMaxMsgs,
		Discard:     jetstream.DiscardOld,
	})
	if err != nil {
		return fmt.Errorf("queue: stream %s: %w", DeadLetterStream, err)
	}
	if q.srv != nil {
		if err := q.resetConsumers(ctx); err != nil {
			return err
		}
	}
	q.consumer, err = q.stream.CreateOrUpdateConsumer(ctx, q.sharedConsumerConfig())
	if err != nil {
		return fmt.Errorf("queue: consumer %s: %w", ConsumerName, err)
	}
	return nil
}

// resetConsumers deletes the consumers an earlier process left in the
// embedded server. That process is gone (the store is this process's
// alone), so what it had fetched and not acked is handed out again at once
// instead of after the ack wait: its negative acks did not survive the
// server's restart. Deleting a work-queue consumer removes no message.
func (q *Queue) resetConsumers(ctx context.Context) error {
	names := q.stream.ConsumerNames(ctx)
	var stale []string
	for name := range names.Name() {
		stale = append(stale, name)
	}
	if err := names.Err(); err != nil {
		return fmt.Errorf("queue: listing consumers: %w", err)
	}
	for _, name := range stale {
		if err := q.stream.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("queue: deleting consumer %s of an earlier run: %w", name, err)
		}
	}
	return nil
}

func (q *Queue) sharedConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       ConsumerName,
		Description:   "the kubehook dispatcher",
		FilterSubject: deliverySubjectPrefix + ">",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       q.cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: q.cfg.MaxAckPending,
		Replicas:      q.cfg.Replicas,
	}
}

// Close waits a moment for the acks in flight to be confirmed, drains the
// connection and stops the embedded server. Unacked deliveries stay in the
// stream for the next start.
func (q *Queue) Close() {
	if q.acks != nil {
		q.acks.close(5 * time.Second)
	}
	if q.nc != nil {
		_ = q.nc.Drain()
		q.nc.Close()
	}
	if q.srv != nil {
		q.srv.Shutdown()
		q.srv.WaitForShutdown()
	}
}

// Conn is the queue's NATS connection, for what kubehook's replicas tell
// one another (delivery outcomes for the leader).
func (q *Queue) Conn() *nats.Conn { return q.nc }

// Ready reports whether the queue can take deliveries: the connection to
// NATS is up.
func (q *Queue) Ready() error {
	if st := q.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("queue: NATS connection %s", st)
	}
	return nil
}

// Pending returns the number of deliveries in the stream (waiting, in
// flight or scheduled for retry).
func (q *Queue) Pending(ctx context.Context) (uint64, error) {
	info, err := q.stream.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// DeadLetters returns the number of deliveries kept in the dead-letter stream.
func (q *Queue) DeadLetters(ctx context.Context) (uint64, error) {
	info, err := q.dead.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}
