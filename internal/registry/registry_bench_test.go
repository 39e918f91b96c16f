package registry

import (
	"fmt"
	"math/rand/v2"
	"testing"

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

func benchMatch(b *testing.B, n int) {
	r := New()
	repos := fill(r, n)
	rng := rand.New(rand.NewPCG(3, 4))
	events := make([]string, 4096)
	for i := range events {
		events[i] = repos[rng.IntN(len(repos))]
	}
	b.ReportAllocs()
	b.ResetTimer()
	matched := 0
	for i := 0; b.Loop(); i++ {
		matched += len(r.Match(kubehookv1.TagPush, events[i%len(events)]))
	}
	_ = matched
}

func BenchmarkMatch(b *testing.B) {
	for _, n := range []int{100, 100_000} {
		b.Run(fmt.Sprintf("subscriptions=%d", n), func(b *testing.B) { benchMatch(b, n) })
	}
}

// BenchmarkMatchScaling measures the lookup cost at 100 and at 100,000
// subscriptions in the same process and prints their ratio; an index lookup
// keeps it near 1.
func BenchmarkMatchScaling(b *testing.B) {
	small := testing.Benchmark(func(b *testing.B) { benchMatch(b, 100) })
	large := testing.Benchmark(func(b *testing.B) { benchMatch(b, 100_000) })
	ratio := float64(large.T.Nanoseconds()) / float64(large.N) / (float64(small.T.Nanoseconds()) / float64(small.N))
	b.ReportMetric(ratio, "ratio")
	b.Logf("100: %s, 100000: %s", small, large)
	fmt.Printf("match_cost_ratio_100k_vs_100: %.2f\n", ratio)
}
