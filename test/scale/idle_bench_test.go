package scale

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"k8s.io/client-go/rest"

	"github.com/kubehook/kubehook/internal/app"
	"github.com/kubehook/kubehook/internal/kubehooktest"
)

const (
	// idleNamespaces × idlePerNamespace subscriptions are Ready while
	// nothing happens.
	idleNamespaces   = 10
	idlePerNamespace = 100
	// idleSettle is how long kubehook must have written nothing to the
	// API server before the window opens: longer than a status sync
	// period (10s), so what loading the subscriptions set off is over.
	idleSettle        = 15 * time.Second
	idleSettleTimeout = 2 * time.Minute
	idleReadyTimeout  = 5 * time.Minute
)

var idleResult map[string]float64

// BenchmarkIdleRequests runs kubehook in this process (app.Run with its
// default flags, --nats-url to a JetStream server of the benchmark, and
// leader election, as a replica of the multi-replica mode runs) with
// 1,000 Ready subscriptions and no events, counts for one minute the
// JetStream API requests it makes (subjects $JS.API.>, seen by a
// subscriber of the benchmark on the server) and its Kubernetes API
// requests (counted by a RoundTripper on its rest.Config), the renewals of
// its leader-election Lease left out, and prints their sum per minute as
// idle_requests_per_minute. KUBEHOOK_BENCH_IDLE_FOR shortens the window
// (a Go duration) for a quick look; the figure is scaled to a minute.
func BenchmarkIdleRequests(b *testing.B) {
	// One run takes about two minutes.
	kubehooktest.MeasureOnce(b, &idleResult, measureIdleRequests)
}

func measureIdleRequests(b *testing.B) map[string]float64 {
	window := time.Minute
	if v := os.Getenv("KUBEHOOK_BENCH_IDLE_FOR"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("KUBEHOOK_BENCH_IDLE_FOR: %v", err)
		}
		window = d
	}
	cp := startControlPlane(b)
	namespaces := cp.createNamespaces(b, idleNamespaces)
	subs := subscriptions(namespaces, idlePerNamespace)
	srv := startNATS(b)

	js := &natsCounter{counts: map[string]int{}}
	watcher, err := nats.Connect(srv.ClientURL(), nats.Name("scale-benchmark-counter"))
	if err != nil {
		b.Fatal(err)
	}
	defer watcher.Close()
	if _, err := watcher.Subscribe("$JS.API.>", js.observe); err != nil {
		b.Fatal(err)
	}
	if err := watcher.Flush(); err != nil {
		b.Fatal(err)
	}

	kube := &kubeCounter{counts: map[string]int{}}
	cfg := rest.CopyConfig(cp.Config)
	// As ctrl.GetConfig leaves it for the kubehook binary: no client-side
	// rate limit (the API server has priority and fairness).
	cfg.QPS, cfg.Burst = -1, 0
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &countingTransport{next: rt, c: kube} })

	kh := kubehooktest.NewConfig(b, kubehooktest.WithFlags("--nats-url="+srv.ClientURL(), "--leader-elect", "--leader-election-namespace=default"))
	var opts app.Options
	fs := flag.NewFlagSet("kubehook", flag.ContinueOnError)
	opts.BindFlags(fs)
	if err := fs.Parse(kh.Args()); err != nil {
		b.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- app.Run(ctx, cfg, opts) }()
	defer func() {
		stop()
		select {
		case err := <-runErr:
			if err != nil {
				b.Errorf("kubehook stopped: %v", err)
			}
		case <-time.After(exitTimeout):
			b.Errorf("kubehook still running %s after its context ended", exitTimeout)
		}
	}()
	running := func() error {
		select {
		case err := <-runErr:
			runErr <- err
			return fmt.Errorf("kubehook stopped: %v", err)
		default:
			return nil
		}
	}
	kubehooktest.WaitReady(b, kh, readyTimeout, running)

	watchCtx, cancelWatch := context.WithCancel(context.Background())
	defer cancelWatch()
	rw := cp.watchReady(watchCtx, b)
	cp.createInParallel(b, subs, 16)
	rw.wait(b, len(subs), idleReadyTimeout, running)
	cancelWatch()

	// Quiet: nothing written for idleSettle.
	deadline := time.Now().Add(idleSettleTimeout)
	for time.Since(kube.lastWrite()) < idleSettle {
		if time.Now().After(deadline) {
			b.Fatalf("kubehook still writing to the API server %s after its subscriptions were Ready", idleSettleTimeout)
		}
		if err := running(); err != nil {
			b.Fatal(err)
		}
		time.Sleep(time.Second)
	}

	natsIn := func() int64 {
		cz, err := srv.Connz(&server.ConnzOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range cz.Conns {
			if c.Name == "kubehook" {
				return c.InMsgs
			}
		}
		b.Fatal("kubehook's NATS connection not found")
		return 0
	}
	msgsBefore := natsIn()
	js.start()
	kube.start()
	time.Sleep(window)
	jsCounts, kubeCounts := js.stop(), kube.stop()
	msgs := natsIn() - msgsBefore
	if err := running(); err != nil {
		b.Fatal(err)
	}

	perMinute := func(n int) float64 { return float64(n) * float64(time.Minute) / float64(window) }
	jsN, kubeN, leases := 0, 0, 0
	for _, k := range slices.Sorted(maps.Keys(jsCounts)) {
		jsN += jsCounts[k]
		b.Logf("JetStream %s: %d", k, jsCounts[k])
	}
	for _, k := range slices.Sorted(maps.Keys(kubeCounts)) {
		if strings.Contains(k, " leases") {
			leases += kubeCounts[k]
			b.Logf("Kubernetes %s: %d (not counted: leader election)", k, kubeCounts[k])
			continue
		}
		kubeN += kubeCounts[k]
		b.Logf("Kubernetes %s: %d", k, kubeCounts[k])
	}
	fmt.Printf("idle_window_seconds: %.0f\n", window.Seconds())
	fmt.Printf("idle_jetstream_requests_per_minute: %.1f\n", perMinute(jsN))
	fmt.Printf("idle_kubernetes_requests_per_minute: %.1f\n", perMinute(kubeN))
	fmt.Printf("idle_lease_requests_per_minute: %.1f\n", perMinute(leases))
	fmt.Printf("idle_nats_messages_per_minute: %.1f\n", perMinute(int(msgs)))
	fmt.Printf("idle_requests_per_minute: %.1f\n", perMinute(jsN+kubeN))
	return map[string]float64{"requests/min": perMinute(jsN + kubeN)}
}

// startNATS runs a JetStream server on a loopback port for the benchmark.
func startNATS(b *testing.B) *server.Server {
	b.Helper()
	srv, err := server.NewServer(&server.Options{
		ServerName: "scale",
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  true,
		StoreDir:   filepath.Join(b.TempDir(), "jetstream"),
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		b.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		b.Fatal("NATS server not ready")
	}
	b.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

// natsCounter counts the JetStream API requests it sees while on.
type natsCounter struct {
	on     atomic.Bool
	mu     sync.Mutex
	counts map[string]int
}

func (c *natsCounter) observe(m *nats.Msg) {
	if !c.on.Load() {
		return
	}
	subject := m.Subject
	// A subscription's own consumer is named after its UID.
	if i := strings.Index(subject, "kubehook-parked-"); i >= 0 {
		subject = subject[:i] + "kubehook-parked-*"
	}
	c.mu.Lock()
	c.counts[subject]++
	c.mu.Unlock()
}

func (c *natsCounter) start() { c.on.Store(true) }

func (c *natsCounter) stop() map[string]int {
	c.on.Store(false)
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.counts)
}

// kubeCounter counts the Kubernetes API requests kubehook makes while on,
// by verb and resource, and remembers when it last wrote anything.
type kubeCounter struct {
	on     atomic.Bool
	wrote  atomic.Int64 // unix nanoseconds
	mu     sync.Mutex
	counts map[string]int
}

func (c *kubeCounter) observe(r *http.Request) {
	resource := resourceOf(r.URL.Path)
	// Lease renewals are writes every few seconds, whatever happens.
	if r.Method != http.MethodGet && !strings.HasPrefix(resource, "leases") {
		c.wrote.Store(time.Now().UnixNano())
	}
	if !c.on.Load() {
		return
	}
	key := r.Method + " " + resource
	if r.URL.Query().Get("watch") == "true" {
		key += " (watch)"
	}
	c.mu.Lock()
	c.counts[key]++
	c.mu.Unlock()
}

func (c *kubeCounter) lastWrite() time.Time { return time.Unix(0, c.wrote.Load()) }

func (c *kubeCounter) start() { c.on.Store(true) }

func (c *kubeCounter) stop() map[string]int {
	c.on.Store(false)
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.counts)
}

// resourceOf names the resource of an API path without its namespace and
// object names: /apis/g/v/namespaces/ns/kind/name/status is
// "kind/{name}/status".
func resourceOf(path string) string {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(segs) >= 2 && segs[0] == "api":
		segs = segs[2:]
	case len(segs) >= 3 && segs[0] == "apis":
		segs = segs[3:]
	default:
		return path
	}
	if len(segs) > 2 && segs[0] == "namespaces" {
		segs = segs[2:]
	}
	if len(segs) > 1 {
		segs[1] = "{name}"
	}
	return strings.Join(segs, "/")
}

// countingTransport counts every request before sending it on.
type countingTransport struct {
	next http.RoundTripper
	c    *kubeCounter
}

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.c.observe(r)
	return t.next.RoundTrip(r)
}
