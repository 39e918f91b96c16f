package sources

import (
	"context"
	"testing"
)

// The inspector keeps CacheSize inspections, the least recently used
// making room, and answers those it keeps without asking the registry.
func TestInspectorResultsCacheIsBoundedLeastRecentlyUsedFirst(t *testing.T) {
	reg := newTestRegistry(t, false, nil)
	digests := map[string]string{}
	for _, os := range []string{"a", "b", "c"} {
		_, digests[os] = reg.pushImage(t, "acme/"+os, os, "amd64")
	}
	insp := newInspector(t, reg, func(o *InspectorOptions) { o.CacheSize = 2 })
	inspect := func(os string) Platform {
		t.Helper()
		p, err := insp.Platform(context.Background(), "acme/"+os, digests[os])
		if err != nil {
			t.Fatalf("Platform of %s: %v", os, err)
		}
		return p
	}
	inspect("a")
	inspect("b")
	inspect("a") // b is now the least recently used
	inspect("c")

	if n := len(insp.results.Keys()); n != 2 {
		t.Fatalf("len = %d, want 2", n)
	}
	if _, ok := insp.results.Get(digests["b"]); ok {
		t.Fatal("the least recently used entry was kept")
	}
	before := reg.manifestGets.Load()
	for _, k := range []string{"a", "c"} {
		v, ok := insp.results.Get(digests[k])
		if !ok || v.(inspection).platform.OS != k {
			t.Fatalf("get(%q) = %+v, %v", k, v, ok)
		}
		if p := inspect(k); p.OS != k {
			t.Fatalf("Platform of %s = %+v", k, p)
		}
	}
	if got := reg.manifestGets.Load() - before; got != 0 {
		t.Fatalf("cached inspections made %d manifest requests, want 0", got)
	}
	// b, evicted, is fetched again.
	if p := inspect("b"); p.OS != "b" {
		t.Fatalf("Platform of b = %+v", p)
	}
	if got := reg.manifestGets.Load() - before; got != 1 {
		t.Fatalf("the evicted inspection made %d manifest requests, want 1", got)
	}
}
