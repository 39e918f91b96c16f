package delivery

import (
	"context"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/kubehooktest"
)

// TestReactivationStartsAFreshFailureStreak: a subscription deactivated
// because its failure streak outlasted deactivateAfter, then reactivated
// with kubehook.io/reactivate, gets a full deactivateAfter again: its next
// failure starts a new streak instead of extending the old one, so it stays
// active. While it is inactive, its waiting retries go to the dead letters
// and new events are not queued for it.
func TestReactivationStartsAFreshFailureStreak(t *testing.T) {
	begin := time.Now()
	ctx := context.Background()
	ns := newNamespace(t)
	rcv := kubehooktest.NewReceiver(t)
	rcv.SetStatus(http.StatusInternalServerError)
	p := start(t)

	repo := ns + "/app"
	delivery := fastRetries(100)
	delivery.DeactivateAfter = &metav1.Duration{Duration: time.Minute}
	sub, key := subscribe(t, ns, "flaky", repo, rcv, delivery)

	// A streak that began two hours ago, as an earlier process recorded it:
	// the streak lives in status, so this process continues it.
	streakStart := metav1.NewTime(time.Now().Add(-2 * time.Hour).Truncate(time.Second))
	stored := &kubehookv1.WebhookSubscription{}
	if err := k8s.Get(ctx, key, stored); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(stored.DeepCopy())
	stored.Status.FailingSince = &streakStart
	stored.Status.ConsecutiveFailures = 1
	if err := k8s.Status().Patch(ctx, stored, patch); err != nil {
		t.Fatalf("recording an old failure streak: %v", err)
	}

	// One more failure: the streak is older than deactivateAfter.
	p.postAll(t, []kubehooktest.NativeEvent{kubehooktest.TagPushEvent(repo, 0)}, 1)
	waitReadyCondition(t, metav1.ConditionFalse, kubehookv1.InactiveReason, sub)
	p.waitStatus(t, key, func(g Gomega, s *kubehookv1.WebhookSubscription) {
		g.Expect(s.Status.Inactive).To(BeTrue(), "status.inactive")
		// Its retry, due within seconds, is kept rather than attempted.
		g.Expect(s.Status.DeadLetters).To(BeNumerically("==", 1), "status.deadLetters")
		g.Expect(s.Status.Backlog).To(BeZero(), "status.backlog")
	})
	p.waitMetric(t, "kubehook_dead_letters", map[string]string{"reason": "inactive"}, BeNumerically("==", 1))
	t.Logf("deactivated after %s, its waiting retry dead-lettered", time.Since(begin).Round(time.Millisecond))

	// As in DTR, an inactive subscription gets no new deliveries.
	p.postAll(t, []kubehooktest.NativeEvent{kubehooktest.TagPushEvent(repo, 1)}, 0)

	reactivated := metav1.NewTime(time.Now().Truncate(time.Second))
	annotate(t, key, kubehookv1.ReactivateAnnotation, "1")
	waitSubscriptionsReady(t, sub)
	p.waitStatus(t, key, func(g Gomega, s *kubehookv1.WebhookSubscription) {
		g.Expect(s.Status.Inactive).To(BeFalse(), "status.inactive")
		g.Expect(s.Status.FailingSince).To(BeNil(), "status.failingSince after reactivation")
		g.Expect(s.Status.ConsecutiveFailures).To(BeZero(), "status.consecutiveFailures after reactivation")
	})

	// Fails again: a new streak, seconds old, far from deactivateAfter.
	requestsBefore := rcv.Snapshot().Requests
	p.postAll(t, []kubehooktest.NativeEvent{kubehooktest.TagPushEvent(repo, 2)}, 1)
	s := p.waitStatus(t, key, func(g Gomega, s *kubehookv1.WebhookSubscription) {
		g.Expect(s.Status.Inactive || s.Status.ConsecutiveFailures >= 2).To(BeTrue(),
			"inactive, or two failures in status.consecutiveFailures (%d)", s.Status.ConsecutiveFailures)
	})
	if s.Status.Inactive {
		t.Fatalf("deactivated again at its first failures after the reactivation (status.failingSince %v, reactivated at %v)", s.Status.FailingSince, reactivated)
	}
	if s.Status.FailingSince == nil || s.Status.FailingSince.Before(&reactivated) {
		t.Errorf("status.failingSince = %v after failing again; want the new streak's start, not before the reactivation at %v", s.Status.FailingSince, reactivated)
	}
	if c := apimeta.FindStatusCondition(s.Status.Conditions, kubehookv1.ReadyCondition); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("Ready condition %+v while retrying; want True", c)
	}
	if n := rcv.Snapshot().Requests - requestsBefore; n < 2 {
		t.Errorf("%d attempts of the event after the reactivation reached the endpoint; want its failures", n)
	}

	// Retried, not dead-lettered: it arrives once the endpoint recovers.
	rcv.SetStatus(http.StatusOK)
	p.waitStatus(t, key, func(g Gomega, s *kubehookv1.WebhookSubscription) {
		g.Expect(s.Status.ConsecutiveFailures).To(BeZero(), "status.consecutiveFailures")
		g.Expect(s.Status.LastSuccessfulAt).NotTo(BeNil(), "status.lastSuccessfulAt")
		g.Expect(s.Status.Backlog).To(BeZero(), "status.backlog")
	})
	s = p.waitStatus(t, key, func(g Gomega, s *kubehookv1.WebhookSubscription) {
		g.Expect(s.Status.FailingSince).To(BeNil(), "status.failingSince after a success")
	})
	if s.Status.Inactive || s.Status.DeadLetters != 1 {
		t.Errorf("after the endpoint recovered: inactive %v, %d dead letters; want active, with only the first event's", s.Status.Inactive, s.Status.DeadLetters)
	}
	if m := rcv.Missing([]kubehooktest.Pair{{Sub: "flaky", Event: kubehooktest.NumberedTag(1)}}); len(m) == 0 {
		t.Errorf("the event published while the subscription was inactive was delivered; want it never queued")
	}
	p.checkNoneDropped(t)
	t.Logf("test took %s", time.Since(begin).Round(time.Millisecond))
}
