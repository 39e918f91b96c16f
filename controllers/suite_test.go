package controllers

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/dispatcher"
	"github.com/kubehook/kubehook/internal/intake"
	"github.com/kubehook/kubehook/internal/outcomes"
	"github.com/kubehook/kubehook/internal/queue"
	"github.com/kubehook/kubehook/internal/sender"
	"github.com/kubehook/kubehook/internal/subscriptions"
	"github.com/kubehook/kubehook/internal/testenv"
)

// statusSyncPeriod is the engine's default coalescing period.
const statusSyncPeriod = 10 * time.Second

// One control plane and one manager for the package; each test makes its own namespace.
var (
	k8sClient  client.WithWatch
	reg        *subscriptions.Registry
	tracker    *outcomes.Tracker
	publisher  *intake.Publisher
	reconciles = &reconcileCounter{counts: map[types.NamespacedName]int{}}
	// secretReads counts Secrets read from the API server, per namespace.
	secretReads = &readCounter{counts: map[string]int{}}
	nsCounter   atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true), zap.Level(zapLevel())))
	env, cfg, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()

	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = kubehookv1.AddToScheme(scheme)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	// The whole delivery engine, as the binary wires it, on an embedded
	// JetStream in a temporary directory.
	dataDir, err := os.MkdirTemp("", "kubehook-controllers-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dataDir)
	q, err := queue.Open(ctx, queue.Config{DataDir: dataDir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer q.Close()
	reg = subscriptions.New()
	tracker = outcomes.New(statusSyncPeriod)
	tracker.CountFrom(q)
	snd := sender.New(sender.Options{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	disp := dispatcher.New(q, reg, snd, tracker, dispatcher.Options{GracePeriod: time.Second, Exists: SubscriptionExists(mgr.GetAPIReader())})
	if err := mgr.Add(disp); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := mgr.Add(tracker); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	publisher = &intake.Publisher{Registry: reg, Queue: q}

	r := &WebhookSubscriptionReconciler{
		Client:       mgr.GetClient(),
		SecretReader: secretReads.wrap(mgr.GetAPIReader()),
		Recorder:     mgr.GetEventRecorder("kubehook"),
		Registry:     reg,
		Outcomes:     tracker,
		Sender:       snd,
		DeadLetters:  q,
		Tenancy:      true,
	}
	b, err := r.builder(ctx, mgr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := b.Complete(reconciles.wrap(r)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	// Tests read straight from the API server, not from the manager's cache.
	k8sClient, err = client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	code := m.Run()
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		return 1
	}
	return code
}

// zapLevel logs errors only, unless KUBEHOOK_TEST_LOG is set.
func zapLevel() zapcore.Level {
	if os.Getenv("KUBEHOOK_TEST_LOG") != "" {
		return zapcore.DebugLevel
	}
	return zapcore.ErrorLevel
}

// reconcileCounter counts reconciles per object, to prove which writes
// trigger them.
type reconcileCounter struct {
	mu     sync.Mutex
	counts map[types.NamespacedName]int
}

func (c *reconcileCounter) wrap(r reconcile.Reconciler) reconcile.Reconciler {
	return reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		c.mu.Lock()
		c.counts[req.NamespacedName]++
		c.mu.Unlock()
		return r.Reconcile(ctx, req)
	})
}

func (c *reconcileCounter) count(key types.NamespacedName) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[key]
}

// newNamespace creates a namespace named prefix-N with the given
// annotations, so each test has its own.
func newNamespace(t *testing.T, prefix string, annotations map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:        fmt.Sprintf("%s-%d", prefix, nsCounter.Add(1)),
		Annotations: annotations,
	}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func reqFor(ns, name string) reconcile.Request {
	return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}
}

// readCounter counts Get calls per namespace through a client.Reader.
type readCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (c *readCounter) wrap(r client.Reader) client.Reader { return countingReader{Reader: r, c: c} }

func (c *readCounter) count(ns string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[ns]
}

type countingReader struct {
	client.Reader
	c *readCounter
}

func (r countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	r.c.mu.Lock()
	r.c.counts[key.Namespace]++
	r.c.mu.Unlock()
	return r.Reader.Get(ctx, key, obj, opts...)
}
