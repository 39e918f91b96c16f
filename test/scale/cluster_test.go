package scale

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/kubehooktest"
	"github.com/kubehook/kubehook/internal/testenv"
)

// controlPlane is a kube-apiserver and etcd of one benchmark's own.
type controlPlane struct{ *kubehooktest.ControlPlane }

// startControlPlane starts a control plane with the kubehook CRDs, stopped
// at the end of the benchmark.
func startControlPlane(b *testing.B) *controlPlane {
	b.Helper()
	env, cfg, err := testenv.Start()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := env.Stop(); err != nil {
			b.Errorf("stopping the control plane: %v", err)
		}
	})
	// The test's own requests are not kubehook's: no client-side limit.
	cfg.QPS, cfg.Burst = -1, 0
	cp, err := kubehooktest.NewControlPlane(env, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cp.Close)
	return &controlPlane{cp}
}

// createNamespaces creates namespaces scale-000 to scale-<n-1>, each also
// the registry namespace its subscriptions may use (tenancy's default).
func (cp *controlPlane) createNamespaces(b *testing.B, n int) []string {
	b.Helper()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("scale-%03d", i)
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: names[i]}}
		if err := cp.Client.Create(context.Background(), ns); err != nil {
			b.Fatalf("creating namespace %s: %v", names[i], err)
		}
	}
	return names
}

// subscriptionTypes are the event types the generated subscriptions cycle
// through (every one takes a key).
var subscriptionTypes = []kubehookv1.EventType{kubehookv1.TagPush, kubehookv1.TagPull, kubehookv1.ManifestPush, kubehookv1.TagDelete}

// subscriptions generates perNamespace subscriptions in each namespace,
// each for a repository of its own, as a platform team's manifests would.
func subscriptions(namespaces []string, perNamespace int) []*kubehookv1.WebhookSubscription {
	var subs []*kubehookv1.WebhookSubscription
	for _, ns := range namespaces {
		for i := range perNamespace {
			sub := &kubehookv1.WebhookSubscription{
				TypeMeta:   metav1.TypeMeta{APIVersion: kubehookv1.GroupVersion.String(), Kind: "WebhookSubscription"},
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("repo-%03d-hook", i)},
				Spec: kubehookv1.WebhookSubscriptionSpec{
					Type:     subscriptionTypes[len(subs)%len(subscriptionTypes)],
					Key:      fmt.Sprintf("%s/repo-%03d", ns, i),
					Endpoint: fmt.Sprintf("https://hooks.example.com/registry/%s/repo-%03d", ns, i),
				},
			}
			subs = append(subs, sub)
		}
	}
	return subs
}

// kubectlApply applies subs with kubectl (client-side apply, as a person or
// Argo CD does: each object keeps its last-applied-configuration), in
// `parallel` kubectl processes over equal shares.
func (cp *controlPlane) kubectlApply(b *testing.B, subs []*kubehookv1.WebhookSubscription, parallel int) {
	b.Helper()
	kubectl := filepath.Join(testenv.AssetsDir(), "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		if kubectl, err = exec.LookPath("kubectl"); err != nil {
			b.Fatalf("kubectl is neither in %s nor on PATH: run `make tools`", testenv.AssetsDir())
		}
	}
	dir := b.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, parallel)
	for p := range parallel {
		var manifest strings.Builder
		for i := p; i < len(subs); i += parallel {
			y, err := yaml.Marshal(subs[i])
			if err != nil {
				b.Fatal(err)
			}
			manifest.WriteString("---\n")
			manifest.Write(y)
		}
		file := filepath.Join(dir, fmt.Sprintf("subscriptions-%d.yaml", p))
		if err := os.WriteFile(file, []byte(manifest.String()), 0o600); err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			out, err := exec.Command(kubectl, "--kubeconfig", cp.Kubeconfig, "apply", "-f", file, "-o", "name").CombinedOutput()
			if err != nil {
				errs[p] = fmt.Errorf("kubectl apply -f %s: %w: %s", file, err, tail(string(out), 2000))
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
}

// createInParallel creates subs through the API server, workers at a time.
func (cp *controlPlane) createInParallel(b *testing.B, subs []*kubehookv1.WebhookSubscription, workers int) {
	b.Helper()
	next := make(chan *kubehookv1.WebhookSubscription)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for sub := range next {
				if err := cp.Client.Create(context.Background(), sub.DeepCopy()); err != nil {
					errs <- fmt.Errorf("creating WebhookSubscription %s/%s: %w", sub.Namespace, sub.Name, err)
					return
				}
			}
		})
	}
	for _, sub := range subs {
		select {
		case next <- sub:
		case err := <-errs:
			close(next)
			wg.Wait()
			b.Fatal(err)
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// readyWatch follows every WebhookSubscription of the cluster through a
// watch and tells when a number of them are Ready for their current
// generation; cheaper for the machine than listing thousands again and
// again while kubehook works on them.
type readyWatch struct {
	mu      sync.Mutex
	ready   map[types.NamespacedName]bool
	n       int
	changed chan struct{}
}

// watchReady starts the watch; it ends with ctx.
func (cp *controlPlane) watchReady(ctx context.Context, b *testing.B) *readyWatch {
	b.Helper()
	var list kubehookv1.WebhookSubscriptionList
	if err := cp.Client.List(ctx, &list); err != nil {
		b.Fatal(err)
	}
	w, err := cp.Client.Watch(ctx, &kubehookv1.WebhookSubscriptionList{}, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
	if err != nil {
		b.Fatal(err)
	}
	rw := &readyWatch{ready: map[types.NamespacedName]bool{}, changed: make(chan struct{}, 1)}
	for i := range list.Items {
		rw.observe(&list.Items[i], false)
	}
	go func() {
		defer w.Stop()
		for e := range w.ResultChan() {
			sub, ok := e.Object.(*kubehookv1.WebhookSubscription)
			if !ok {
				continue
			}
			rw.observe(sub, e.Type == watch.Deleted)
		}
	}()
	return rw
}

func (rw *readyWatch) observe(sub *kubehookv1.WebhookSubscription, deleted bool) {
	id := client.ObjectKeyFromObject(sub)
	ready := !deleted && sub.Status.ObservedGeneration == sub.Generation &&
		apimeta.IsStatusConditionTrue(sub.Status.Conditions, kubehookv1.ReadyCondition)
	rw.mu.Lock()
	if ready != rw.ready[id] {
		if ready {
			rw.n++
		} else {
			rw.n--
		}
	}
	if ready {
		rw.ready[id] = true
	} else {
		delete(rw.ready, id)
	}
	rw.mu.Unlock()
	select {
	case rw.changed <- struct{}{}:
	default:
	}
}

// count returns how many are Ready.
func (rw *readyWatch) count() int {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	return rw.n
}

// wait returns once n subscriptions are Ready, or fails the benchmark
// after timeout; check reports a reason to stop waiting (kubehook exited).
func (rw *readyWatch) wait(b *testing.B, n int, timeout time.Duration, check func() error) {
	b.Helper()
	deadline := time.After(timeout)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for rw.count() < n {
		select {
		case <-rw.changed:
		case <-tick.C:
			if err := check(); err != nil {
				b.Fatal(err)
			}
		case <-deadline:
			b.Fatalf("%d of %d subscriptions Ready after %s", rw.count(), n, timeout)
		}
	}
}
