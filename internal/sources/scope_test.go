package sources

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/payload"
)

// acmeToken is an events token limited to the registry namespaces acme and
// team-b; eventsToken stays registry-wide.
const acmeToken = "events-acme-only-7c1d2e3f4a5b6c7d"

// scopedEventsTokens is the events token file of the scope tests.
const scopedEventsTokens = "# the registry-wide producer\n" + eventsToken + "\n" +
	"# team acme's scanner\n" + acmeToken + " namespaces=acme,team-b\n"

func newScopedHarness(t *testing.T) *harness {
	t.Helper()
	return newHarness(t, harnessOptions{tokens: map[string]string{SourceEvents: scopedEventsTokens}})
}

// nativeFor is payload.Sample's native event of type typ moved to the
// registry repository ns/repo, as a producer would post it.
func nativeFor(t *testing.T, typ kubehookv1.EventType, ns, repo string) []byte {
	t.Helper()
	sample := payload.Sample(typ)
	var contents map[string]any
	if err := json.Unmarshal(sample.Contents, &contents); err != nil {
		t.Fatal(err)
	}
	contents["namespace"], contents["repository"] = ns, repo
	body, err := json.Marshal(map[string]any{"type": typ, "createdAt": sample.CreatedAt, "contents": contents})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func (h *harness) postEvents(token string, body []byte) *http.Response {
	h.t.Helper()
	return h.do(request{path: PathEvents, contentType: MediaTypeJSON, auth: "Bearer " + token, body: bytes.NewReader(body)})
}

// expectForbidden checks a 403 that names namespace (or the event type of a
// registry-wide event) in its message, and field.
func expectForbidden(t *testing.T, resp *http.Response, field, names string) {
	t.Helper()
	e := expectError(t, resp, http.StatusForbidden, "FORBIDDEN")
	if e.Field != field {
		t.Fatalf("field = %q, want %q (message %q)", e.Field, field, e.Message)
	}
	if !strings.Contains(e.Message, names) {
		t.Fatalf("message %q does not name %q", e.Message, names)
	}
	if strings.Contains(e.Message, acmeToken) {
		t.Fatalf("message %q shows the token", e.Message)
	}
}

func TestScopedEventsTokenPublishesForItsNamespaces(t *testing.T) {
	h := newScopedHarness(t)
	scan, deliveries := validBody(t, SourceEvents) // SCAN_COMPLETED for acme/web
	expectAccepted(t, h.postEvents(acmeToken, scan), 1, deliveries)
	// team-b is its other namespace; no subscription matches, nothing is queued.
	expectAccepted(t, h.postEvents(acmeToken, nativeFor(t, kubehookv1.TagPush, "team-b", "api")), 1, 1) // all-tag-push
	if n := h.pending(); n != uint64(deliveries)+1 {
		t.Fatalf("%d deliveries queued, want %d", n, deliveries+1)
	}
}

func TestScopedEventsTokenIs403ForAnotherNamespaceAndQueuesNothing(t *testing.T) {
	h := newScopedHarness(t)
	rejected := RequestsRejectedTotal.WithLabelValues(SourceEvents, "forbidden")
	before := counter(rejected)
	received := counter(EventsReceivedTotal.WithLabelValues(SourceEvents, string(kubehookv1.TagPush)))

	// other/app has subscriptions (other-tag-push, all-tag-push), so a
	// published event would show in the queue.
	resp := h.postEvents(acmeToken, nativeFor(t, kubehookv1.TagPush, "other", "app"))
	expectForbidden(t, resp, "contents.namespace", `"other"`)

	// A namespace that only starts like an allowed one is another namespace.
	expectForbidden(t, h.postEvents(acmeToken, nativeFor(t, kubehookv1.TagPush, "acme2", "web")), "contents.namespace", `"acme2"`)
	// Nested paths: the namespace is the first component only.
	expectForbidden(t, h.postEvents(acmeToken, nativeFor(t, kubehookv1.TagPush, "other", "acme/web")), "contents.namespace", `"other"`)

	if got := counter(rejected) - before; got != 3 {
		t.Fatalf("rejected{reason=forbidden} grew by %v, want 3", got)
	}
	if counter(EventsReceivedTotal.WithLabelValues(SourceEvents, string(kubehookv1.TagPush))) != received {
		t.Fatal("events of a refused request were counted as received")
	}
	if n := h.pending(); n != 0 {
		t.Fatalf("%d deliveries queued by refused requests", n)
	}
}

func TestScopedEventsTokenMixedBatchIsRefusedWhole(t *testing.T) {
	h := newScopedHarness(t)
	scan, _ := validBody(t, SourceEvents)
	// Allowed events before and after the one that is not: none is queued.
	body := fmt.Appendf(nil, "[%s, %s, %s]", scan,
		nativeFor(t, kubehookv1.ManifestPush, "acme", "api"),
		nativeFor(t, kubehookv1.TagPush, "other", "app"))
	expectForbidden(t, h.postEvents(acmeToken, body), "[2].contents.namespace", `"other"`)
	body = fmt.Appendf(nil, "[%s, %s]", nativeFor(t, kubehookv1.TagPush, "other", "app"), scan)
	expectForbidden(t, h.postEvents(acmeToken, body), "[0].contents.namespace", `"other"`)
	if n := h.pending(); n != 0 {
		t.Fatalf("%d deliveries queued by a refused batch", n)
	}
	// The same batch from the registry-wide token is accepted whole.
	expectAccepted(t, h.postEvents(eventsToken, body), 2, 3) // other-tag-push, all-tag-push, acme-scans
}

func TestScopedEventsTokenCannotPublishRegistryWideEvents(t *testing.T) {
	h := newScopedHarness(t)
	h.subscribe("scanner-updates", kubehookv1.ScannerUpdateCompleted, "")
	update := nativeSampleBody(kubehookv1.ScannerUpdateCompleted)
	expectForbidden(t, h.postEvents(acmeToken, update), "type", string(kubehookv1.ScannerUpdateCompleted))
	scan, _ := validBody(t, SourceEvents)
	expectForbidden(t, h.postEvents(acmeToken, fmt.Appendf(nil, "[%s, %s]", scan, update)), "[1].type", "registry-wide")
	if n := h.pending(); n != 0 {
		t.Fatalf("%d deliveries queued by refused requests", n)
	}
	expectAccepted(t, h.postEvents(eventsToken, update), 1, 1)
}

func TestUnscopedEventsTokenStillPublishesForEveryNamespace(t *testing.T) {
	h := newScopedHarness(t)
	scan, _ := validBody(t, SourceEvents)
	expectAccepted(t, h.postEvents(eventsToken, scan), 1, 1)
	expectAccepted(t, h.postEvents(eventsToken, nativeFor(t, kubehookv1.TagPush, "other", "app")), 1, 2)
	expectAccepted(t, h.postEvents(eventsToken, nativeSampleBody(kubehookv1.ScannerUpdateCompleted)), 1, 0)
	if n := h.pending(); n != 3 {
		t.Fatalf("%d deliveries queued, want 3", n)
	}
}

func TestScopedEventsTokenFromTheSecret(t *testing.T) {
	h := newHarness(t, harnessOptions{tokens: map[string]string{}})
	key := types.NamespacedName{Namespace: "kubehook-system", Name: "source-tokens"}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
		Data:       map[string][]byte{SourceEvents: []byte(scopedEventsTokens)},
	}
	c := fake.NewClientBuilder().WithObjects(secret).Build()
	h.server.opts.Auth = NewAuthenticator(AuthOptions{Secret: key, Reader: c})
	ctx := context.Background()
	if err := h.server.opts.Auth.Refresh(ctx); err != nil {
		t.Fatal(err)
	}

	scan, _ := validBody(t, SourceEvents)
	otherApp := nativeFor(t, kubehookv1.TagPush, "other", "app")
	expectAccepted(t, h.postEvents(acmeToken, scan), 1, 1)
	expectForbidden(t, h.postEvents(acmeToken, otherApp), "contents.namespace", `"other"`)
	expectAccepted(t, h.postEvents(eventsToken, otherApp), 1, 2)

	// Narrowing the token in the Secret takes effect at the next refresh.
	secret.Data[SourceEvents] = []byte(acmeToken + " namespaces=team-b\n")
	if err := c.Update(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if err := h.server.opts.Auth.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	rescan := bytes.Replace(scan, []byte("16:55"), []byte("17:55"), 1)
	expectForbidden(t, h.postEvents(acmeToken, rescan), "contents.namespace", `"acme"`)
	if n := h.pending(); n != 3 {
		t.Fatalf("%d deliveries queued, want only the 3 accepted", n)
	}
}

func TestScopeChangesInTheTokenFileTakeEffect(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	path := filepath.Join(h.dir, SourceEvents+"-token")
	h.server.opts.Auth = NewAuthenticator(AuthOptions{TokenFiles: map[string]string{SourceEvents: path}, Now: clock.Now})
	otherApp := nativeFor(t, kubehookv1.TagPush, "other", "app")
	expectAccepted(t, h.postEvents(eventsToken, otherApp), 1, 2)

	writeAtomically(t, path, eventsToken+" namespaces=acme\n")
	clock.Add(5 * time.Second)
	expectForbidden(t, h.postEvents(eventsToken, nativeFor(t, kubehookv1.TagPush, "other", "app2")), "contents.namespace", `"other"`)
	if n := h.pending(); n != 2 {
		t.Fatalf("%d deliveries queued, want the 2 of the first request", n)
	}
}

func TestMalformedScopedLineRefusesItsTokenAndLoadsTheOthers(t *testing.T) {
	const typo = "events-typo-token-1234567890"
	h := newHarness(t, harnessOptions{tokens: map[string]string{SourceEvents: typo + " namespace=acme\n" + acmeToken + " namespaces=acme\n" + eventsToken + "\n"}})
	scan, _ := validBody(t, SourceEvents)
	// A misspelt scope never leaves its token registry-wide.
	expectError(t, h.postEvents(typo, scan), http.StatusUnauthorized, CodeUnauthorized)
	expectAccepted(t, h.postEvents(acmeToken, scan), 1, 1)
	expectAccepted(t, h.postEvents(eventsToken, nativeFor(t, kubehookv1.TagPush, "other", "app")), 1, 2)
}

func TestScopedLinesAreRefusedForDistributionAndHarbor(t *testing.T) {
	h := newHarness(t, harnessOptions{tokens: map[string]string{
		SourceDistribution: distToken + " namespaces=acme\n",
		SourceHarbor:       harborToken + " namespaces=acme\nBasic aGFyYm9yOnNlY3JldA==\n",
	}})
	for _, source := range []string{SourceDistribution, SourceHarbor} {
		body, _ := validBody(t, source)
		resp := h.do(request{path: pathOf[source], contentType: contentTypeOf[source], auth: "Bearer " + tokenOf[source], body: bytes.NewReader(body)})
		expectError(t, resp, http.StatusUnauthorized, CodeUnauthorized)
	}
	// Harbor sends its header value as it is: the whole refused line is no
	// token either, while a line with a space that is no scope still is.
	body, deliveries := validBody(t, SourceHarbor)
	resp := h.do(request{path: PathHarbor, contentType: MediaTypeJSON, auth: harborToken + " namespaces=acme", body: bytes.NewReader(body)})
	expectError(t, resp, http.StatusUnauthorized, CodeUnauthorized)
	resp = h.do(request{path: PathHarbor, contentType: MediaTypeJSON, auth: "Basic aGFyYm9yOnNlY3JldA==", body: bytes.NewReader(body)})
	expectAccepted(t, resp, 2, deliveries)
	if h.server.opts.Auth.Enabled(SourceDistribution) {
		t.Fatal("distribution is enabled by a refused line")
	}
}
