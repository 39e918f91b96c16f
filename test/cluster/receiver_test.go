package cluster

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"sync"
	"testing"
	"time"
)

// pair is one delivery: an event (its tag) at a subscription (the last
// element of its endpoint's path).
type pair struct{ sub, event string }

func (p pair) String() string { return p.event + " at " + p.sub }

// receiver is the endpoint of the test's subscriptions, one path per
// subscription. It records every request as it arrives (per pair: the
// copies and the webhook-id of the first, so duplicates can be told from
// redeliveries under a new ID) and which pairs it answered 200 to a
// sender still waiting: a request whose sender died before the answer
// does not count as delivered.
type receiver struct {
	*httptest.Server
	delay   time.Duration
	slots   chan struct{} // bounds the requests answered at once
	changed chan struct{} // signalled after every recorded request or answer

	mu    sync.Mutex
	pairs map[pair]*pairRecord
	stats receiverStats
	// inFlight and mostInFlight count, per subscription, the requests
	// being served: now, and at most at once.
	inFlight, mostInFlight map[string]int
}

type pairRecord struct {
	firstID  string
	copies   int
	answered bool
}

// receiverStats are a receiver's figures.
type receiverStats struct {
	requests   int      // every request
	arrived    int      // pairs received at least once
	answered   int      // pairs answered 200 at least once
	duplicates int      // requests for a pair already received
	malformed  int      // requests whose body names no event
	idChanged  []string // duplicates that carried another webhook-id than their first copy
}

// newReceiver starts a receiver that answers 200 after delay, at most
// concurrent requests at once (the others wait their turn, their arrival
// recorded at once); it is closed at the end of the test.
func newReceiver(t *testing.T, delay time.Duration, concurrent int) *receiver {
	r := &receiver{
		delay:   delay,
		slots:   make(chan struct{}, concurrent),
		changed: make(chan struct{}, 1),
		pairs:   map[pair]*pairRecord{},

		inFlight: map[string]int{}, mostInFlight: map[string]int{},
	}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

// endpoint is the URL a subscription named sub delivers to.
func (r *receiver) endpoint(sub string) string { return r.URL + "/hooks/" + sub }

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	event, ok := tagKey(body)
	p := pair{sub: path.Base(req.URL.Path), event: event}
	r.arrive(p, ok && err == nil, req.Header.Get("webhook-id"))
	defer r.serving(p.sub, -1)
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	// A request whose sender is gone (killed) frees its slot unanswered.
	select {
	case r.slots <- struct{}{}:
		defer func() { <-r.slots }()
	case <-req.Context().Done():
		return
	}
	select {
	case <-time.After(r.delay):
	case <-req.Context().Done():
		return
	}
	r.answer(p)
	w.WriteHeader(http.StatusOK)
}

func (r *receiver) arrive(p pair, ok bool, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.requests++
	r.inFlight[p.sub]++
	r.mostInFlight[p.sub] = max(r.mostInFlight[p.sub], r.inFlight[p.sub])
	switch rec := r.pairs[p]; {
	case !ok:
		r.stats.malformed++
	case rec == nil:
		r.pairs[p] = &pairRecord{firstID: id, copies: 1}
		r.stats.arrived++
	default:
		rec.copies++
		r.stats.duplicates++
		if id != rec.firstID {
			r.stats.idChanged = append(r.stats.idChanged, fmt.Sprintf("%s: %q then %q", p, rec.firstID, id))
		}
	}
	r.signal()
}

func (r *receiver) answer(p pair) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rec := r.pairs[p]; !rec.answered {
		rec.answered = true
		r.stats.answered++
	}
	r.signal()
}

// serving counts a request to sub in or out of those being served.
func (r *receiver) serving(sub string, delta int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inFlight[sub] += delta
}

// most returns the most requests to sub it served at once.
func (r *receiver) most(sub string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mostInFlight[sub]
}

func (r *receiver) signal() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// snapshot returns the receiver's figures so far.
func (r *receiver) snapshot() receiverStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.idChanged = append([]string(nil), s.idChanged...)
	return s
}

// unanswered returns the pairs of want never answered, in want's order,
// and how many of them never even arrived.
func (r *receiver) unanswered(want []pair) (out []pair, neverArrived int) {
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

// checkInterval is how often await runs its checks.
const checkInterval = 500 * time.Millisecond

// await waits until done holds for the receiver's figures, checked at once
// and after every change. Every checkInterval it also runs checks: the
// first error ends the wait with that error, as does the timeout.
func (r *receiver) await(timeout time.Duration, done func(receiverStats) bool, checks ...func() error) (receiverStats, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(checkInterval)
	defer tick.Stop()
	for {
		s := r.snapshot()
		if done(s) {
			return s, nil
		}
		select {
		case <-r.changed:
		case <-tick.C:
			for _, check := range checks {
				if err := check(); err != nil {
					return r.snapshot(), err
				}
			}
		case <-deadline.C:
			return r.snapshot(), fmt.Errorf("still waiting after %s", timeout)
		}
	}
}

// tagKey names a request's event: contents.tag of the DTR wrapper.
func tagKey(body []byte) (string, bool) {
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
