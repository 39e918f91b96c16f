package sources

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// testRegistry is go-containerregistry's in-memory registry behind
// httptest, counting the manifest requests it serves.
type testRegistry struct {
	*httptest.Server
	manifestGets atomic.Int64
	userAgents   sync.Map
}

func newTestRegistry(t *testing.T, tls bool, wrap func(http.Handler) http.Handler) *testRegistry {
	t.Helper()
	r := &testRegistry{}
	var h http.Handler = ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	counted := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/manifests/") {
			r.manifestGets.Add(1)
			r.userAgents.Store(req.UserAgent(), true)
		}
		h.ServeHTTP(w, req)
	})
	if tls {
		r.Server = httptest.NewTLSServer(counted)
	} else {
		r.Server = httptest.NewServer(counted)
	}
	t.Cleanup(r.Close)
	return r
}

func (r *testRegistry) host() string {
	u, _ := url.Parse(r.URL)
	return u.Host
}

func (r *testRegistry) pushOptions(opts ...remote.Option) []remote.Option {
	if strings.HasPrefix(r.URL, "https") {
		opts = append(opts, remote.WithTransport(httpsOnly{r.Client().Transport}))
	}
	return opts
}

// pushImage pushes a random image with the given platform and returns its digest.
func (r *testRegistry) pushImage(t *testing.T, repo, os, arch string, opts ...remote.Option) (v1.Image, string) {
	t.Helper()
	img := platformImage(t, os, arch)
	ref, err := name.ParseReference(r.host() + "/" + repo + ":latest")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, r.pushOptions(opts...)...); err != nil {
		t.Fatalf("pushing %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return img, d.String()
}

func platformImage(t *testing.T, os, arch string) v1.Image {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = os, arch
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// pushIndex pushes an index of images with the given platforms ("os/arch").
func (r *testRegistry) pushIndex(t *testing.T, repo string, platforms ...string) string {
	t.Helper()
	var adds []mutate.IndexAddendum
	for _, p := range platforms {
		os, arch, _ := strings.Cut(p, "/")
		img := platformImage(t, os, arch)
		if os == "unknown" {
			// BuildKit's attestation manifests: platform unknown/unknown.
			img = platformImage(t, "", "")
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: os, Architecture: arch}}})
	}
	idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), types.OCIImageIndex)
	ref, err := name.ParseReference(r.host() + "/" + repo + ":multi")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx, r.pushOptions()...); err != nil {
		t.Fatalf("pushing index %s: %v", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func newInspector(t *testing.T, r *testRegistry, mod ...func(*InspectorOptions)) *RemoteInspector {
	t.Helper()
	opts := InspectorOptions{URL: r.URL}
	if strings.HasPrefix(r.URL, "https") {
		opts.Transport = r.Client().Transport
	}
	for _, m := range mod {
		m(&opts)
	}
	insp, err := NewRemoteInspector(opts)
	if err != nil {
		t.Fatal(err)
	}
	return insp
}

func TestInspectorReportsImagePlatformAndCachesByDigest(t *testing.T) {
	reg := newTestRegistry(t, false, nil)
	_, digest := reg.pushImage(t, "acme/app", "linux", "arm64")
	insp := newInspector(t, reg)
	ctx := context.Background()

	before := reg.manifestGets.Load()
	p, err := insp.Platform(ctx, "acme/app", digest)
	if err != nil {
		t.Fatal(err)
	}
	if p != (Platform{OS: "linux", Architecture: "arm64"}) {
		t.Fatalf("platform = %+v, want linux/arm64", p)
	}
	if got := reg.manifestGets.Load() - before; got != 1 {
		t.Fatalf("first inspection made %d manifest requests, want 1", got)
	}
	// Digests are immutable: the second call is served from the cache.
	p2, err := insp.Platform(ctx, "acme/app", digest)
	if err != nil || p2 != p {
		t.Fatalf("second call = %+v, %v", p2, err)
	}
	if got := reg.manifestGets.Load() - before; got != 1 {
		t.Fatalf("second inspection reached the registry (%d manifest requests in all)", got)
	}
	// Its requests say who makes them, so its own pulls can be recognised.
	found := false
	reg.userAgents.Range(func(k, _ any) bool {
		found = found || strings.HasPrefix(k.(string), InspectorUserAgent)
		return true
	})
	if !found {
		t.Errorf("no manifest request with User-Agent %s...", InspectorUserAgent)
	}
}

func TestInspectorConcurrentInspectionsOfOneDigestMakeOneFetch(t *testing.T) {
	reg := newTestRegistry(t, false, nil)
	_, digest := reg.pushImage(t, "acme/app", "linux", "amd64")
	insp := newInspector(t, reg)
	before := reg.manifestGets.Load()

	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if p, err := insp.Platform(context.Background(), "acme/app", digest); err != nil || p.Architecture != "amd64" {
				t.Errorf("Platform = %+v, %v", p, err)
			}
		})
	}
	wg.Wait()
	if got := reg.manifestGets.Load() - before; got != 1 {
		t.Fatalf("20 concurrent inspections made %d manifest requests, want 1", got)
	}
}

func TestInspectorIndexReportsLinuxAmd64ElseFirstKnownPlatform(t *testing.T) {
	reg := newTestRegistry(t, false, nil)
	insp := newInspector(t, reg)
	tests := []struct {
		name      string
		platforms []string
		want      Platform
	}{
		{"linux/amd64 wherever it is listed", []string{"linux/arm64", "linux/amd64", "windows/amd64"}, Platform{"linux", "amd64"}},
		{"else the first known platform", []string{"unknown/unknown", "linux/arm64", "linux/s390x"}, Platform{"linux", "arm64"}},
		{"only attestations: empty", []string{"unknown/unknown"}, Platform{}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := "acme/multi" + string(rune('a'+i))
			digest := reg.pushIndex(t, repo, tt.platforms...)
			got, err := insp.Platform(context.Background(), repo, digest)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("platform = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestInspectorArtifactHasNoPlatformButItsConfigMediaType(t *testing.T) {
	reg := newTestRegistry(t, false, nil)
	const helmConfig = "application/vnd.cncf.helm.config.v1+json"
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), helmConfig)
	ref, _ := name.ParseReference(reg.host() + "/acme/chart:0.1.0")
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	insp := newInspector(t, reg)

	mt, err := insp.ConfigMediaType(context.Background(), "acme/chart", d.String())
	if err != nil || mt != helmConfig {
		t.Fatalf("ConfigMediaType = %q, %v; want %s", mt, err, helmConfig)
	}
	p, err := insp.Platform(context.Background(), "acme/chart", d.String())
	if err != nil || p != (Platform{}) {
		t.Fatalf("Platform = %+v, %v; want empty, nil", p, err)
	}
}

func TestInspectorUnknownDigestFailsAndIsRetriedAfterFailureTTL(t *testing.T) {
	reg := newTestRegistry(t, false, nil)
	reg.pushImage(t, "acme/app", "linux", "amd64")
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	insp := newInspector(t, reg, func(o *InspectorOptions) {
		o.FailureTTL = 5 * time.Second
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	missing := "sha256:" + strings.Repeat("ab", 32)
	before := reg.manifestGets.Load()

	// Asked twice at once (as the Distribution parser does: chart
	// detection, then the platform), a failure costs one fetch.
	if _, err := insp.Platform(context.Background(), "acme/app", missing); err == nil {
		t.Fatal("Platform of an unknown digest succeeded")
	}
	if _, err := insp.ConfigMediaType(context.Background(), "acme/app", missing); err == nil {
		t.Fatal("ConfigMediaType of an unknown digest succeeded")
	}
	if got := reg.manifestGets.Load() - before; got != 1 {
		t.Fatalf("%d manifest requests within the failure TTL, want 1", got)
	}
	if n := len(insp.results.Keys()); n != 0 {
		t.Fatalf("a failure is in the cache (%d entries)", n)
	}
	// After the TTL the registry is asked again.
	mu.Lock()
	now = now.Add(6 * time.Second)
	mu.Unlock()
	if _, err := insp.Platform(context.Background(), "acme/app", missing); err == nil {
		t.Fatal("Platform of an unknown digest succeeded")
	}
	if got := reg.manifestGets.Load() - before; got != 2 {
		t.Fatalf("%d manifest requests after the failure TTL, want 2", got)
	}
	if _, err := insp.Platform(context.Background(), "acme/app", "not-a-digest"); err == nil {
		t.Fatal("Platform accepted a malformed digest")
	}
}

func TestInspectorHTTPSURLIsNeverDowngradedOnLoopback(t *testing.T) {
	// go-containerregistry would speak plain http to 127.0.0.1 on its own;
	// this TLS-only registry answers only if every request is https.
	reg := newTestRegistry(t, true, nil)
	_, digest := reg.pushImage(t, "acme/app", "linux", "ppc64le")
	insp := newInspector(t, reg)
	p, err := insp.Platform(context.Background(), "acme/app", digest)
	if err != nil {
		t.Fatal(err)
	}
	if p.Architecture != "ppc64le" {
		t.Fatalf("platform = %+v", p)
	}
}

func TestNewRemoteInspectorRefusesUnusableURLs(t *testing.T) {
	for _, u := range []string{"", "registry.example.com", "ftp://registry.example.com", "https://registry.example.com/v2/", "https://user:pw@registry.example.com"} {
		if _, err := NewRemoteInspector(InspectorOptions{URL: u}); err == nil {
			t.Errorf("NewRemoteInspector(%q) succeeded", u)
		}
	}
}
