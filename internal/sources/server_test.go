package sources

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/types"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/intake"
	"github.com/kubehook/kubehook/internal/payload"
	"github.com/kubehook/kubehook/internal/queue"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

const (
	distToken   = "dist-token-5f0c1e2d3c4b5a69"
	harborToken = "harbor-token-0a1b2c3d4e5f6071"
	eventsToken = "events-token-9e8d7c6b5a493827"
)

var tokenOf = map[string]string{SourceDistribution: distToken, SourceHarbor: harborToken, SourceEvents: eventsToken}

// harness is the sources server in front of a real engine: the engine's
// Publisher on an embedded JetStream queue, and a registry of subscriptions
// for acme/web.
type harness struct {
	t      *testing.T
	dir    string
	queue  *queue.Queue
	reg    *subscriptions.Registry
	server *Server
	http   *httptest.Server

	consume    sync.Once
	deliveries chan queue.Delivery
}

type harnessOptions struct {
	tokens    map[string]string // source -> token file contents; nil: one token per source
	inspector Inspector
	queue     *queue.Queue // instead of a fresh one
}

func newHarness(t *testing.T, o harnessOptions) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), reg: subscriptions.New()}
	h.queue = o.queue
	if h.queue == nil {
		h.queue = openQueue(t, filepath.Join(h.dir, "queue"))
	}
	tokens := o.tokens
	if tokens == nil {
		tokens = map[string]string{}
		for s, tok := range tokenOf {
			tokens[s] = tok + "\n"
		}
	}
	files := map[string]string{}
	for source, contents := range tokens {
		path := filepath.Join(h.dir, source+"-token")
		if err := os.WriteFile(path, []byte(contents), 0o600); err != nil {
			t.Fatal(err)
		}
		files[source] = path
	}
	h.subscribe("web-tag-push", kubehookv1.TagPush, "acme/web")
	h.subscribe("all-tag-push", kubehookv1.TagPush, "")
	h.subscribe("acme-manifest-push", kubehookv1.ManifestPush, "acme")
	h.subscribe("acme-scans", kubehookv1.ScanCompleted, "acme")
	h.subscribe("other-tag-push", kubehookv1.TagPush, "other/app")

	srv, err := NewServer(ServerOptions{
		Auth:      NewAuthenticator(AuthOptions{TokenFiles: files}),
		Inspector: o.inspector,
		Publisher: &intake.Publisher{Registry: h.reg, Queue: h.queue},
		Log:       logr.Discard(),
	})
	if err != nil {
		t.Fatal(err)
	}
	h.server = srv
	h.http = httptest.NewServer(srv.Handler())
	t.Cleanup(h.http.Close)
	return h
}

func openQueue(t *testing.T, dir string) *queue.Queue {
	t.Helper()
	q, err := queue.Open(context.Background(), queue.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Close)
	return q
}

func (h *harness) subscribe(name string, typ kubehookv1.EventType, key string) {
	spec := kubehookv1.WebhookSubscriptionSpec{Type: typ, Key: key, Endpoint: "https://hooks.example.com/" + name}
	h.reg.Upsert(&subscriptions.Subscription{
		ID:  types.NamespacedName{Namespace: "acme", Name: name},
		UID: types.UID("uid-" + name), Type: typ, Key: key, Endpoint: spec.Endpoint,
		PayloadFormat: kubehookv1.PayloadFormatDTR, Delivery: subscriptions.DeliveryFor(&spec),
	})
}

// request is one call to the server.
type request struct {
	method      string
	path        string
	contentType string
	auth        string
	body        io.Reader
}

func (h *harness) do(r request) *http.Response {
	h.t.Helper()
	if r.method == "" {
		r.method = http.MethodPost
	}
	req, err := http.NewRequest(r.method, h.http.URL+r.path, r.body)
	if err != nil {
		h.t.Fatal(err)
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	if r.auth != "" {
		req.Header.Set("Authorization", r.auth)
	}
	resp, err := h.http.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// post sends a valid request for source with body.
func (h *harness) post(source string, body []byte) *http.Response {
	h.t.Helper()
	return h.do(request{path: pathOf[source], contentType: contentTypeOf[source], auth: "Bearer " + tokenOf[source], body: bytes.NewReader(body)})
}

func (h *harness) pending() uint64 {
	h.t.Helper()
	n, err := h.queue.Pending(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

var pathOf = map[string]string{SourceDistribution: PathDistribution, SourceHarbor: PathHarbor, SourceEvents: PathEvents}

var contentTypeOf = map[string]string{SourceDistribution: MediaTypeDistributionEventsV2, SourceHarbor: MediaTypeJSON, SourceEvents: MediaTypeJSON}

// validBody is a real payload of each source about acme/web, and the
// deliveries it makes in the harness.
func validBody(t *testing.T, source string) ([]byte, int) {
	t.Helper()
	file := map[string]string{SourceDistribution: "distribution/push.json", SourceHarbor: "harbor/push.json", SourceEvents: "native/single.json"}[source]
	data, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	// push: TAG_PUSH to web-tag-push and all-tag-push, MANIFEST_PUSH to
	// acme-manifest-push; the native sample is a SCAN_COMPLETED for acme-scans.
	return data, map[string]int{SourceDistribution: 3, SourceHarbor: 3, SourceEvents: 1}[source]
}

func decodeJSON[T any](t *testing.T, resp *http.Response) T {
	t.Helper()
	var v T
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("answer %d is not JSON: %v: %s", resp.StatusCode, err, data)
	}
	return v
}

func expectError(t *testing.T, resp *http.Response, status int, code string) ErrorDetail {
	t.Helper()
	if resp.StatusCode != status {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("status = %d, want %d: %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error Content-Type = %q", ct)
	}
	e := decodeJSON[ErrorBody](t, resp).Error
	if e.Code != code || e.Message == "" {
		t.Fatalf("error = %+v, want code %s and a message", e, code)
	}
	return e
}

func expectAccepted(t *testing.T, resp *http.Response, events, deliveries int) {
	t.Helper()
	if resp.StatusCode != http.StatusAccepted {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("status = %d, want 202: %s", resp.StatusCode, body)
	}
	got := decodeJSON[AcceptedBody](t, resp)
	if got != (AcceptedBody{Accepted: events, Deliveries: deliveries}) {
		t.Fatalf("answer = %+v, want %d events and %d deliveries", got, events, deliveries)
	}
}

// counter reads the value of a counter.
func counter(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func TestEverySourceRequiresItsOwnToken(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for _, source := range SourceNames {
		t.Run(source, func(t *testing.T) {
			body, deliveries := validBody(t, source)
			rejected := RequestsRejectedTotal.WithLabelValues(source, ReasonUnauthorized)
			before := counter(rejected)
			queued := h.pending()
			other := distToken
			if source == SourceDistribution {
				other = eventsToken
			}
			for _, auth := range []string{"", "Bearer wrong-token-000000000000", "Bearer " + other, "Basic " + tokenOf[source], "Bearer " + tokenOf[source] + "x", "Bearer " + tokenOf[source][:len(tokenOf[source])-1]} {
				resp := h.do(request{path: pathOf[source], contentType: contentTypeOf[source], auth: auth, body: bytes.NewReader(body)})
				expectError(t, resp, http.StatusUnauthorized, CodeUnauthorized)
				if wa := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(wa, "Bearer") {
					t.Fatalf("WWW-Authenticate = %q, want a Bearer challenge", wa)
				}
			}
			if got := counter(rejected) - before; got != 6 {
				t.Fatalf("rejected{reason=unauthorized} grew by %v, want 6", got)
			}
			if n := h.pending() - queued; n != 0 {
				t.Fatalf("%d deliveries queued by unauthenticated requests", n)
			}

			expectAccepted(t, h.post(source, body), len(mustParse(t, source, body)), deliveries)
			if got := h.pending() - queued; got != uint64(deliveries) {
				t.Fatalf("%v deliveries queued, want %d", got, deliveries)
			}
		})
	}
}

func mustParse(t *testing.T, source string, body []byte) []intake.Event {
	t.Helper()
	var (
		evs []intake.Event
		err error
	)
	switch source {
	case SourceDistribution:
		evs, err = Distribution(context.Background(), body, MapOptions{}, nil)
	case SourceHarbor:
		evs, err = Harbor(context.Background(), body, MapOptions{})
	case SourceEvents:
		evs, err = Native(body, time.Now(), "")
	}
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestHarborAcceptsItsStaticAuthorizationHeader(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	body, deliveries := validBody(t, SourceHarbor)
	resp := h.do(request{path: PathHarbor, contentType: MediaTypeJSON, auth: harborToken, body: bytes.NewReader(body)})
	expectAccepted(t, resp, 2, deliveries)
	// The other sources insist on the Bearer scheme.
	body, _ = validBody(t, SourceEvents)
	resp = h.do(request{path: PathEvents, contentType: MediaTypeJSON, auth: eventsToken, body: bytes.NewReader(body)})
	expectError(t, resp, http.StatusUnauthorized, CodeUnauthorized)
}

func TestSourceWithoutTokenRefusesEveryRequest(t *testing.T) {
	// Only distribution has a token; harbor's file holds only a comment.
	h := newHarness(t, harnessOptions{tokens: map[string]string{SourceDistribution: distToken, SourceHarbor: "# no token yet\n"}})
	for _, source := range []string{SourceHarbor, SourceEvents} {
		body, _ := validBody(t, source)
		for _, auth := range []string{"", "Bearer ", "Bearer " + tokenOf[source], "Bearer " + distToken, "Bearer # no token yet"} {
			resp := h.do(request{path: pathOf[source], contentType: MediaTypeJSON, auth: auth, body: bytes.NewReader(body)})
			expectError(t, resp, http.StatusUnauthorized, CodeUnauthorized)
		}
		if h.server.opts.Auth.Enabled(source) {
			t.Fatalf("%s is enabled without a token", source)
		}
	}
	body, deliveries := validBody(t, SourceDistribution)
	expectAccepted(t, h.post(SourceDistribution, body), 2, deliveries)
}

func TestTokenFileRotationAppliesToRequests(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	path := filepath.Join(h.dir, SourceEvents+"-token")
	h.server.opts.Auth = NewAuthenticator(AuthOptions{TokenFiles: map[string]string{SourceEvents: path}, Now: clock.Now})
	body, _ := validBody(t, SourceEvents)
	send := func(tok string) *http.Response {
		return h.do(request{path: PathEvents, contentType: MediaTypeJSON, auth: "Bearer " + tok, body: bytes.NewReader(body)})
	}

	expectAccepted(t, send(eventsToken), 1, 1)
	const rotated = "events-token-rotated-1234567"
	writeAtomically(t, path, rotated+"\n")
	clock.Add(5 * time.Second)
	expectError(t, send(eventsToken), http.StatusUnauthorized, CodeUnauthorized)
	expectAccepted(t, send(rotated), 1, 1)
}

func TestOtherMethodsAre405WithAllow(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for _, source := range SourceNames {
		for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			before := counter(RequestsRejectedTotal.WithLabelValues(source, ReasonMethodNotAllowed))
			resp := h.do(request{method: method, path: pathOf[source], auth: "Bearer " + tokenOf[source]})
			expectError(t, resp, http.StatusMethodNotAllowed, CodeMethodNotAllowed)
			if allow := resp.Header.Get("Allow"); allow != http.MethodPost {
				t.Fatalf("%s %s: Allow = %q, want POST", method, pathOf[source], allow)
			}
			if got := counter(RequestsRejectedTotal.WithLabelValues(source, ReasonMethodNotAllowed)) - before; got != 1 {
				t.Fatalf("rejected{reason=method_not_allowed} grew by %v", got)
			}
		}
	}
}

func TestUnknownPathsAre404(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for _, path := range []string{"/", "/v1/sources/quay", "/v1/events/", "/v1/sources/distribution/x", "/v2/events"} {
		resp := h.do(request{path: path, contentType: MediaTypeJSON, auth: "Bearer " + eventsToken, body: strings.NewReader("{}")})
		expectError(t, resp, http.StatusNotFound, CodeNotFound)
	}
}

func TestBodyOverOneMiBIs413(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	body, _ := validBody(t, SourceEvents)
	// Exactly 1 MiB (the event padded with whitespace) is accepted.
	exact := append(append([]byte{}, body...), bytes.Repeat([]byte(" "), MaxBodyBytes-len(body))...)
	expectAccepted(t, h.post(SourceEvents, exact), 1, 1)

	over := append(exact, ' ')
	before := counter(RequestsRejectedTotal.WithLabelValues(SourceEvents, ReasonTooLarge))
	// With a Content-Length, and streamed without one (chunked).
	expectError(t, h.post(SourceEvents, over), http.StatusRequestEntityTooLarge, CodePayloadTooLarge)
	chunked := h.do(request{path: PathEvents, contentType: MediaTypeJSON, auth: "Bearer " + eventsToken, body: io.MultiReader(bytes.NewReader(over))})
	expectError(t, chunked, http.StatusRequestEntityTooLarge, CodePayloadTooLarge)
	if got := counter(RequestsRejectedTotal.WithLabelValues(SourceEvents, ReasonTooLarge)) - before; got != 2 {
		t.Fatalf("rejected{reason=too_large} grew by %v, want 2", got)
	}
	if n := h.pending(); n != 1 {
		t.Fatalf("%d deliveries queued, want only the accepted one", n)
	}
}

func TestContentTypes(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	tests := []struct {
		source, contentType string
		ok                  bool
	}{
		{SourceDistribution, MediaTypeDistributionEventsV2, true},
		{SourceDistribution, MediaTypeDistributionEventsV1, true},
		{SourceDistribution, "application/json; charset=utf-8", true},
		{SourceDistribution, "Application/JSON", true},
		{SourceDistribution, "text/plain", false},
		{SourceDistribution, "", false},
		{SourceHarbor, MediaTypeJSON, true},
		{SourceHarbor, MediaTypeDistributionEventsV2, false},
		{SourceHarbor, "application/x-www-form-urlencoded", false},
		{SourceEvents, "application/json;charset=UTF-8", true},
		{SourceEvents, "application/cloudevents+json", false},
		{SourceEvents, "application/json; bad", false},
	}
	refused := counter(RequestsRejectedTotal.WithLabelValues(SourceDistribution, ReasonUnsupportedMediaType))
	for _, tt := range tests {
		body, deliveries := validBody(t, tt.source)
		resp := h.do(request{path: pathOf[tt.source], contentType: tt.contentType, auth: "Bearer " + tokenOf[tt.source], body: bytes.NewReader(body)})
		if tt.ok {
			expectAccepted(t, resp, len(mustParse(t, tt.source, body)), deliveries)
			continue
		}
		expectError(t, resp, http.StatusUnsupportedMediaType, CodeUnsupportedMediaType)
		if resp.Header.Get("Accept-Post") == "" {
			t.Fatalf("%s with %q: no Accept-Post header", tt.source, tt.contentType)
		}
	}
	if got := counter(RequestsRejectedTotal.WithLabelValues(SourceDistribution, ReasonUnsupportedMediaType)) - refused; got != 2 {
		t.Fatalf("rejected{source=distribution,reason=unsupported_media_type} grew by %v, want 2", got)
	}
}

func TestBadInputIs400NamingTheFieldAndQueuesNothing(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	scan, _ := validBody(t, SourceEvents)
	tests := []struct {
		name, source, body, field string
	}{
		{"malformed JSON", SourceEvents, `{"type": "TAG_PUSH",`, ""},
		{"malformed distribution envelope", SourceDistribution, `{"events": [}`, ""},
		{"missing field", SourceEvents, `{"type": "TAG_PUSH", "contents": {"namespace": "acme", "repository": "web"}}`, "contents.tag"},
		{"unknown type", SourceEvents, `{"type": "TAG_PUSHED", "contents": {}}`, "type"},
		// All or nothing: a valid event before a bad one is not queued.
		{"second of two bad", SourceEvents, `[` + string(scan) + `, {"type": "SCAN_COMPLETED", "createdAt": 7, "contents": {}}]`, "[1].createdAt"},
		{"distribution event without repository", SourceDistribution, `{"events": [{"action": "push", "timestamp": "2026-01-02T03:04:05Z", "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:` + strings.Repeat("a", 64) + `"}}]}`, "events[0].target.repository"},
		{"harbor without event_data", SourceHarbor, `{"type": "PUSH_ARTIFACT", "occur_at": 1764262450, "operator": "x"}`, "event_data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := counter(RequestsRejectedTotal.WithLabelValues(tt.source, ReasonBadRequest))
			e := expectError(t, h.post(tt.source, []byte(tt.body)), http.StatusBadRequest, CodeBadRequest)
			if e.Field != tt.field {
				t.Fatalf("field = %q, want %q (message %q)", e.Field, tt.field, e.Message)
			}
			if got := counter(RequestsRejectedTotal.WithLabelValues(tt.source, ReasonBadRequest)) - before; got != 1 {
				t.Fatalf("rejected{reason=bad_request} grew by %v", got)
			}
			if n := h.pending(); n != 0 {
				t.Fatalf("%d deliveries queued by a rejected request", n)
			}
		})
	}
}

func TestQueueUnavailableIs503WithRetryAfter(t *testing.T) {
	q, err := queue.Open(context.Background(), queue.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, harnessOptions{queue: q})
	q.Close() // the real Publisher now fails
	for _, source := range SourceNames {
		body, _ := validBody(t, source)
		received := counter(EventsReceivedTotal.WithLabelValues(source, string(kubehookv1.TagPush)))
		before := counter(RequestsRejectedTotal.WithLabelValues(source, ReasonUnavailable))
		resp := h.post(source, body)
		expectError(t, resp, http.StatusServiceUnavailable, CodeUnavailable)
		if ra := resp.Header.Get("Retry-After"); ra != "10" {
			t.Fatalf("Retry-After = %q, want 10", ra)
		}
		if got := counter(RequestsRejectedTotal.WithLabelValues(source, ReasonUnavailable)) - before; got != 1 {
			t.Fatalf("rejected{reason=unavailable} grew by %v", got)
		}
		if counter(EventsReceivedTotal.WithLabelValues(source, string(kubehookv1.TagPush))) != received {
			t.Fatal("events of a refused request were counted as received")
		}
	}
}

func TestAcceptedOnlyOnceEveryDeliveryIsDurable(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, dir)
	h := newHarness(t, harnessOptions{queue: q})
	scan, _ := validBody(t, SourceEvents)
	tagPush, err := json.Marshal(payload.Sample(kubehookv1.TagPush)) // foo/bar: only all-tag-push matches
	if err != nil {
		t.Fatal(err)
	}
	// A second scan of the image, later (the same event twice would be one).
	rescan := bytes.Replace(scan, []byte("2025-11-27T16:55:02.114Z"), []byte("2025-11-27T17:55:02.114Z"), 1)
	body := []byte(fmt.Sprintf("[%s, %s, %s]", scan, tagPush, rescan))

	received := counter(EventsReceivedTotal.WithLabelValues(SourceEvents, string(kubehookv1.ScanCompleted)))
	expectAccepted(t, h.post(SourceEvents, body), 3, 3)
	if n := h.pending(); n != 3 {
		t.Fatalf("after the 202, %d deliveries are queued, want 3", n)
	}
	if got := counter(EventsReceivedTotal.WithLabelValues(SourceEvents, string(kubehookv1.ScanCompleted))) - received; got != 2 {
		t.Fatalf("events_received{type=SCAN_COMPLETED} grew by %v, want 2", got)
	}

	// Durable: they survive a restart of the queue.
	q.Close()
	reopened := openQueue(t, dir)
	if n, err := reopened.Pending(context.Background()); err != nil || n != 3 {
		t.Fatalf("after a restart, %d deliveries are queued (%v), want 3", n, err)
	}
	var got []string
	for _, d := range drain(t, reopened, 3) {
		got = append(got, d.Subscription.Name+"/"+d.EventType)
	}
	slices.Sort(got)
	want := "acme-scans/SCAN_COMPLETED acme-scans/SCAN_COMPLETED all-tag-push/TAG_PUSH"
	if got := strings.Join(got, " "); got != want {
		t.Fatalf("deliveries = %s, want %s", got, want)
	}
}

// drain reads the next n deliveries from the harness's queue. One consumer
// serves the whole test: a stopped consumer's last pull request could
// swallow later deliveries until the ack wait expires.
func (h *harness) drain(n int) []queue.Delivery {
	h.t.Helper()
	h.consume.Do(func() {
		h.deliveries = make(chan queue.Delivery, 100)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- h.queue.Consume(ctx, func(m *queue.Msg) {
				h.deliveries <- *m.Delivery
				_ = m.Done(context.Background())
			})
		}()
		h.t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				h.t.Error(err)
			}
		})
	})
	var out []queue.Delivery
	for len(out) < n {
		select {
		case d := <-h.deliveries:
			out = append(out, d)
		case <-time.After(10 * time.Second):
			h.t.Fatalf("drained %d deliveries, want %d", len(out), n)
		}
	}
	return out
}

// drain reads n deliveries from q with a consumer of its own; use it once
// per queue.
func drain(t *testing.T, q *queue.Queue, n int) []queue.Delivery {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan queue.Delivery, n)
	done := make(chan error, 1)
	go func() {
		done <- q.Consume(ctx, func(m *queue.Msg) {
			got <- *m.Delivery
			_ = m.Done(context.Background())
		})
	}()
	var out []queue.Delivery
	for len(out) < n {
		select {
		case d := <-got:
			out = append(out, d)
		case <-time.After(10 * time.Second):
			t.Fatalf("drained %d deliveries, want %d", len(out), n)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDistributionPushCarriesPlatformFromTheRegistry(t *testing.T) {
	reg := newTestRegistry(t, false, nil)
	_, digest := reg.pushImage(t, "acme/web", "linux", "arm64")
	insp := newInspector(t, reg)
	h := newHarness(t, harnessOptions{inspector: insp})

	missing := "sha256:" + strings.Repeat("cd", 32)
	envelope := func(dgst, tag string) []byte {
		return fmt.Appendf(nil, `{"events": [{
			"id": "1", "timestamp": "2026-11-27T16:54:10Z", "action": "push",
			"target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": %q, "size": 400, "repository": "acme/web", "tag": %q},
			"request": {"id": "r1", "host": "registry.example.com", "method": "PUT", "useragent": "crane"},
			"actor": {"name": "ci-bot"}}]}`, dgst, tag)
	}

	failed := counter(InspectionsFailedTotal)
	expectAccepted(t, h.post(SourceDistribution, envelope(digest, "1.0")), 2, 3)
	if got := counter(InspectionsFailedTotal) - failed; got != 0 {
		t.Fatalf("inspections_failed grew by %v for a manifest the registry has", got)
	}
	for _, d := range h.drain(3) {
		var ev struct {
			Contents struct {
				Digest, OS, Architecture, ImageName string
			}
		}
		if err := json.Unmarshal(d.Event, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Contents.Digest != digest || ev.Contents.OS != "linux" || ev.Contents.Architecture != "arm64" {
			t.Fatalf("%s to %s: contents %+v, want %s linux/arm64", d.EventType, d.Subscription.Name, ev.Contents, digest)
		}
	}

	// A manifest the registry cannot show: delivered anyway, without
	// platform, and counted once.
	expectAccepted(t, h.post(SourceDistribution, envelope(missing, "2.0")), 2, 3)
	if got := counter(InspectionsFailedTotal) - failed; got != 1 {
		t.Fatalf("inspections_failed grew by %v, want 1", got)
	}
	for _, d := range h.drain(3) {
		var ev struct{ Contents map[string]any }
		if err := json.Unmarshal(d.Event, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Contents["digest"] != missing || ev.Contents["os"] != "" || ev.Contents["architecture"] != "" {
			t.Fatalf("contents = %v, want the digest and empty platform", ev.Contents)
		}
	}
}

func TestRegistryHostDefaultsToTheRequestHost(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	// Harbor's imageName falls back to the registry host when resource_url
	// has none. Each push is another event (occur_at), not a resend.
	harbor := func(occurAt int) io.Reader {
		return strings.NewReader(fmt.Sprintf(`{"type": "PUSH_ARTIFACT", "occur_at": %d, "operator": "ci", "event_data": {
		"resources": [{"digest": "sha256:`+strings.Repeat("e", 64)+`", "tag": "1.0"}],
		"repository": {"name": "web", "namespace": "acme", "repo_full_name": "acme/web"}}}`, occurAt))
	}
	resp := h.do(request{path: PathHarbor, contentType: MediaTypeJSON, auth: "Bearer " + harborToken, body: harbor(1764262450)})
	expectAccepted(t, resp, 2, 3)
	host := strings.TrimPrefix(h.http.URL, "http://")
	for _, d := range h.drain(3) {
		var ev struct{ Contents struct{ ImageName string } }
		if err := json.Unmarshal(d.Event, &ev); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(ev.Contents.ImageName, host+"/acme/web") {
			t.Fatalf("imageName = %q, want it under the request host %s", ev.Contents.ImageName, host)
		}
	}

	// --registry-host wins.
	h.server.opts.RegistryHost = "registry.example.com"
	resp = h.do(request{path: PathHarbor, contentType: MediaTypeJSON, auth: "Bearer " + harborToken, body: harbor(1764262451)})
	expectAccepted(t, resp, 2, 3)
	for _, d := range h.drain(3) {
		var ev struct{ Contents struct{ ImageName string } }
		if err := json.Unmarshal(d.Event, &ev); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(ev.Contents.ImageName, "registry.example.com/acme/web") {
			t.Fatalf("imageName = %q, want it under --registry-host", ev.Contents.ImageName)
		}
	}
}

func TestStartServesOnItsOwnAddressUntilTheContextEnds(t *testing.T) {
	q := openQueue(t, t.TempDir())
	dir := t.TempDir()
	path := filepath.Join(dir, "events")
	if err := os.WriteFile(path, []byte(eventsToken), 0o600); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	srv, err := NewServer(ServerOptions{
		Addr:      "127.0.0.1:0",
		Auth:      NewAuthenticator(AuthOptions{TokenFiles: map[string]string{SourceEvents: path}}),
		Publisher: &intake.Publisher{Registry: subscriptions.New(), Queue: q},
		WaitReady: func(ctx context.Context) error {
			select {
			case <-ready:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
		Log: logr.Discard(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if srv.NeedLeaderElection() {
		t.Fatal("the sources server must run on every replica")
	}
	if srv.Ready(nil) == nil {
		t.Fatal("ready before it listens")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()

	// Not listening until the subscriptions are loaded.
	select {
	case <-srv.listening:
		t.Fatal("listening before WaitReady returned")
	case <-time.After(200 * time.Millisecond):
	}
	close(ready)
	select {
	case <-srv.listening:
	case <-time.After(5 * time.Second):
		t.Fatal("not listening")
	}
	if err := srv.Ready(nil); err != nil {
		t.Fatalf("not ready while listening: %v", err)
	}
	url := "http://" + srv.addr.String() + PathEvents
	body, _ := validBody(t, SourceEvents)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", MediaTypeJSON)
	req.Header.Set("Authorization", "Bearer "+eventsToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	expectAccepted(t, resp, 1, 0)
	resp.Body.Close()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Start returned %v after the context ended", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Start did not return after the context ended")
	}
	if _, err := http.Post(url, MediaTypeJSON, bytes.NewReader(body)); err == nil {
		t.Fatal("still serving after shutdown")
	}
}

func TestStartFailsWhenTheAddressIsTaken(t *testing.T) {
	taken := httptest.NewServer(http.NotFoundHandler())
	defer taken.Close()
	srv, err := NewServer(ServerOptions{
		Addr:      strings.TrimPrefix(taken.URL, "http://"),
		Auth:      NewAuthenticator(AuthOptions{}),
		Publisher: &intake.Publisher{Registry: subscriptions.New()},
		Log:       logr.Discard(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err == nil {
		t.Fatal("Start succeeded on a taken address")
	}
}

// The server must refuse concurrent requests' events independently: one
// refused request does not affect another accepted at the same time.
func TestConcurrentRequestsAreIndependent(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	good, _ := validBody(t, SourceEvents)
	var wg sync.WaitGroup
	codes := make(chan int, 40)
	for i := range 40 {
		wg.Go(func() {
			// Each request its own event (createdAt), not a resend.
			body := bytes.Replace(good, []byte("16:55:02.114Z"), fmt.Appendf(nil, "16:55:%02d.114Z", i), 1)
			if i%2 == 1 {
				body = []byte(`{"type": "SCAN_COMPLETED"}`)
			}
			req, _ := http.NewRequest(http.MethodPost, h.http.URL+PathEvents, bytes.NewReader(body))
			req.Header.Set("Content-Type", MediaTypeJSON)
			req.Header.Set("Authorization", "Bearer "+eventsToken)
			resp, err := h.http.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		})
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if count[http.StatusAccepted] != 20 || count[http.StatusBadRequest] != 20 {
		t.Fatalf("answers = %v, want 20 × 202 and 20 × 400", count)
	}
	if n := h.pending(); n != 20 {
		t.Fatalf("%d deliveries queued, want 20", n)
	}
}
