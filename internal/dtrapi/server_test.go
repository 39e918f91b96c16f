package dtrapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/dtrapi"
	"github.com/kubehook/kubehook/internal/payload"
	"github.com/kubehook/kubehook/internal/testenv"
)

// seedRequest is the body of the DTR document's curl example, verbatim.
const seedRequest = `{ "endpoint": "https://webhook.site/441b1584-949d-4608-a7f3-f240bdd31019", "key": "maria-testorg/lab-words", "skipTLSVerification": true, "type": "TAG_PULL"}`

// dtrFields is the field set of DTR's webhook object.
var dtrFields = []string{"id", "type", "key", "endpoint", "authorID", "createdAt", "lastSuccessfulAt", "inactive", "tlsCert", "skipTLSVerification"}

// webhook decodes one DTR object, checking it has exactly DTR's fields.
func webhook(g Gomega, body []byte) dtrapi.Webhook {
	var fields map[string]any
	g.Expect(json.Unmarshal(body, &fields)).To(Succeed(), string(body))
	g.Expect(keys(fields)).To(ConsistOf(dtrFields))
	var w dtrapi.Webhook
	g.Expect(json.Unmarshal(body, &w)).To(Succeed())
	return w
}

// webhooks decodes a list, checking every object's field set.
func webhooks(g Gomega, body []byte) []dtrapi.Webhook {
	var raw []json.RawMessage
	g.Expect(json.Unmarshal(body, &raw)).To(Succeed(), string(body))
	out := make([]dtrapi.Webhook, 0, len(raw))
	for _, r := range raw {
		out = append(out, webhook(g, r))
	}
	return out
}

func ids(hooks []dtrapi.Webhook) []string {
	out := make([]string, len(hooks))
	for i, h := range hooks {
		out[i] = h.ID
	}
	return out
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// apiError decodes DTR's error shape and returns its only error.
func apiError(g Gomega, r response) dtrapi.Error {
	var body dtrapi.ErrorBody
	g.Expect(json.Unmarshal(r.body, &body)).To(Succeed(), string(r.body))
	g.Expect(body.Errors).To(HaveLen(1))
	g.Expect(body.Errors[0].Message).NotTo(BeEmpty())
	return body.Errors[0]
}

// create makes a subscription through the API and returns it.
func create(t *testing.T, token string, body any) dtrapi.Webhook {
	t.Helper()
	g := NewWithT(t)
	r := call(t, http.MethodPost, "/api/v0/webhooks", token, body)
	g.Expect(r.status).To(Equal(http.StatusCreated), string(r.body))
	hook := webhook(g, r.body)
	forget(t, hook.ID)
	return hook
}

// forget deletes, when the test ends, the subscription behind id, so a test
// run again (go test -count) starts from the same state.
func forget(t *testing.T, id string) {
	t.Cleanup(func() {
		if sub := object(NewWithT(t), id); sub != nil {
			_ = admin.Delete(context.Background(), sub)
		}
	})
}

// object finds the WebhookSubscription behind a DTR id.
func object(g Gomega, id string) *kubehookv1.WebhookSubscription {
	var list kubehookv1.WebhookSubscriptionList
	g.Expect(admin.List(context.Background(), &list)).To(Succeed())
	for i := range list.Items {
		if string(list.Items[i].UID) == id {
			return &list.Items[i]
		}
	}
	return nil
}

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	k := env.ControlPlane.KubeCtl()
	k.Path = testenv.AssetsDir() + "/kubectl"
	stdout, stderr, err := k.Run(args...)
	if err != nil {
		e, _ := io.ReadAll(stderr)
		t.Fatalf("kubectl %s: %v: %s", strings.Join(args, " "), err, e)
	}
	out, _ := io.ReadAll(stdout)
	return string(out)
}

func TestEditorCreatesListsGetsAndDeletesInItsNamespace(t *testing.T) {
	g := NewWithT(t)
	before := time.Now().Add(-time.Second)

	// The DTR document's curl request: Basic with the token as password.
	r := callBasic(t, http.MethodPost, "/api/v0/webhooks", tokens[editor], seedRequest)
	g.Expect(r.status).To(Equal(http.StatusCreated), string(r.body))
	g.Expect(r.header.Get("Content-Type")).To(Equal("application/json"))
	hook := webhook(g, r.body)
	g.Expect(hook.Type).To(Equal("TAG_PULL"))
	g.Expect(hook.Key).To(Equal("maria-testorg/lab-words"))
	g.Expect(hook.Endpoint).To(Equal("https://webhook.site/441b1584-949d-4608-a7f3-f240bdd31019"))
	g.Expect(hook.SkipTLSVerification).To(BeTrue())
	g.Expect(hook.TLSCert).To(BeEmpty())
	g.Expect(hook.Inactive).To(BeFalse())
	g.Expect(hook.AuthorID).To(Equal(saUIDs[editor]))
	g.Expect(hook.CreatedAt).To(BeTemporally(">=", before.Truncate(time.Second)))
	g.Expect(string(r.body)).To(ContainSubstring(`"lastSuccessfulAt":"0001-01-01T00:00:00Z"`))

	// It is a WebhookSubscription in team-a, the namespace that may use
	// registry namespace maria-testorg, with its author recorded.
	sub := object(g, hook.ID)
	g.Expect(sub).NotTo(BeNil())
	g.Expect(sub.Namespace).To(Equal("team-a"))
	g.Expect(sub.Annotations).To(HaveKeyWithValue(kubehookv1.AuthorIDAnnotation, saUIDs[editor]))
	g.Expect(sub.Annotations).To(HaveKeyWithValue(kubehookv1.AuthorAnnotation, "system:serviceaccount:accounts:editor"))

	// Listed and read by id, at once.
	r = call(t, http.MethodGet, "/api/v0/webhooks", tokens[editor], nil)
	g.Expect(r.status).To(Equal(http.StatusOK), string(r.body))
	g.Expect(ids(webhooks(g, r.body))).To(ContainElement(hook.ID))
	r = call(t, http.MethodGet, "/api/v0/webhooks/"+hook.ID, tokens[editor], nil)
	g.Expect(r.status).To(Equal(http.StatusOK), string(r.body))
	g.Expect(webhook(g, r.body)).To(Equal(hook))

	// kubectl shows the same object, its author at -o wide.
	g.Expect(kubectl(t, "get", "whsub", "-n", "team-a", sub.Name)).To(
		SatisfyAll(ContainSubstring(sub.Name), ContainSubstring("TAG_PULL"), ContainSubstring("maria-testorg/lab-words")))
	g.Expect(kubectl(t, "get", "whsub", "-n", "team-a", sub.Name, "-o", "wide")).To(
		ContainSubstring("system:serviceaccount:accounts:editor"))

	// Deleting it with kubectl removes it from the API.
	kubectl(t, "delete", "whsub", "-n", "team-a", sub.Name, "--wait=true")
	r = call(t, http.MethodGet, "/api/v0/webhooks/"+hook.ID, tokens[editor], nil)
	g.Expect(r.status).To(Equal(http.StatusNotFound), string(r.body))
	g.Expect(apiError(g, r).Code).To(Equal(dtrapi.CodeNoSuchWebhook))
	r = call(t, http.MethodGet, "/api/v0/webhooks", tokens[editor], nil)
	g.Expect(ids(webhooks(g, r.body))).NotTo(ContainElement(hook.ID))

	// A subscription created with the API is deleted with it.
	other := create(t, tokens[editor], map[string]any{"type": "TAG_PUSH", "key": "team-a/web", "endpoint": "https://hooks.example.com/a"})
	g.Expect(object(g, other.ID).Namespace).To(Equal("team-a"))
	r = call(t, http.MethodDelete, "/api/v0/webhooks/"+other.ID, tokens[editor], nil)
	g.Expect(r.status).To(Equal(http.StatusNoContent), string(r.body))
	g.Expect(object(g, other.ID)).To(BeNil())
	r = call(t, http.MethodDelete, "/api/v0/webhooks/"+other.ID, tokens[editor], nil)
	g.Expect(r.status).To(Equal(http.StatusNotFound), string(r.body))
}

func TestEditorCannotReachAnotherTeam(t *testing.T) {
	g := NewWithT(t)
	theirs := create(t, tokens[boss], map[string]any{"type": "TAG_PUSH", "key": "team-b/app", "endpoint": "https://hooks.example.com/b"})
	g.Expect(object(g, theirs.ID).Namespace).To(Equal("team-b"))

	// Not visible: 404 to read or delete, absent from lists.
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		r := call(t, method, "/api/v0/webhooks/"+theirs.ID, tokens[editor], nil)
		g.Expect(r.status).To(Equal(http.StatusNotFound), method+" "+string(r.body))
	}
	g.Expect(object(g, theirs.ID)).NotTo(BeNil(), "still there")
	r := call(t, http.MethodGet, "/api/v0/webhooks", tokens[editor], nil)
	g.Expect(r.status).To(Equal(http.StatusOK))
	g.Expect(ids(webhooks(g, r.body))).NotTo(ContainElement(theirs.ID))
	r = call(t, http.MethodGet, "/api/v0/repositories/team-b/app/webhooks", tokens[editor], nil)
	g.Expect(r.status).To(Equal(http.StatusOK))
	g.Expect(webhooks(g, r.body)).To(BeEmpty())

	// Creating in team-b is refused by RBAC, with the reason.
	r = call(t, http.MethodPost, "/api/v0/webhooks", tokens[editor], map[string]any{"type": "TAG_PUSH", "key": "team-b/app", "endpoint": "https://hooks.example.com/b"})
	g.Expect(r.status).To(Equal(http.StatusForbidden), string(r.body))
	e := apiError(g, r)
	g.Expect(e.Code).To(Equal(dtrapi.CodeNotAuthorized))
	g.Expect(e.Message).To(ContainSubstring(`may not create webhooksubscriptions in any namespace that may hold key "team-b/app"`))
	g.Expect(e.Message).NotTo(ContainSubstring("registry-admin"), "namespaces the caller cannot see are not named")

	// Naming the namespace: RBAC answers first, so the tenancy rules of a
	// namespace are explained only to who may create there.
	r = call(t, http.MethodPost, "/api/v0/webhooks?namespace=team-b", tokens[editor], map[string]any{"type": "TAG_PUSH", "key": "team-b/app", "endpoint": "https://hooks.example.com/b"})
	g.Expect(r.status).To(Equal(http.StatusForbidden), string(r.body))
	g.Expect(apiError(g, r).Message).To(ContainSubstring(`may not create webhooksubscriptions in namespace "team-b"`))
	r = call(t, http.MethodPost, "/api/v0/webhooks?namespace=team-a", tokens[editor], map[string]any{"type": "TAG_PUSH", "key": "team-b/app", "endpoint": "https://hooks.example.com/b"})
	g.Expect(r.status).To(Equal(http.StatusForbidden), string(r.body))
	g.Expect(apiError(g, r).Message).To(ContainSubstring(`namespace "team-a" may not hold subscriptions to key "team-b/app"`))

	// So is the empty key (every repository), even in its own namespace.
	r = call(t, http.MethodPost, "/api/v0/webhooks", tokens[editor], map[string]any{"type": "TAG_PUSH", "endpoint": "https://hooks.example.com/all"})
	g.Expect(r.status).To(Equal(http.StatusForbidden), string(r.body))
	g.Expect(apiError(g, r).Message).To(ContainSubstring(`the empty key needs a namespace annotated`))

	// A registry namespace only the "*" namespace may use: the editor may
	// not create there; the admin's subscription lands there.
	body := map[string]any{"type": "TAG_PUSH", "key": "nobody/app", "endpoint": "https://hooks.example.com/n"}
	r = call(t, http.MethodPost, "/api/v0/webhooks", tokens[editor], body)
	g.Expect(r.status).To(Equal(http.StatusForbidden), string(r.body))
	g.Expect(apiError(g, r).Message).NotTo(ContainSubstring(`registry-admin`))
	g.Expect(object(g, create(t, tokens[boss], body).ID).Namespace).To(Equal("registry-admin"))
}

func TestCallersWithoutRightsAreRefused(t *testing.T) {
	g := NewWithT(t)
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{http.MethodGet, "/api/v0/webhooks", nil},
		{http.MethodPost, "/api/v0/webhooks", map[string]any{"type": "TAG_PUSH", "key": "team-a/web", "endpoint": "https://hooks.example.com/x"}},
		{http.MethodPost, "/api/v0/webhooks/test", map[string]any{"type": "TAG_PUSH", "endpoint": "https://hooks.example.com/x"}},
		{http.MethodGet, "/api/v0/repositories/team-a/webhooks", nil},
	} {
		r := call(t, c.method, c.path, tokens[norights], c.body)
		g.Expect(r.status).To(Equal(http.StatusForbidden), c.method+" "+c.path+": "+string(r.body))
		g.Expect(apiError(g, r).Code).To(Equal(dtrapi.CodeNotAuthorized))
	}
}

func TestUnauthenticatedCallersAreRefused(t *testing.T) {
	g := NewWithT(t)
	for name, auth := range map[string]string{
		"no token":        "",
		"bad token":       "Bearer not-a-token",
		"bad basic":       "Basic !!!",
		"basic no secret": "Basic dGVzdC11c2Vy", // "test-user"
		"other scheme":    "Digest abc",
	} {
		h := http.Header{}
		if auth != "" {
			h.Set("Authorization", auth)
		}
		r := do(t, http.MethodGet, "/api/v0/webhooks", h, nil)
		g.Expect(r.status).To(Equal(http.StatusUnauthorized), name)
		g.Expect(apiError(g, r).Code).To(Equal(dtrapi.CodeNotAuthenticated), name)
		g.Expect(r.header.Values("WWW-Authenticate")).To(ContainElement(ContainSubstring("Basic")), name)
	}
}

func TestAdminSeesEverythingAndMayUseTheEmptyKey(t *testing.T) {
	g := NewWithT(t)
	a := create(t, tokens[editor], map[string]any{"type": "TAG_PUSH", "key": "team-a", "endpoint": "https://hooks.example.com/a"})
	b := create(t, tokens[boss], map[string]any{"type": "TAG_DELETE", "key": "team-b", "endpoint": "https://hooks.example.com/b"})
	global := create(t, tokens[boss], map[string]any{"type": "SCANNER_UPDATE_COMPLETED", "endpoint": "https://hooks.example.com/g"})
	g.Expect(global.Key).To(BeEmpty())
	g.Expect(global.AuthorID).To(Equal(saUIDs[boss]))
	g.Expect(object(g, global.ID).Namespace).To(Equal("registry-admin"))

	r := call(t, http.MethodGet, "/api/v0/webhooks", tokens[boss], nil)
	g.Expect(r.status).To(Equal(http.StatusOK))
	var list kubehookv1.WebhookSubscriptionList
	g.Expect(admin.List(context.Background(), &list)).To(Succeed())
	all := make([]string, len(list.Items))
	for i := range list.Items {
		all[i] = string(list.Items[i].UID)
	}
	g.Expect(ids(webhooks(g, r.body))).To(ConsistOf(all))
	g.Expect(all).To(ContainElements(a.ID, b.ID, global.ID))
}

// The shipped admin ClusterRole is DTR's admin: every subscription, and
// the empty key.
func TestShippedAdminRoleManagesEverySubscription(t *testing.T) {
	g := NewWithT(t)
	theirs := create(t, tokens[editor], map[string]any{"type": "TAG_PUSH", "key": "team-a/admin-test", "endpoint": "https://hooks.example.com/a"})
	global := create(t, tokens[dtrAdmin], map[string]any{"type": "TAG_PUSH", "endpoint": "https://hooks.example.com/all"})
	g.Expect(object(g, global.ID).Namespace).To(Equal("registry-admin"))

	r := call(t, http.MethodGet, "/api/v0/webhooks", tokens[dtrAdmin], nil)
	g.Expect(r.status).To(Equal(http.StatusOK))
	g.Expect(ids(webhooks(g, r.body))).To(ContainElements(theirs.ID, global.ID))
	g.Expect(len(webhooks(g, r.body))).To(Equal(count(g)))

	r = call(t, http.MethodDelete, "/api/v0/webhooks/"+theirs.ID, tokens[dtrAdmin], nil)
	g.Expect(r.status).To(Equal(http.StatusNoContent), string(r.body))
	g.Expect(object(g, theirs.ID)).To(BeNil())
}

func TestPerResourceListingsReturnExactlyThatKey(t *testing.T) {
	g := NewWithT(t)
	web1 := create(t, tokens[editor], map[string]any{"type": "TAG_PUSH", "key": "team-a/shop/web", "endpoint": "https://hooks.example.com/1"})
	web2 := create(t, tokens[editor], map[string]any{"type": "SCAN_COMPLETED", "key": "team-a/shop/web", "endpoint": "https://hooks.example.com/2"})
	create(t, tokens[editor], map[string]any{"type": "TAG_PUSH", "key": "team-a/shop", "endpoint": "https://hooks.example.com/3"})
	ns := create(t, tokens[editor], map[string]any{"type": "REPO_EVENT", "key": "maria-testorg", "endpoint": "https://hooks.example.com/4"})
	create(t, tokens[editor], map[string]any{"type": "TAG_PUSH", "key": "maria-testorg/other", "endpoint": "https://hooks.example.com/5"})

	r := call(t, http.MethodGet, "/api/v0/repositories/team-a/shop/web/webhooks", tokens[editor], nil)
	g.Expect(r.status).To(Equal(http.StatusOK), string(r.body))
	g.Expect(ids(webhooks(g, r.body))).To(ConsistOf(web1.ID, web2.ID))

	r = call(t, http.MethodGet, "/api/v0/repositories/maria-testorg/webhooks", tokens[editor], nil)
	g.Expect(r.status).To(Equal(http.StatusOK), string(r.body))
	g.Expect(ids(webhooks(g, r.body))).To(ConsistOf(ns.ID))

	// The admin, listing across the cluster, gets the same.
	r = call(t, http.MethodGet, "/api/v0/repositories/team-a/shop/web/webhooks", tokens[boss], nil)
	g.Expect(ids(webhooks(g, r.body))).To(ConsistOf(web1.ID, web2.ID))

	r = call(t, http.MethodGet, "/api/v0/repositories/team-a/Shop/webhooks", tokens[editor], nil)
	g.Expect(r.status).To(Equal(http.StatusNotFound), "not a repository path")
}

func TestTestSendsTheSamplePayloadOfEachType(t *testing.T) {
	g := NewWithT(t)
	var mu sync.Mutex
	got := map[string][]byte{}
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev struct{ Type string }
		_ = json.Unmarshal(body, &ev)
		mu.Lock()
		got[ev.Type] = body
		mu.Unlock()
	}))
	defer receiver.Close()

	for _, typ := range kubehookv1.EventTypes {
		r := call(t, http.MethodPost, "/api/v0/webhooks/test", tokens[editor], map[string]any{"type": typ, "endpoint": receiver.URL + "/hook"})
		g.Expect(r.status).To(Equal(http.StatusOK), string(typ)+": "+string(r.body))
		var res dtrapi.TestResult
		g.Expect(json.Unmarshal(r.body, &res)).To(Succeed())
		g.Expect(res).To(Equal(dtrapi.TestResult{Type: string(typ), Endpoint: receiver.URL + "/hook", Success: true, StatusCode: 200, Message: "delivered: HTTP 200"}))

		want, _, err := payload.Render(kubehookv1.PayloadFormatDTR, payload.Sample(typ), "", "kubehook")
		g.Expect(err).NotTo(HaveOccurred())
		mu.Lock()
		g.Expect(got[string(typ)]).To(MatchJSON(want), string(typ))
		mu.Unlock()
	}
}

func TestTestReportsAFailedDelivery(t *testing.T) {
	g := NewWithT(t)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no thanks", http.StatusInternalServerError)
	}))
	defer failing.Close()
	r := call(t, http.MethodPost, "/api/v0/webhooks/test", tokens[editor], map[string]any{"type": "TAG_PUSH", "endpoint": failing.URL})
	g.Expect(r.status).To(Equal(http.StatusBadGateway), string(r.body))
	e := apiError(g, r)
	g.Expect(e.Code).To(Equal(dtrapi.CodeWebhookTestFailed))
	g.Expect(e.Detail).To(HaveKeyWithValue("statusCode", BeEquivalentTo(500)))

	// The SSRF guard of real deliveries applies: a private address is refused.
	r = call(t, http.MethodPost, "/api/v0/webhooks/test", tokens[editor], map[string]any{"type": "TAG_PUSH", "endpoint": "http://10.0.0.1/hook"})
	g.Expect(r.status).To(Equal(http.StatusBadGateway), string(r.body))
	g.Expect(apiError(g, r).Message).To(ContainSubstring("10.0.0.1"))
}

func TestBadRequestsNameTheField(t *testing.T) {
	g := NewWithT(t)
	before := count(g)
	for _, c := range []struct {
		body, field, code string
	}{
		{`{"type":"TAG_PUSH","key":"team-a","endpoint":"https://x.example.com","colour":"red"}`, "colour", dtrapi.CodeInvalidParameters},
		{`{"type":"TAG_SHOVE","key":"team-a","endpoint":"https://x.example.com"}`, "type", dtrapi.CodeInvalidParameters},
		{`{"key":"team-a","endpoint":"https://x.example.com"}`, "type", dtrapi.CodeInvalidParameters},
		{`{"type":"TAG_PUSH","key":"team-a","endpoint":"ftp://x.example.com"}`, "endpoint", dtrapi.CodeInvalidParameters},
		{`{"type":"TAG_PUSH","key":"team-a"}`, "endpoint", dtrapi.CodeInvalidParameters},
		{`{"type":"TAG_PUSH","key":"Team-A","endpoint":"https://x.example.com"}`, "key", dtrapi.CodeInvalidParameters},
		{`{"type":"REPO_EVENT","key":"team-a/web","endpoint":"https://x.example.com"}`, "key", dtrapi.CodeInvalidParameters},
		{`{"type":"TAG_PUSH","key":"team-a","endpoint":"https://x.example.com","skipTLSVerification":"yes"}`, "skipTLSVerification", dtrapi.CodeInvalidParameters},
		{`{"type":"TAG_PUSH","key":"team-a","endpoint":"https://x.example.com","tlsCert":"not pem"}`, "tlsCert", dtrapi.CodeInvalidParameters},
		{`{"type":"TAG_PUSH",`, "", dtrapi.CodeInvalidJSON},
		{`[]`, "", dtrapi.CodeInvalidJSON},
		{`{"type":"TAG_PUSH","key":"team-a","endpoint":"https://x.example.com"} {}`, "", dtrapi.CodeInvalidJSON},
	} {
		r := call(t, http.MethodPost, "/api/v0/webhooks", tokens[editor], c.body)
		g.Expect(r.status).To(Equal(http.StatusBadRequest), c.body+": "+string(r.body))
		e := apiError(g, r)
		g.Expect(e.Code).To(Equal(c.code), c.body)
		if c.field != "" {
			g.Expect(e.Detail).To(HaveKeyWithValue("field", c.field), c.body)
			g.Expect(e.Message).To(ContainSubstring(c.field), c.body)
		}
	}

	h := http.Header{"Authorization": {"Bearer " + tokens[editor]}, "Content-Type": {"application/x-www-form-urlencoded"}}
	r := do(t, http.MethodPost, "/api/v0/webhooks", h, "type=TAG_PUSH")
	g.Expect(r.status).To(Equal(http.StatusUnsupportedMediaType))
	g.Expect(apiError(g, r).Code).To(Equal(dtrapi.CodeUnsupportedMediaType))

	big := fmt.Sprintf(`{"type":"TAG_PUSH","key":"team-a","endpoint":"https://x.example.com","tlsCert":%q}`, strings.Repeat("A", dtrapi.MaxBodyBytes))
	r = call(t, http.MethodPost, "/api/v0/webhooks", tokens[editor], big)
	g.Expect(r.status).To(Equal(http.StatusRequestEntityTooLarge))

	r = call(t, http.MethodPut, "/api/v0/webhooks", tokens[editor], "{}")
	g.Expect(r.status).To(Equal(http.StatusMethodNotAllowed))
	g.Expect(r.header.Get("Allow")).To(Equal("GET, POST"))
	r = call(t, http.MethodGet, "/api/v0/webhooks/test", tokens[editor], nil)
	g.Expect(r.status).To(Equal(http.StatusMethodNotAllowed))
	r = call(t, http.MethodGet, "/api/v0/nothing", tokens[editor], nil)
	g.Expect(r.status).To(Equal(http.StatusNotFound))

	g.Expect(count(g)).To(Equal(before), "nothing was created")
}

func TestAmbiguousPlacementIsSettledWithTheNamespaceParameter(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	// Namespaces cannot be deleted without a namespace controller: fresh
	// names for each run.
	run := runs.Add(1)
	first, second, regNS := fmt.Sprintf("mirror-%d-a", run), fmt.Sprintf("mirror-%d-b", run), fmt.Sprintf("mirrors%d", run)
	for _, name := range []string{first, second} {
		g.Expect(admin.Create(ctx, namespaceAnnotated(name, regNS))).To(Succeed())
	}
	awaitCachedNamespaces(g, first, second)
	body := map[string]any{"type": "TAG_PUSH", "key": regNS + "/app", "endpoint": "https://hooks.example.com/m"}
	r := call(t, http.MethodPost, "/api/v0/webhooks", tokens[boss], body)
	g.Expect(r.status).To(Equal(http.StatusBadRequest), string(r.body))
	e := apiError(g, r)
	g.Expect(e.Code).To(Equal(dtrapi.CodeAmbiguousNamespace))
	g.Expect(e.Detail).To(HaveKeyWithValue("namespaces", ConsistOf(first, second)))

	r = call(t, http.MethodPost, "/api/v0/webhooks?namespace="+second, tokens[boss], body)
	g.Expect(r.status).To(Equal(http.StatusCreated), string(r.body))
	created := webhook(g, r.body)
	forget(t, created.ID)
	g.Expect(object(g, created.ID).Namespace).To(Equal(second))

	// A namespace that may not use the key cannot be chosen.
	r = call(t, http.MethodPost, "/api/v0/webhooks?namespace=team-a", tokens[boss], body)
	g.Expect(r.status).To(Equal(http.StatusForbidden), string(r.body))
}

// runs numbers the runs of tests that need fresh names.
var runs atomic.Int64

func count(g Gomega) int {
	var list kubehookv1.WebhookSubscriptionList
	g.Expect(admin.List(context.Background(), &list)).To(Succeed())
	return len(list.Items)
}

// awaitCachedNamespaces waits until the API's cache (kubehook's) holds the
// namespaces: placement reads their annotations from it.
func awaitCachedNamespaces(g Gomega, names ...string) {
	for _, name := range names {
		g.Eventually(func() error {
			ns := &metav1.PartialObjectMetadata{}
			ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
			return apiOptions.Cache.Get(context.Background(), client.ObjectKey{Name: name}, ns)
		}).Should(Succeed(), "namespace %s in the cache", name)
	}
}

func namespaceAnnotated(name, registryNamespaces string) client.Object {
	ns := &corev1.Namespace{}
	ns.Name = name
	ns.Annotations = map[string]string{kubehookv1.RegistryNamespacesAnnotation: registryNamespaces}
	return ns
}

// With tenancy off (--tenancy=false), ?namespace= may name any namespace;
// RBAC still decides.
func TestWithoutTenancyTheNamespaceParameterChoosesAnyNamespace(t *testing.T) {
	g := NewWithT(t)
	opts := apiOptions
	opts.AnyNamespace = true
	srv, err := dtrapi.New(opts)
	g.Expect(err).NotTo(HaveOccurred())
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	body := map[string]any{"type": "TAG_PUSH", "key": "unclaimed/app", "endpoint": "https://hooks.example.com/u"}
	r := callAt(t, ts.URL, http.MethodPost, "/api/v0/webhooks?namespace=team-b", tokens[boss], body)
	g.Expect(r.status).To(Equal(http.StatusCreated), string(r.body))
	inB := webhook(g, r.body)
	forget(t, inB.ID)
	g.Expect(object(g, inB.ID).Namespace).To(Equal("team-b"))

	r = callAt(t, ts.URL, http.MethodPost, "/api/v0/webhooks?namespace=team-b", tokens[editor], body)
	g.Expect(r.status).To(Equal(http.StatusForbidden), string(r.body))
	r = callAt(t, ts.URL, http.MethodPost, "/api/v0/webhooks?namespace=team-a", tokens[editor], body)
	g.Expect(r.status).To(Equal(http.StatusCreated), string(r.body))
	inA := webhook(g, r.body)
	forget(t, inA.ID)
	g.Expect(object(g, inA.ID).Namespace).To(Equal("team-a"))

	// A namespace that does not exist: 404 for who may create anywhere,
	// 403 for who may not (existence is not revealed to them).
	r = callAt(t, ts.URL, http.MethodPost, "/api/v0/webhooks?namespace=nowhere", tokens[boss], body)
	g.Expect(r.status).To(Equal(http.StatusNotFound), string(r.body))
	r = callAt(t, ts.URL, http.MethodPost, "/api/v0/webhooks?namespace=nowhere", tokens[editor], body)
	g.Expect(r.status).To(Equal(http.StatusForbidden), string(r.body))

	// The server that keeps tenancy refuses the same choice.
	r = call(t, http.MethodPost, "/api/v0/webhooks?namespace=team-a", tokens[editor], body)
	g.Expect(r.status).To(Equal(http.StatusForbidden), string(r.body))
}
