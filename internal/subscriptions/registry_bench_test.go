package subscriptions

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

// fill registers n subscriptions spread over namespaces, repositories and
// types, the way a large cluster would have them, and returns the
// repositories events are drawn from.
func fill(r *Registry, n int) []string {
	rng := rand.New(rand.NewPCG(1, 2))
	repos := make([]string, 0, n)
	for i := range n {
		ns := fmt.Sprintf("ns%d", i%(n/10+1))
		repo := fmt.Sprintf("%s/repo%d", ns, i)
		key := repo
		if i%10 == 0 {
			key = ns // one in ten subscribes to a whole namespace
		}
		t := kubehookv1.EventTypes[rng.IntN(len(kubehookv1.EventTypes))]
		if t.Scope() != kubehookv1.RepositoryScope {
			t = kubehookv1.TagPush
		}
		r.Upsert(&Subscription{
			ID:   types.NamespacedName{Namespace: ns, Name: fmt.Sprintf("s%d", i)},
			Type: t, Key: key,
		})
		repos = append(repos, repo)
	}
	return repos
}

// matchWorkload returns a registry of n subscriptions and the repositories
// of 4096 events drawn from it.
func matchWorkload(n int) (*Registry, []string) {
	r := New()
	repos := fill(r, n)
	rng := rand.New(rand.NewPCG(3, 4))
	// An event's repository name is freshly decoded from a request, so it is
	// in cache: lay the names out contiguously rather than pointing into
	// the registry's own strings.
	var all strings.Builder
	ends := make([]int, 4096)
	for i := range ends {
		all.WriteString(repos[rng.IntN(len(repos))])
		ends[i] = all.Len()
	}
	buf := all.String()
	events := make([]string, len(ends))
	start := 0
	for i, end := range ends {
		events[i], start = buf[start:end], end
	}
	return r, events
}

func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{100, 100_000} {
		b.Run(fmt.Sprintf("subscriptions=%d", n), func(b *testing.B) {
			r, events := matchWorkload(n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				r.Match(kubehookv1.TagPush, events[i%len(events)])
			}
		})
	}
}

// BenchmarkMatchScaling measures the lookup cost at 100 and at 100,000
// subscriptions in the same process, alternating rounds so both see the same
// machine state, and prints their ratio; an index lookup keeps it near 1.
func BenchmarkMatchScaling(b *testing.B) {
	small, smallEvents := matchWorkload(100)
	large, largeEvents := matchWorkload(100_000)
	const lookups = 200_000
	round := func(r *Registry, events []string) time.Duration {
		start := time.Now()
		for i := range lookups {
			r.Match(kubehookv1.TagPush, events[i%len(events)])
		}
		return time.Since(start)
	}
	var smallT, largeT time.Duration
	for b.Loop() {
		smallT += round(small, smallEvents)
		largeT += round(large, largeEvents)
	}
	ratio := float64(largeT) / float64(smallT)
	b.ReportMetric(float64(smallT.Nanoseconds())/float64(b.N*lookups), "ns/match@100")
	b.ReportMetric(float64(largeT.Nanoseconds())/float64(b.N*lookups), "ns/match@100k")
	b.ReportMetric(ratio, "ratio")
	fmt.Printf("match_cost_ratio_100k_vs_100: %.2f\n", ratio)
}
