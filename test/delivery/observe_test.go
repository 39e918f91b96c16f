package delivery

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/kubehooktest"
)

// statusTimeout bounds waiting for a figure kubehook refreshes once per
// status sync period (1s in these tests), or for a retry to come due.
const statusTimeout = 30 * time.Second

// fastRetries is a delivery spec that retries within about a second (the
// queue schedules retries with a resolution of one second), so a test sees
// retries come due without waiting minutes.
func fastRetries(maxAttempts int32) *kubehookv1.DeliverySpec {
	return &kubehookv1.DeliverySpec{
		MaxAttempts:  &maxAttempts,
		BackoffDelay: &metav1.Duration{Duration: 100 * time.Millisecond},
		BackoffMax:   &metav1.Duration{Duration: time.Second},
	}
}

// waitStatus waits until check passes on the subscription as the API server
// stores it, and returns that object. It fails at once if p exits.
func (p *kubehook) waitStatus(t *testing.T, key client.ObjectKey, check func(g Gomega, sub *kubehookv1.WebhookSubscription)) *kubehookv1.WebhookSubscription {
	t.Helper()
	var got *kubehookv1.WebhookSubscription
	NewWithT(t).Eventually(func(g Gomega) {
		if err := p.Running(); err != nil {
			StopTrying(err.Error()).Now()
		}
		sub := &kubehookv1.WebhookSubscription{}
		g.Expect(k8s.Get(context.Background(), key, sub)).To(Succeed())
		check(g, sub)
		got = sub
	}, statusTimeout, poll).Should(Succeed())
	return got
}

// annotate sets annotation to value on the subscription, as a user with
// kubectl annotate --overwrite.
func annotate(t *testing.T, key client.ObjectKey, annotation, value string) {
	t.Helper()
	updateSubscription(t, key, func(sub *kubehookv1.WebhookSubscription) {
		if sub.Annotations == nil {
			sub.Annotations = map[string]string{}
		}
		sub.Annotations[annotation] = value
	})
}

// mustMetric reads a metric of p, failing the test if it cannot.
func (p *kubehook) mustMetric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	v, err := p.Metric(name, labels)
	if err != nil {
		t.Fatalf("reading %s%v: %v", name, labels, err)
	}
	return v
}

// waitMetric waits until the metric of p satisfies matcher.
func (p *kubehook) waitMetric(t *testing.T, name string, labels map[string]string, matcher OmegaMatcher) {
	t.Helper()
	NewWithT(t).Eventually(func(g Gomega) {
		if err := p.Running(); err != nil {
			StopTrying(err.Error()).Now()
		}
		v, err := p.Metric(name, labels)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(v).To(matcher, "%s%v", name, labels)
	}, statusTimeout, poll).Should(Succeed())
}

// result is the label set of one result of kubehook_deliveries_total.
func result(r string) map[string]string { return map[string]string{"result": r} }

// attemptsFinished is how many HTTP attempts p has finished, whatever their
// outcome: once it equals the requests an endpoint received, no attempt of
// p is in flight there.
func (p *kubehook) attemptsFinished() (float64, error) {
	var sum float64
	for _, r := range []string{"success", "retry", "dead_letter", "deactivated"} {
		v, err := p.Metric("kubehook_deliveries_total", result(r))
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// checkNoneDropped fails the test if p dropped any delivery: every
// subscription of these tests exists throughout.
func (p *kubehook) checkNoneDropped(t *testing.T) {
	t.Helper()
	if n := p.mustMetric(t, "kubehook_deliveries_total", result("dropped")); n != 0 {
		t.Errorf("kubehook dropped %v deliveries (kubehook_deliveries_total{result=\"dropped\"}), although their subscription exists", n)
	}
}

// numberedEvents returns TAG_PUSH events from..to-1 to repo and the pairs
// they make at the subscription sub.
func numberedEvents(repo, sub string, from, to int) ([]kubehooktest.NativeEvent, []kubehooktest.Pair) {
	events := make([]kubehooktest.NativeEvent, 0, to-from)
	pairs := make([]kubehooktest.Pair, 0, to-from)
	for n := from; n < to; n++ {
		events = append(events, kubehooktest.TagPushEvent(repo, n))
		pairs = append(pairs, kubehooktest.Pair{Sub: sub, Event: kubehooktest.NumberedTag(n)})
	}
	return events, pairs
}

// postAll posts events in one request and fails the test unless each was
// accepted with exactly wantDeliveries deliveries in all.
func (p *kubehook) postAll(t *testing.T, events []kubehooktest.NativeEvent, wantDeliveries int) {
	t.Helper()
	a, err := p.PostEvents(events...)
	if err != nil {
		t.Fatal(err)
	}
	if a.Accepted != len(events) || a.Deliveries != wantDeliveries {
		t.Fatalf("accepted %d events with %d deliveries; want %d events with %d deliveries", a.Accepted, a.Deliveries, len(events), wantDeliveries)
	}
}

// firstN shortens a list for a failure message.
func firstN[T any](s []T, n int) string {
	if len(s) <= n {
		return fmt.Sprint(s)
	}
	return fmt.Sprintf("%v (and %d more)", s[:n], len(s)-n)
}
