package delivery

import (
	"errors"
	"fmt"
	"testing"
	"time"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/kubehooktest"
)

const (
	backlogSubscriptions = 50
	// backlogEvents are posted once; event n is pushed to repository
	// repo-<n mod backlogSubscriptions>, so it is one delivery to that
	// repository's subscription.
	backlogEvents = 2000
	// backlogKillAt is how many deliveries arrive before the SIGKILL.
	backlogKillAt = backlogEvents * 2 / 5
)

// errQueueEmpty ends a wait once kubehook's queue holds nothing more to deliver.
var errQueueEmpty = errors.New("kubehook's queue is empty: nothing more will arrive")

// TestKilledKubehookDeliversTheBacklog: kubehook killed with SIGKILL in the
// middle of a backlog, and restarted on the same data directory, delivers
// every delivery it had accepted. The subscriptions exist throughout, so
// the restarted process must not drop any, however early it starts
// consuming. Deliveries that arrive twice carry the webhook-id of their
// first copy, so receivers can deduplicate.
func TestKilledKubehookDeliversTheBacklog(t *testing.T) {
	begin := time.Now()
	ns := newNamespace(t)
	// A slow endpoint, so a large backlog is queued when the process dies.
	rcv := kubehooktest.NewReceiver(t, kubehooktest.AnswerAfter(200*time.Millisecond), kubehooktest.MaxConcurrent(32))
	first := start(t)

	subs := make([]*kubehookv1.WebhookSubscription, backlogSubscriptions)
	for i := range subs {
		name := fmt.Sprintf("repo-%d", i)
		subs[i] = kubehooktest.TagPushSubscription(ns, name, ns+"/"+name, rcv.Endpoint(name))
	}
	createSubscriptions(t, subs...)
	waitSubscriptionsReady(t, subs...)
	t.Logf("%d subscriptions ready after %s", len(subs), time.Since(begin).Round(time.Millisecond))

	events := make([]kubehooktest.NativeEvent, backlogEvents)
	want := make([]kubehooktest.Pair, backlogEvents)
	for n := range events {
		repo := fmt.Sprintf("repo-%d", n%backlogSubscriptions)
		events[n] = kubehooktest.TagPushEvent(ns+"/"+repo, n)
		want[n] = kubehooktest.Pair{Sub: repo, Event: kubehooktest.NumberedTag(n)}
	}
	posted := time.Now()
	got := first.postInBatches(t, events, 50)
	if got.Accepted != backlogEvents || got.Deliveries != backlogEvents {
		t.Fatalf("accepted %d events with %d deliveries; want %d of each", got.Accepted, got.Deliveries, backlogEvents)
	}
	t.Logf("%d events accepted (202) in %s", got.Accepted, time.Since(posted).Round(time.Millisecond))

	if _, err := rcv.Await(60*time.Second, func(s kubehooktest.ReceiverStats) bool { return s.Arrived >= backlogKillAt }, first.Running); err != nil {
		s := rcv.Snapshot()
		t.Fatalf("before the kill: %v; %d of %d deliveries arrived", err, s.Arrived, backlogEvents)
	}
	first.Kill(t)
	killed := rcv.Snapshot()
	t.Logf("SIGKILL after %s: %d of %d deliveries arrived (%d requests)",
		time.Since(posted).Round(time.Millisecond), killed.Arrived, backlogEvents, killed.Requests)

	restarted := time.Now()
	second := first.restart(t)
	// The queue gauge reads 0 before its first refresh: only a 0 after
	// something was pending means the queue ran empty.
	pendingSeen := false
	drained := func() error {
		n, err := second.Metric("kubehook_queue_pending", nil)
		switch {
		case err != nil: // not serving metrics yet
		case n > 0:
			pendingSeen = true
		case pendingSeen:
			return errQueueEmpty
		}
		return nil
	}
	done, waitErr := rcv.Await(75*time.Second, func(s kubehooktest.ReceiverStats) bool { return s.Arrived == backlogEvents }, second.Running, drained)
	dropped, err := second.Metric("kubehook_deliveries_total", map[string]string{"result": "dropped"})
	droppedFigure := fmt.Sprint(dropped)
	if err != nil {
		droppedFigure = "unreadable (" + err.Error() + ")"
	}
	missing := rcv.Missing(want)
	t.Logf("after the restart (%s): %d of %d deliveries arrived, %d lost; %d requests in all, %d duplicates; restarted kubehook's kubehook_deliveries_total{result=\"dropped\"} = %s; test took %s",
		time.Since(restarted).Round(time.Millisecond), done.Arrived, backlogEvents, len(missing),
		done.Requests, done.Duplicates, droppedFigure, time.Since(begin).Round(time.Millisecond))

	if len(missing) > 0 {
		t.Errorf("%d of %d accepted deliveries never arrived (%d had arrived before the SIGKILL; waiting ended: %v), e.g. %v; the restarted kubehook counted kubehook_deliveries_total{result=\"dropped\"} = %s",
			len(missing), backlogEvents, killed.Arrived, waitErr, missing[:min(len(missing), 5)], droppedFigure)
	}
	if err == nil && dropped != 0 {
		t.Errorf("the restarted kubehook dropped %v deliveries (kubehook_deliveries_total{result=\"dropped\"}), although every subscription exists", dropped)
	}
	if len(done.IDChanged) > 0 {
		t.Errorf("%d duplicates carried another webhook-id than their first copy, e.g. %s", len(done.IDChanged), done.IDChanged[0])
	}
	if done.Malformed > 0 {
		t.Errorf("%d requests named no event", done.Malformed)
	}
}
