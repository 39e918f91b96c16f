package delivery

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

// pair is one delivery: an event (its key, see receiver) at a
// subscription (the last element of its endpoint's path).
type pair struct{ sub, event string }

func (p pair) String() string { return p.event + " at " + p.sub }

// receiver is the endpoint of a test's subscriptions, one path per
// subscription (endpoint). It records every request as it arrives,
// whatever it then answers: per pair, how many copies came and the
// webhook-id of the first, so duplicates can be told apart from
// redeliveries under a new ID.
type receiver struct {
	*httptest.Server
	delay time.Duration
	slots chan struct{} // bounds the requests answered at once; nil: no bound
	key   func(body []byte) (string, bool)
	// status is what the receiver answers.
	status atomic.Int32
	// changed is signalled after every recorded request.
	changed chan struct{}

	mu    sync.Mutex
	pairs map[pair]*pairRecord
	stats receiverStats
}

type pairRecord struct {
	firstID string
	copies  int
}

// receiverStats are a receiver's figures.
type receiverStats struct {
	requests   int      // every request
	distinct   int      // pairs received at least once
	duplicates int      // requests for a pair already received
	malformed  int      // requests whose body names no event
	idChanged  []string // duplicates that carried another webhook-id than their first copy
}

// receiverOption configures newReceiver.
type receiverOption func(*receiver)

// answerAfter makes a slow endpoint: each request is answered d after it
// got one of the answering slots.
func answerAfter(d time.Duration) receiverOption {
	return func(r *receiver) { r.delay = d }
}

// maxConcurrent answers at most n requests at once; the others wait
// their turn (their arrival is recorded at once).
func maxConcurrent(n int) receiverOption {
	return func(r *receiver) { r.slots = make(chan struct{}, n) }
}

// eventKey sets how a request body names its event; by default the key is
// contents.tag of the DTR wrapper (see numberedTag).
func eventKey(key func(body []byte) (string, bool)) receiverOption {
	return func(r *receiver) { r.key = key }
}

// newReceiver starts a receiver answering 200, closed at the end of the test.
func newReceiver(t *testing.T, opts ...receiverOption) *receiver {
	r := &receiver{key: tagKey, changed: make(chan struct{}, 1), pairs: map[pair]*pairRecord{}}
	r.status.Store(http.StatusOK)
	for _, o := range opts {
		o(r)
	}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

// endpoint is the URL a subscription named sub delivers to.
func (r *receiver) endpoint(sub string) string { return r.URL + "/hooks/" + sub }

// setStatus makes the receiver answer code from now on.
func (r *receiver) setStatus(code int) { r.status.Store(int32(code)) }

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	event, ok := r.key(body)
	r.record(pair{sub: path.Base(req.URL.Path), event: event}, ok && err == nil, req.Header.Get("webhook-id"))

	// A request kubehook gave up on (killed, timed out) frees its slot.
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
	w.WriteHeader(int(r.status.Load()))
}

func (r *receiver) record(p pair, ok bool, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.requests++
	switch rec := r.pairs[p]; {
	case !ok:
		r.stats.malformed++
	case rec == nil:
		r.pairs[p] = &pairRecord{firstID: id, copies: 1}
		r.stats.distinct++
	default:
		rec.copies++
		r.stats.duplicates++
		if id != rec.firstID {
			r.stats.idChanged = append(r.stats.idChanged, fmt.Sprintf("%s: %q then %q", p, rec.firstID, id))
		}
	}
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

// missing returns the pairs of want that never arrived, in want's order.
func (r *receiver) missing(want []pair) []pair {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []pair
	for _, p := range want {
		if r.pairs[p] == nil {
			out = append(out, p)
		}
	}
	return out
}

// checkInterval is how often await runs its checks.
const checkInterval = 500 * time.Millisecond

// await waits until done holds for the receiver's figures, checked at once
// and after every request it records. Every checkInterval it also runs
// checks: the first error (a kubehook process that exited, a queue that
// ran empty) ends the wait with that error, as does the timeout.
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

// tagKey is the default event key: contents.tag of the DTR wrapper.
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
