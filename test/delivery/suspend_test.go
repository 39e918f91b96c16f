package delivery

import (
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/kubehooktest"
)

// TestSuspendHoldsDeliveriesUntilResumed: suspending a subscription while
// some of its deliveries are queued and others wait for a retry holds all
// of them, and the events published while it is suspended, on disk: none is
// attempted, dropped or dead-lettered, status.backlog counts them, and
// after resuming every event arrives.
func TestSuspendHoldsDeliveriesUntilResumed(t *testing.T) {
	const (
		before = 40 // posted while delivering: some attempted (and failed), the rest queued
		during = 20 // posted while suspended
	)
	begin := time.Now()
	ns := newNamespace(t)
	// Slow and failing: at the suspension some deliveries wait for a retry,
	// and most are still queued behind the in-flight limit.
	rcv := kubehooktest.NewReceiver(t, kubehooktest.AnswerAfter(300*time.Millisecond))
	rcv.SetStatus(http.StatusInternalServerError)
	p := start(t)

	sub, key := subscribe(t, ns, "held", ns+"/app", rcv, fastRetries(100))

	events, want := numberedEvents(ns+"/app", "held", 0, before)
	p.postAll(t, events, before)
	if _, err := rcv.Await(apiTimeout, func(s kubehooktest.ReceiverStats) bool { return s.Requests >= 8 }, p.Running); err != nil {
		t.Fatalf("before suspending: %v", err)
	}

	updateSubscription(t, key, func(s *kubehookv1.WebhookSubscription) { s.Spec.Suspend = true })
	waitReadyCondition(t, metav1.ConditionTrue, kubehookv1.SuspendedReason, sub)

	events, wantDuring := numberedEvents(ns+"/app", "held", before, before+during)
	p.postAll(t, events, during) // still queued for a suspended subscription
	want = append(want, wantDuring...)

	// The attempts started before the suspension end; then nothing more is
	// attempted, and everything is held.
	NewWithT(t).Eventually(func(g Gomega) {
		n, err := p.attemptsFinished()
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(n).To(BeNumerically("==", rcv.Snapshot().Requests), "attempts finished vs requests received")
	}, statusTimeout, poll).Should(Succeed())
	p.waitMetric(t, "kubehook_deliveries_total", result("held"), BeNumerically(">=", during))
	p.waitStatus(t, key, func(g Gomega, s *kubehookv1.WebhookSubscription) {
		g.Expect(s.Status.Backlog).To(BeNumerically("==", before+during), "status.backlog")
	})
	suspended := rcv.Snapshot()
	attempted := len(want) - len(rcv.Missing(want))
	if attempted >= before {
		t.Fatalf("every delivery was attempted before the suspension took effect; nothing was queued: the test proves nothing")
	}
	t.Logf("suspended after %s: %d of %d deliveries attempted (%d requests), the rest queued; %d posted while suspended",
		time.Since(begin).Round(time.Millisecond), attempted, before, suspended.Requests, during)

	// A success now would leave the queue: a held delivery attempted by
	// mistake would show in the backlog as well as at the endpoint. Over
	// three status sync periods every waiting retry (backoffMax 1s) comes
	// due, and must be held too.
	rcv.SetStatus(http.StatusOK)
	NewWithT(t).Consistently(func(g Gomega) {
		g.Expect(rcv.Snapshot().Requests).To(Equal(suspended.Requests), "requests while suspended")
		s := &kubehookv1.WebhookSubscription{}
		g.Expect(k8s.Get(t.Context(), key, s)).To(Succeed())
		g.Expect(s.Status.Backlog).To(BeNumerically("==", before+during), "status.backlog while suspended")
	}, 3*time.Second, 250*time.Millisecond).Should(Succeed())
	p.checkNoneDropped(t)

	copies := rcv.CopiesOf(want)
	resumed := time.Now()
	updateSubscription(t, key, func(s *kubehookv1.WebhookSubscription) { s.Spec.Suspend = false })
	waitSubscriptionsReady(t, sub)
	if _, err := rcv.Await(apiTimeout, func(kubehooktest.ReceiverStats) bool { return len(rcv.NotAgain(want, copies)) == 0 }, p.Running); err != nil {
		left := rcv.NotAgain(want, copies)
		t.Fatalf("after resuming: %v; %d of %d deliveries not attempted again, e.g. %s", err, len(left), len(want), firstN(left, 5))
	}
	t.Logf("every delivery arrived %s after resuming", time.Since(resumed).Round(time.Millisecond))

	p.waitStatus(t, key, func(g Gomega, s *kubehookv1.WebhookSubscription) {
		g.Expect(s.Status.Backlog).To(BeZero(), "status.backlog")
		g.Expect(s.Status.DeadLetters).To(BeZero(), "status.deadLetters")
	})
	p.checkNoneDropped(t)
	if s := rcv.Snapshot(); len(s.IDChanged) > 0 {
		t.Errorf("%d retries carried another webhook-id than their first attempt, e.g. %s", len(s.IDChanged), s.IDChanged[0])
	}
	t.Logf("test took %s", time.Since(begin).Round(time.Millisecond))
}
