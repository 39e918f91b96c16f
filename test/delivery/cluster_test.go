package delivery

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/kubehooktest"
)

const (
	// apiTimeout bounds waiting for the controller to act on an object.
	apiTimeout = 30 * time.Second
	poll       = 100 * time.Millisecond
)

var (
	// cp is the control plane TestMain starts; its admin kubeconfig is
	// the one the kubehook children use, as a user points kubehook at a
	// cluster.
	cp *kubehooktest.ControlPlane
	// k8s is cp's admin client.
	k8s client.WithWatch
)

// newNamespace creates a namespace of its own for a test. Its generated
// name is also a valid registry namespace, so subscriptions in it may use
// the registry namespace of the same name.
func newNamespace(t *testing.T) string {
	t.Helper()
	return cp.NewNamespace(t, "delivery")
}

// subscribe creates the TAG_PUSH subscription name of ns, keyed to repo
// and delivering to rcv, with delivery (nil: the defaults), and waits
// until it is Ready.
func subscribe(t *testing.T, ns, name, repo string, rcv *kubehooktest.Receiver, delivery *kubehookv1.DeliverySpec) (*kubehookv1.WebhookSubscription, client.ObjectKey) {
	t.Helper()
	sub := kubehooktest.TagPushSubscription(ns, name, repo, rcv.Endpoint(name))
	sub.Spec.Delivery = delivery
	createSubscriptions(t, sub)
	waitSubscriptionsReady(t, sub)
	return sub, client.ObjectKeyFromObject(sub)
}

// createSubscriptions creates subs through the API server.
func createSubscriptions(t *testing.T, subs ...*kubehookv1.WebhookSubscription) {
	t.Helper()
	for _, sub := range subs {
		if err := k8s.Create(context.Background(), sub); err != nil {
			t.Fatalf("creating WebhookSubscription %s/%s: %v", sub.Namespace, sub.Name, err)
		}
	}
}

// updateSubscription applies mutate to the current object and updates it,
// retrying on conflicts with the controller's status writes.
func updateSubscription(t *testing.T, key client.ObjectKey, mutate func(*kubehookv1.WebhookSubscription)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sub := &kubehookv1.WebhookSubscription{}
		if err := k8s.Get(context.Background(), key, sub); err != nil {
			return err
		}
		mutate(sub)
		return k8s.Update(context.Background(), sub)
	})
	if err != nil {
		t.Fatalf("updating WebhookSubscription %s: %v", key, err)
	}
}

// waitSubscriptionsReady waits until every one of subs is Ready for its
// current generation: registered with the delivery engine.
func waitSubscriptionsReady(t *testing.T, subs ...*kubehookv1.WebhookSubscription) {
	t.Helper()
	waitReadyCondition(t, metav1.ConditionTrue, kubehookv1.SucceededReason, subs...)
}

// waitReadyCondition waits until the Ready condition of every one of subs
// has status and reason for the object's current generation. The failure
// names the subscriptions still short of it.
func waitReadyCondition(t *testing.T, status metav1.ConditionStatus, reason string, subs ...*kubehookv1.WebhookSubscription) {
	t.Helper()
	byNamespace := map[string][]string{}
	for _, sub := range subs {
		byNamespace[sub.Namespace] = append(byNamespace[sub.Namespace], sub.Name)
	}
	NewWithT(t).Eventually(func(g Gomega) {
		var pending []string
		for ns, names := range byNamespace {
			var list kubehookv1.WebhookSubscriptionList
			g.Expect(k8s.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
			got := map[string]*kubehookv1.WebhookSubscription{}
			for i := range list.Items {
				got[list.Items[i].Name] = &list.Items[i]
			}
			for _, name := range names {
				if why := kubehooktest.ReadyShortOf(got[name], status, reason); why != "" {
					pending = append(pending, ns+"/"+name+": "+why)
				}
			}
		}
		slices.Sort(pending)
		g.Expect(pending).To(BeEmpty(), "%d subscriptions not Ready=%s (%s):\n%s",
			len(pending), status, reason, strings.Join(pending[:min(len(pending), 10)], "\n"))
	}, apiTimeout, poll).Should(Succeed())
}
