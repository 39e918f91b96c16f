package queue

import (
	"context"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// A delivery acked with DoneAsync whose ack is lost is not delivered again
// after the ack wait: the unconfirmed ack is sent again.
func TestLostAsyncAckIsSentAgain(t *testing.T) {
	q := openTest(t, t.TempDir(), 2*time.Second)
	defer q.Close()
	q.acks.close(time.Second)
	a, err := newAcker(q.nc, logr.Discard(), 200*time.Millisecond, ackGiveUpAfter)
	if err != nil {
		t.Fatal(err)
	}
	a.lose = 1
	q.acks = a

	if err := q.Publish(context.Background(), []Delivery{delivery(1)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 10)
	done := make(chan error, 1)
	go func() {
		done <- q.Consume(ctx, func(m *Msg) {
			if err := m.DoneAsync(); err != nil {
				t.Error(err)
			}
			got <- m.ID
		})
	}()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("nothing delivered")
	}
	// Past the ack wait, with the first ack lost.
	select {
	case id := <-got:
		t.Fatalf("%s delivered again after its ack was lost", id)
	case <-time.After(3 * time.Second):
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := pending(t, q); n != 0 {
		t.Fatalf("pending = %d, want 0", n)
	}
}

// Deliveries acked with DoneAsync right before the queue closes are not
// delivered again by the next process on the same store.
func TestAsyncAcksAreConfirmedBeforeClose(t *testing.T) {
	dir := t.TempDir()
	q := openTest(t, dir, 0)
	const n = 200
	batch := make([]Delivery, n)
	for i := range batch {
		batch[i] = delivery(i)
	}
	if err := q.Publish(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	consumeN(t, q, n, func(m *Msg) {
		if err := m.DoneAsync(); err != nil {
			t.Error(err)
		}
	})
	q.Close()

	q = openTest(t, dir, 0)
	defer q.Close()
	if got := pending(t, q); got != 0 {
		t.Fatalf("after a restart, %d of %d acked deliveries are still queued", got, n)
	}
}

// Deliveries read from a line and acked with DoneAsync right before the
// line's consumer is deleted leave the queue: the consumer goes only once
// their acks are confirmed.
func TestAsyncAcksAreConfirmedBeforeALineIsDeleted(t *testing.T) {
	q := openTest(t, t.TempDir(), 0)
	defer q.Close()
	const n = 200
	batch := make([]Delivery, n)
	for i := range batch {
		batch[i] = delivery(i)
	}
	if err := q.Publish(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	parked := make(chan struct{}, n)
	consumeN(t, q, n, func(m *Msg) {
		if err := m.Park(func() { parked <- struct{}{} }); err != nil {
			t.Error(err)
		}
	})
	for range n {
		<-parked
	}
	read := make(chan struct{}, n)
	line, err := q.ConsumeParked(context.Background(), "uid-1", n, func(m *Msg) {
		if err := m.DoneAsync(); err != nil {
			t.Error(err)
		}
		read <- struct{}{}
	})
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		select {
		case <-read:
		case <-time.After(10 * time.Second):
			t.Fatal("the line did not hand out every delivery")
		}
	}
	line.Delete()
	if got := pending(t, q); got != 0 {
		t.Fatalf("%d of %d acked deliveries still queued after their line was deleted", got, n)
	}
}

// A queue closed twice (an explicit Close, then a deferred one) stops its
// acker once.
func TestQueueClosedTwiceStopsOnce(t *testing.T) {
	q := openTest(t, t.TempDir(), time.Minute)
	q.Close()
	q.Close()
}
