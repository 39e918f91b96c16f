package dtrapi_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/dtrapi"
)

// The served API applies the per-client limit before anything else: past
// the burst, even a caller without a token gets 429, not 401.
func TestTheAPIRateLimitsEachClient(t *testing.T) {
	g := NewWithT(t)
	opts := apiOptions
	opts.RateLimit, opts.RateBurst = 0.01, 2 // two, then one per 100 s
	srv, err := dtrapi.New(opts)
	g.Expect(err).NotTo(HaveOccurred())
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	g.Expect(callAt(t, ts.URL, http.MethodGet, dtrapi.PathWebhooks, tokens[editor], nil).status).To(Equal(http.StatusOK))
	g.Expect(callAt(t, ts.URL, http.MethodGet, dtrapi.PathWebhooks, "", nil).status).To(Equal(http.StatusUnauthorized))
	r := callAt(t, ts.URL, http.MethodGet, dtrapi.PathWebhooks, tokens[editor], nil)
	g.Expect(r.status).To(Equal(http.StatusTooManyRequests))
	g.Expect(r.header.Get("Retry-After")).NotTo(BeEmpty())
}

// manyNamespaces is more namespaces than one listing may cost lists.
const manyNamespaces = 70

// A caller who may not list across the cluster costs a bounded number of
// lists and access reviews per request, however many namespaces hold
// subscriptions: beyond the bound, the full listing is refused with a
// clear error, after one list (the per-repository listing still works).
func TestListingsCostBoundedWorkAcrossManyNamespaces(t *testing.T) {
	g := NewWithT(t)
	mine := create(t, tokens[editor], map[string]any{"type": "TAG_PUSH", "key": "team-a/bounded", "endpoint": "https://hooks.example.com/b"})
	var made []*kubehookv1.WebhookSubscription
	for i := range manyNamespaces {
		ns := fmt.Sprintf("many-%02d", i)
		g.Expect(admin.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
		sub := &kubehookv1.WebhookSubscription{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hook"},
			Spec:       kubehookv1.WebhookSubscriptionSpec{Type: kubehookv1.TagPush, Key: ns + "/app", Endpoint: "https://hooks.example.com/many"},
		}
		g.Expect(admin.Create(t.Context(), sub)).To(Succeed())
		made = append(made, sub)
	}
	t.Cleanup(func() {
		for _, sub := range made {
			_ = admin.Delete(context.Background(), sub) // t.Context() is done by now
		}
		// Until kubehook's cache has forgotten them, the editor's full
		// listing of the tests after this one would be refused.
		NewWithT(t).Eventually(func() int {
			return call(t, http.MethodGet, dtrapi.PathWebhooks, tokens[editor], nil).status
		}).WithTimeout(30 * time.Second).Should(Equal(http.StatusOK))
	})
	// The cache has them all once the admin's (cluster-wide) listing does.
	g.Eventually(func() int {
		return len(webhooks(g, call(t, http.MethodGet, dtrapi.PathWebhooks, tokens[boss], nil).body))
	}).Should(BeNumerically(">=", manyNamespaces+1))

	lists := apiServerRequests(g, "webhooksubscriptions", "LIST")
	r := call(t, http.MethodGet, dtrapi.PathWebhooks, tokens[editor], nil)
	g.Expect(r.status).To(Equal(http.StatusBadRequest), string(r.body))
	g.Expect(string(r.body)).To(ContainSubstring(dtrapi.CodeTooManyNamespaces))
	g.Expect(string(r.body)).To(ContainSubstring(dtrapi.PathRepositories))
	// The refused cluster-wide list is refused before the API server counts
	// it; a namespace listed (team-a, where the editor may) would count.
	g.Expect(apiServerRequests(g, "webhooksubscriptions", "LIST")-lists).To(BeZero(), "no namespace was listed")

	r = call(t, http.MethodGet, dtrapi.PathWebhooks, tokens[norights], nil)
	g.Expect(r.status).To(Equal(http.StatusBadRequest), "the same for any caller: it tells nothing of their rights")

	r = call(t, http.MethodGet, "/api/v0/repositories/team-a/bounded/webhooks", tokens[editor], nil)
	g.Expect(r.status).To(Equal(http.StatusOK), string(r.body))
	g.Expect(ids(webhooks(g, r.body))).To(ConsistOf(mine.ID))
}

// apiServerRequests sums kube-apiserver's apiserver_request_total for a
// resource and verb: the requests it has served of them so far.
func apiServerRequests(g Gomega, resource, verb string) int {
	cs, err := kubernetes.NewForConfig(env.Config)
	g.Expect(err).NotTo(HaveOccurred())
	raw, err := cs.RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	g.Expect(err).NotTo(HaveOccurred())
	total := 0
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") ||
			!strings.Contains(line, `resource="`+resource+`"`) || !strings.Contains(line, `verb="`+verb+`"`) {
			continue
		}
		f := strings.Fields(line)
		n, err := strconv.ParseFloat(f[len(f)-1], 64)
		g.Expect(err).NotTo(HaveOccurred())
		total += int(n)
	}
	return total
}
