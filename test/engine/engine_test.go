package engine

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/kubehook/kubehook/internal/intake"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onsi/gomega"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"k8s.io/apimachinery/pkg/types"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/dispatcher"
	"github.com/kubehook/kubehook/internal/payload"
	"github.com/kubehook/kubehook/internal/queue"
	"github.com/kubehook/kubehook/internal/sender"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

// receiver is an endpoint that records what it is sent and answers with
// the codes given, then 200.
type receiver struct {
	*httptest.Server
	mu    sync.Mutex
	codes []int
	got   chan received
}

type received struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T, codes ...int) *receiver {
	r := &receiver{codes: codes, got: make(chan received, 100)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.got <- received{header: req.Header.Clone(), body: body}
		r.mu.Lock()
		code := http.StatusOK
		if len(r.codes) > 0 {
			code, r.codes = r.codes[0], r.codes[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) next(t *testing.T) received {
	t.Helper()
	select {
	case got := <-r.got:
		return got
	case <-time.After(20 * time.Second):
		t.Fatal("nothing received")
		return received{}
	}
}

// reporter hands outcomes to the test.
type reporter chan dispatcher.Outcome

func (r reporter) Report(o dispatcher.Outcome) { r <- o }

func (r reporter) next(t *testing.T) dispatcher.Outcome {
	t.Helper()
	select {
	case o := <-r:
		return o
	case <-time.After(20 * time.Second):
		t.Fatal("no outcome")
		return dispatcher.Outcome{}
	}
}

type harness struct {
	reg      *subscriptions.Registry
	queue    *queue.Queue
	pub      *intake.Publisher
	outcomes reporter
	// cancel tells the dispatcher to stop (as SIGTERM would); stop also
	// waits for it and returns what Start returned.
	cancel context.CancelFunc
	stop   func() error
}

func start(t *testing.T) *harness {
	return startWith(t, dispatcher.Options{GracePeriod: 5 * time.Second})
}

// startWith runs the engine on a fresh queue, the sender allowed to reach
// loopback receivers; it stops when the test ends.
func startWith(t *testing.T, opts dispatcher.Options) *harness {
	t.Helper()
	return startWithQueue(t, queue.Config{}, opts)
}

// startWithQueue is startWith on a queue configured by qc (DataDir is the
// test's).
func startWithQueue(t *testing.T, qc queue.Config, opts dispatcher.Options) *harness {
	t.Helper()
	qc.DataDir = t.TempDir()
	q, err := queue.Open(context.Background(), qc)
	if err != nil {
		t.Fatal(err)
	}
	reg := subscriptions.New()
	out := make(reporter, 100)
	s := sender.New(sender.Options{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	d := dispatcher.New(q, reg, s, out, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Start(ctx) }()
	var once sync.Once
	var stopErr error
	stop := func() error {
		once.Do(func() { cancel(); stopErr = <-done })
		return stopErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
		q.Close()
	})
	return &harness{reg: reg, queue: q, pub: &intake.Publisher{Registry: reg, Queue: q}, outcomes: out, cancel: cancel, stop: stop}
}

func (h *harness) subscribe(name string, t kubehookv1.EventType, key, endpoint string, mod ...func(*subscriptions.Subscription)) *subscriptions.Subscription {
	spec := kubehookv1.WebhookSubscriptionSpec{Type: t, Key: key, Endpoint: endpoint}
	s := &subscriptions.Subscription{
		ID:  types.NamespacedName{Namespace: "acme", Name: name},
		UID: types.UID("uid-" + name), Type: t, Key: key, Endpoint: endpoint,
		PayloadFormat: kubehookv1.PayloadFormatDTR, Delivery: subscriptions.DeliveryFor(&spec),
	}
	for _, m := range mod {
		m(s)
	}
	h.reg.Upsert(s)
	return s
}

func tagPush(t *testing.T, repo string) intake.Event {
	ns, name := subscriptions.SplitRepository(repo)
	ev, err := payload.NewEvent(kubehookv1.TagPush, time.Now(), payload.TagPush{
		Namespace: ns, Repository: name, Tag: "v1", Digest: "sha256:0afb3b5a5a7a1c1d8b0c0f3e2d1c0b9a8f7e6d5c4b3a29181716151413121110",
	})
	if err != nil {
		t.Fatal(err)
	}
	return intake.Event{Repository: repo, Payload: ev}
}

func TestDeliversSignedToEveryMatchingSubscriptionOnly(t *testing.T) {
	h := start(t)
	key := make([]byte, 32)
	exact, ns, other := newReceiver(t), newReceiver(t), newReceiver(t)
	h.subscribe("exact", kubehookv1.TagPush, "acme/web", exact.URL, func(s *subscriptions.Subscription) { s.SigningKeys = [][]byte{key} })
	h.subscribe("ns", kubehookv1.TagPush, "acme", ns.URL)
	h.subscribe("other", kubehookv1.TagPush, "acme/api", other.URL)

	n, err := h.pub.Publish(context.Background(), tagPush(t, "acme/web"))
	if err != nil || n != 2 {
		t.Fatalf("Publish = %d, %v; want 2 deliveries", n, err)
	}
	got := exact.next(t)
	wh, err := standardwebhooks.NewWebhook("whsec_" + base64.StdEncoding.EncodeToString(key))
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(got.body, got.header); err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}
	var body struct {
		Type     string          `json:"type"`
		Contents json.RawMessage `json:"contents"`
	}
	if err := json.Unmarshal(got.body, &body); err != nil || body.Type != "TAG_PUSH" {
		t.Fatalf("body %s: %v", got.body, err)
	}
	ns.next(t)
	for range 2 {
		if o := h.outcomes.next(t); !o.OK || o.Attempts != 1 {
			t.Fatalf("outcome %+v", o)
		}
	}
	select {
	case r := <-other.got:
		t.Fatalf("subscription for another repository received %s", r.body)
	default:
	}
}

func TestRetriesKeepTheWebhookIDUntilSuccess(t *testing.T) {
	h := start(t)
	r := newReceiver(t, http.StatusServiceUnavailable)
	h.subscribe("flaky", kubehookv1.TagPush, "acme", r.URL, func(s *subscriptions.Subscription) {
		s.Delivery.BackoffDelay = 100 * time.Millisecond
	})
	if _, err := h.pub.Publish(context.Background(), tagPush(t, "acme/web")); err != nil {
		t.Fatal(err)
	}
	first, second := r.next(t), r.next(t)
	if id := first.header.Get("webhook-id"); id == "" || id != second.header.Get("webhook-id") {
		t.Fatalf("webhook-id changed between attempts: %q then %q", id, second.header.Get("webhook-id"))
	}
	if o := h.outcomes.next(t); o.OK || o.StatusCode != 503 || o.Attempts != 1 {
		t.Fatalf("first outcome %+v", o)
	}
	if o := h.outcomes.next(t); !o.OK || o.Attempts != 2 {
		t.Fatalf("second outcome %+v", o)
	}
}

func TestExhaustedDeliveryIsDeadLettered(t *testing.T) {
	h := start(t)
	r := newReceiver(t, http.StatusInternalServerError)
	h.subscribe("broken", kubehookv1.TagPush, "acme", r.URL, func(s *subscriptions.Subscription) { s.Delivery.MaxAttempts = 1 })
	if _, err := h.pub.Publish(context.Background(), tagPush(t, "acme/web")); err != nil {
		t.Fatal(err)
	}
	if o := h.outcomes.next(t); o.OK || !o.DeadLettered {
		t.Fatalf("outcome %+v", o)
	}
	if n, err := h.queue.DeadLetters(context.Background()); err != nil || n != 1 {
		t.Fatalf("dead letters = %d, %v", n, err)
	}
	if n, err := h.queue.Pending(context.Background()); err != nil || n != 0 {
		t.Fatalf("pending = %d, %v", n, err)
	}
}

func TestGoneDeactivatesAtOnce(t *testing.T) {
	h := start(t)
	r := newReceiver(t, http.StatusGone)
	sub := h.subscribe("gone", kubehookv1.TagPush, "acme", r.URL)
	if _, err := h.pub.Publish(context.Background(), tagPush(t, "acme/web")); err != nil {
		t.Fatal(err)
	}
	if o := h.outcomes.next(t); !o.Deactivated || o.StatusCode != 410 {
		t.Fatalf("outcome %+v", o)
	}
	if e, _ := h.reg.Get(sub.ID); !e.Inactive {
		t.Fatal("registry entry still active")
	}
	if n, _ := h.pub.Publish(context.Background(), tagPush(t, "acme/web")); n != 0 {
		t.Fatalf("inactive subscription matched %d deliveries", n)
	}
}

// TestSuspendedSubscriptionHoldsItsDeliveriesUntilResumed: queued deliveries
// of a suspended subscription wait in the queue, not attempted and not
// dropped, and are delivered in order of arrival once it resumes.
func TestSuspendedSubscriptionHoldsItsDeliveriesUntilResumed(t *testing.T) {
	// One attempt at a time, so the order attempts start in is the order
	// they arrive in.
	h := startWith(t, dispatcher.Options{PerSubscription: 1})
	r := newReceiver(t)
	sub := h.subscribe("paused", kubehookv1.TagPush, "acme", r.URL)
	paused := *sub
	paused.Suspended = true
	h.reg.Upsert(&paused)
	var events []intake.Event
	for i := range 5 {
		events = append(events, tagPushNumbered(t, "acme/web", i))
	}
	if n, err := h.pub.Publish(context.Background(), events...); err != nil || n != 5 {
		t.Fatalf("Publish = %d, %v; want 5 queued for the suspended subscription", n, err)
	}
	g := gomega.NewWithT(t)
	g.Eventually(func() (int64, error) {
		c, err := h.queue.ParkedCount(context.Background(), sub.UID)
		return c, err
	}, 20*time.Second, 20*time.Millisecond).Should(gomega.BeEquivalentTo(5), "deliveries not held")
	g.Consistently(r.got, 300*time.Millisecond).ShouldNot(gomega.Receive(), "a suspended subscription was delivered to")

	resumed := *sub
	h.reg.Upsert(&resumed)
	for i := range 5 {
		got := r.next(t)
		if want := fmt.Sprintf(`"tag":"e-%d"`, i); !strings.Contains(string(got.body), want) {
			t.Fatalf("delivery %d after resume is %s, want %s: not in order of arrival", i, got.body, want)
		}
	}
	g.Eventually(func() (uint64, error) { return h.queue.Pending(context.Background()) }, 20*time.Second, 50*time.Millisecond).Should(gomega.BeZero())
}

// TestUnregisteredSubscriptionIsDroppedOnlyWhenGone: a delivery whose
// subscription is not in the registry is held while the API server says
// the object exists (not loaded yet), delivered once it is registered, and
// dropped only for an object that is gone.
func TestUnregisteredSubscriptionIsDroppedOnlyWhenGone(t *testing.T) {
	var exists sync.Map // UID -> bool
	h := startWith(t, dispatcher.Options{Exists: func(_ context.Context, _ types.NamespacedName, uid types.UID) (bool, error) {
		v, _ := exists.Load(uid)
		return v == true, nil
	}})
	r := newReceiver(t)
	later := h.subscribe("later", kubehookv1.TagPush, "acme", r.URL)
	gone := h.subscribe("gone", kubehookv1.TagPush, "acme", r.URL)
	exists.Store(later.UID, true)
	// As after a restart: the deliveries were queued by an earlier process,
	// and this one's registry has not loaded their subscriptions (yet).
	h.reg.Remove(later.ID)
	h.reg.Remove(gone.ID)
	earlier := subscriptions.New()
	earlier.Upsert(later)
	earlier.Upsert(gone)
	pub := &intake.Publisher{Registry: earlier, Queue: h.queue}
	if n, err := pub.Publish(context.Background(), tagPush(t, "acme/web")); err != nil || n != 2 {
		t.Fatalf("Publish = %d, %v", n, err)
	}
	g := gomega.NewWithT(t)
	g.Eventually(func() (int64, error) { return h.queue.ParkedCount(context.Background(), later.UID) }, 20*time.Second, 20*time.Millisecond).
		Should(gomega.BeEquivalentTo(1), "the delivery of an existing subscription was not held")
	g.Eventually(func() (int64, error) { return h.queue.ParkedCount(context.Background(), gone.UID) }, 20*time.Second, 20*time.Millisecond).
		Should(gomega.BeZero())
	h.reg.Upsert(later)
	r.next(t)
	g.Eventually(func() (uint64, error) { return h.queue.Pending(context.Background()) }, 20*time.Second, 50*time.Millisecond).Should(gomega.BeZero())
	g.Consistently(r.got, 300*time.Millisecond).ShouldNot(gomega.Receive(), "the deleted subscription's delivery was attempted")
}

// TestSuspendingABusyLineHoldsTheRestAndResumesOnce: a subscription whose
// backlog is on its own line (parked, being read) is suspended mid-way: the
// line stops, what is unread stays held, and after resuming every delivery
// arrives exactly once.
func TestSuspendingABusyLineHoldsTheRestAndResumesOnce(t *testing.T) {
	h := startWith(t, dispatcher.Options{PerSubscription: 1})
	gate := make(chan struct{}, 100)
	var mu sync.Mutex
	seen := map[string]int{}
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-gate
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen[string(body)]++
		mu.Unlock()
	}))
	defer slow.Close()
	sub := h.subscribe("busy", kubehookv1.TagPush, "acme", slow.URL)
	const n = 20
	var events []intake.Event
	for i := range n {
		events = append(events, tagPushNumbered(t, "acme/web", i))
	}
	if _, err := h.pub.Publish(context.Background(), events...); err != nil {
		t.Fatal(err)
	}
	g := gomega.NewWithT(t)
	// One attempt is in flight, the rest wait on the line.
	g.Eventually(func() (int64, error) { return h.queue.ParkedCount(context.Background(), sub.UID) }, 20*time.Second, 20*time.Millisecond).
		Should(gomega.BeNumerically(">=", n-2))
	for range 3 {
		gate <- struct{}{}
	}
	paused := *sub
	paused.Suspended = true
	h.reg.Upsert(&paused)
	for range n {
		gate <- struct{}{} // no more than what was in flight may pass while suspended
	}
	delivered := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen)
	}
	g.Consistently(delivered, 500*time.Millisecond, 50*time.Millisecond).Should(gomega.BeNumerically("<", n), "a suspended subscription kept being delivered to")
	resumed := *sub
	h.reg.Upsert(&resumed)
	g.Eventually(delivered, 30*time.Second, 50*time.Millisecond).Should(gomega.Equal(n))
	g.Eventually(func() (uint64, error) { return h.queue.Pending(context.Background()) }, 20*time.Second, 50*time.Millisecond).Should(gomega.BeZero())
	mu.Lock()
	defer mu.Unlock()
	for body, c := range seen {
		if c != 1 {
			t.Errorf("delivered %d times: %s", c, body)
		}
	}
}

// TestHeldDeliveriesAreBounded: beyond MaxHeld, a suspended subscription's
// deliveries go to its dead letters (reason held-limit) instead of piling
// up; the held ones are delivered after resume.
func TestHeldDeliveriesAreBounded(t *testing.T) {
	h := startWith(t, dispatcher.Options{MaxHeld: 3})
	r := newReceiver(t)
	sub := h.subscribe("paused", kubehookv1.TagPush, "acme", r.URL, func(s *subscriptions.Subscription) { s.Suspended = true })
	ctx := context.Background()
	for i := range 5 {
		// One at a time, so the first three are held before the others come.
		if _, err := h.pub.Publish(ctx, tagPushNumbered(t, "acme/web", i)); err != nil {
			t.Fatal(err)
		}
		g := gomega.NewWithT(t)
		g.Eventually(func() (int64, error) {
			c, err := h.queue.Counts(ctx)
			n := c.Subscriptions[sub.UID]
			return n.DeadLetters + n.Backlog, err
		}, 20*time.Second, 20*time.Millisecond).Should(gomega.BeEquivalentTo(i + 1))
	}
	g := gomega.NewWithT(t)
	g.Eventually(func() ([]queue.DeadLetter, error) { return h.queue.DeadLettersOf(ctx, sub.UID, 0) }, 20*time.Second, 20*time.Millisecond).
		Should(gomega.HaveLen(2))
	kept, _ := h.queue.DeadLettersOf(ctx, sub.UID, 0)
	for _, dl := range kept {
		if dl.Reason != queue.ReasonHeldLimit {
			t.Errorf("dead letter %s has reason %q, want %q", dl.ID, dl.Reason, queue.ReasonHeldLimit)
		}
	}
	resumed := *sub
	resumed.Suspended = false
	h.reg.Upsert(&resumed)
	for range 3 {
		r.next(t)
	}
	g.Eventually(func() (uint64, error) { return h.queue.Pending(ctx) }, 20*time.Second, 50*time.Millisecond).Should(gomega.BeZero())
}
