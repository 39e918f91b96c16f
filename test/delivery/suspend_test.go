package delivery

import (
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
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
	rcv := newReceiver(t, answerAfter(300*time.Millisecond))
	rcv.setStatus(http.StatusInternalServerError)
	p := start(t)
	p.waitReady(t)

	sub := tagPushSubscription(ns, "held", ns+"/app", rcv.endpoint("held"))
	sub.Spec.Delivery = fastRetries(100)
	createSubscriptions(t, sub)
	waitSubscriptionsReady(t, sub)
	key := client.ObjectKeyFromObject(sub)

	events, want := numberedEvents(ns+"/app", "held", 0, before)
	p.postAll(t, events, before)
	if _, err := rcv.await(apiTimeout, func(s receiverStats) bool { return s.requests >= 8 }, p.running); err != nil {
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
		g.Expect(n).To(BeNumerically("==", rcv.snapshot().requests), "attempts finished vs requests received")
	}, statusTimeout, poll).Should(Succeed())
	p.waitMetric(t, "kubehook_deliveries_total", result("held"), BeNumerically(">=", during))
	p.waitStatus(t, key, func(g Gomega, s *kubehookv1.WebhookSubscription) {
		g.Expect(s.Status.Backlog).To(BeNumerically("==", before+during), "status.backlog")
	})
	suspended := rcv.snapshot()
	attempted := len(want) - len(rcv.missing(want))
	if attempted >= before {
		t.Fatalf("every delivery was attempted before the suspension took effect; nothing was queued: the test proves nothing")
	}
	t.Logf("suspended after %s: %d of %d deliveries attempted (%d requests), the rest queued; %d posted while suspended",
		time.Since(begin).Round(time.Millisecond), attempted, before, suspended.requests, during)

	// A success now would leave the queue: a held delivery attempted by
	// mistake would show in the backlog as well as at the endpoint. Over
	// three status sync periods every waiting retry (backoffMax 1s) comes
	// due, and must be held too.
	rcv.setStatus(http.StatusOK)
	NewWithT(t).Consistently(func(g Gomega) {
		g.Expect(rcv.snapshot().requests).To(Equal(suspended.requests), "requests while suspended")
		s := &kubehookv1.WebhookSubscription{}
		g.Expect(k8s.Get(t.Context(), key, s)).To(Succeed())
		g.Expect(s.Status.Backlog).To(BeNumerically("==", before+during), "status.backlog while suspended")
	}, 3*time.Second, 250*time.Millisecond).Should(Succeed())
	p.checkNoneDropped(t)

	copies := rcv.copiesOf(want)
	resumed := time.Now()
	updateSubscription(t, key, func(s *kubehookv1.WebhookSubscription) { s.Spec.Suspend = false })
	waitSubscriptionsReady(t, sub)
	if _, err := rcv.await(apiTimeout, func(receiverStats) bool { return len(rcv.notAgain(want, copies)) == 0 }, p.running); err != nil {
		left := rcv.notAgain(want, copies)
		t.Fatalf("after resuming: %v; %d of %d deliveries not attempted again, e.g. %s", err, len(left), len(want), firstN(left, 5))
	}
	t.Logf("every delivery arrived %s after resuming", time.Since(resumed).Round(time.Millisecond))

	p.waitStatus(t, key, func(g Gomega, s *kubehookv1.WebhookSubscription) {
		g.Expect(s.Status.Backlog).To(BeZero(), "status.backlog")
		g.Expect(s.Status.DeadLetters).To(BeZero(), "status.deadLetters")
	})
	p.checkNoneDropped(t)
	if s := rcv.snapshot(); len(s.idChanged) > 0 {
		t.Errorf("%d retries carried another webhook-id than their first attempt, e.g. %s", len(s.idChanged), s.idChanged[0])
	}
	t.Logf("test took %s", time.Since(begin).Round(time.Millisecond))
}
