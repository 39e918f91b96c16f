package delivery

import (
	"context"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/kubehooktest"
)

// TestDeadLettersAreReplayedWithTheirWebhookIDsAndPurged: deliveries that
// used up maxAttempts become dead letters counted in status.deadLetters; a
// new kubehook.io/replay value delivers them again under the webhook-id of
// their first attempt (so receivers can deduplicate) and records the
// replay; a new kubehook.io/purge-dead-letters value deletes them, so a
// later replay finds nothing.
func TestDeadLettersAreReplayedWithTheirWebhookIDsAndPurged(t *testing.T) {
	const (
		exhausted = 10 // replayed
		purged    = 5
	)
	begin := time.Now()
	ctx := context.Background()
	ns := newNamespace(t)
	rcv := kubehooktest.NewReceiver(t)
	rcv.SetStatus(http.StatusInternalServerError)
	p := start(t)

	repo := ns + "/app"
	sub, key := subscribe(t, ns, "once", repo, rcv, fastRetries(1))

	events, want := numberedEvents(repo, "once", 0, exhausted)
	p.postAll(t, events, exhausted)
	if _, err := rcv.Await(apiTimeout, func(s kubehooktest.ReceiverStats) bool { return s.Arrived == exhausted }, p.Running); err != nil {
		t.Fatalf("first attempts: %v", err)
	}
	p.waitStatus(t, key, func(g Gomega, s *kubehookv1.WebhookSubscription) {
		g.Expect(s.Status.DeadLetters).To(BeNumerically("==", exhausted), "status.deadLetters")
		g.Expect(s.Status.Backlog).To(BeZero(), "status.backlog")
	})
	exhaustedReason := map[string]string{"reason": "exhausted"}
	p.waitMetric(t, "kubehook_dead_letters", exhaustedReason, BeNumerically("==", exhausted))
	firstIDs := rcv.FirstIDs(want)
	copies := rcv.CopiesOf(want)

	rcv.SetStatus(http.StatusOK)
	replayed := time.Now()
	annotate(t, key, kubehookv1.ReplayAnnotation, "first")
	s := p.waitStatus(t, key, func(g Gomega, s *kubehookv1.WebhookSubscription) {
		g.Expect(s.Status.LastReplay).NotTo(BeNil(), "status.lastReplay")
		g.Expect(s.Status.LastReplay.Request).To(Equal("first"), "status.lastReplay.request")
	})
	if r := s.Status.LastReplay; r.Count != exhausted || r.RequestedAt == nil {
		t.Errorf("status.lastReplay = {count %d, requestedAt %v}; want count %d and a time", r.Count, r.RequestedAt, exhausted)
	}
	if _, err := rcv.Await(apiTimeout, func(kubehooktest.ReceiverStats) bool { return len(rcv.NotAgain(want, copies)) == 0 }, p.Running); err != nil {
		left := rcv.NotAgain(want, copies)
		t.Fatalf("after the replay: %v; %d of %d dead letters not delivered again, e.g. %s", err, len(left), exhausted, firstN(left, 5))
	}
	t.Logf("%d dead letters delivered %s after the replay request", exhausted, time.Since(replayed).Round(time.Millisecond))
	got := rcv.Snapshot()
	if len(got.IDChanged) > 0 {
		t.Errorf("%d replayed deliveries carried another webhook-id than their first attempt, e.g. %s", len(got.IDChanged), got.IDChanged[0])
	}
	for _, pr := range want {
		if firstIDs[pr] == "" {
			t.Errorf("%s: the first attempt carried no webhook-id", pr)
		}
	}
	p.waitStatus(t, key, func(g Gomega, s *kubehookv1.WebhookSubscription) {
		g.Expect(s.Status.DeadLetters).To(BeZero(), "status.deadLetters after the replay")
		g.Expect(s.Status.Backlog).To(BeZero(), "status.backlog after the replay")
	})
	p.waitMetric(t, "kubehook_dead_letters", exhaustedReason, BeZero())
	NewWithT(t).Eventually(func(g Gomega) {
		var list eventsv1.EventList
		g.Expect(k8s.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		var reasons []string
		for _, e := range list.Items {
			if e.Regarding.Name == sub.Name {
				reasons = append(reasons, e.Reason)
			}
		}
		g.Expect(reasons).To(ContainElement("Replayed"), "Events of the subscription")
	}, apiTimeout, poll).Should(Succeed())

	// A second batch, purged instead.
	rcv.SetStatus(http.StatusInternalServerError)
	events, wantPurged := numberedEvents(repo, "once", exhausted, exhausted+purged)
	p.postAll(t, events, purged)
	if _, err := rcv.Await(apiTimeout, func(kubehooktest.ReceiverStats) bool { return len(rcv.Missing(wantPurged)) == 0 }, p.Running); err != nil {
		t.Fatalf("first attempts of the second batch: %v", err)
	}
	p.waitStatus(t, key, func(g Gomega, s *kubehookv1.WebhookSubscription) {
		g.Expect(s.Status.DeadLetters).To(BeNumerically("==", purged), "status.deadLetters")
	})
	annotate(t, key, kubehookv1.PurgeDeadLettersAnnotation, "first")
	s = p.waitStatus(t, key, func(g Gomega, s *kubehookv1.WebhookSubscription) {
		g.Expect(s.Status.LastPurge).NotTo(BeNil(), "status.lastPurge")
		g.Expect(s.Status.LastPurge.Request).To(Equal("first"), "status.lastPurge.request")
		g.Expect(s.Status.DeadLetters).To(BeZero(), "status.deadLetters after the purge")
	})
	if r := s.Status.LastPurge; r.Count != purged || r.RequestedAt == nil {
		t.Errorf("status.lastPurge = {count %d, requestedAt %v}; want count %d and a time", r.Count, r.RequestedAt, purged)
	}
	p.waitMetric(t, "kubehook_dead_letters", exhaustedReason, BeZero())

	// Deleted, not hidden: a replay now finds nothing.
	annotate(t, key, kubehookv1.ReplayAnnotation, "second")
	s = p.waitStatus(t, key, func(g Gomega, s *kubehookv1.WebhookSubscription) {
		g.Expect(s.Status.LastReplay.Request).To(Equal("second"), "status.lastReplay.request")
	})
	if n := s.Status.LastReplay.Count; n != 0 {
		t.Errorf("a replay after the purge queued %d dead letters; want 0", n)
	}
	if c := rcv.CopiesOf(wantPurged); len(c) != purged {
		t.Errorf("copies of the purged batch: %v", c)
	} else {
		for pr, n := range c {
			if n != 1 {
				t.Errorf("%s arrived %d times; want only its one attempt before it was purged", pr, n)
			}
		}
	}
	p.checkNoneDropped(t)
	t.Logf("test took %s", time.Since(begin).Round(time.Millisecond))
}
