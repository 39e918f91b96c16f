package sources

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/intake"
	"github.com/kubehook/kubehook/internal/payload"
)

// Digests of the captured Distribution notifications in
// testdata/distribution (a registry v3.1.2 receiving pushes, pulls and
// deletes from go-containerregistry).
const (
	webDigest        = "sha256:f883bc73b953566bcc2b09f4f08c1d2986b4f6808df495932d9656bdadd49b44"
	apiIndexDigest   = "sha256:ca5f4b8116527d1b95a16223ee12e7a3dd23f20f6e96659adb89ff8a8e03adc1"
	apiAmd64Digest   = "sha256:d6e6e41bbd019bb716475517817409bf73b2d5c72606ed03c336871413652dd7"
	apiArm64Digest   = "sha256:e7cdbb85a23c478d9374bdebd43977ecd1e99f860bf0737bae909001cdbdfda8"
	chartDigest      = "sha256:3fddd8d0114fa7fdf8c45ebe851f08027aed323de4adc491a35d0fb2eae57468"
	builderDigest    = "sha256:4c5f1d8a0e9b7c3d2e6f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d"
	helmConfigMedia  = "application/vnd.cncf.helm.config.v1+json"
	testRegistryHost = "registry.example.com:5000"
)

// mapInspector is a test double of the registry the inspector reads:
// platforms and config media types by digest; other digests are unknown.
type mapInspector struct {
	platforms map[string]Platform
	configs   map[string]string
	err       error // returned for every call when set

	mu    sync.Mutex
	calls []string // "Platform repo@digest", "ConfigMediaType repo@digest"
}

func (m *mapInspector) record(call string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, call)
}

func (m *mapInspector) callCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.calls)
}

func (m *mapInspector) Platform(_ context.Context, repository, digest string) (Platform, error) {
	m.record("Platform " + repository + "@" + digest)
	if m.err != nil {
		return Platform{}, m.err
	}
	p, ok := m.platforms[digest]
	if !ok {
		return Platform{}, errors.New("manifest unknown")
	}
	return p, nil
}

func (m *mapInspector) ConfigMediaType(_ context.Context, repository, digest string) (string, error) {
	m.record("ConfigMediaType " + repository + "@" + digest)
	if m.err != nil {
		return "", m.err
	}
	if mt, ok := m.configs[digest]; ok {
		return mt, nil
	}
	if _, ok := m.platforms[digest]; ok {
		return "application/vnd.docker.container.image.v1+json", nil
	}
	return "", errors.New("manifest unknown")
}

// platformOnly hides everything of an Inspector but Platform.
type platformOnly struct{ Inspector }

func testdataFile(t testing.TB, source, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", source, name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// newWebInspector knows the images of the captured notifications.
func newWebInspector() *mapInspector {
	return &mapInspector{
		platforms: map[string]Platform{
			webDigest:      {OS: "linux", Architecture: "amd64"},
			apiAmd64Digest: {OS: "linux", Architecture: "amd64"},
			apiArm64Digest: {OS: "linux", Architecture: "arm64"},
			apiIndexDigest: {OS: "linux", Architecture: "amd64"},
			builderDigest:  {OS: "linux", Architecture: "arm64"},
		},
		configs: map[string]string{chartDigest: helmConfigMedia},
	}
}

// wantEvent is an expected event: its type, the repository subscriptions
// match, and contents fields to check (JSON values).
type wantEvent struct {
	typ      kubehookv1.EventType
	repo     string
	contents map[string]any
}

func checkEvents(t *testing.T, got []intake.Event, want []wantEvent) {
	t.Helper()
	if len(got) != len(want) {
		var types []string
		for _, e := range got {
			types = append(types, string(e.Payload.Type)+" "+e.Repository)
		}
		t.Fatalf("got %d events %v, want %d", len(got), types, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Payload.Type != w.typ || g.Repository != w.repo {
			t.Errorf("event %d: %s for %q, want %s for %q", i, g.Payload.Type, g.Repository, w.typ, w.repo)
			continue
		}
		var c map[string]any
		if err := json.Unmarshal(g.Payload.Contents, &c); err != nil {
			t.Fatalf("event %d: contents: %v", i, err)
		}
		for k, v := range w.contents {
			if diffs := jsonDiff("contents."+k, c[k], v); len(diffs) > 0 {
				t.Errorf("event %d (%s): %s", i, w.typ, strings.Join(diffs, "; "))
			}
		}
		checkMappedEvent(t, g)
	}
}

func TestDistributionMapping(t *testing.T) {
	pushAt := "2026-11-27T16:54:10.953355603Z"
	// chartPull is the chart's manifest pulled by tag, without references
	// (the registry's default): only the inspector can tell it is a chart.
	chartPull := strings.NewReplacer(`"action": "push"`, `"action": "pull"`, `"method": "PUT"`, `"method": "GET"`).
		Replace(string(testdataFile(t, "distribution", "chart-push")))
	var env struct {
		Events []map[string]any `json:"events"`
	}
	if err := json.Unmarshal([]byte(chartPull), &env); err != nil {
		t.Fatal(err)
	}
	manifestEv := env.Events[len(env.Events)-1]
	delete(manifestEv["target"].(map[string]any), "references")
	chartPullBody, _ := json.Marshal(map[string]any{"events": []any{manifestEv}})

	cases := []struct {
		name string
		body []byte
		opts MapOptions
		insp Inspector
		want []wantEvent
	}{{
		// Two layer blobs and the manifest, pushed with tag 1.4.2.
		name: "push",
		body: testdataFile(t, "distribution", "push"),
		opts: MapOptions{RegistryHost: testRegistryHost},
		insp: newWebInspector(),
		want: []wantEvent{
			{kubehookv1.TagPush, "acme/web", map[string]any{
				"namespace": "acme", "repository": "web", "tag": "1.4.2", "digest": webDigest,
				"imageName": testRegistryHost + "/acme/web:1.4.2", "os": "linux", "architecture": "amd64",
				"author": "ci-bot", "pushedAt": pushAt,
			}},
			{kubehookv1.ManifestPush, "acme/web", map[string]any{
				"namespace": "acme", "repository": "web", "digest": webDigest,
				"imageName": testRegistryHost + "/acme/web@" + webDigest, "os": "linux", "architecture": "amd64",
				"author": "ci-bot",
			}},
		},
	}, {
		// HEAD by tag (dropped), GET by tag, a layer GET (a blob: dropped).
		// No --registry-host: the request's host names the image.
		name: "pull",
		body: testdataFile(t, "distribution", "pull"),
		insp: newWebInspector(),
		want: []wantEvent{
			{kubehookv1.TagPull, "acme/web", map[string]any{
				"tag": "1.4.2", "digest": webDigest, "imageName": "registry.example.com/acme/web:1.4.2",
				"os": "linux", "architecture": "amd64", "author": "ci-bot",
			}},
			{kubehookv1.ManifestPull, "acme/web", map[string]any{
				"digest": webDigest, "imageName": "registry.example.com/acme/web@" + webDigest,
			}},
		},
	}, {
		// The registry sends a tag delete without digest.
		name: "tag-delete",
		body: testdataFile(t, "distribution", "tag-delete"),
		opts: MapOptions{RegistryHost: testRegistryHost},
		insp: newWebInspector(),
		want: []wantEvent{
			{kubehookv1.TagDelete, "acme/web", map[string]any{
				"namespace": "acme", "repository": "web", "tag": "1.4.2", "digest": "",
				"imageName": testRegistryHost + "/acme/web:1.4.2", "os": "", "architecture": "",
				"author": "ci-bot",
			}},
		},
	}, {
		// The inspector still knows the deleted manifest (its cache).
		name: "manifest-delete",
		body: testdataFile(t, "distribution", "manifest-delete"),
		opts: MapOptions{RegistryHost: testRegistryHost},
		insp: newWebInspector(),
		want: []wantEvent{
			{kubehookv1.ManifestDelete, "acme/web", map[string]any{
				"digest": webDigest, "imageName": testRegistryHost + "/acme/web@" + webDigest,
				"os": "linux", "architecture": "amd64", "author": "ci-bot",
			}},
		},
	}, {
		name: "repo-delete",
		body: testdataFile(t, "distribution", "repo-delete"),
		opts: MapOptions{RegistryHost: testRegistryHost},
		insp: newWebInspector(),
		want: []wantEvent{
			{kubehookv1.RepoDeleted, "library/alpine", map[string]any{
				"namespace": "library", "repository": "alpine", "event": "REPO_DELETED", "author": "",
				"data": map[string]any{},
			}},
		},
	}, {
		// A multi-platform image: two manifests by digest, then the index
		// with its tag.
		name: "push-index",
		body: testdataFile(t, "distribution", "push-index"),
		opts: MapOptions{RegistryHost: testRegistryHost},
		insp: newWebInspector(),
		want: []wantEvent{
			{kubehookv1.ManifestPush, "acme/api", map[string]any{"digest": apiAmd64Digest, "architecture": "amd64"}},
			{kubehookv1.ManifestPush, "acme/api", map[string]any{"digest": apiArm64Digest, "architecture": "arm64"}},
			{kubehookv1.TagPush, "acme/api", map[string]any{"tag": "2.0.0", "digest": apiIndexDigest}},
			{kubehookv1.ManifestPush, "acme/api", map[string]any{"digest": apiIndexDigest}},
		},
	}, {
		// includereferences: the config descriptor says it is a chart; no
		// inspector needed.
		name: "chart-push",
		body: testdataFile(t, "distribution", "chart-push"),
		opts: MapOptions{RegistryHost: testRegistryHost},
		want: []wantEvent{
			{kubehookv1.ChartPush, "acme/charts/webapp", map[string]any{
				"namespace": "acme", "repository": "charts/webapp", "chartName": "webapp", "chartVersion": "0.3.1",
				"digest": chartDigest, "author": "ci-bot",
			}},
		},
	}, {
		name: "chart-pull",
		body: chartPullBody,
		opts: MapOptions{RegistryHost: testRegistryHost},
		insp: newWebInspector(),
		want: []wantEvent{
			{kubehookv1.ChartPull, "acme/charts/webapp", map[string]any{
				"namespace": "acme", "repository": "charts/webapp", "chartName": "webapp", "chartVersion": "0.3.1",
				"digest": chartDigest,
			}},
		},
	}, {
		// Unrelated events in one envelope: a push, a pull by digest in
		// another repository, the inspector's own pull (dropped), a blob
		// mount (dropped).
		name: "mixed",
		body: testdataFile(t, "distribution", "mixed"),
		opts: MapOptions{RegistryHost: testRegistryHost},
		insp: newWebInspector(),
		want: []wantEvent{
			{kubehookv1.TagPush, "acme/web", map[string]any{"tag": "1.4.2"}},
			{kubehookv1.ManifestPush, "acme/web", nil},
			{kubehookv1.ManifestPull, "team/tools/builder", map[string]any{
				"namespace": "team", "repository": "tools/builder", "digest": builderDigest,
				"os": "linux", "architecture": "arm64", "author": "jenkins",
				"imageName": testRegistryHost + "/team/tools/builder@" + builderDigest,
			}},
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Distribution(context.Background(), tc.body, tc.opts, tc.insp)
			if err != nil {
				t.Fatal(err)
			}
			checkEvents(t, got, tc.want)
			for _, ev := range got {
				if !ev.Payload.CreatedAt.Equal(createdAtOf(t, ev)) {
					t.Errorf("%s: createdAt %v is not the event time", ev.Payload.Type, ev.Payload.CreatedAt)
				}
			}
			checkGolden(t, "distribution-"+tc.name, got)
		})
	}
}

// createdAtOf returns the pushedAt, pulledAt or deletedAt of contents, or
// the wrapper's createdAt when contents has none.
func createdAtOf(t *testing.T, ev intake.Event) time.Time {
	var c struct {
		PushedAt, PulledAt, DeletedAt *time.Time
	}
	if err := json.Unmarshal(ev.Payload.Contents, &c); err != nil {
		t.Fatal(err)
	}
	for _, ts := range []*time.Time{c.PushedAt, c.PulledAt, c.DeletedAt} {
		if ts != nil {
			return *ts
		}
	}
	return ev.Payload.CreatedAt
}

// distributionEvent builds a one-event envelope from a JSON event.
func distributionEnvelope(events ...string) []byte {
	return []byte(`{"events":[` + strings.Join(events, ",") + `]}`)
}

// mapDistribution maps an envelope of events, which must not fail.
func mapDistribution(t *testing.T, opts MapOptions, insp Inspector, events ...string) []intake.Event {
	t.Helper()
	got, err := Distribution(context.Background(), distributionEnvelope(events...), opts, insp)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

const pushEvent = `{"id":"e1","timestamp":"2026-11-27T16:54:10.953355603Z","action":"push",
 "target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + webDigest + `","size":423,
  "repository":"acme/web","tag":"1.4.2"},
 "request":{"id":"r1","host":"registry.example.com","method":"PUT","useragent":"containerd/v1.7.13"},
 "actor":{"name":"ci-bot"}}`

func TestDistributionInspectorUse(t *testing.T) {
	ctx := context.Background()
	t.Run("one call per manifest for TAG_PUSH and MANIFEST_PUSH", func(t *testing.T) {
		insp := newWebInspector()
		// The same push twice in one envelope (a registry retry batch).
		got := mapDistribution(t, MapOptions{}, platformOnly{insp}, pushEvent, pushEvent)
		if len(got) != 4 || insp.callCount() != 1 {
			t.Fatalf("%d events, %d inspector calls %v; want 4 events, 1 call", len(got), insp.callCount(), insp.calls)
		}
	})
	t.Run("an inspector error leaves os and architecture empty", func(t *testing.T) {
		insp := &mapInspector{err: errors.New("registry unavailable")}
		got := mapDistribution(t, MapOptions{}, insp, pushEvent)
		checkEvents(t, got, []wantEvent{
			{kubehookv1.TagPush, "acme/web", map[string]any{"os": "", "architecture": "", "digest": webDigest}},
			{kubehookv1.ManifestPush, "acme/web", map[string]any{"os": "", "architecture": ""}},
		})
	})
	t.Run("no inspector", func(t *testing.T) {
		got := mapDistribution(t, MapOptions{}, nil, pushEvent)
		checkEvents(t, got, []wantEvent{
			{kubehookv1.TagPush, "acme/web", map[string]any{"os": "", "architecture": ""}},
			{kubehookv1.ManifestPush, "acme/web", nil},
		})
	})
	t.Run("target.platform when the registry sends it", func(t *testing.T) {
		ev := strings.Replace(pushEvent, `"size":423,`, `"size":423,"platform":{"os":"windows","architecture":"amd64"},`, 1)
		insp := newWebInspector()
		got := mapDistribution(t, MapOptions{}, insp, ev)
		checkEvents(t, got, []wantEvent{
			{kubehookv1.TagPush, "acme/web", map[string]any{"os": "windows"}},
			{kubehookv1.ManifestPush, "acme/web", map[string]any{"os": "windows"}},
		})
		if n := insp.callCount(); n != 1 { // the chart check only
			t.Errorf("%d inspector calls %v, want 1", n, insp.calls)
		}
	})
	t.Run("a bad event fails the envelope before the inspector is asked", func(t *testing.T) {
		insp := newWebInspector()
		bad := strings.Replace(pushEvent, `"repository":"acme/web",`, ``, 1)
		_, err := Distribution(ctx, distributionEnvelope(pushEvent, bad), MapOptions{}, insp)
		ie, ok := isInputError(err)
		if !ok || ie.Field != "events[1].target.repository" || ie.Error() != "events[1].target.repository: required" {
			t.Fatalf("err = %v, want events[1].target.repository: required", err)
		}
		if insp.callCount() != 0 {
			t.Errorf("inspector asked %v", insp.calls)
		}
	})
}

func TestDistributionCharts(t *testing.T) {
	chartEvent := func(action, tag, extraTarget string) string {
		ev := `{"timestamp":"2026-11-27T16:54:20.9Z","action":"` + action + `",
		 "target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + chartDigest + `",
		  "repository":"acme/charts/webapp"` + extraTarget
		if tag != "" {
			ev += `,"tag":"` + tag + `"`
		}
		return ev + `},"request":{"method":"GET","host":"registry.example.com"},"actor":{"name":"helm"}}`
	}
	cases := []struct {
		name  string
		event string
		insp  Inspector
		want  []wantEvent
	}{{
		name:  "artifactType",
		event: chartEvent("push", "0.3.1", `,"artifactType":"application/vnd.cncf.helm.config.v1+json"`),
		want:  []wantEvent{{kubehookv1.ChartPush, "acme/charts/webapp", map[string]any{"chartName": "webapp", "chartVersion": "0.3.1"}}},
	}, {
		name:  "build metadata: Helm writes + as _ in tags",
		event: chartEvent("push", "1.0.0_build.7", `,"artifactType":"application/vnd.cncf.helm.config.v1+json"`),
		want:  []wantEvent{{kubehookv1.ChartPush, "acme/charts/webapp", map[string]any{"chartVersion": "1.0.0+build.7"}}},
	}, {
		name:  "references without the Helm config: an image",
		event: chartEvent("pull", "0.3.1", `,"references":[{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"`+webDigest+`","size":2}]`),
		insp:  newWebInspector(),
		want: []wantEvent{
			{kubehookv1.TagPull, "acme/charts/webapp", nil},
			{kubehookv1.ManifestPull, "acme/charts/webapp", nil},
		},
	}, {
		name:  "inspector that cannot tell charts",
		event: chartEvent("pull", "0.3.1", ""),
		insp:  platformOnly{newWebInspector()},
		want: []wantEvent{
			{kubehookv1.TagPull, "acme/charts/webapp", nil},
			{kubehookv1.ManifestPull, "acme/charts/webapp", nil},
		},
	}, {
		name:  "pulled by digest: no version, a manifest pull",
		event: chartEvent("pull", "", ""),
		insp:  newWebInspector(),
		want:  []wantEvent{{kubehookv1.ManifestPull, "acme/charts/webapp", map[string]any{"digest": chartDigest}}},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := mapDistribution(t, MapOptions{}, tc.insp, tc.event)
			checkEvents(t, got, tc.want)
		})
	}
}

func TestDistributionRepositoryPaths(t *testing.T) {
	t.Run("single component", func(t *testing.T) {
		ev := strings.Replace(pushEvent, `"acme/web"`, `"alpine"`, 1)
		got := mapDistribution(t, MapOptions{RegistryHost: "r.example"}, nil, ev)
		checkEvents(t, got, []wantEvent{
			{kubehookv1.TagPush, "alpine", map[string]any{"namespace": "alpine", "repository": "", "imageName": "r.example/alpine:1.4.2"}},
			{kubehookv1.ManifestPush, "alpine", map[string]any{"namespace": "alpine", "repository": ""}},
		})
	})
	t.Run("nested", func(t *testing.T) {
		ev := strings.Replace(pushEvent, `"acme/web"`, `"acme/team/web"`, 1)
		got := mapDistribution(t, MapOptions{RegistryHost: "r.example"}, nil, ev)
		checkEvents(t, got, []wantEvent{
			{kubehookv1.TagPush, "acme/team/web", map[string]any{"namespace": "acme", "repository": "team/web", "imageName": "r.example/acme/team/web:1.4.2"}},
			{kubehookv1.ManifestPush, "acme/team/web", nil},
		})
	})
	t.Run("no host known", func(t *testing.T) {
		ev := strings.Replace(pushEvent, `"host":"registry.example.com",`, ``, 1)
		got := mapDistribution(t, MapOptions{}, nil, ev)
		checkEvents(t, got, []wantEvent{
			{kubehookv1.TagPush, "acme/web", map[string]any{"imageName": "acme/web:1.4.2"}},
			{kubehookv1.ManifestPush, "acme/web", map[string]any{"imageName": "acme/web@" + webDigest}},
		})
	})
}

func TestDistributionIgnores(t *testing.T) {
	ctx := context.Background()
	blob := strings.NewReplacer(`application/vnd.oci.image.manifest.v1+json`, `application/octet-stream`, `,"tag":"1.4.2"`, ``).Replace(pushEvent)
	layer := strings.Replace(blob, `application/octet-stream`, `application/vnd.docker.image.rootfs.diff.tar.gzip`, 1)
	noMedia := strings.Replace(blob, `"mediaType":"application/octet-stream",`, ``, 1)
	mount := strings.Replace(blob, `"action":"push"`, `"action":"mount"`, 1)
	head := strings.NewReplacer(`"action":"push"`, `"action":"pull"`, `"method":"PUT"`, `"method":"HEAD"`).Replace(pushEvent)
	inspectorPull := strings.NewReplacer(`"action":"push"`, `"action":"pull"`, `"method":"PUT"`, `"method":"GET"`,
		`containerd/v1.7.13`, InspectorUserAgent+" go-containerregistry/v0.22.1").Replace(pushEvent)
	blobDelete := strings.NewReplacer(`"action":"push"`, `"action":"delete"`).Replace(blob)
	for name, ev := range map[string]string{
		"blob push":              blob,
		"layer push":             layer,
		"push without mediaType": noMedia,
		"blob mount":             mount,
		"HEAD pull":              head,
		"inspector pull":         inspectorPull,
		"typed blob delete":      blobDelete,
	} {
		t.Run(name, func(t *testing.T) {
			insp := newWebInspector()
			got, err := Distribution(ctx, distributionEnvelope(ev), MapOptions{}, insp)
			if err != nil || len(got) != 0 {
				t.Fatalf("got %d events, err %v; want none", len(got), err)
			}
			if insp.callCount() != 0 {
				t.Errorf("inspector asked %v", insp.calls)
			}
		})
	}
}

func TestDistributionMediaTypeParameters(t *testing.T) {
	ev := strings.Replace(pushEvent, `application/vnd.oci.image.manifest.v1+json`, `application/vnd.oci.image.manifest.v1+json; charset=utf-8`, 1)
	got, err := Distribution(context.Background(), distributionEnvelope(ev), MapOptions{}, nil)
	if err != nil || len(got) != 2 {
		t.Fatalf("got %d events, err %v; want 2", len(got), err)
	}
}

func TestDistributionInputErrors(t *testing.T) {
	ev := func(r *strings.Replacer) string { return r.Replace(pushEvent) }
	cases := []struct {
		name  string
		body  string
		field string
		msg   string // substring of the message
	}{
		{"empty", "", "", "empty body"},
		{"not JSON", "events: []", "", "malformed JSON"},
		{"truncated", `{"events":[`, "", "malformed JSON"},
		{"array", `[]`, "", "envelope"},
		{"no events", `{}`, "events", "required"},
		{"null events", `{"events":null}`, "events", "required"},
		{"empty events", `{"events":[]}`, "events", "required"},
		{"events not an array", `{"events":{"action":"push"}}`, "events", "array"},
		{"event not an object", `{"events":[42]}`, "events[0]", "object"},
		{"no action", string(distributionEnvelope(ev(strings.NewReplacer(`"action":"push",`, ``)))), "events[0].action", "required"},
		{"unknown action", string(distributionEnvelope(ev(strings.NewReplacer(`"action":"push"`, `"action":"copy"`)))), "events[0].action", `unknown action "copy"`},
		{"no timestamp", string(distributionEnvelope(ev(strings.NewReplacer(`"timestamp":"2026-11-27T16:54:10.953355603Z",`, ``)))), "events[0].timestamp", "required"},
		{"bad timestamp", string(distributionEnvelope(ev(strings.NewReplacer(`2026-11-27T16:54:10.953355603Z`, `yesterday`)))), "events[0].timestamp", "RFC 3339"},
		{"timestamp after 9999 in UTC", string(distributionEnvelope(ev(strings.NewReplacer(`2026-11-27T16:54:10.953355603Z`, `9999-12-31T23:00:00-10:00`)))), "events[0].timestamp", "out of range"},
		{"no repository", string(distributionEnvelope(pushEvent, ev(strings.NewReplacer(`"repository":"acme/web",`, ``)))), "events[1].target.repository", "required"},
		{"bad repository", string(distributionEnvelope(ev(strings.NewReplacer(`"acme/web"`, `"Acme/Web"`)))), "events[0].target.repository", "invalid repository name"},
		{"repository slash", string(distributionEnvelope(ev(strings.NewReplacer(`"acme/web"`, `"acme/"`)))), "events[0].target.repository", "invalid repository name"},
		{"repository number", string(distributionEnvelope(ev(strings.NewReplacer(`"acme/web"`, `7`)))), "events[0].target.repository", "must be a JSON string"},
		{"target not an object", string(distributionEnvelope(`{"timestamp":"2026-11-27T16:54:10Z","action":"push","target":"acme/web"}`)), "events[0].target", "must be a JSON object"},
		{"manifest without digest", string(distributionEnvelope(ev(strings.NewReplacer(`"digest":"`+webDigest+`",`, ``)))), "events[0].target.digest", "required"},
		{"bad digest", string(distributionEnvelope(ev(strings.NewReplacer(webDigest, `sha256:abc`)))), "events[0].target.digest", "invalid digest"},
		{"bad tag", string(distributionEnvelope(ev(strings.NewReplacer(`"tag":"1.4.2"`, `"tag":"-1.4.2"`)))), "events[0].target.tag", "invalid tag"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Distribution(context.Background(), []byte(tc.body), MapOptions{}, newWebInspector())
			ie, ok := isInputError(err)
			if !ok {
				t.Fatalf("got %d events, err %v (%T); want an *InputError", len(got), err, err)
			}
			if ie.Field != tc.field || !strings.Contains(ie.Message, tc.msg) {
				t.Errorf("err = %q (field %q), want field %q and a message with %q", err, ie.Field, tc.field, tc.msg)
			}
			if got != nil {
				t.Errorf("events returned with the error: %v", got)
			}
		})
	}
}

// checkMappedEvent checks what every event a parser returns must satisfy:
// a known type, contents that validate, a repository consistent with the
// contents, a renderable body.
func checkMappedEvent(t testing.TB, ev intake.Event) {
	t.Helper()
	typ := ev.Payload.Type
	if !containsType(typ) {
		t.Fatalf("unknown event type %q", typ)
	}
	if ev.Payload.CreatedAt.IsZero() {
		t.Errorf("%s: zero createdAt", typ)
	}
	var c struct {
		Namespace  string `json:"namespace"`
		Repository string `json:"repository"`
	}
	if err := json.Unmarshal(ev.Payload.Contents, &c); err != nil {
		t.Fatalf("%s: contents: %v", typ, err)
	}
	if err := payload.Validate(typ, ev.Payload.Contents); err != nil {
		// A single-component repository path ("alpine") maps to namespace
		// "alpine" and repository "", which Validate calls missing.
		if !(err.Error() == "contents.repository: required" && c.Repository == "" && !strings.Contains(ev.Repository, "/")) {
			t.Errorf("%s: contents do not validate: %v\n%s", typ, err, ev.Payload.Contents)
		}
	}
	want := c.Namespace
	if c.Repository != "" {
		want += "/" + c.Repository
	}
	if typ == kubehookv1.ScannerUpdateCompleted {
		want = ""
	}
	if ev.Repository != want {
		t.Errorf("%s: engine repository %q, contents say %q", typ, ev.Repository, want)
	}
	if _, _, err := payload.Render(kubehookv1.PayloadFormatDTR, ev.Payload, "msg_x", "kubehook"); err != nil {
		t.Errorf("%s: render: %v", typ, err)
	}
}

func containsType(t kubehookv1.EventType) bool {
	for _, x := range kubehookv1.EventTypes {
		if x == t {
			return true
		}
	}
	return false
}
