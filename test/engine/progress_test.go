package engine

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/dispatcher"
	"github.com/kubehook/kubehook/internal/queue"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

// An attempt that outlasts the queue's ack wait tells JetStream it is still
// in progress, so the delivery is not handed out, and sent, a second time.
func TestSlowAttemptIsNotRedeliveredWhileInProgress(t *testing.T) {
	g := NewWithT(t)
	const ackWait = time.Second
	release := make(chan struct{})
	var hits atomic.Int64
	ep := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		<-release
	}))
	defer ep.Close()
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()

	h := startWithQueue(t, queue.Config{AckWait: ackWait}, dispatcher.Options{GracePeriod: 5 * time.Second, ProgressInterval: ackWait / 4})
	h.subscribe("slow", kubehookv1.TagPush, "acme/web", ep.URL, func(s *subscriptions.Subscription) {
		s.Delivery.Timeout = time.Minute
	})
	_, err := h.pub.Publish(context.Background(), tagPush(t, "acme/web"))
	g.Expect(err).NotTo(HaveOccurred())

	g.Eventually(hits.Load, 10*time.Second, 10*time.Millisecond).Should(BeEquivalentTo(1))
	// Without progress reports the delivery would come back after ackWait.
	g.Consistently(hits.Load, 3*ackWait, 50*time.Millisecond).Should(BeEquivalentTo(1))

	close(release)
	released = true
	o := h.outcomes.next(t)
	g.Expect(o.OK).To(BeTrue())
	g.Expect(o.Attempts).To(Equal(1))
	g.Expect(hits.Load()).To(BeEquivalentTo(1))
}
