package controllers

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/dispatcher"
	"github.com/kubehook/kubehook/internal/intake"
	"github.com/kubehook/kubehook/internal/outcomes"
	"github.com/kubehook/kubehook/internal/payload"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

// endpoint answers with the queued codes, then 200, and records bodies.
type endpoint struct {
	*httptest.Server
	mu     sync.Mutex
	codes  []int
	bodies chan []byte
	hits   atomic.Int64
}

func newEndpoint(t *testing.T, codes ...int) *endpoint {
	e := &endpoint{codes: codes, bodies: make(chan []byte, 100_000)}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		e.hits.Add(1)
		e.mu.Lock()
		code := http.StatusOK
		if len(e.codes) > 0 {
			code, e.codes = e.codes[0], e.codes[1:]
		}
		e.mu.Unlock()
		select {
		case e.bodies <- body:
		default:
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *endpoint) setCodes(codes ...int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.codes = codes
}

func publishTagPush(g Gomega, repo string) {
	ns, name, _ := cutRepo(repo)
	ev, err := payload.NewEvent(kubehookv1.TagPush, time.Now(), payload.TagPush{Namespace: ns, Repository: name, Tag: "v1"})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = publisher.Publish(context.Background(), intake.Event{Repository: repo, Payload: ev})
	g.Expect(err).NotTo(HaveOccurred())
}

func cutRepo(repo string) (string, string, bool) {
	for i := range repo {
		if repo[i] == '/' {
			return repo[:i], repo[i+1:], true
		}
	}
	return repo, "", false
}

func fastRetries(sub *kubehookv1.WebhookSubscription) {
	delay := metav1.Duration{Duration: 100 * time.Millisecond}
	sub.Spec.Delivery = &kubehookv1.DeliverySpec{BackoffDelay: &delay}
}

func get(g Gomega, sub *kubehookv1.WebhookSubscription) *kubehookv1.WebhookSubscription {
	got := &kubehookv1.WebhookSubscription{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(sub), got)).To(Succeed())
	return got
}

func TestStatusFollowsDeliveryOutcomes(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t, "acme", nil)
	ep := newEndpoint(t, http.StatusServiceUnavailable)
	sub := newSub(ns, "flaky", ns)
	sub.Spec.Endpoint = ep.URL
	fastRetries(sub)
	g.Expect(k8sClient.Create(context.Background(), sub)).To(Succeed())
	waitReady(g, sub, metav1.ConditionTrue, kubehookv1.SucceededReason)

	publishTagPush(g, ns+"/web")
	// The failure is a transition, written at once.
	g.Eventually(func(g Gomega) {
		got := get(g, sub)
		g.Expect(got.Status.ConsecutiveFailures).To(BeEquivalentTo(1))
		g.Expect(got.Status.LastFailure).NotTo(BeNil())
		g.Expect(got.Status.LastFailure.StatusCode).To(BeEquivalentTo(503))
		g.Expect(got.Status.FailingSince).NotTo(BeNil())
		g.Expect(got.Status.LastAttemptAt).NotTo(BeNil())
		ready := apimeta.FindStatusCondition(got.Status.Conditions, kubehookv1.ReadyCondition)
		g.Expect(ready.Status).To(Equal(metav1.ConditionTrue)) // retrying is not broken
		g.Expect(ready.Message).To(ContainSubstring("failing since"))
	}, timeout, interval).Should(Succeed())
	// The retry succeeds: the first success is written at once, the streak ends.
	g.Eventually(func(g Gomega) {
		got := get(g, sub)
		g.Expect(got.Status.LastSuccessfulAt).NotTo(BeNil())
		g.Expect(got.Status.FailingSince).To(BeNil())
		g.Expect(got.Status.ConsecutiveFailures).To(BeZero())
		g.Expect(got.Status.Inactive).To(BeFalse())
		ready := apimeta.FindStatusCondition(got.Status.Conditions, kubehookv1.ReadyCondition)
		g.Expect(ready.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(ready.Message).NotTo(ContainSubstring("failing"))
	}, timeout, interval).Should(Succeed())
	g.Expect(ep.hits.Load()).To(BeEquivalentTo(2))
}

func TestGoneDeactivatesUntilReactivated(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "acme", nil)
	ep := newEndpoint(t, http.StatusGone)
	sub := newSub(ns, "gone", ns)
	sub.Spec.Endpoint = ep.URL
	g.Expect(k8sClient.Create(ctx, sub)).To(Succeed())
	waitReady(g, sub, metav1.ConditionTrue, kubehookv1.SucceededReason)

	publishTagPush(g, ns+"/web")
	got := waitReady(g, sub, metav1.ConditionFalse, kubehookv1.InactiveReason)
	g.Expect(got.Status.Inactive).To(BeTrue())
	g.Expect(got.Status.LastFailure.StatusCode).To(BeEquivalentTo(410))
	g.Eventually(func(g Gomega) {
		g.Expect(eventReasons(g, ns, sub.Name)).To(ContainElement(kubehookv1.InactiveReason))
	}, timeout, interval).Should(Succeed())

	// Inactive: new events are not even queued for it.
	n, err := publisher.Publish(ctx, tagPushEvent(g, ns+"/web"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(n).To(BeZero())

	// A new value of kubehook.io/reactivate makes it active again.
	got.Annotations = map[string]string{kubehookv1.ReactivateAnnotation: "fixed-the-endpoint"}
	g.Expect(k8sClient.Update(ctx, got)).To(Succeed())
	got = waitReady(g, sub, metav1.ConditionTrue, kubehookv1.SucceededReason)
	g.Expect(got.Status.Inactive).To(BeFalse())
	g.Expect(got.Status.LastHandledReactivate).To(Equal("fixed-the-endpoint"))
	publishTagPush(g, ns+"/web")
	g.Eventually(func(g Gomega) {
		g.Expect(get(g, sub).Status.LastSuccessfulAt).NotTo(BeNil())
	}, timeout, interval).Should(Succeed())

	// Deactivated again, then a spec change reactivates it too.
	ep.setCodes(http.StatusGone)
	publishTagPush(g, ns+"/web")
	got = waitReady(g, sub, metav1.ConditionFalse, kubehookv1.InactiveReason)
	got.Spec.Endpoint = ep.URL + "/v2"
	g.Expect(k8sClient.Update(ctx, got)).To(Succeed())
	got = waitReady(g, sub, metav1.ConditionTrue, kubehookv1.SucceededReason)
	g.Expect(got.Status.Inactive).To(BeFalse())
}

func tagPushEvent(g Gomega, repo string) intake.Event {
	ns, name, _ := cutRepo(repo)
	ev, err := payload.NewEvent(kubehookv1.TagPush, time.Now(), payload.TagPush{Namespace: ns, Repository: name, Tag: "v1"})
	g.Expect(err).NotTo(HaveOccurred())
	return intake.Event{Repository: repo, Payload: ev}
}

func TestTestAnnotationSendsTheSamplePayloadOncePerValue(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "acme", nil)
	ep := newEndpoint(t)
	sub := newSub(ns, "tested", ns)
	sub.Spec.Type = kubehookv1.ScanCompleted
	sub.Spec.Endpoint = ep.URL
	sub.Annotations = map[string]string{kubehookv1.TestAnnotation: "1"}
	g.Expect(k8sClient.Create(ctx, sub)).To(Succeed())

	want, _, err := payload.Render(kubehookv1.PayloadFormatDTR, payload.Sample(kubehookv1.ScanCompleted), "", "")
	g.Expect(err).NotTo(HaveOccurred())
	var first []byte
	g.Eventually(ep.bodies, timeout).Should(Receive(&first))
	g.Expect(first).To(MatchJSON(want))
	g.Eventually(func(g Gomega) {
		lt := get(g, sub).Status.LastTest
		g.Expect(lt).NotTo(BeNil())
		g.Expect(lt.Request).To(Equal("1"))
		g.Expect(lt.StatusCode).To(BeEquivalentTo(200))
		g.Expect(lt.SentAt).NotTo(BeNil())
	}, timeout, interval).Should(Succeed())

	// Another annotation change with the same test value sends nothing.
	got := get(g, sub)
	got.Annotations["team.example.com/owner"] = "payments"
	g.Expect(k8sClient.Update(ctx, got)).To(Succeed())
	// A new value sends the very same sample again.
	got = get(g, sub)
	got.Annotations[kubehookv1.TestAnnotation] = "2"
	g.Expect(k8sClient.Update(ctx, got)).To(Succeed())
	var second []byte
	g.Eventually(ep.bodies, timeout).Should(Receive(&second))
	g.Expect(second).To(Equal(first))
	g.Eventually(func() string { return get(g, sub).Status.LastTest.Request }, timeout, interval).Should(Equal("2"))
	g.Expect(ep.hits.Load()).To(BeEquivalentTo(2))
}

// TestStatusWritesAreCoalescedUnderLoad drives 1,000 deliveries per second
// to one subscription for 30 seconds through the real engine and counts the
// writes of its status.
func TestStatusWritesAreCoalescedUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("30 seconds of load")
	}
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "acme", nil)
	ep := newEndpoint(t)
	sub := newSub(ns, "busy", ns)
	sub.Spec.Endpoint = ep.URL
	g.Expect(k8sClient.Create(ctx, sub)).To(Succeed())
	ready := waitReady(g, sub, metav1.ConditionTrue, kubehookv1.SucceededReason)

	w, err := k8sClient.Watch(ctx, &kubehookv1.WebhookSubscriptionList{}, client.InNamespace(ns),
		&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: ready.ResourceVersion}})
	g.Expect(err).NotTo(HaveOccurred())
	defer w.Stop()
	var writes atomic.Int64
	go func() {
		for ev := range w.ResultChan() {
			if ev.Type == watch.Modified {
				writes.Add(1)
			}
		}
	}()

	const perSecond, seconds, batch = 1000, 30, 50
	tick := time.NewTicker(time.Second / (perSecond / batch))
	defer tick.Stop()
	start := time.Now()
	events := make([]intake.Event, batch)
	for sent := 0; sent < perSecond*seconds; sent += batch {
		<-tick.C
		for i := range events {
			events[i] = tagPushEvent(g, ns+"/web")
		}
		_, err := publisher.Publish(ctx, events...)
		g.Expect(err).NotTo(HaveOccurred())
	}
	elapsed := time.Since(start)
	g.Eventually(ep.hits.Load, timeout, interval).Should(BeEquivalentTo(perSecond * seconds))
	n := writes.Load()
	t.Logf("%d deliveries in %s, %d status writes", ep.hits.Load(), elapsed.Round(time.Millisecond), n)
	g.Expect(n).To(BeNumerically("<=", 4), "status writes during 30 s at 1,000 deliveries/s")
	g.Expect(get(g, sub).Status.LastSuccessfulAt).NotTo(BeNil())
}

// A reconcile woken by a deactivation may read a cached object older than
// the reconciler's own last status write. It must neither undo the
// deactivation in the engine nor write status computed from that object.
func TestStaleReadNeverUndoesADeactivation(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "acme", nil)
	sub := newSub(ns, "stale", ns)
	g.Expect(k8sClient.Create(ctx, sub)).To(Succeed())
	stale := sub.DeepCopy() // as created: no status, observedGeneration 0
	waitReady(g, sub, metav1.ConditionTrue, kubehookv1.SucceededReason)

	// An engine of its own, so the suite's manager does not interfere.
	ownTracker := outcomes.New(time.Hour)
	ownTracker.Report(dispatcher.Outcome{
		Subscription: client.ObjectKeyFromObject(sub), UID: sub.UID, At: time.Now(),
		StatusCode: http.StatusGone, Message: "HTTP 410", Deactivated: true,
	})
	staleClient := interceptor.NewClient(k8sClient, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if w, ok := obj.(*kubehookv1.WebhookSubscription); ok && key == client.ObjectKeyFromObject(sub) {
				stale.DeepCopyInto(w)
				return nil
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
	r := &WebhookSubscriptionReconciler{
		Client: staleClient, SecretReader: k8sClient, Recorder: events.NewFakeRecorder(10),
		Registry: subscriptions.New(), Outcomes: ownTracker, Tenancy: true,
	}
	res, err := r.Reconcile(ctx, reqFor(ns, sub.Name))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(res.RequeueAfter).To(BeNumerically(">", 0), "a conflicting status patch runs again")
	st, ok := ownTracker.Get(client.ObjectKeyFromObject(sub))
	g.Expect(ok).To(BeTrue())
	g.Expect(st.Deactivated).To(BeTrue(), "the engine's deactivation survives the stale read")
	g.Expect(get(g, sub).Status.Inactive).To(BeFalse(), "nothing was written from the stale object")

	// Once the read is current, the deactivation is written.
	r.Client = k8sClient
	_, err = r.Reconcile(ctx, reqFor(ns, sub.Name))
	g.Expect(err).NotTo(HaveOccurred())
	got := get(g, sub)
	g.Expect(got.Status.Inactive).To(BeTrue())
	g.Expect(apimeta.FindStatusCondition(got.Status.Conditions, kubehookv1.ReadyCondition).Reason).To(Equal(kubehookv1.InactiveReason))
}
