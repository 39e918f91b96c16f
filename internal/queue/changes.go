package queue

import (
	"context"
	"crypto/rand"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// What the queue holds changes only when a message is stored or removed,
// or a dead letter ages out. Readers of its counts (status.backlog and
// status.deadLetters, the queue gauges) would otherwise ask JetStream again
// and again while nothing happens, so the queue keeps a change number:
// every publish, ack, termination, deletion and purge through it adds one,
// and so does another replica's word that it changed the queue. A reader
// that finds the number where it left it knows the counts it read last are
// still current, and asks nothing.
//
// The number is kept by wrapping what the rest of the package writes
// through (the JetStream context, its streams, their consumers and the
// messages they hand out), so no write path can forget to count itself.

// changesSubject is where replicas tell one another that they changed the
// queue (core NATS, nothing stored): a replica's counts cover every
// replica's deliveries.
const changesSubject = "kubehook.queue.changed"

// announceAfter coalesces a replica's changes into one word to the others
// at most this often.
const announceAfter = time.Second

// changeLog is the queue's change number and, with several replicas, its
// announcer.
type changeLog struct {
	n atomic.Uint64
	// nc and self are set when other replicas may share the queue.
	nc      *nats.Conn
	self    string
	pending atomic.Bool // an announcement is scheduled
}

// Changes returns the queue's change number: it grows whenever a delivery
// or dead letter was stored or removed through this queue, or another
// replica said it did that to the queue they share. When it has not moved
// since a reader's last look, nothing was published, delivered,
// dead-lettered, replayed or purged in between. Dead letters ageing out of
// their retention do not move it (Counts.NextExpiry says when they will).
func (q *Queue) Changes() uint64 { return q.changes.n.Load() }

// noteChange counts a change and, with other replicas, schedules word to
// them.
func (c *changeLog) noteChange() {
	c.n.Add(1)
	if c.nc != nil && c.pending.CompareAndSwap(false, true) {
		time.AfterFunc(announceAfter, c.announce)
	}
}

// announce tells the other replicas; changes made from here on schedule
// the next announcement.
func (c *changeLog) announce() {
	c.pending.Store(false)
	_ = c.nc.Publish(changesSubject, []byte(c.self))
}

// share makes the change log tell the replicas on nc of this process's
// changes and count theirs. A reconnection counts as a change too: what
// was announced while this process was away is lost.
func (c *changeLog) share(nc *nats.Conn) error {
	c.self = rand.Text()
	if _, err := nc.Subscribe(changesSubject, func(m *nats.Msg) {
		if string(m.Data) != c.self {
			c.n.Add(1)
		}
	}); err != nil {
		return err
	}
	prev := nc.Opts.ReconnectedCB
	nc.SetReconnectHandler(func(conn *nats.Conn) {
		c.n.Add(1)
		if prev != nil {
			prev(conn)
		}
	})
	c.nc = nc
	return nil
}

// notingJetStream is the queue's JetStream context: publishes count as
// changes, and the streams it returns count theirs.
type notingJetStream struct {
	jetstream.JetStream
	log *changeLog
}

func (j notingJetStream) Publish(ctx context.Context, subject string, payload []byte, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	ack, err := j.JetStream.Publish(ctx, subject, payload, opts...)
	j.log.noteChange()
	return ack, err
}

func (j notingJetStream) PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	ack, err := j.JetStream.PublishMsg(ctx, msg, opts...)
	j.log.noteChange()
	return ack, err
}

// PublishAsync and PublishMsgAsync count the change when the message is
// sent, before it is stored: a reader looking in between misses it, which
// is why readers look once more after a change (see outcomes.Tracker).
func (j notingJetStream) PublishAsync(subject string, payload []byte, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	f, err := j.JetStream.PublishAsync(subject, payload, opts...)
	j.log.noteChange()
	return f, err
}

func (j notingJetStream) PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	f, err := j.JetStream.PublishMsgAsync(msg, opts...)
	j.log.noteChange()
	return f, err
}

func (j notingJetStream) CreateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return j.stream(j.JetStream.CreateStream(ctx, cfg))
}

func (j notingJetStream) UpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return j.stream(j.JetStream.UpdateStream(ctx, cfg))
}

func (j notingJetStream) CreateOrUpdateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return j.stream(j.JetStream.CreateOrUpdateStream(ctx, cfg))
}

func (j notingJetStream) Stream(ctx context.Context, name string) (jetstream.Stream, error) {
	return j.stream(j.JetStream.Stream(ctx, name))
}

func (j notingJetStream) stream(s jetstream.Stream, err error) (jetstream.Stream, error) {
	if err != nil {
		return nil, err
	}
	return notingStream{Stream: s, log: j.log}, nil
}

// notingStream counts deletions and purges, and hands out counting
// consumers.
type notingStream struct {
	jetstream.Stream
	log *changeLog
}

func (s notingStream) Purge(ctx context.Context, opts ...jetstream.StreamPurgeOpt) error {
	err := s.Stream.Purge(ctx, opts...)
	s.log.noteChange()
	return err
}

func (s notingStream) DeleteMsg(ctx context.Context, seq uint64) error {
	err := s.Stream.DeleteMsg(ctx, seq)
	s.log.noteChange()
	return err
}

func (s notingStream) SecureDeleteMsg(ctx context.Context, seq uint64) error {
	err := s.Stream.SecureDeleteMsg(ctx, seq)
	s.log.noteChange()
	return err
}

func (s notingStream) CreateOrUpdateConsumer(ctx context.Context, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	return s.consumer(s.Stream.CreateOrUpdateConsumer(ctx, cfg))
}

func (s notingStream) CreateConsumer(ctx context.Context, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	return s.consumer(s.Stream.CreateConsumer(ctx, cfg))
}

func (s notingStream) UpdateConsumer(ctx context.Context, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	return s.consumer(s.Stream.UpdateConsumer(ctx, cfg))
}

func (s notingStream) OrderedConsumer(ctx context.Context, cfg jetstream.OrderedConsumerConfig) (jetstream.Consumer, error) {
	return s.consumer(s.Stream.OrderedConsumer(ctx, cfg))
}

func (s notingStream) Consumer(ctx context.Context, name string) (jetstream.Consumer, error) {
	return s.consumer(s.Stream.Consumer(ctx, name))
}

func (s notingStream) consumer(c jetstream.Consumer, err error) (jetstream.Consumer, error) {
	if err != nil {
		return nil, err
	}
	return notingConsumer{Consumer: c, log: s.log}, nil
}

// notingConsumer hands out messages whose acks count as changes.
type notingConsumer struct {
	jetstream.Consumer
	log *changeLog
}

func (c notingConsumer) Consume(h jetstream.MessageHandler, opts ...jetstream.PullConsumeOpt) (jetstream.ConsumeContext, error) {
	return c.Consumer.Consume(func(m jetstream.Msg) { h(notingMsg{Msg: m, log: c.log}) }, opts...)
}

func (c notingConsumer) Next(opts ...jetstream.FetchOpt) (jetstream.Msg, error) {
	m, err := c.Consumer.Next(opts...)
	if err != nil {
		return nil, err
	}
	return notingMsg{Msg: m, log: c.log}, nil
}

func (c notingConsumer) Messages(opts ...jetstream.PullMessagesOpt) (jetstream.MessagesContext, error) {
	mc, err := c.Consumer.Messages(opts...)
	if err != nil {
		return nil, err
	}
	return notingMessages{MessagesContext: mc, log: c.log}, nil
}

func (c notingConsumer) Fetch(batch int, opts ...jetstream.FetchOpt) (jetstream.MessageBatch, error) {
	return c.batch(c.Consumer.Fetch(batch, opts...))
}

func (c notingConsumer) FetchBytes(maxBytes int, opts ...jetstream.FetchOpt) (jetstream.MessageBatch, error) {
	return c.batch(c.Consumer.FetchBytes(maxBytes, opts...))
}

func (c notingConsumer) FetchNoWait(batch int) (jetstream.MessageBatch, error) {
	return c.batch(c.Consumer.FetchNoWait(batch))
}

func (c notingConsumer) batch(b jetstream.MessageBatch, err error) (jetstream.MessageBatch, error) {
	if err != nil {
		return nil, err
	}
	out := make(chan jetstream.Msg, cap(b.Messages()))
	go func() {
		defer close(out)
		for m := range b.Messages() {
			out <- notingMsg{Msg: m, log: c.log}
		}
	}()
	return notingBatch{MessageBatch: b, msgs: out}, nil
}

type notingBatch struct {
	jetstream.MessageBatch
	msgs chan jetstream.Msg
}

func (b notingBatch) Messages() <-chan jetstream.Msg { return b.msgs }

type notingMessages struct {
	jetstream.MessagesContext
	log *changeLog
}

func (m notingMessages) Next(opts ...jetstream.NextOpt) (jetstream.Msg, error) {
	msg, err := m.MessagesContext.Next(opts...)
	if err != nil {
		return nil, err
	}
	return notingMsg{Msg: msg, log: m.log}, nil
}

// notingMsg counts the acks that remove a message (Ack, DoubleAck, Term);
// a negative ack or a progress report leaves it where it was.
type notingMsg struct {
	jetstream.Msg
	log *changeLog
}

func (m notingMsg) Ack() error {
	err := m.Msg.Ack()
	m.log.noteChange()
	return err
}

func (m notingMsg) DoubleAck(ctx context.Context) error {
	err := m.Msg.DoubleAck(ctx)
	m.log.noteChange()
	return err
}

func (m notingMsg) Term() error {
	err := m.Msg.Term()
	m.log.noteChange()
	return err
}

func (m notingMsg) TermWithReason(reason string) error {
	err := m.Msg.TermWithReason(reason)
	m.log.noteChange()
	return err
}
