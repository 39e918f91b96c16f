package sources

import (
	"context"
	"strings"
	"testing"
	"time"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/queue"
)

// pullEvent is a manifest pull of acme/web: by tag with HEAD (a client
// resolving the tag), or by digest with GET; at is its timestamp and addr
// the client's address.
func pullEvent(method, tag, at, addr, userAgent string) string {
	ev := strings.NewReplacer(
		`"action":"push"`, `"action":"pull"`,
		`"method":"PUT"`, `"method":"`+method+`","addr":"`+addr+`"`,
		`2026-11-27T16:54:10.953355603Z`, at,
		`containerd/v1.7.13`, userAgent,
	).Replace(pushEvent)
	if tag == "" {
		ev = strings.Replace(ev, `,"tag":"1.4.2"`, ``, 1)
	}
	return ev
}

// defaultWindow is the window the sources server uses.
const defaultWindow = time.Minute

func TestHeadThenGetByDigestIsATagPull(t *testing.T) {
	ctx := context.Background()
	const ua = "containerd/v1.7.13"
	head := pullEvent("HEAD", "1.4.2", "2026-11-27T16:54:10Z", "10.1.2.3:40100", ua)
	get := pullEvent("GET", "", "2026-11-27T16:54:11Z", "10.1.2.3:40102", ua)
	tagAndManifest := []wantEvent{
		{kubehookv1.TagPull, "acme/web", map[string]any{"tag": "1.4.2", "digest": webDigest,
			"imageName": "registry.example.com/acme/web:1.4.2", "pulledAt": "2026-11-27T16:54:11Z"}},
		{kubehookv1.ManifestPull, "acme/web", map[string]any{"digest": webDigest}},
	}
	manifestOnly := []wantEvent{{kubehookv1.ManifestPull, "acme/web", map[string]any{"digest": webDigest}}}

	t.Run("in one envelope", func(t *testing.T) {
		got := mapDistribution(t, MapOptions{Resolutions: NewTagResolutions(defaultWindow, 100)}, nil, head, get)
		checkEvents(t, got, tagAndManifest)
	})
	t.Run("in two envelopes, and again when the registry resends the GET", func(t *testing.T) {
		opts := MapOptions{Resolutions: NewTagResolutions(defaultWindow, 100)}
		if got, err := Distribution(ctx, distributionEnvelope(head), opts, nil); err != nil || len(got) != 0 {
			t.Fatalf("HEAD alone: %d events, %v", len(got), err)
		}
		for range 2 {
			got := mapDistribution(t, opts, nil, get)
			checkEvents(t, got, tagAndManifest)
		}
	})
	for name, c := range map[string]struct {
		get  string
		opts MapOptions
	}{
		"another client address": {pullEvent("GET", "", "2026-11-27T16:54:11Z", "10.9.9.9:40102", ua), MapOptions{Resolutions: NewTagResolutions(defaultWindow, 100)}},
		"another user agent":     {pullEvent("GET", "", "2026-11-27T16:54:11Z", "10.1.2.3:40102", "docker/27.0"), MapOptions{Resolutions: NewTagResolutions(defaultWindow, 100)}},
		"after the window":       {pullEvent("GET", "", "2026-11-27T16:56:11Z", "10.1.2.3:40102", ua), MapOptions{Resolutions: NewTagResolutions(defaultWindow, 100)}},
		"before the HEAD":        {pullEvent("GET", "", "2026-11-27T16:54:09Z", "10.1.2.3:40102", ua), MapOptions{Resolutions: NewTagResolutions(defaultWindow, 100)}},
		"no resolutions kept":    {get, MapOptions{}},
	} {
		t.Run(name, func(t *testing.T) {
			got := mapDistribution(t, c.opts, nil, head, c.get)
			checkEvents(t, got, manifestOnly)
		})
	}
	t.Run("a push's existence check followed by the push gives no pull", func(t *testing.T) {
		got := mapDistribution(t, MapOptions{Resolutions: NewTagResolutions(defaultWindow, 100)}, nil, head, pushEvent)
		checkEvents(t, got, []wantEvent{{kubehookv1.TagPush, "acme/web", nil}, {kubehookv1.ManifestPush, "acme/web", nil}})
	})
}

func TestTagResolutionsStayBounded(t *testing.T) {
	r := NewTagResolutions(defaultWindow, 3)
	at := time.Date(2026, 11, 27, 16, 54, 10, 0, time.UTC)
	for i, d := range []string{"sha256:a", "sha256:b", "sha256:c", "sha256:d"} {
		r.remember(context.Background(), "acme/web", d, "c", "v"+string(rune('1'+i)), at)
	}
	if n := len(r.entries.Keys()); n > 3 {
		t.Fatalf("%d entries kept, want at most 3", n)
	}
	if tag, ok := r.take(context.Background(), "acme/web", "sha256:d", "c", at); !ok || tag != "v4" {
		t.Fatalf("the newest resolution: %q, %v", tag, ok)
	}
}

// Replicas share resolutions through a JetStream key-value bucket: a HEAD
// mapped by one replica and the GET by another still make a TAG_PULL.
func TestHeadAndGetOnDifferentReplicasIsATagPull(t *testing.T) {
	ctx := context.Background()
	q, err := queue.Open(ctx, queue.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	bucket, err := q.SharedBucket(ctx, "KUBEHOOK_TAG_RESOLUTIONS", defaultWindow)
	if err != nil {
		t.Fatal(err)
	}
	const ua = "containerd/v1.7.13"
	head := pullEvent("HEAD", "1.4.2", "2026-11-27T16:54:10Z", "10.1.2.3:40100", ua)
	get := pullEvent("GET", "", "2026-11-27T16:54:11Z", "10.1.2.3:40102", ua)
	replicaA, replicaB := NewTagResolutions(defaultWindow, 100), NewTagResolutions(defaultWindow, 100)
	replicaA.Share(bucket)
	replicaB.Share(bucket)
	if got, err := Distribution(ctx, distributionEnvelope(head), MapOptions{Resolutions: replicaA}, nil); err != nil || len(got) != 0 {
		t.Fatalf("HEAD mapped to %v, %v; want nothing", got, err)
	}
	got := mapDistribution(t, MapOptions{Resolutions: replicaB}, nil, get)
	checkEvents(t, got, []wantEvent{
		{kubehookv1.TagPull, "acme/web", map[string]any{"tag": "1.4.2", "digest": webDigest}},
		{kubehookv1.ManifestPull, "acme/web", map[string]any{"digest": webDigest}},
	})
}
