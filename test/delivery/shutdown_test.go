package delivery

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/kubehooktest"
)

// TestGracefulShutdownWithBusyParkedLinesDeliversEachEventOnce: SIGTERM
// while a subscription at its in-flight limit is being delivered from its
// own line lets the attempts in flight finish and be acked, so after a
// restart on the same data directory every event arrives exactly once.
func TestGracefulShutdownWithBusyParkedLinesDeliversEachEventOnce(t *testing.T) {
	const (
		total = 300
		// termAt is how many deliveries arrive before the SIGTERM.
		termAt = 80
	)
	begin := time.Now()
	ns := newNamespace(t)
	// Each attempt well inside the grace period (5s), and slow enough that
	// the subscription stays at its in-flight limit (8) and is parked.
	rcv := kubehooktest.NewReceiver(t, kubehooktest.AnswerAfter(100*time.Millisecond))
	first := start(t)

	repo := ns + "/app"
	_, key := subscribe(t, ns, "busy", repo, rcv, nil)

	events, want := numberedEvents(repo, "busy", 0, total)
	if got := first.postInBatches(t, events, 50); got.Accepted != total || got.Deliveries != total {
		t.Fatalf("accepted %d events with %d deliveries; want %d of each", got.Accepted, got.Deliveries, total)
	}
	if _, err := rcv.Await(apiTimeout, func(s kubehooktest.ReceiverStats) bool { return s.Arrived >= termAt }, first.Running); err != nil {
		t.Fatalf("before the SIGTERM: %v", err)
	}
	if n := first.mustMetric(t, "kubehook_parked_deliveries_total", nil); n == 0 {
		t.Fatalf("no delivery was parked: the test proves nothing about parked lines")
	}
	termed := time.Now()
	if err := first.Term(t); err != nil {
		t.Errorf("kubehook stopped by SIGTERM exited with %v; want a clean stop", err)
	}
	atTerm := rcv.Snapshot()
	t.Logf("SIGTERM after %s; stopped within %s: %d of %d deliveries arrived, %d duplicates",
		time.Since(begin).Round(time.Millisecond), time.Since(termed).Round(time.Millisecond), atTerm.Arrived, total, atTerm.Duplicates)
	if atTerm.Arrived == total {
		t.Fatalf("everything arrived before kubehook stopped: the test proves nothing about the restart")
	}

	restarted := time.Now()
	second := first.restart(t)
	// Deliveries fetched but not started by the stopped process come back at
	// once, well inside the ack wait (30s): the restarted process does not
	// wait for the stopped one's consumers to give them up.
	if _, err := rcv.Await(20*time.Second, func(s kubehooktest.ReceiverStats) bool { return s.Arrived == total }, second.Running); err != nil {
		missing := rcv.Missing(want)
		t.Fatalf("after the restart: %v; %d of %d deliveries never arrived, e.g. %s", err, len(missing), total, firstN(missing, 5))
	}
	t.Logf("every delivery arrived %s after the restart", time.Since(restarted).Round(time.Millisecond))
	// Only once the queue holds nothing can no further copy come.
	second.waitStatus(t, key, func(g Gomega, s *kubehookv1.WebhookSubscription) {
		g.Expect(s.Status.Backlog).To(BeZero(), "status.backlog")
	})
	done := rcv.Snapshot()
	if done.Duplicates > 0 {
		t.Errorf("%d deliveries arrived twice (%d requests for %d events): attempts that finished before the stop were not acked",
			done.Duplicates, done.Requests, total)
	}
	if len(done.IDChanged) > 0 {
		t.Errorf("%d duplicates carried another webhook-id than their first copy, e.g. %s", len(done.IDChanged), done.IDChanged[0])
	}
	second.checkNoneDropped(t)
	t.Logf("test took %s", time.Since(begin).Round(time.Millisecond))
}

// TestShutdownReturnsCancelledAttemptsUnchanged: an attempt still in
// flight when the shutdown grace period ends is cancelled and goes back to
// the queue as it was: not counted as a failure (with maxAttempts 1 a
// failure would make it a dead letter), and delivered by the next process
// under the same webhook-id.
func TestShutdownReturnsCancelledAttemptsUnchanged(t *testing.T) {
	const inFlight = 4
	begin := time.Now()
	ns := newNamespace(t)
	// Answers after the grace period (1s), within the attempt timeout (10s).
	rcv := kubehooktest.NewReceiver(t, kubehooktest.AnswerAfter(3*time.Second))
	first := start(t, kubehooktest.WithFlags("--shutdown-grace-period=1s"))

	repo := ns + "/app"
	_, key := subscribe(t, ns, "slow", repo, rcv, fastRetries(1))

	events, want := numberedEvents(repo, "slow", 0, inFlight)
	first.postAll(t, events, inFlight)
	if _, err := rcv.Await(apiTimeout, func(s kubehooktest.ReceiverStats) bool { return s.Requests == inFlight }, first.Running); err != nil {
		t.Fatalf("before the SIGTERM: %v", err)
	}
	if err := first.Term(t); err != nil {
		t.Errorf("kubehook stopped by SIGTERM exited with %v; want a clean stop", err)
	}
	copies := rcv.CopiesOf(want)
	for _, pr := range want {
		if copies[pr] != 1 {
			t.Fatalf("before the restart %s arrived %d times; want its one cancelled attempt", pr, copies[pr])
		}
	}

	restarted := time.Now()
	second := first.restart(t)
	// A released delivery comes back at once, well inside the ack wait
	// (30s): the restarted process does not wait for the stopped one's
	// consumers to give it up.
	if _, err := rcv.Await(20*time.Second, func(kubehooktest.ReceiverStats) bool { return len(rcv.NotAgain(want, copies)) == 0 }, second.Running); err != nil {
		left := rcv.NotAgain(want, copies)
		t.Fatalf("after the restart: %v; %d of %d cancelled attempts never came again, e.g. %s", err, len(left), inFlight, firstN(left, 5))
	}
	t.Logf("the %d cancelled attempts came again %s after the restart", inFlight, time.Since(restarted).Round(time.Millisecond))
	s := second.waitStatus(t, key, func(g Gomega, s *kubehookv1.WebhookSubscription) {
		g.Expect(s.Status.Backlog).To(BeZero(), "status.backlog")
		g.Expect(s.Status.LastSuccessfulAt).NotTo(BeNil(), "status.lastSuccessfulAt")
	})
	if s.Status.DeadLetters != 0 || s.Status.LastFailureAt != nil || s.Status.ConsecutiveFailures != 0 {
		t.Errorf("status after the restart: %d dead letters, lastFailureAt %v, %d consecutive failures; want no failure recorded for a cancelled attempt",
			s.Status.DeadLetters, s.Status.LastFailureAt, s.Status.ConsecutiveFailures)
	}
	if got := rcv.Snapshot(); len(got.IDChanged) > 0 {
		t.Errorf("%d attempts after the restart carried another webhook-id than the cancelled one, e.g. %s", len(got.IDChanged), got.IDChanged[0])
	}
	second.checkNoneDropped(t)
	t.Logf("test took %s", time.Since(begin).Round(time.Millisecond))
}
