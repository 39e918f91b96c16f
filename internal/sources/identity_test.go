package sources

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/intake"
)

// postWith posts body to source with extra request headers (each value
// its own header line).
func (h *harness) postWith(source string, body []byte, header http.Header) *http.Response {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.http.URL+pathOf[source], bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header = header.Clone()
	req.Header.Set("Content-Type", contentTypeOf[source])
	req.Header.Set("Authorization", "Bearer "+tokenOf[source])
	resp, err := h.http.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// ids are the IDs of evs, in order.
func ids(evs []intake.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

func TestResentDistributionNotificationIsDeliveredOncePerSubscription(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	body, deliveries := validBody(t, SourceDistribution)
	for range 2 { // the registry retries after a timeout
		expectAccepted(t, h.post(SourceDistribution, body), 2, deliveries)
	}
	if n := h.pending(); n != uint64(deliveries) {
		t.Fatalf("%d deliveries queued for the notification sent twice, want %d", n, deliveries)
	}
	// Each delivery's ID is the one its event and subscription derive.
	events := mustParse(t, SourceDistribution, body)
	want := map[string]string{}
	for _, ev := range events {
		if !strings.HasPrefix(ev.ID, SourceDistribution+"/") {
			t.Fatalf("%s: ID %q, want one of the distribution source", ev.Payload.Type, ev.ID)
		}
		for _, sub := range h.reg.Match(ev.Payload.Type, ev.Repository) {
			want[sub.ID.Name+"/"+string(ev.Payload.Type)] = intake.DeliveryID(&ev, ev.Payload.Type, sub.UID)
		}
	}
	got := map[string]string{}
	for _, d := range h.drain(deliveries) {
		got[d.Subscription.Name+"/"+d.EventType] = d.ID
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("delivery IDs = %v, want %v", got, want)
	}

	// The same push notified again under other event ids is other events.
	again := bytes.ReplaceAll(body, []byte(`"id": "01a21ded-`), []byte(`"id": "02a21ded-`))
	expectAccepted(t, h.post(SourceDistribution, again), 2, deliveries)
	for _, d := range h.drain(deliveries) {
		if slices.Contains(slices.Collect(maps.Values(want)), d.ID) {
			t.Fatalf("another notification was delivered under the first one's ID %s", d.ID)
		}
	}
}

func TestDistributionIdentity(t *testing.T) {
	ctx := context.Background()
	push := func(id string) intake.Event {
		t.Helper()
		evs, err := Distribution(ctx, distributionEnvelope(strings.Replace(pushEvent, `"id":"e1"`, `"id":"`+id+`"`, 1)), MapOptions{}, nil)
		if err != nil || len(evs) != 2 {
			t.Fatalf("push: %d events, %v", len(evs), err)
		}
		// TAG_PUSH and MANIFEST_PUSH are one registry event.
		if evs[0].ID == "" || evs[0].ID != evs[1].ID {
			t.Fatalf("IDs of one push = %q, want one ID", ids(evs))
		}
		return evs[0]
	}
	if a, b := push("e1"), push("e1"); a.ID != b.ID {
		t.Fatalf("the same notification got IDs %s and %s", a.ID, b.ID)
	}
	if a, b := push("e1"), push("e2"); a.ID == b.ID {
		t.Fatalf("two notifications share ID %s", a.ID)
	}
	// A registry that reuses ids for different events does not merge them.
	other := strings.NewReplacer(`"id":"e1"`, `"id":"e1"`, `"tag":"1.4.2"`, `"tag":"1.4.3"`).Replace(pushEvent)
	evs, err := Distribution(ctx, distributionEnvelope(other), MapOptions{}, nil)
	if err != nil || evs[0].ID == push("e1").ID {
		t.Fatalf("a push of another tag under the same id: %q, %v", ids(evs), err)
	}
	// No id: no identity.
	evs, err = Distribution(ctx, distributionEnvelope(strings.Replace(pushEvent, `"id":"e1",`, ``, 1)), MapOptions{}, nil)
	if err != nil || slices.ContainsFunc(evs, func(e intake.Event) bool { return e.ID != "" }) {
		t.Fatalf("events without id: IDs %q, %v", ids(evs), err)
	}

	t.Run("a pull by HEAD then GET has the GET's identity", func(t *testing.T) {
		res := NewTagResolutions(TagResolutionWindow, 10)
		head := strings.Replace(pullEvent("HEAD", "1.4.2", "2026-11-27T16:54:10Z", "10.1.2.3:1", "containerd/v1.7.13"), `"id":"e1"`, `"id":"head"`, 1)
		get := strings.Replace(pullEvent("GET", "", "2026-11-27T16:54:11Z", "10.1.2.3:2", "containerd/v1.7.13"), `"id":"e1"`, `"id":"get"`, 1)
		got, err := Distribution(ctx, distributionEnvelope(head, get), MapOptions{Resolutions: res}, nil)
		if err != nil || len(got) != 2 || got[0].Payload.Type != kubehookv1.TagPull {
			t.Fatalf("HEAD then GET: %d events, %v", len(got), err)
		}
		alone, err := Distribution(ctx, distributionEnvelope(get), MapOptions{}, nil)
		if err != nil || len(alone) != 1 {
			t.Fatalf("GET alone: %d events, %v", len(alone), err)
		}
		if got[0].ID != alone[0].ID || got[1].ID != alone[0].ID {
			t.Fatalf("IDs of the paired pull %q, of the GET alone %q: want the GET's for all", ids(got), alone[0].ID)
		}
		// The registry resends the GET: the same events, the same IDs.
		resent, err := Distribution(ctx, distributionEnvelope(get), MapOptions{Resolutions: res}, nil)
		if err != nil || !slices.Equal(ids(resent), ids(got)) {
			t.Fatalf("resent GET: %q, %v; want %q", ids(resent), err, ids(got))
		}
	})
}

func TestHarborIdentity(t *testing.T) {
	ctx := context.Background()
	parse := func(body string) []intake.Event {
		t.Helper()
		evs, err := Harbor(ctx, []byte(body), MapOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	res := `{"digest":"` + webDigest + `","tag":"1.4.2"}`
	base := string(harborBody("PUSH_ARTIFACT", res))
	first := parse(base)
	if len(first) != 2 || first[0].ID == "" || first[0].ID != first[1].ID || !strings.HasPrefix(first[0].ID, SourceHarbor+"/") {
		t.Fatalf("IDs of one push = %q, want one harbor ID", ids(first))
	}
	// The same payload again, with its keys in another order and other
	// whitespace: the same event.
	reordered := `{ "operator": "jdoe", "occur_at": 1764262450, "type": "PUSH_ARTIFACT",
		"event_data": {"repository": {"repo_full_name": "acme/web", "name": "web", "namespace": "acme"},
		"resources": [{"tag": "1.4.2", "digest": "` + webDigest + `"}]}}`
	if got := ids(parse(reordered)); !slices.Equal(got, ids(first)) {
		t.Fatalf("the same payload got IDs %q, first %q", got, ids(first))
	}
	seen := map[string]string{first[0].ID: "the push"}
	for name, body := range map[string]string{
		"another time":       strings.Replace(base, `1764262450`, `1764262451`, 1),
		"another operator":   strings.Replace(base, `"jdoe"`, `"ci"`, 1),
		"another type":       string(harborBody("PULL_ARTIFACT", res)),
		"another repository": strings.Replace(base, `"repo_full_name":"acme/web"`, `"repo_full_name":"acme/api"`, 1),
		"another tag":        string(harborBody("PUSH_ARTIFACT", strings.Replace(res, "1.4.2", "1.4.3", 1))),
		"another digest":     string(harborBody("PUSH_ARTIFACT", strings.Replace(res, webDigest, harborScanDigest, 1))),
	} {
		evs := parse(body)
		if prev, ok := seen[evs[0].ID]; ok {
			t.Errorf("%s has the ID of %s", name, prev)
		}
		seen[evs[0].ID] = name
	}
	// Two resources of one payload are two events.
	two := parse(string(harborBody("PUSH_ARTIFACT", res+`,{"digest":"`+harborScanDigest+`","tag":"latest"}`)))
	if len(two) != 4 || two[0].ID == two[2].ID {
		t.Fatalf("IDs of two resources = %q, want two", ids(two))
	}
}

func TestResentHarborPayloadIsDeliveredOnce(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	body, deliveries := validBody(t, SourceHarbor)
	for range 2 {
		expectAccepted(t, h.post(SourceHarbor, body), 2, deliveries)
	}
	if n := h.pending(); n != uint64(deliveries) {
		t.Fatalf("%d deliveries queued for the payload sent twice, want %d", n, deliveries)
	}
}

func TestNativeIdentity(t *testing.T) {
	const scan = `{"type":"SCAN_COMPLETED","createdAt":"2025-11-27T16:55:02.114Z","contents":{"namespace":"acme","repository":"web","tag":"1","imageName":"r/acme/web:1",
		"scanSummary":{"namespace":"acme","repository":"web","tag":"1","critical":1,"major":2,"minor":3,"last_scan_status":6,"check_completed_at":"2025-11-27T16:54:32Z"}}}`
	parse := func(t *testing.T, body string, now time.Time, key string) []string {
		t.Helper()
		evs, err := Native([]byte(body), now, key)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if !strings.HasPrefix(ev.ID, SourceEvents+"/") {
				t.Fatalf("ID %q, want one of the events source", ev.ID)
			}
		}
		return ids(evs)
	}
	later := nativeNow.Add(time.Minute)

	t.Run("without a key, the event", func(t *testing.T) {
		first := parse(t, scan, nativeNow, "")
		if got := parse(t, scan, later, ""); !slices.Equal(got, first) {
			t.Fatalf("the same body sent again got %q, first %q", got, first)
		}
		// Another encoding of the same event: keys reordered, spaces, the
		// time in another zone.
		same := `{ "contents": {"scanSummary": {"minor":3,"major":2,"critical":1,"tag":"1","repository":"web","namespace":"acme","last_scan_status":6,"check_completed_at":"2025-11-27T16:54:32Z"},
			"imageName":"r/acme/web:1", "tag":"1", "repository":"web", "namespace":"acme"},
			"createdAt": "2025-11-27T17:55:02.114+01:00", "type": "SCAN_COMPLETED" }`
		if got := parse(t, same, later, ""); !slices.Equal(got, first) {
			t.Fatalf("the same event written differently got %q, first %q", got, first)
		}
		seen := map[string]string{first[0]: "the scan"}
		for name, body := range map[string]string{
			"another createdAt": strings.Replace(scan, "16:55:02.114Z", "16:55:02.115Z", 1),
			"other contents":    strings.Replace(scan, `"critical":1`, `"critical":4`, 1),
			"another type":      strings.Replace(strings.Replace(scan, "SCAN_COMPLETED", "SCAN_FAILED", 1), `"scanSummary"`, `"error":"x","x"`, 1),
		} {
			got := parse(t, body, nativeNow, "")
			if prev, ok := seen[got[0]]; ok {
				t.Errorf("%s has the ID of %s", name, prev)
			}
			seen[got[0]] = name
		}
		// Without createdAt the event is stamped when received: a resend
		// later is a new event.
		noTime := strings.Replace(scan, `"createdAt":"2025-11-27T16:55:02.114Z",`, ``, 1)
		if a, b := parse(t, noTime, nativeNow, ""), parse(t, noTime, later, ""); a[0] == b[0] {
			t.Fatalf("events stamped at different times share ID %s", a[0])
		}
	})

	t.Run("with a key, the key and the index", func(t *testing.T) {
		const key = "8e03978e-40d5-43e8-bc93-6894a57f9324"
		array := "[" + scan + "," + scan + "]"
		first := parse(t, array, nativeNow, key)
		if first[0] == first[1] {
			t.Fatalf("the two events of a keyed request share ID %s", first[0])
		}
		// The producer's retry: same key, even with its events restamped.
		restamped := strings.ReplaceAll(array, "16:55:02.114Z", "16:56:00Z")
		if got := parse(t, restamped, later, key); !slices.Equal(got, first) {
			t.Fatalf("the keyed request sent again got %q, first %q", got, first)
		}
		if got := parse(t, array, nativeNow, key+"-2"); got[0] == first[0] || got[1] == first[1] {
			t.Fatalf("another key got %q, first %q", got, first)
		}
		if got := parse(t, array, nativeNow, ""); got[0] == first[0] {
			t.Fatal("without the key the event has the keyed ID")
		}
	})
}

func TestNativeIdempotencyKey(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	body, deliveries := validBody(t, SourceEvents)
	keyed := func(keys ...string) http.Header {
		hd := http.Header{}
		for _, k := range keys {
			hd.Add(IdempotencyKeyHeader, k)
		}
		return hd
	}

	// Through the handler: Go's client and server refuse control
	// characters in header values, other clients and proxies may not.
	for name, header := range map[string]http.Header{
		"too long":               keyed(strings.Repeat("k", MaxIdempotencyKeyLength+1)),
		"control":                keyed("key\x01"),
		"DEL":                    keyed("key\x7f"),
		"not ASCII":              keyed("clé"),
		"empty":                  keyed(""),
		"sent twice":             keyed("a", "b"),
		"sent twice, same value": keyed("a", "a"),
	} {
		t.Run(name, func(t *testing.T) {
			before := counter(RequestsRejectedTotal.WithLabelValues(SourceEvents, ReasonBadRequest))
			req := httptest.NewRequest(http.MethodPost, PathEvents, bytes.NewReader(body))
			req.Header = header
			req.Header.Set("Content-Type", MediaTypeJSON)
			req.Header.Set("Authorization", "Bearer "+eventsToken)
			rec := httptest.NewRecorder()
			h.server.Handler().ServeHTTP(rec, req)
			e := expectError(t, rec.Result(), http.StatusBadRequest, CodeBadRequest)
			if e.Field != IdempotencyKeyHeader {
				t.Fatalf("error %+v, want it about the %s header", e, IdempotencyKeyHeader)
			}
			if got := counter(RequestsRejectedTotal.WithLabelValues(SourceEvents, ReasonBadRequest)) - before; got != 1 {
				t.Fatalf("rejected{reason=bad_request} grew by %v", got)
			}
			if n := h.pending(); n != 0 {
				t.Fatalf("%d deliveries queued by a request with a bad key", n)
			}
		})
	}

	// The longest key, with every printable character, is accepted, and the
	// request sent again under it is delivered once.
	var printable []byte
	for c := byte(' '); c <= '~'; c++ {
		printable = append(printable, c)
	}
	longest := strings.Repeat("k", MaxIdempotencyKeyLength-len(printable)) + string(printable)
	for range 2 {
		expectAccepted(t, h.postWith(SourceEvents, body, keyed(longest)), 1, deliveries)
	}
	if n := h.pending(); n != uint64(deliveries) {
		t.Fatalf("%d deliveries queued for a keyed request sent twice, want %d", n, deliveries)
	}
	// Another key is another request.
	expectAccepted(t, h.postWith(SourceEvents, body, keyed("another-request")), 1, deliveries)
	if n := h.pending(); n != 2*uint64(deliveries) {
		t.Fatalf("%d deliveries queued, want %d", n, 2*deliveries)
	}
	// Without a key, the same body sent twice is delivered once too.
	rescan := bytes.Replace(body, []byte("16:55:02.114Z"), []byte("16:56:02.114Z"), 1)
	for range 2 {
		expectAccepted(t, h.post(SourceEvents, rescan), 1, deliveries)
	}
	if n := h.pending(); n != 3*uint64(deliveries) {
		t.Fatalf("%d deliveries queued, want %d", n, 3*deliveries)
	}
}
