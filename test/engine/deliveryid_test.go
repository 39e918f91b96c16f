package engine

import (
	"context"
	"encoding/json"
	"github.com/kubehook/kubehook/internal/intake"
	"regexp"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/payload"
	"github.com/kubehook/kubehook/internal/queue"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

// derivedID is the shape of a delivery ID derived from an event's identity.
var derivedID = regexp.MustCompile(`^msg_[a-z2-7]{32}$`)

// queueOnly is a intake.Publisher on a fresh queue that nothing consumes, so what
// is pending is exactly what was stored.
type queueOnly struct {
	t     *testing.T
	reg   *subscriptions.Registry
	queue *queue.Queue
	pub   *intake.Publisher
}

func newQueueOnly(t *testing.T) *queueOnly {
	t.Helper()
	q, err := queue.Open(context.Background(), queue.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Close)
	reg := subscriptions.New()
	return &queueOnly{t: t, reg: reg, queue: q, pub: &intake.Publisher{Registry: reg, Queue: q}}
}

func (h *queueOnly) subscribe(name string, typ kubehookv1.EventType, key string) *subscriptions.Subscription {
	spec := kubehookv1.WebhookSubscriptionSpec{Type: typ, Key: key, Endpoint: "https://hooks.example.com/" + name}
	s := &subscriptions.Subscription{
		ID:  types.NamespacedName{Namespace: "acme", Name: name},
		UID: types.UID("uid-" + name), Type: typ, Key: key, Endpoint: spec.Endpoint,
		PayloadFormat: kubehookv1.PayloadFormatDTR, Delivery: subscriptions.DeliveryFor(&spec),
	}
	h.reg.Upsert(s)
	return s
}

// publish publishes events and returns how many deliveries are pending
// afterwards.
func (h *queueOnly) publish(events ...intake.Event) uint64 {
	h.t.Helper()
	if _, err := h.pub.Publish(context.Background(), events...); err != nil {
		h.t.Fatal(err)
	}
	n, err := h.queue.Pending(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

func withID(ev intake.Event, id string) intake.Event {
	ev.ID = id
	return ev
}

func TestResentEventIsQueuedOncePerSubscription(t *testing.T) {
	h := newQueueOnly(t)
	h.subscribe("web", kubehookv1.TagPush, "acme/web")
	h.subscribe("all", kubehookv1.TagPush, "")
	ev := withID(tagPush(t, "acme/web"), "test/notification-1")

	if n := h.publish(ev); n != 2 {
		t.Fatalf("%d deliveries pending after the first publish, want 2", n)
	}
	// A source's resend, in its own request or twice in one.
	if n := h.publish(ev); n != 2 {
		t.Fatalf("%d deliveries pending after a resend, want still 2", n)
	}
	if n := h.publish(ev, ev); n != 2 {
		t.Fatalf("%d deliveries pending after the event twice in one call, want still 2", n)
	}
	// Another source event, even with the same contents, is another delivery.
	if n := h.publish(withID(ev, "test/notification-2")); n != 4 {
		t.Fatalf("%d deliveries pending after another event, want 4", n)
	}
	// A subscription created since gets the resent event; the others do not
	// get it again.
	h.subscribe("ns", kubehookv1.TagPush, "acme")
	if n := h.publish(ev); n != 5 {
		t.Fatalf("%d deliveries pending after a resend to a new subscription, want 5", n)
	}
	// Events without identity are new every time, as before.
	anon := tagPush(t, "acme/web")
	if n := h.publish(anon, anon); n != 11 {
		t.Fatalf("%d deliveries pending after an event without ID twice, want 11", n)
	}
}

func TestEventsSplitFromOneSourceEventAreAllQueued(t *testing.T) {
	h := newQueueOnly(t)
	h.subscribe("tags", kubehookv1.TagPush, "acme")
	h.subscribe("manifests", kubehookv1.ManifestPush, "acme")
	h.subscribe("deleted", kubehookv1.RepoDeleted, "acme")
	h.subscribe("repo-events", kubehookv1.RepoEvent, "acme")
	h.subscribe("pushes", kubehookv1.TagPush, "")

	// One registry push gives TAG_PUSH and MANIFEST_PUSH under one ID.
	tag := withID(tagPush(t, "acme/web"), "test/push")
	manifest := withID(event(t, kubehookv1.ManifestPush, "acme/web", payload.ManifestPush{Namespace: "acme", Repository: "web", Digest: digest}), "test/push")
	if n := h.publish(tag, manifest); n != 3 {
		t.Fatalf("%d deliveries pending, want 3 (2 TAG_PUSH, 1 MANIFEST_PUSH)", n)
	}
	// REPO_DELETED to its subscriber, and as REPO_EVENT to the other.
	deleted := withID(event(t, kubehookv1.RepoDeleted, "acme/web", payload.RepoEvent{
		Namespace: "acme", Repository: "web", Event: payload.RepoEventDeleted, Data: json.RawMessage(`{}`),
	}), "test/delete")
	if n := h.publish(deleted, deleted); n != 5 {
		t.Fatalf("%d deliveries pending, want 5", n)
	}
}

func TestDeliveryIDIsDerivedFromEventTypeAndSubscription(t *testing.T) {
	ev := withID(tagPush(t, "acme/web"), "distribution/0123")
	id := intake.DeliveryID(&ev, kubehookv1.TagPush, "uid-a")
	if !derivedID.MatchString(id) {
		t.Fatalf("delivery ID %q is not msg_ and 32 lowercase base32 characters", id)
	}
	if again := intake.DeliveryID(&ev, kubehookv1.TagPush, "uid-a"); again != id {
		t.Fatalf("the same delivery got IDs %s and %s", id, again)
	}
	// Another copy of the event (a resend): created elsewhere, same ID.
	resent := withID(tagPush(t, "acme/web"), "distribution/0123")
	if got := intake.DeliveryID(&resent, kubehookv1.TagPush, "uid-a"); got != id {
		t.Fatalf("a resend got %s, the first %s", got, id)
	}

	repoEv := withID(event(t, kubehookv1.RepoDeleted, "acme/web", payload.RepoEvent{
		Namespace: "acme", Repository: "web", Event: payload.RepoEventDeleted, Data: json.RawMessage(`{}`),
	}), "distribution/0123")
	other := map[string]string{
		"another event":        intake.DeliveryID(new(withID(ev, "distribution/0124")), kubehookv1.TagPush, "uid-a"),
		"another source":       intake.DeliveryID(new(withID(ev, "harbor/0123")), kubehookv1.TagPush, "uid-a"),
		"another subscription": intake.DeliveryID(&ev, kubehookv1.TagPush, "uid-b"),
		"another event type":   intake.DeliveryID(new(withID(withType(ev, kubehookv1.ManifestPush), "distribution/0123")), kubehookv1.ManifestPush, "uid-a"),
		"REPO_DELETED":         intake.DeliveryID(&repoEv, kubehookv1.RepoDeleted, "uid-a"),
		"as REPO_EVENT":        intake.DeliveryID(&repoEv, kubehookv1.RepoEvent, "uid-a"),
		// Field boundaries matter: the ID's end is not the UID's start.
		"shifted fields": intake.DeliveryID(new(withID(ev, "distribution/0123uid")), kubehookv1.TagPush, "-a"),
	}
	seen := map[string]string{id: "the delivery"}
	for name, got := range other {
		if !derivedID.MatchString(got) {
			t.Fatalf("%s: delivery ID %q is not msg_ and 32 lowercase base32 characters", name, got)
		}
		if prev, ok := seen[got]; ok {
			t.Fatalf("%s has the delivery ID of %s: %s", name, prev, got)
		}
		seen[got] = name
	}

	// Without identity, every delivery is new.
	anon := tagPush(t, "acme/web")
	if a, b := intake.DeliveryID(&anon, kubehookv1.TagPush, "uid-a"), intake.DeliveryID(&anon, kubehookv1.TagPush, "uid-a"); a == b || derivedID.MatchString(a) {
		t.Fatalf("deliveries of an event without ID got %s and %s, want two random IDs", a, b)
	}
}

func TestWebhookIDOfADeliveryIsTheDerivedID(t *testing.T) {
	h := start(t)
	r := newReceiver(t)
	sub := h.subscribe("web", kubehookv1.TagPush, "acme/web", r.URL)
	ev := withID(tagPush(t, "acme/web"), "test/notification-1")
	for range 2 { // the source's resend
		if n, err := h.pub.Publish(context.Background(), ev); err != nil || n != 1 {
			t.Fatalf("Publish = %d, %v; want 1 delivery", n, err)
		}
	}
	got := r.next(t)
	if id, want := got.header.Get("webhook-id"), intake.DeliveryID(&ev, kubehookv1.TagPush, sub.UID); id != want {
		t.Fatalf("webhook-id = %q, want the derived %q", id, want)
	}
	if o := h.outcomes.next(t); !o.OK {
		t.Fatalf("outcome %+v", o)
	}
	select {
	case again := <-r.got:
		t.Fatalf("the resent event was delivered again, webhook-id %s", again.header.Get("webhook-id"))
	case <-time.After(time.Second):
	}
}

// BenchmarkDeliveryID compares a derived delivery ID with a random one
// (an event without identity), per delivery.
func BenchmarkDeliveryID(b *testing.B) {
	for _, bc := range []struct{ name, id string }{
		{"derived", "distribution/0d1c3a9e5b7f4e2a8c6d0b9a7f5e3c1d0b9a8f7e6d5c4b3a2918171615141312"},
		{"random", ""},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ev := withID(intake.Event{Payload: payload.Event{Type: kubehookv1.TagPush}}, bc.id)
			b.ReportAllocs()
			for b.Loop() {
				_ = intake.DeliveryID(&ev, kubehookv1.TagPush, "5b0a3f1e-7c2d-4e8f-9a6b-1c3d5e7f9a0b")
			}
		})
	}
}

const digest = "sha256:0afb3b5a5a7a1c1d8b0c0f3e2d1c0b9a8f7e6d5c4b3a29181716151413121110"

func event(t *testing.T, typ kubehookv1.EventType, repo string, contents any) intake.Event {
	t.Helper()
	ev, err := payload.NewEvent(typ, time.Now(), contents)
	if err != nil {
		t.Fatal(err)
	}
	return intake.Event{Repository: repo, Payload: ev}
}

func withType(ev intake.Event, typ kubehookv1.EventType) intake.Event {
	ev.Payload.Type = typ
	return ev
}
