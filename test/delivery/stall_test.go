package delivery

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/kubehooktest"
)

// TestStalledOnAMissingSecretHoldsDeliveriesUntilItIsBack: a subscription
// whose signing Secret is deleted (a rotation by delete and create, or a
// GitOps sync applying the Secret after the subscription) is Stalled; the
// events published meanwhile are queued and held, and all arrive once the
// Secret exists again.
func TestStalledOnAMissingSecretHoldsDeliveriesUntilItIsBack(t *testing.T) {
	const (
		delivered = 5  // before the Secret goes
		stalled   = 20 // while it is missing
	)
	begin := time.Now()
	ctx := context.Background()
	ns := newNamespace(t)
	rcv := kubehooktest.NewReceiver(t)
	p := start(t)

	secret := signingSecret(ns, "hook-key")
	if err := k8s.Create(ctx, secret.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	sub := kubehooktest.TagPushSubscription(ns, "signed", ns+"/app", rcv.Endpoint("signed"))
	sub.Spec.SigningSecretRef = &kubehookv1.SecretReference{Name: secret.Name}
	createSubscriptions(t, sub)
	waitSubscriptionsReady(t, sub)
	key := client.ObjectKeyFromObject(sub)

	events, want := numberedEvents(ns+"/app", "signed", 0, delivered)
	p.postAll(t, events, delivered)
	if _, err := rcv.Await(apiTimeout, func(s kubehooktest.ReceiverStats) bool { return s.Arrived == delivered }, p.Running); err != nil {
		t.Fatalf("with the Secret: %v", err)
	}

	if err := k8s.Delete(ctx, secret.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	waitReadyCondition(t, metav1.ConditionFalse, kubehookv1.SecretNotFoundReason, sub)
	s := p.waitStatus(t, key, func(g Gomega, s *kubehookv1.WebhookSubscription) {
		g.Expect(apimeta.IsStatusConditionTrue(s.Status.Conditions, kubehookv1.StalledCondition)).To(BeTrue(), "Stalled condition")
	})
	t.Logf("stalled: %s", apimeta.FindStatusCondition(s.Status.Conditions, kubehookv1.StalledCondition).Message)

	events, wantStalled := numberedEvents(ns+"/app", "signed", delivered, delivered+stalled)
	p.postAll(t, events, stalled) // still queued for a stalled subscription
	want = append(want, wantStalled...)
	// Held: moved to the subscription's line, not attempted.
	p.waitMetric(t, "kubehook_deliveries_total", result("held"), BeNumerically("==", stalled))
	p.waitStatus(t, key, func(g Gomega, s *kubehookv1.WebhookSubscription) {
		g.Expect(s.Status.Backlog).To(BeNumerically("==", stalled), "status.backlog")
	})
	if n := rcv.Snapshot().Requests; n != delivered {
		t.Fatalf("%d requests arrived while the Secret was missing; want none beyond the %d before", n-delivered, delivered)
	}
	p.checkNoneDropped(t)

	fixed := time.Now()
	if err := k8s.Create(ctx, secret.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	waitSubscriptionsReady(t, sub)
	if _, err := rcv.Await(apiTimeout, func(s kubehooktest.ReceiverStats) bool { return s.Arrived == len(want) }, p.Running); err != nil {
		missing := rcv.Missing(want)
		t.Fatalf("after recreating the Secret: %v; %d of %d deliveries never arrived, e.g. %s", err, len(missing), len(want), firstN(missing, 5))
	}
	t.Logf("the %d held deliveries arrived %s after the Secret was recreated", stalled, time.Since(fixed).Round(time.Millisecond))

	p.waitStatus(t, key, func(g Gomega, s *kubehookv1.WebhookSubscription) {
		g.Expect(s.Status.Backlog).To(BeZero(), "status.backlog")
		g.Expect(s.Status.DeadLetters).To(BeZero(), "status.deadLetters")
		g.Expect(apimeta.FindStatusCondition(s.Status.Conditions, kubehookv1.StalledCondition)).To(BeNil(), "Stalled condition")
	})
	p.checkNoneDropped(t)
	if got := rcv.Snapshot(); got.Duplicates > 0 || got.Malformed > 0 {
		t.Errorf("%d duplicates and %d malformed requests; want none", got.Duplicates, got.Malformed)
	}
	t.Logf("test took %s", time.Since(begin).Round(time.Millisecond))
}

// signingSecret is a Secret holding one Standard Webhooks signing secret.
func signingSecret(ns, name string) *corev1.Secret {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Data:       map[string][]byte{"current": []byte("whsec_" + base64.StdEncoding.EncodeToString(key))},
	}
}
