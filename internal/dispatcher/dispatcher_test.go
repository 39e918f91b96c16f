package dispatcher

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/types"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/metrics"
	"github.com/kubehook/kubehook/internal/payload"
	"github.com/kubehook/kubehook/internal/queue"
	"github.com/kubehook/kubehook/internal/sender"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

type outcomes chan Outcome

func (o outcomes) Report(out Outcome) { o <- out }

// A subscription at its in-flight limit is parked; once its line has been
// idle for UnparkAfter it returns to the shared consumer, and its next
// deliveries are not parked.
func TestParkedSubscriptionReturnsToTheSharedConsumer(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	q, err := queue.Open(ctx, queue.Config{DataDir: t.TempDir()})
	g.Expect(err).NotTo(HaveOccurred())
	defer q.Close()

	release := make(chan struct{})
	var hits atomic.Int64
	ep := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		<-release
	}))
	defer ep.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	reg := subscriptions.New()
	spec := kubehookv1.WebhookSubscriptionSpec{Type: kubehookv1.TagPush, Key: "acme/web", Endpoint: ep.URL}
	sub := &subscriptions.Subscription{
		ID: types.NamespacedName{Namespace: "acme", Name: "slow"}, UID: "uid-slow",
		Type: spec.Type, Key: spec.Key, Endpoint: spec.Endpoint,
		PayloadFormat: kubehookv1.PayloadFormatDTR, Delivery: subscriptions.DeliveryFor(&spec),
	}
	reg.Upsert(sub)
	out := make(outcomes, 100)
	d := New(q, reg, sender.New(sender.Options{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}), out,
		Options{PerSubscription: 1, UnparkAfter: 200 * time.Millisecond, GracePeriod: time.Second})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Start(runCtx) }()
	defer func() { stop(); <-done }()

	var published int
	publish := func(n int) {
		var ds []queue.Delivery
		for range n {
			published++
			ev, err := payload.NewEvent(kubehookv1.TagPush, time.Now(), payload.TagPush{Namespace: "acme", Repository: "web", Tag: "v1"})
			g.Expect(err).NotTo(HaveOccurred())
			body, err := ev.MarshalJSON()
			g.Expect(err).NotTo(HaveOccurred())
			ds = append(ds, queue.Delivery{ID: fmt.Sprintf("msg_%d", published), Subscription: sub.ID, SubscriptionUID: sub.UID,
				EventType: string(ev.Type), Event: body})
		}
		g.Expect(q.Publish(ctx, ds)).To(Succeed())
	}
	parked := func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		st, ok := d.subs[sub.UID]
		return ok && st.parked
	}
	awaitOutcomes := func(n int) {
		for range n {
			select {
			case o := <-out:
				g.Expect(o.OK).To(BeTrue(), o.Message)
			case <-time.After(20 * time.Second):
				t.Fatalf("missing outcome; %d hits, parked %v", hits.Load(), parked())
			}
		}
	}

	// One in flight (the limit), the rest parked.
	before := testutil.ToFloat64(metrics.ParkedTotal)
	publish(4)
	g.Eventually(hits.Load, 10*time.Second, 10*time.Millisecond).Should(BeEquivalentTo(1))
	g.Eventually(func() float64 { return testutil.ToFloat64(metrics.ParkedTotal) - before }, 10*time.Second, 10*time.Millisecond).Should(BeNumerically(">=", 1))
	g.Expect(parked()).To(BeTrue())

	close(release)
	awaitOutcomes(4)
	g.Expect(hits.Load()).To(BeEquivalentTo(4))

	// Idle for UnparkAfter: back on the shared consumer.
	g.Eventually(parked, 10*time.Second, 20*time.Millisecond).Should(BeFalse())
	empty, err := q.ParkedEmpty(ctx, sub.UID)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(empty).To(BeTrue())

	// One delivery at a time stays within the limit: nothing more is parked.
	// (IDs are unique: the queue drops a delivery ID it has just seen.)
	parkedNow := testutil.ToFloat64(metrics.ParkedTotal)
	publish(1)
	awaitOutcomes(1)
	g.Expect(testutil.ToFloat64(metrics.ParkedTotal)).To(Equal(parkedNow))
	g.Expect(parked()).To(BeFalse())
}
