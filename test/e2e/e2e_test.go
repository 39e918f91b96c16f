// Package e2e runs kubehook end to end: a CNCF Distribution registry
// in-process, its notifications pointed at kubehook's sources server,
// kubehook (app.Run) against a real kube-apiserver and etcd (envtest), and
// httptest receivers for the WebhookSubscriptions. Pushes, pulls, tag
// deletes and manifest deletes are made with go-containerregistry.
package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	distregistry "github.com/distribution/distribution/v3/registry"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/gomega"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/app"
	"github.com/kubehook/kubehook/internal/kubehooktest"
	"github.com/kubehook/kubehook/internal/testenv"
)

const (
	timeout  = 30 * time.Second
	interval = 100 * time.Millisecond
)

// restConfig is the admin config of the control plane TestMain starts.
var restConfig *rest.Config

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	return testenv.Main(m, func(_ *envtest.Environment, cfg *rest.Config) (func(), error) {
		restConfig = cfg
		return nil, nil
	})
}

// delivery is one request a receiver got.
type delivery struct {
	header http.Header
	body   []byte
}

// event is the DTR wrapper of a delivery.
type event struct {
	Type      string         `json:"type"`
	CreatedAt string         `json:"createdAt"`
	Contents  map[string]any `json:"contents"`
}

// receiver records what kubehook delivers to it.
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	got  []delivery
	name string
}

func newReceiver(t *testing.T, name string) *receiver {
	r := &receiver{name: name}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, delivery{header: req.Header.Clone(), body: body})
		r.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

func (r *receiver) events(g Gomega) []event {
	var out []event
	for _, d := range r.deliveries() {
		var ev event
		g.Expect(json.Unmarshal(d.body, &ev)).To(Succeed(), "%s: %s", r.name, d.body)
		out = append(out, ev)
	}
	return out
}

// signingSecret returns a Standard Webhooks secret.
func signingSecret(t *testing.T) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// startRegistry starts a Distribution registry on addr whose notifications
// go to notifyURL with the bearer token. It returns a stop function.
func startRegistry(t *testing.T, addr, notifyURL, token string) func() {
	t.Helper()
	cfg := &configuration.Configuration{}
	cfg.Version = configuration.MajorMinorVersion(0, 1)
	// The registry logs every 404 of a push's existence checks as an error.
	cfg.Log.Level = "fatal"
	if os.Getenv("KUBEHOOK_TEST_LOG") != "" {
		cfg.Log.Level = "info"
	}
	cfg.Log.AccessLog.Disabled = true
	cfg.HTTP.Addr = addr
	cfg.Storage = configuration.Storage{"inmemory": configuration.Parameters{}}
	cfg.Storage["delete"] = configuration.Parameters{"enabled": true}
	cfg.Notifications = configuration.Notifications{Endpoints: []configuration.Endpoint{{
		Name:      "kubehook",
		URL:       notifyURL,
		Headers:   http.Header{"Authorization": []string{"Bearer " + token}},
		Timeout:   5 * time.Second,
		Threshold: 10,
		Backoff:   200 * time.Millisecond,
	}}}
	reg, err := distregistry.NewRegistry(context.Background(), cfg)
	if err != nil {
		t.Fatalf("registry: %v", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- reg.ListenAndServe() }()
	// Serving once /v2/ answers.
	g := NewWithT(t)
	g.Eventually(func(g Gomega) {
		select {
		case err := <-errc:
			g.Expect(err).NotTo(HaveOccurred(), "registry stopped")
		default:
		}
		resp, err := http.Get("http://" + addr + "/v2/")
		g.Expect(err).NotTo(HaveOccurred())
		_ = resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	}, timeout, interval).Should(Succeed())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := reg.Shutdown(ctx); err != nil {
			t.Logf("stopping the registry: %v", err)
		}
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Logf("registry: %v", err)
		}
	}
}

// armImage is a random image whose config says linux/arm64.
func armImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "arm64"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestRegistryEventsAreDelivered(t *testing.T) {
	g := NewWithT(t)
	start := time.Now()
	phase := start
	lap := func(what string) {
		now := time.Now()
		t.Logf("%-40s %6.2fs (total %6.2fs)", what, now.Sub(phase).Seconds(), now.Sub(start).Seconds())
		phase = now
	}

	// kubehook's settings: the flag defaults, with the test's values.
	dir := t.TempDir()
	tokenBytes := make([]byte, 24)
	if _, err := rand.Read(tokenBytes); err != nil {
		t.Fatal(err)
	}
	token := hex.EncodeToString(tokenBytes)
	tokenFile := filepath.Join(dir, "distribution-token")
	g.Expect(os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)).To(Succeed())
	registryAddr, eventsAddr, apiAddr := kubehooktest.FreeAddr(t), kubehooktest.FreeAddr(t), kubehooktest.FreeAddr(t)

	var opts app.Options
	fs := flag.NewFlagSet("kubehook", flag.ContinueOnError)
	opts.BindFlags(fs)
	g.Expect(fs.Parse([]string{
		"--metrics-bind-address=0",
		"--health-probe-bind-address=0",
		"--tenancy=true",
		"--data-dir=" + filepath.Join(dir, "data"),
		"--allow-endpoint-cidrs=127.0.0.0/8",
		"--delivery-concurrency=64",
		"--max-in-flight-per-subscription=8",
		"--status-sync-period=10s",
		"--shutdown-grace-period=2s",
		"--events-bind-address=" + eventsAddr,
		"--api-bind-address=" + apiAddr,
		"--distribution-token-file=" + tokenFile,
		"--registry-host=" + registryAddr,
		"--registry-url=http://" + registryAddr,
	})).To(Succeed())

	// 1. The registry, notifying kubehook.
	stopRegistry := startRegistry(t, registryAddr, "http://"+eventsAddr+"/v1/sources/distribution", token)
	registryStopped := false
	defer func() {
		if !registryStopped {
			stopRegistry()
		}
	}()
	lap("registry started")

	// kubehook.
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- app.Run(ctx, restConfig, opts) }()
	stopped := false
	stopKubehook := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-runErr:
			if err != nil {
				t.Errorf("app.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("app.Run did not return within 30s of cancel")
		}
	}
	defer stopKubehook()

	// 2. Namespace and subscriptions.
	c, err := client.New(restConfig, client.Options{Scheme: app.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	bg := context.Background()
	const ns = "acme"
	g.Expect(c.Create(bg, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())

	secret := signingSecret(t)
	g.Expect(c.Create(bg, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "signing"},
		Data:       map[string][]byte{"key": []byte(secret)},
	})).To(Succeed())

	type subCase struct {
		name   string
		typ    kubehookv1.EventType
		key    string
		signed bool
		rcv    *receiver
	}
	cases := []*subCase{
		{name: "tag-push", typ: kubehookv1.TagPush, key: "acme/web", signed: true},
		{name: "manifest-push", typ: kubehookv1.ManifestPush, key: "acme", signed: true},
		{name: "tag-pull", typ: kubehookv1.TagPull, key: "acme/web"},
		{name: "tag-delete", typ: kubehookv1.TagDelete, key: "acme/web", signed: true},
		{name: "manifest-delete", typ: kubehookv1.ManifestDelete, key: "acme/web", signed: true},
		{name: "other-tag-push", typ: kubehookv1.TagPush, key: "acme/other"},
	}
	subs := map[string]*subCase{}
	for _, sc := range cases {
		sc.rcv = newReceiver(t, sc.name)
		subs[sc.name] = sc
		sub := &kubehookv1.WebhookSubscription{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sc.name},
			Spec: kubehookv1.WebhookSubscriptionSpec{
				Type:     sc.typ,
				Key:      sc.key,
				Endpoint: sc.rcv.URL + "/hook",
			},
		}
		if sc.signed {
			sub.Spec.SigningSecretRef = &kubehookv1.SecretReference{Name: "signing"}
		}
		g.Expect(c.Create(bg, sub)).To(Succeed())
	}
	for _, sc := range cases {
		g.Eventually(func(g Gomega) {
			got := &kubehookv1.WebhookSubscription{}
			g.Expect(c.Get(bg, client.ObjectKey{Namespace: ns, Name: sc.name}, got)).To(Succeed())
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			ready := apimeta.FindStatusCondition(got.Status.Conditions, kubehookv1.ReadyCondition)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Status).To(Equal(metav1.ConditionTrue), ready.Message)
			g.Expect(ready.Reason).To(Equal(kubehookv1.SucceededReason), ready.Message)
		}, timeout, interval).Should(Succeed(), sc.name)
	}
	lap("subscriptions ready")
	// The sources server serves once the subscriptions are loaded.
	g.Eventually(func(g Gomega) {
		conn, err := net.DialTimeout("tcp", eventsAddr, time.Second)
		g.Expect(err).NotTo(HaveOccurred())
		_ = conn.Close()
	}, timeout, interval).Should(Succeed())
	lap("sources server listening")

	// 3. Registry traffic.
	repo, err := name.NewRepository(registryAddr+"/acme/web", name.Insecure)
	g.Expect(err).NotTo(HaveOccurred())
	tag := repo.Tag("v1")

	img1 := armImage(t)
	digest1, err := img1.Digest()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(remote.Write(tag, img1)).To(Succeed())
	lap("pushed acme/web:v1 (1)")

	// TAG_PUSH and MANIFEST_PUSH of the first push, before anything else,
	// so the order of deliveries below is the order of actions.
	g.Eventually(func() int { return len(subs["tag-push"].rcv.deliveries()) }, timeout, interval).Should(Equal(1))
	g.Eventually(func() int { return len(subs["manifest-push"].rcv.deliveries()) }, timeout, interval).Should(Equal(1))
	lap("first push delivered")

	desc, err := remote.Get(tag)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(desc.Digest).To(Equal(digest1))
	pulled, err := desc.Image()
	g.Expect(err).NotTo(HaveOccurred())
	pcf, err := pulled.ConfigFile()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pcf.Architecture).To(Equal("arm64"))
	g.Eventually(func() int { return len(subs["tag-pull"].rcv.deliveries()) }, timeout, interval).Should(Equal(1))
	lap("pulled by tag, TAG_PULL delivered")

	// As docker and containerd pull: HEAD the tag, then GET by digest. The
	// two pulls the registry reports are one TAG_PULL of v1.
	head, err := remote.Head(tag)
	g.Expect(err).NotTo(HaveOccurred())
	byDigest, err := remote.Image(repo.Digest(head.Digest.String()))
	g.Expect(err).NotTo(HaveOccurred())
	_, err = byDigest.ConfigFile()
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func() int { return len(subs["tag-pull"].rcv.deliveries()) }, timeout, interval).Should(Equal(2))
	lap("pulled with HEAD then GET by digest, TAG_PULL delivered")

	g.Expect(remote.Delete(tag)).To(Succeed())
	g.Eventually(func() int { return len(subs["tag-delete"].rcv.deliveries()) }, timeout, interval).Should(Equal(1))
	lap("deleted tag v1, TAG_DELETE delivered")

	img2 := armImage(t)
	digest2, err := img2.Digest()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(remote.Write(tag, img2)).To(Succeed())
	g.Eventually(func() int { return len(subs["tag-push"].rcv.deliveries()) }, timeout, interval).Should(Equal(2))
	lap("pushed acme/web:v1 (2), delivered")

	// Distribution v3 deletes the tags of a manifest deleted by digest, and
	// notifies each as a tag delete: this gives a second TAG_DELETE (v1).
	g.Expect(remote.Delete(repo.Digest(digest2.String()))).To(Succeed())
	lap("deleted manifest by digest")

	// 4. Deliveries.
	checkSigned := func(g Gomega, sc *subCase) {
		for _, d := range sc.rcv.deliveries() {
			if !sc.signed {
				g.Expect(d.header.Get("webhook-signature")).To(BeEmpty(), sc.name)
				continue
			}
			wh, err := standardwebhooks.NewWebhook(secret)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(wh.Verify(d.body, d.header)).To(Succeed(), "%s: signature of %s", sc.name, d.body)
		}
	}
	imageName := registryAddr + "/acme/web:v1"

	// TAG_PUSH: one per tag push, contents from the registry and the image.
	g.Eventually(func(g Gomega) {
		evs := subs["tag-push"].rcv.events(g)
		g.Expect(evs).To(HaveLen(2))
		for i, want := range []v1.Hash{digest1, digest2} {
			g.Expect(evs[i].Type).To(Equal("TAG_PUSH"))
			g.Expect(evs[i].Contents).To(HaveKeyWithValue("digest", want.String()))
			g.Expect(evs[i].Contents).To(HaveKeyWithValue("os", "linux"))
			g.Expect(evs[i].Contents).To(HaveKeyWithValue("architecture", "arm64"))
			g.Expect(evs[i].Contents).To(HaveKeyWithValue("tag", "v1"))
			g.Expect(evs[i].Contents).To(HaveKeyWithValue("namespace", "acme"))
			g.Expect(evs[i].Contents).To(HaveKeyWithValue("repository", "web"))
			g.Expect(evs[i].Contents).To(HaveKeyWithValue("imageName", imageName))
		}
		checkSigned(g, subs["tag-push"])
	}, timeout, interval).Should(Succeed())

	// MANIFEST_PUSH (key acme): both pushes.
	g.Eventually(func(g Gomega) {
		evs := subs["manifest-push"].rcv.events(g)
		g.Expect(evs).To(HaveLen(2))
		for i, want := range []v1.Hash{digest1, digest2} {
			g.Expect(evs[i].Type).To(Equal("MANIFEST_PUSH"))
			g.Expect(evs[i].Contents).To(HaveKeyWithValue("digest", want.String()))
			g.Expect(evs[i].Contents).To(HaveKeyWithValue("os", "linux"))
			g.Expect(evs[i].Contents).To(HaveKeyWithValue("architecture", "arm64"))
			g.Expect(evs[i].Contents).To(HaveKeyWithValue("namespace", "acme"))
			g.Expect(evs[i].Contents).To(HaveKeyWithValue("repository", "web"))
			g.Expect(evs[i].Contents).To(HaveKeyWithValue("imageName", registryAddr+"/acme/web@"+want.String()))
		}
		checkSigned(g, subs["manifest-push"])
	}, timeout, interval).Should(Succeed())

	// TAG_PULL: the pull by tag, and the HEAD-then-digest pull (unsigned
	// subscription).
	g.Eventually(func(g Gomega) {
		evs := subs["tag-pull"].rcv.events(g)
		g.Expect(evs).To(HaveLen(2))
		for _, ev := range evs {
			g.Expect(ev.Type).To(Equal("TAG_PULL"))
			g.Expect(ev.Contents).To(HaveKeyWithValue("digest", digest1.String()))
			g.Expect(ev.Contents).To(HaveKeyWithValue("tag", "v1"))
			g.Expect(ev.Contents).To(HaveKeyWithValue("os", "linux"))
			g.Expect(ev.Contents).To(HaveKeyWithValue("architecture", "arm64"))
			g.Expect(ev.Contents).To(HaveKeyWithValue("imageName", imageName))
		}
		checkSigned(g, subs["tag-pull"])
	}, timeout, interval).Should(Succeed())

	// TAG_DELETE: the tag delete, and the untagging of v1 by the delete by
	// digest (the registry sends no digest with either).
	g.Eventually(func(g Gomega) {
		evs := subs["tag-delete"].rcv.events(g)
		g.Expect(evs).To(HaveLen(2))
		for _, ev := range evs {
			g.Expect(ev.Type).To(Equal("TAG_DELETE"))
			g.Expect(ev.Contents).To(HaveKeyWithValue("tag", "v1"))
			g.Expect(ev.Contents).To(HaveKeyWithValue("digest", ""))
			g.Expect(ev.Contents).To(HaveKeyWithValue("namespace", "acme"))
			g.Expect(ev.Contents).To(HaveKeyWithValue("repository", "web"))
			g.Expect(ev.Contents).To(HaveKeyWithValue("imageName", imageName))
		}
		checkSigned(g, subs["tag-delete"])
	}, timeout, interval).Should(Succeed())

	// MANIFEST_DELETE: the delete by digest.
	g.Eventually(func(g Gomega) {
		evs := subs["manifest-delete"].rcv.events(g)
		g.Expect(evs).To(HaveLen(1))
		g.Expect(evs[0].Type).To(Equal("MANIFEST_DELETE"))
		g.Expect(evs[0].Contents).To(HaveKeyWithValue("digest", digest2.String()))
		g.Expect(evs[0].Contents).To(HaveKeyWithValue("namespace", "acme"))
		g.Expect(evs[0].Contents).To(HaveKeyWithValue("repository", "web"))
		g.Expect(evs[0].Contents).To(HaveKeyWithValue("imageName", registryAddr+"/acme/web@"+digest2.String()))
		checkSigned(g, subs["manifest-delete"])
	}, timeout, interval).Should(Succeed())
	lap("all deliveries checked")

	// lastSuccessfulAt of the TAG_PUSH subscription (a first success is a
	// transition, written at once).
	g.Eventually(func(g Gomega) {
		got := &kubehookv1.WebhookSubscription{}
		g.Expect(c.Get(bg, client.ObjectKey{Namespace: ns, Name: "tag-push"}, got)).To(Succeed())
		g.Expect(got.Status.LastSuccessfulAt).NotTo(BeNil())
	}, timeout, interval).Should(Succeed())
	lap("lastSuccessfulAt set")

	// The DTR API, on its own listener, shows the same subscriptions to a
	// caller with a ServiceAccount token, lastSuccessfulAt included.
	checkDTRAPI(t, g, c, apiAddr, ns)
	lap("DTR API checked")

	// Everything else has arrived: the other key got nothing, and nothing
	// arrived twice.
	g.Expect(subs["other-tag-push"].rcv.deliveries()).To(BeEmpty())
	g.Expect(subs["tag-push"].rcv.deliveries()).To(HaveLen(2))
	g.Expect(subs["manifest-push"].rcv.deliveries()).To(HaveLen(2))
	g.Expect(subs["tag-pull"].rcv.deliveries()).To(HaveLen(2))
	g.Expect(subs["tag-delete"].rcv.deliveries()).To(HaveLen(2))
	g.Expect(subs["manifest-delete"].rcv.deliveries()).To(HaveLen(1))

	// Stop everything.
	stopKubehook()
	lap("kubehook stopped")
	stopRegistry()
	registryStopped = true
	lap("registry stopped")
}

// checkDTRAPI lists the subscriptions of repository ns/web through the DTR
// API as a cluster admin ServiceAccount, and compares them with the objects.
func checkDTRAPI(t *testing.T, g Gomega, c client.Client, apiAddr, ns string) {
	t.Helper()
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dtr-script"}}
	g.Expect(c.Create(ctx, sa)).To(Succeed())
	g.Expect(c.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "dtr-script"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa.Name}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
	})).To(Succeed())
	tr := &authenticationv1.TokenRequest{}
	g.Expect(c.SubResource("token").Create(ctx, sa, tr)).To(Succeed())

	var list kubehookv1.WebhookSubscriptionList
	g.Expect(c.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
	want := map[string]kubehookv1.WebhookSubscription{}
	for _, s := range list.Items {
		if s.Spec.Key == ns+"/web" {
			want[string(s.UID)] = s
		}
	}

	req, err := http.NewRequest(http.MethodGet, "http://"+apiAddr+"/api/v0/repositories/"+ns+"/web/webhooks", nil)
	g.Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Authorization", "Bearer "+tr.Status.Token)
	resp, err := http.DefaultClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK), string(body))
	var hooks []struct {
		ID, Type, Key, Endpoint string
		LastSuccessfulAt        time.Time
	}
	g.Expect(json.Unmarshal(body, &hooks)).To(Succeed())
	g.Expect(hooks).To(HaveLen(len(want)))
	for _, h := range hooks {
		s, ok := want[h.ID]
		g.Expect(ok).To(BeTrue(), h.ID)
		g.Expect(h.Type).To(Equal(string(s.Spec.Type)))
		g.Expect(h.Endpoint).To(Equal(s.Spec.Endpoint))
		if s.Status.LastSuccessfulAt != nil {
			g.Expect(h.LastSuccessfulAt.Equal(s.Status.LastSuccessfulAt.Time)).To(BeTrue(), h.ID)
		}
		if s.Name == "tag-push" {
			g.Expect(h.LastSuccessfulAt.IsZero()).To(BeFalse(), "tag-push delivered")
		}
	}
}
