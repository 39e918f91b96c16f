package kubehooktest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Pair is one delivery: an event (its key, see EventKey) at a subscription
// (the last element of its endpoint's path).
type Pair struct{ Sub, Event string }

func (p Pair) String() string { return p.Event + " at " + p.Sub }

// Receiver is the endpoint of a test's subscriptions, one path per
// subscription (Endpoint). It records every request as it arrives,
// whatever it then answers: per pair, how many copies came and the
// webhook-id of the first, so duplicates can be told apart from
// redeliveries under a new ID. It also records which pairs it answered 2xx
// to a sender still waiting: a request whose sender died before the answer
// does not count as delivered.
type Receiver struct {
	*httptest.Server
	delay time.Duration
	slots chan struct{} // bounds the requests answered at once; nil: no bound
	key   func(body []byte) (string, bool)
	// status is what the receiver answers.
	status atomic.Int32
	// changed is signalled after every recorded request or answer.
	changed chan struct{}

	mu    sync.Mutex
	pairs map[Pair]*pairRecord
	stats ReceiverStats
	// inFlight and mostInFlight count, per subscription, the requests
	// being served: now, and at most at once.
	inFlight, mostInFlight map[string]int
}

type pairRecord struct {
	firstID  string
	copies   int
	answered bool
}

// ReceiverStats are a receiver's figures.
type ReceiverStats struct {
	Requests   int      // every request
	Arrived    int      // pairs received at least once
	Answered   int      // pairs answered 2xx at least once
	Duplicates int      // requests for a pair already received
	Malformed  int      // requests whose body names no event (answered 400)
	IDChanged  []string // duplicates that carried another webhook-id than their first copy
}

// ReceiverOption configures NewReceiver.
type ReceiverOption func(*Receiver)

// AnswerAfter makes a slow endpoint: each request is answered d after it
// got one of the answering slots.
func AnswerAfter(d time.Duration) ReceiverOption {
	return func(r *Receiver) { r.delay = d }
}

// MaxConcurrent answers at most n requests at once; the others wait their
// turn (their arrival is recorded at once).
func MaxConcurrent(n int) ReceiverOption {
	return func(r *Receiver) { r.slots = make(chan struct{}, n) }
}

// EventKey sets how a request body names its event; by default the key is
// contents.tag of the DTR wrapper (TagKey).
func EventKey(key func(body []byte) (string, bool)) ReceiverOption {
	return func(r *Receiver) { r.key = key }
}

// NewReceiver starts a receiver answering 200, closed at the end of the test.
func NewReceiver(t testing.TB, opts ...ReceiverOption) *Receiver {
	r := &Receiver{
		key:     TagKey,
		changed: make(chan struct{}, 1),
		pairs:   map[Pair]*pairRecord{},

		inFlight: map[string]int{}, mostInFlight: map[string]int{},
	}
	r.status.Store(http.StatusOK)
	for _, o := range opts {
		o(r)
	}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

// Endpoint is the URL a subscription named sub delivers to.
func (r *Receiver) Endpoint(sub string) string { return r.URL + "/hooks/" + sub }

// SetStatus makes the receiver answer code from now on.
func (r *Receiver) SetStatus(code int) { r.status.Store(int32(code)) }

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	event, ok := r.key(body)
	ok = ok && err == nil
	p := Pair{Sub: path.Base(req.URL.Path), Event: event}
	r.arrive(p, ok, req.Header.Get("webhook-id"))
	defer r.leave(p.Sub)
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	// A request kubehook gave up on (killed, timed out) frees its slot
	// unanswered.
	if r.slots != nil {
		select {
		case r.slots <- struct{}{}:
			defer func() { <-r.slots }()
		case <-req.Context().Done():
			return
		}
	}
	if r.delay > 0 {
		select {
		case <-time.After(r.delay):
		case <-req.Context().Done():
			return
		}
	}
	status := int(r.status.Load())
	if status >= 200 && status < 300 {
		r.answer(p)
	}
	w.WriteHeader(status)
}

func (r *Receiver) arrive(p Pair, ok bool, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.Requests++
	r.inFlight[p.Sub]++
	r.mostInFlight[p.Sub] = max(r.mostInFlight[p.Sub], r.inFlight[p.Sub])
	switch rec := r.pairs[p]; {
	case !ok:
		r.stats.Malformed++
	case rec == nil:
		r.pairs[p] = &pairRecord{firstID: id, copies: 1}
		r.stats.Arrived++
	default:
		rec.copies++
		r.stats.Duplicates++
		if id != rec.firstID {
			r.stats.IDChanged = append(r.stats.IDChanged, fmt.Sprintf("%s: %q then %q", p, rec.firstID, id))
		}
	}
	r.signal()
}

func (r *Receiver) answer(p Pair) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rec := r.pairs[p]; !rec.answered {
		rec.answered = true
		r.stats.Answered++
	}
	r.signal()
}

// leave counts a request to sub out of those being served.
func (r *Receiver) leave(sub string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inFlight[sub]--
}

func (r *Receiver) signal() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// MostInFlight returns the most requests to sub it served at once.
func (r *Receiver) MostInFlight(sub string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mostInFlight[sub]
}

// Snapshot returns the receiver's figures so far.
func (r *Receiver) Snapshot() ReceiverStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.IDChanged = append([]string(nil), s.IDChanged...)
	return s
}

// Missing returns the pairs of want that never arrived, in want's order.
func (r *Receiver) Missing(want []Pair) []Pair {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Pair
	for _, p := range want {
		if r.pairs[p] == nil {
			out = append(out, p)
		}
	}
	return out
}

// Unanswered returns the pairs of want never answered, in want's order,
// and how many of them never even arrived.
func (r *Receiver) Unanswered(want []Pair) (out []Pair, neverArrived int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range want {
		switch rec := r.pairs[p]; {
		case rec == nil:
			neverArrived++
			out = append(out, p)
		case !rec.answered:
			out = append(out, p)
		}
	}
	return out, neverArrived
}

// CopiesOf returns how many requests arrived so far for each of want.
func (r *Receiver) CopiesOf(want []Pair) map[Pair]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[Pair]int, len(want))
	for _, p := range want {
		if rec := r.pairs[p]; rec != nil {
			out[p] = rec.copies
		}
	}
	return out
}

// FirstIDs returns the webhook-id of the first request of each of want
// that arrived.
func (r *Receiver) FirstIDs(want []Pair) map[Pair]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[Pair]string, len(want))
	for _, p := range want {
		if rec := r.pairs[p]; rec != nil {
			out[p] = rec.firstID
		}
	}
	return out
}

// NotAgain returns the pairs of want with no more requests than before.
func (r *Receiver) NotAgain(want []Pair, before map[Pair]int) []Pair {
	now := r.CopiesOf(want)
	var out []Pair
	for _, p := range want {
		if now[p] <= before[p] {
			out = append(out, p)
		}
	}
	return out
}

// CheckInterval is how often Await runs its checks.
const CheckInterval = 500 * time.Millisecond

// Await waits until done holds for the receiver's figures, checked at once
// and after every change. Every CheckInterval it also runs checks: the
// first error (a kubehook process that exited, a queue that ran empty)
// ends the wait with that error, as does the timeout.
func (r *Receiver) Await(timeout time.Duration, done func(ReceiverStats) bool, checks ...func() error) (ReceiverStats, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(CheckInterval)
	defer tick.Stop()
	for {
		s := r.Snapshot()
		if done(s) {
			return s, nil
		}
		select {
		case <-r.changed:
		case <-tick.C:
			for _, check := range checks {
				if err := check(); err != nil {
					return r.Snapshot(), err
				}
			}
		case <-deadline.C:
			return r.Snapshot(), fmt.Errorf("still waiting after %s", timeout)
		}
	}
}

// TagKey is the default event key: contents.tag of the DTR wrapper.
func TagKey(body []byte) (string, bool) {
	var ev struct {
		Contents struct {
			Tag string `json:"tag"`
		} `json:"contents"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || ev.Contents.Tag == "" {
		return "", false
	}
	return ev.Contents.Tag, true
}
