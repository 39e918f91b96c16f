package outcomes

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/kubehook/kubehook/internal/dispatcher"
)

var id = types.NamespacedName{Namespace: "acme", Name: "hook"}

func outcome(at time.Time, ok bool) dispatcher.Outcome {
	o := dispatcher.Outcome{Subscription: id, UID: "u1", At: at, OK: ok, Attempts: 1}
	if !ok {
		o.StatusCode, o.Message = 503, "HTTP 503"
	}
	return o
}

// wakes drains the wake-ups queued so far.
func wakes(t *Tracker) int {
	n := 0
	for {
		select {
		case <-t.Events():
			n++
		default:
			return n
		}
	}
}

func TestTransitionsWakeAtOnceTheRestWaitsForFlush(t *testing.T) {
	tr := New(10 * time.Second)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	tr.Report(outcome(t0, true)) // first success: at once
	if n := wakes(tr); n != 1 {
		t.Fatalf("first success woke %d times, want 1", n)
	}
	for i := 1; i <= 1000; i++ { // steady successes: coalesced
		tr.Report(outcome(t0.Add(time.Duration(i)*time.Millisecond), true))
	}
	if n := wakes(tr); n != 0 {
		t.Fatalf("steady successes woke %d times before the tick, want 0", n)
	}
	tr.Flush()
	if n := wakes(tr); n != 1 {
		t.Fatalf("flush woke %d times, want 1", n)
	}
	tr.Flush()
	if n := wakes(tr); n != 0 {
		t.Fatalf("flush without news woke %d times, want 0", n)
	}

	tr.Report(outcome(t0.Add(2*time.Second), false)) // success -> failure: at once
	tr.Report(outcome(t0.Add(3*time.Second), false)) // still failing: waits
	if n := wakes(tr); n != 1 {
		t.Fatalf("start of failure streak woke %d times, want 1", n)
	}
	s, _ := tr.Get(id)
	if s.ConsecutiveFailures != 2 || !s.FailingSince.Equal(t0.Add(2*time.Second)) || s.LastFailureCode != 503 {
		t.Fatalf("state = %+v", s)
	}
	if !s.LastSuccessAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("last success = %v", s.LastSuccessAt)
	}

	d := outcome(t0.Add(4*time.Second), false)
	d.Deactivated = true
	tr.Report(d) // deactivation: at once
	if n := wakes(tr); n != 1 {
		t.Fatalf("deactivation woke %d times, want 1", n)
	}
	tr.Report(outcome(t0.Add(5*time.Second), true)) // recovery: at once
	if n := wakes(tr); n != 1 {
		t.Fatalf("recovery woke %d times, want 1", n)
	}
	s, _ = tr.Get(id)
	if s.ConsecutiveFailures != 0 || !s.FailingSince.IsZero() || !s.Deactivated {
		t.Fatalf("after recovery state = %+v (deactivation stays until reactivated)", s)
	}
	tr.ClearStreak(id)
	if s, _ = tr.Get(id); s.Deactivated {
		t.Fatal("ClearDeactivated kept the deactivation")
	}
	tr.Forget(id)
	if _, ok := tr.Get(id); ok {
		t.Fatal("Forget kept the state")
	}
}

func TestRecreatedSubscriptionStartsFresh(t *testing.T) {
	tr := New(time.Second)
	t0 := time.Now()
	tr.Report(outcome(t0, false))
	o := outcome(t0.Add(time.Second), true)
	o.UID = "u2"
	tr.Report(o)
	s, _ := tr.Get(id)
	if s.UID != "u2" || s.ConsecutiveFailures != 0 || !s.LastFailureAt.IsZero() {
		t.Fatalf("state leaked across UIDs: %+v", s)
	}
}

func TestLongFailureMessageIsBounded(t *testing.T) {
	tr := New(time.Second)
	o := outcome(time.Now(), false)
	o.Message = string(make([]byte, 10_000))
	tr.Report(o)
	s, _ := tr.Get(id)
	if len(s.LastFailureMessage) > maxMessage+len("…") {
		t.Fatalf("message length %d", len(s.LastFailureMessage))
	}
}
