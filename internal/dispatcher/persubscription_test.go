package dispatcher

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/types"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/metrics"
	"github.com/kubehook/kubehook/internal/queue"
	"github.com/kubehook/kubehook/internal/sender"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

// With per-subscription metrics on, each finished delivery is also counted
// under its subscription's namespace and name; a delivery dropped because
// its subscription is gone adds no series for it. Off (the default), no
// per-subscription series exist, and the counts by event type are the same.
func TestDeliveriesCountedPerSubscriptionOnlyWhenEnabled(t *testing.T) {
	for _, enabled := range []bool{true, false} {
		t.Run(map[bool]string{true: "enabled", false: "default"}[enabled], func(t *testing.T) {
			g := NewWithT(t)
			ctx := t.Context()
			metrics.SubscriptionDeliveriesTotal.Reset()
			q, err := queue.Open(ctx, queue.Config{DataDir: t.TempDir()})
			g.Expect(err).NotTo(HaveOccurred())
			defer q.Close()

			ok := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			defer ok.Close()
			failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
			defer failing.Close()

			reg := subscriptions.New()
			one := int32(1)
			newSub := func(name, endpoint string) *subscriptions.Subscription {
				spec := kubehookv1.WebhookSubscriptionSpec{Type: kubehookv1.TagPush, Key: "acme/web", Endpoint: endpoint,
					Delivery: &kubehookv1.DeliverySpec{MaxAttempts: &one}}
				s := &subscriptions.Subscription{
					ID: types.NamespacedName{Namespace: "acme", Name: name}, UID: types.UID("uid-" + name),
					Type: spec.Type, Key: spec.Key, Endpoint: spec.Endpoint,
					PayloadFormat: kubehookv1.PayloadFormatDTR, Delivery: subscriptions.DeliveryFor(&spec),
				}
				reg.Upsert(s)
				return s
			}
			good, bad := newSub("good", ok.URL), newSub("bad", failing.URL)
			gone := types.NamespacedName{Namespace: "acme", Name: "deleted"}

			var per *metrics.PerSubscription
			if enabled {
				per = metrics.NewPerSubscription()
			}
			out := make(outcomes, 10)
			d := New(q, reg, sender.New(sender.Options{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}), out,
				Options{GracePeriod: time.Second, PerSubscriptionMetrics: per})
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- d.Start(runCtx) }()
			defer func() { stop(); <-done }()

			typed := func(result string) float64 {
				return testutil.ToFloat64(metrics.DeliveriesTotal.WithLabelValues(string(kubehookv1.TagPush), result))
			}
			dropped := typed(metrics.ResultDropped)
			event := []byte(`{"type":"TAG_PUSH","createdAt":"2026-01-01T00:00:00Z","contents":{}}`)
			g.Expect(q.Publish(ctx, []queue.Delivery{
				{ID: "msg_good_" + t.Name(), Subscription: good.ID, SubscriptionUID: good.UID, EventType: string(kubehookv1.TagPush), Event: event},
				{ID: "msg_bad_" + t.Name(), Subscription: bad.ID, SubscriptionUID: bad.UID, EventType: string(kubehookv1.TagPush), Event: event},
				{ID: "msg_gone_" + t.Name(), Subscription: gone, SubscriptionUID: "uid-deleted", EventType: string(kubehookv1.TagPush), Event: event},
			})).To(Succeed())
			for range 2 {
				select {
				case <-out:
				case <-time.After(20 * time.Second):
					t.Fatal("missing outcome")
				}
			}
			g.Eventually(func() float64 { return typed(metrics.ResultDropped) - dropped }, 10*time.Second, 10*time.Millisecond).Should(BeEquivalentTo(1))

			perSub := func(id types.NamespacedName, result string) float64 {
				return testutil.ToFloat64(metrics.SubscriptionDeliveriesTotal.WithLabelValues(id.Namespace, id.Name, result))
			}
			if !enabled {
				g.Expect(testutil.CollectAndCount(metrics.SubscriptionDeliveriesTotal)).To(BeZero())
				return
			}
			g.Eventually(func() float64 { return perSub(bad.ID, metrics.ResultDeadLetter) }, 10*time.Second, 10*time.Millisecond).Should(BeEquivalentTo(1))
			g.Expect(perSub(good.ID, metrics.ResultSuccess)).To(BeEquivalentTo(1))
			// good/success, bad/dead_letter; the read above created no other.
			g.Expect(testutil.CollectAndCount(metrics.SubscriptionDeliveriesTotal)).To(Equal(2))
		})
	}
}
