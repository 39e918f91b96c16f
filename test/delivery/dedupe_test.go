package delivery

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/kubehooktest"
)

// distributionPath is the sources server's route for the CNCF
// Distribution registry's notifications.
const distributionPath = "/v1/sources/distribution"

// TestResentDistributionNotificationIsDeliveredOnce: a registry resends a
// notification it is not sure arrived (it retries on timeouts); the resend
// carries the same event id, so it is the same deliveries, stored once:
// every subscription gets one delivery of it, not two. A different
// notification is delivered as usual.
func TestResentDistributionNotificationIsDeliveredOnce(t *testing.T) {
	begin := time.Now()
	ns := newNamespace(t)
	rcv := kubehooktest.NewReceiver(t, kubehooktest.EventKey(digestKey))
	token := rand.Text()
	tokenFile := filepath.Join(t.TempDir(), "distribution-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, kubehooktest.WithFlags("--distribution-token-file="+tokenFile))

	repo := ns + "/app"
	// A push with a tag is a TAG_PUSH and a MANIFEST_PUSH: three deliveries.
	subs := []*kubehookv1.WebhookSubscription{
		kubehooktest.TagPushSubscription(ns, "tags", repo, rcv.Endpoint("tags")),
		kubehooktest.TagPushSubscription(ns, "namespace-tags", ns, rcv.Endpoint("namespace-tags")),
		kubehooktest.TagPushSubscription(ns, "manifests", repo, rcv.Endpoint("manifests")),
	}
	subs[2].Spec.Type = kubehookv1.ManifestPush
	// Suspended, so what the queue stored can be counted before anything
	// is delivered.
	for _, s := range subs {
		s.Spec.Suspend = true
	}
	createSubscriptions(t, subs...)
	waitReadyCondition(t, metav1.ConditionTrue, kubehookv1.SuspendedReason, subs...)

	resent := distributionPush(repo, "1.0", 1)
	other := distributionPush(repo, "2.0", 2)
	for i, body := range [][]byte{resent, resent, other} {
		a, err := p.postDistribution(token, body)
		if err != nil {
			t.Fatalf("notification %d: %v", i, err)
		}
		if a.Accepted != 2 || a.Deliveries != len(subs) {
			t.Fatalf("notification %d: accepted %d events with %d deliveries; want 2 events with %d deliveries", i, a.Accepted, a.Deliveries, len(subs))
		}
	}
	// The other notification was posted after the resend, so a count that
	// includes it includes whatever the resend stored.
	for _, s := range subs {
		got := p.waitStatus(t, client.ObjectKeyFromObject(s), func(g Gomega, s *kubehookv1.WebhookSubscription) {
			g.Expect(s.Status.Backlog).To(BeNumerically(">=", 2), "status.backlog")
		})
		if got.Status.Backlog != 2 {
			t.Errorf("%s holds %d deliveries for two notifications, one of them sent twice; want 2", s.Name, got.Status.Backlog)
		}
	}

	for _, s := range subs {
		updateSubscription(t, client.ObjectKeyFromObject(s), func(s *kubehookv1.WebhookSubscription) { s.Spec.Suspend = false })
	}
	waitSubscriptionsReady(t, subs...)
	var want []kubehooktest.Pair
	for _, s := range subs {
		want = append(want, kubehooktest.Pair{Sub: s.Name, Event: digestOf(1)}, kubehooktest.Pair{Sub: s.Name, Event: digestOf(2)})
	}
	if _, err := rcv.Await(apiTimeout, func(kubehooktest.ReceiverStats) bool { return len(rcv.Missing(want)) == 0 }, p.Running); err != nil {
		t.Fatalf("after resuming: %v; missing %s", err, firstN(rcv.Missing(want), 6))
	}
	for _, s := range subs {
		p.waitStatus(t, client.ObjectKeyFromObject(s), func(g Gomega, s *kubehookv1.WebhookSubscription) {
			g.Expect(s.Status.Backlog).To(BeZero(), "status.backlog")
		})
	}
	got := rcv.Snapshot()
	if got.Duplicates > 0 || got.Requests != len(want) {
		t.Errorf("%d requests for %d deliveries (%d duplicates); want each delivery once", got.Requests, len(want), got.Duplicates)
	}
	if got.Malformed > 0 {
		t.Errorf("%d requests named no digest", got.Malformed)
	}
	p.checkNoneDropped(t)
	t.Logf("test took %s", time.Since(begin).Round(time.Millisecond))
}

// digestOf is the manifest digest of notification n.
func digestOf(n int) string { return fmt.Sprintf("sha256:%064x", n) }

// distributionPush is a notification envelope of one manifest push of
// repo:tag, as a Distribution registry sends it; n picks its event id and
// digest.
func distributionPush(repo, tag string, n int) []byte {
	return fmt.Appendf(nil, `{"events": [{
		"id": "event-%d", "timestamp": %q, "action": "push",
		"target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": %q, "size": 400, "repository": %q, "tag": %q},
		"request": {"id": "request-%d", "host": "registry.example.com", "method": "PUT", "useragent": "crane"},
		"actor": {"name": "ci-bot"}}]}`, n, time.Now().UTC().Format(time.RFC3339Nano), digestOf(n), repo, tag, n)
}

// postDistribution posts a notification envelope as the registry does.
func (p *kubehook) postDistribution(token string, body []byte) (kubehooktest.Accepted, error) {
	return p.Post(distributionPath, "application/vnd.docker.distribution.events.v2+json", token, body)
}

// digestKey names a delivery's event by contents.digest, which both the tag
// and the manifest types carry.
func digestKey(body []byte) (string, bool) {
	var ev struct {
		Contents struct {
			Digest string `json:"digest"`
		} `json:"contents"`
	}
	if err := json.Unmarshal(body, &ev); err != nil || !strings.HasPrefix(ev.Contents.Digest, "sha256:") {
		return "", false
	}
	return ev.Contents.Digest, true
}
