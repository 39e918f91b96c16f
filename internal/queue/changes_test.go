package queue

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// The change number moves with every write that changes what the queue
// holds (publish, ack, park, retry, dead letter, replay, purge), and with
// none of the reads or of the acks that leave a message where it is.
func TestChangesMoveWithWhatTheQueueHolds(t *testing.T) {
	q := openTest(t, t.TempDir(), 0)
	defer q.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// One consumption for the whole test; each step takes the next
	// delivery it hands out.
	msgs := make(chan *Msg, 16)
	done := make(chan error, 1)
	go func() { done <- q.Consume(ctx, func(m *Msg) { msgs <- m }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	next := func() *Msg {
		t.Helper()
		select {
		case m := <-msgs:
			return m
		case <-time.After(20 * time.Second):
			t.Fatal("no delivery handed out within 20s")
			return nil
		}
	}
	moved := func(what string, fn func()) {
		t.Helper()
		before := q.Changes()
		fn()
		if q.Changes() == before {
			t.Errorf("%s: the change number did not move", what)
		}
	}
	still := func(what string, fn func()) {
		t.Helper()
		before := q.Changes()
		fn()
		if q.Changes() != before {
			t.Errorf("%s: the change number moved", what)
		}
	}
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	publish := func(i int) { check(q.Publish(ctx, []Delivery{delivery(i)})) }

	moved("publish", func() { publish(1) })
	still("reading counts", func() {
		_, err := q.Counts(ctx)
		check(err)
		_, err = q.Pending(ctx)
		check(err)
		_, err = q.DeadLetters(ctx)
		check(err)
	})
	// A progress report and a negative ack leave the delivery queued: it
	// comes again.
	m := next()
	still("progress and release", func() {
		check(m.InProgress())
		check(m.Release())
	})
	moved("done", func() { check(next().Done(ctx)) })
	publish(6)
	moved("done without waiting, once confirmed", func() {
		check(next().DoneAsync())
		check(q.AwaitAcks(ctx))
	})

	publish(2)
	moved("retry", func() { check(next().Retry(ctx, time.Now().Add(time.Hour), 1)) })
	publish(3)
	moved("park", func() { check(next().Park(nil)) })
	publish(4)
	moved("dead letter", func() { check(next().DeadLetter(ctx, ReasonExhausted, "gave up")) })
	moved("replay", func() {
		n, err := q.Replay(ctx, "uid-1")
		check(err)
		if n != 1 {
			t.Fatalf("replayed %d, want 1", n)
		}
	})
	check(next().DeadLetter(ctx, ReasonExhausted, "gave up again"))
	moved("purge", func() {
		_, err := q.PurgeDeadLetters(ctx, "uid-1")
		check(err)
	})
}

// A retry falling due changes what is ready with nothing written, which
// the counts say: while it waits it is Waiting, once due it is ready.
func TestCountsTellWaitingRetries(t *testing.T) {
	q := openTest(t, t.TempDir(), 0)
	defer q.Close()
	ctx := context.Background()
	publish(t, q, delivery(1))
	consumeN(t, q, 1, func(m *Msg) {
		if err := m.Retry(ctx, time.Now().Add(time.Second), 1); err != nil {
			t.Error(err)
		}
	})
	c, err := q.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.Waiting != 1 || !c.OldestReady.IsZero() {
		t.Fatalf("retry waiting: Waiting %d, oldest ready %v; want 1, none", c.Waiting, c.OldestReady)
	}
	changes := q.Changes()
	waitFor(t, func() bool {
		c, err = q.Counts(ctx)
		return err == nil && c.Waiting == 0 && !c.OldestReady.IsZero()
	})
	if q.Changes() != changes {
		t.Fatal("the change number moved though nothing was written")
	}
}

// startServer runs a NATS JetStream server on a loopback port, as replicas
// share one.
func startServer(t *testing.T) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: filepath.Join(t.TempDir(), "jetstream"), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

// With replicas sharing a NATS server, what one writes moves the others'
// change number too: each replica's counts cover every replica's
// deliveries.
func TestChangesOfOneReplicaReachTheOthers(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	open := func() *Queue {
		q, err := Open(ctx, Config{URL: srv.ClientURL()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(q.Close)
		return q
	}
	a, b := open(), open()
	before := b.Changes()
	if err := a.Publish(ctx, []Delivery{delivery(1)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return b.Changes() != before })
}

// A quiet consumer asks JetStream nothing for well over the 30s after which
// the client would renew its pull request by default; its heartbeats still
// come.
func TestQuietConsumerMakesNoRequests(t *testing.T) {
	if testing.Short() {
		t.Skip("watches a quiet consumer for 35s")
	}
	t.Parallel()
	srv := startServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q, err := Open(ctx, Config{URL: srv.ClientURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()

	watcher, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close()
	var requests atomic.Int64
	if _, err := watcher.Subscribe("$JS.API.>", func(*nats.Msg) { requests.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := watcher.Flush(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- q.Consume(ctx, func(*Msg) {}) }()
	waitFor(t, func() bool { return requests.Load() > 0 }) // its first pull
	time.Sleep(time.Second)
	requests.Store(0)
	time.Sleep(35 * time.Second)
	if n := requests.Load(); n != 0 {
		t.Errorf("a quiet consumer made %d JetStream requests in 35s, want 0", n)
	}
	if n := q.ConsumerErrors(); n != 0 {
		t.Errorf("%d consumer errors: the heartbeats did not come", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
