package scale

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/kubehook/kubehook/internal/kubehooktest"
)

const (
	// memNamespaces × memPerNamespace subscriptions are applied.
	memNamespaces   = 100
	memPerNamespace = 100
	// memKubectls kubectl processes apply them, each a share.
	memKubectls = 4
	// memReadyTimeout bounds waiting for all of them to be Ready.
	memReadyTimeout = 10 * time.Minute

	// The resident memory is steady when rssSamples samples taken
	// rssInterval apart lie within rssSpread of one another (or
	// rssSpreadKiB, for a small process); rssTimeout bounds waiting for it.
	rssSamples   = 10
	rssInterval  = time.Second
	rssSpread    = 0.01
	rssSpreadKiB = 512
	rssTimeout   = 3 * time.Minute
)

var memoryResult map[string]float64

// BenchmarkSubscriptionMemory measures kubehook's resident memory (VmRSS
// of its process, once steady) with no subscriptions and with 10,000 Ready
// ones applied with kubectl in 100 namespaces (which exist in both
// measurements), and prints the difference per subscription as
// rss_kib_per_subscription_10k, and how long all took to be Ready relative
// to the time kubectl took to create them. KUBEHOOK_BENCH_MEMORY_SETTLE
// (a Go duration) measures again that long after, when the Events of the
// subscriptions becoming Ready have left client-go's cache.
func BenchmarkSubscriptionMemory(b *testing.B) {
	// One run takes minutes.
	kubehooktest.MeasureOnce(b, &memoryResult, measureSubscriptionMemory)
}

func measureSubscriptionMemory(b *testing.B) map[string]float64 {
	cp := startControlPlane(b)
	namespaces := cp.createNamespaces(b, memNamespaces)
	subs := subscriptions(namespaces, memPerNamespace)

	p := startChild(b, cp.Kubeconfig)
	p.WaitReady(b, readyTimeout)
	idle, idleHeap := steadyRSS(b, p)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rw := cp.watchReady(ctx, b)
	start := time.Now()
	cp.kubectlApply(b, subs, memKubectls)
	created := time.Since(start)
	rw.wait(b, len(subs), memReadyTimeout, p.Running)
	ready := time.Since(start)
	full, fullHeap := steadyRSS(b, p)

	if v := os.Getenv("KUBEHOOK_BENCH_MEMORY_SETTLE"); v != "" {
		// client-go's event broadcaster keeps every Event it recorded (one
		// per subscription that became Ready) for 6 to 12 minutes, to find
		// series; waiting this long measures what stays.
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("KUBEHOOK_BENCH_MEMORY_SETTLE: %v", err)
		}
		time.Sleep(d)
		settled, settledHeap := steadyRSS(b, p)
		fmt.Printf("rss_kib_per_subscription_10k_after_%s: %.2f\n", v, float64(settled-idle)/float64(len(subs)))
		fmt.Printf("live_heap_kib_per_subscription_10k_after_%s: %.2f\n", v, float64(settledHeap-idleHeap)/1024/float64(len(subs)))
	}
	perSub := float64(full-idle) / float64(len(subs))
	fmt.Printf("rss_idle_mib: %.1f\n", float64(idle)/1024)
	fmt.Printf("rss_10k_subscriptions_mib: %.1f\n", float64(full)/1024)
	fmt.Printf("live_heap_idle_mib: %.1f\n", float64(idleHeap)/(1<<20))
	fmt.Printf("live_heap_10k_subscriptions_mib: %.1f\n", float64(fullHeap)/(1<<20))
	fmt.Printf("live_heap_kib_per_subscription_10k: %.2f\n", float64(fullHeap-idleHeap)/1024/float64(len(subs)))
	fmt.Printf("subscriptions_create_seconds_10k: %.1f\n", created.Seconds())
	fmt.Printf("subscriptions_ready_seconds_10k: %.1f\n", ready.Seconds())
	fmt.Printf("subscriptions_ready_vs_create_ratio_10k: %.2f\n", ready.Seconds()/created.Seconds())
	fmt.Printf("rss_kib_per_subscription_10k: %.2f\n", perSub)
	return map[string]float64{"KiB/subscription": perSub, "ready/create": ready.Seconds() / created.Seconds()}
}

// steadyRSS asks the process for a garbage collection, then samples its
// resident memory until it holds still (the scavenger done returning what
// the last burst of work left) and returns the median of the steady
// samples, in KiB, with the live heap after the collection, in bytes.
// After rssTimeout it takes the median of the last samples and says so.
func steadyRSS(b *testing.B, p *kubehook) (rss, liveHeap int64) {
	b.Helper()
	liveHeap = p.collect(b)
	var window []int64
	deadline := time.Now().Add(rssTimeout)
	for {
		if err := p.Running(); err != nil {
			b.Fatal(err)
		}
		v, err := p.rssKiB()
		if err != nil {
			b.Fatal(err)
		}
		window = append(window, v)
		if len(window) > rssSamples {
			window = window[1:]
		}
		if len(window) == rssSamples {
			lo, hi := slices.Min(window), slices.Max(window)
			if hi-lo <= max(rssSpreadKiB, int64(rssSpread*float64(hi))) {
				break
			}
			if time.Now().After(deadline) {
				b.Logf("resident memory not steady after %s: last samples %v KiB", rssTimeout, window)
				break
			}
		}
		time.Sleep(rssInterval)
	}
	b.Logf("resident memory after a collection, KiB, the steady samples: %v", window)
	sorted := slices.Sorted(slices.Values(window))
	return sorted[len(sorted)/2], liveHeap
}
