package delivery

import (
	"context"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/kubehooktest"
)

// TestClusterRangesAndDeniedRangesAreRefused: the binary refuses endpoints
// in a Node's Pod range and in the control plane's ServiceCIDR (its
// --service-cluster-ip-range), and in a --deny-endpoint-cidrs range even
// though --allow-endpoint-cidrs holds it; each test delivery says why.
func TestClusterRangesAndDeniedRangesAreRefused(t *testing.T) {
	ns := newNamespace(t)
	nodeName := ns + "-node"
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: nodeName},
		Spec:       corev1.NodeSpec{PodCIDRs: []string{"198.51.100.0/24"}},
	}
	if err := k8s.Create(context.Background(), node); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), node) })

	// The harness allows 127.0.0.0/8; one address of it is denied.
	p := start(t, kubehooktest.WithFlags("--deny-endpoint-cidrs=127.0.0.2/32"))

	for name, tc := range map[string]struct{ endpoint, reason string }{
		"pod":     {"http://198.51.100.9:8080/hook", "(cluster Pod range)"},
		"service": {"http://10.0.0.10/hook", "(cluster Service range)"},
		"denied":  {"http://127.0.0.2:9/hook", "(denied by --deny-endpoint-cidrs)"},
	} {
		sub := kubehooktest.TagPushSubscription(ns, name, ns, tc.endpoint)
		createSubscriptions(t, sub)
		waitSubscriptionsReady(t, sub)
		annotate(t, client.ObjectKeyFromObject(sub), kubehookv1.TestAnnotation, "1")
		p.waitStatus(t, client.ObjectKeyFromObject(sub), func(g Gomega, s *kubehookv1.WebhookSubscription) {
			g.Expect(s.Status.LastTest).NotTo(BeNil())
			g.Expect(s.Status.LastTest.Request).To(Equal("1"))
			g.Expect(s.Status.LastTest.Message).To(ContainSubstring(tc.reason))
			g.Expect(strings.Contains(s.Status.LastTest.Message, "not allowed")).To(BeTrue())
		})
	}
}
