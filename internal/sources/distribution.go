package sources

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/manifest/manifestlist"
	"github.com/distribution/distribution/v3/manifest/schema2"
	"github.com/distribution/distribution/v3/notifications"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/intake"
	"github.com/kubehook/kubehook/internal/payload"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

// Media types the Distribution parser tells apart. A push or pull whose
// target has none of the manifest media types is a blob.
const (
	mediaTypeOCIManifest     = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeOCIIndex        = "application/vnd.oci.image.index.v1+json"
	mediaTypeSchema1Manifest = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeSchema1Signed   = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	mediaTypeHelmChartConfig = "application/vnd.cncf.helm.config.v1+json"
)

var manifestMediaTypes = []string{
	mediaTypeOCIManifest,
	mediaTypeOCIIndex,
	schema2.MediaTypeManifest,
	manifestlist.MediaTypeManifestList,
	mediaTypeSchema1Manifest,
	mediaTypeSchema1Signed,
}

// ArtifactInspector finds the config media type of a manifest, which tells
// a Helm chart (application/vnd.cncf.helm.config.v1+json) from an image. An
// Inspector that also implements it lets Distribution recognise charts the
// notification does not describe (see Distribution).
type ArtifactInspector interface {
	ConfigMediaType(ctx context.Context, repository, digest string) (string, error)
}

// Distribution maps a CNCF Distribution registry notification envelope,
// {"events": [...]}, onto DTR events. The events of one envelope need not
// be related; each maps on its own:
//
//   - push of a manifest or index: TAG_PUSH and MANIFEST_PUSH when it has a
//     tag, MANIFEST_PUSH otherwise.
//   - pull of a manifest or index: TAG_PULL (with a tag) and MANIFEST_PULL.
//     Pulls made with HEAD give nothing by themselves: they are the
//     existence checks clients make while pushing (distribution#559), and
//     the tag resolution of clients that then GET by digest, as docker and
//     containerd do. With opts.Resolutions, such a GET by digest from the
//     client that resolved the tag gives TAG_PULL for that tag too;
//     otherwise it gives MANIFEST_PULL only. The pulls of kubehook's own
//     inspector (its User-Agent starts with InspectorUserAgent) are dropped.
//   - delete with a tag: TAG_DELETE (the registry sends no digest, so
//     digest, os and architecture are empty); with a digest only:
//     MANIFEST_DELETE; with neither, a repository delete: REPO_DELETED.
//   - Blob events (a push or pull whose target media type is not a
//     manifest's, a delete whose target has a non-manifest media type) and
//     mount events are ignored. The registry sends a blob deleted through its
//     API exactly like a manifest delete (digest and repository only): it
//     maps to MANIFEST_DELETE.
//   - Helm charts (OCI manifests whose config media type is
//     application/vnd.cncf.helm.config.v1+json) pushed or pulled by tag give
//     CHART_PUSH or CHART_PULL instead of the tag and manifest types, with
//     chartName the last component of the repository path and chartVersion
//     the tag ("_" read back as "+", which Helm replaces in tags). A chart is
//     recognised by target.artifactType, by target.references (sent when the
//     registry's notifications.events.includereferences is true), or else by
//     asking insp when it implements ArtifactInspector. A chart pulled by
//     digest has no version to report: it maps as a manifest. Deletes do not
//     say what was deleted, so a chart's delete maps as TAG_DELETE or
//     MANIFEST_DELETE.
//
// Contents follow the DTR document: namespace is the first component of
// target.repository and repository the rest (a single-component path such
// as "alpine" gives namespace "alpine" and repository ""); imageName is
// <host>/<repository path>:<tag> for the tag types and @<digest> for the
// manifest types, host being opts.RegistryHost or else the event's
// request.host; author is actor.name; pushedAt, pulledAt, deletedAt and the
// wrapper's createdAt are the event's timestamp. os and architecture come
// from insp (nil: left empty; an error: left empty, the event is delivered
// anyway), or from target.platform when the registry sends one. The
// engine event's Repository is target.repository, and its ID comes from
// the notification event's id (see distributionEventID): the events of a
// resent notification have the IDs they had the first time, and the GET
// paired with a HEAD gives its TAG_PULL the GET's identity.
//
// Input that is not a well-formed envelope gives an *InputError naming the
// field ("events[1].target.repository: required"); one bad event fails the
// whole envelope, before insp is asked anything.
func Distribution(ctx context.Context, body []byte, opts MapOptions, insp Inspector) ([]intake.Event, error) {
	events, err := decodeDistribution(body)
	if err != nil {
		return nil, err
	}
	m := distributionMapper{
		ctx:       ctx,
		opts:      opts,
		insp:      insp,
		platforms: map[string]Platform{},
		charts:    map[string]bool{},
	}
	var out []intake.Event
	for i := range events {
		evs, err := m.mapEvent(&events[i])
		if err != nil {
			return nil, err
		}
		out = append(out, evs...)
	}
	return out, nil
}

// decodeDistribution decodes and checks every event of the envelope.
func decodeDistribution(body []byte) ([]notifications.Event, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, badInput("", "empty body: want a notification envelope {\"events\": [...]}")
	}
	if !json.Valid(body) {
		return nil, syntaxError(body)
	}
	if body[0] != '{' {
		return nil, badInput("", "want a notification envelope, a JSON object {\"events\": [...]}")
	}
	var env struct {
		Events json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, jsonInputError("", err)
	}
	if len(env.Events) == 0 || isJSONNull(env.Events) {
		return nil, badInput("events", "required")
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(env.Events, &raws); err != nil {
		return nil, badInput("events", "must be a JSON array of events")
	}
	if len(raws) == 0 {
		return nil, badInput("events", "required: the envelope holds no event")
	}
	events := make([]notifications.Event, len(raws))
	for i, raw := range raws {
		p := fmt.Sprintf("events[%d]", i)
		if r := bytes.TrimSpace(raw); len(r) == 0 || r[0] != '{' {
			return nil, badInput(p, "must be a JSON object")
		}
		if err := json.Unmarshal(raw, &events[i]); err != nil {
			if _, ok := errors.AsType[*time.ParseError](err); ok {
				return nil, badInput(p+".timestamp", "must be an RFC 3339 timestamp: %v", err)
			}
			return nil, jsonInputError(p, err)
		}
		if err := checkDistributionEvent(p, &events[i]); err != nil {
			return nil, err
		}
	}
	return events, nil
}

// checkDistributionEvent checks what mapping ev needs; p is its path.
func checkDistributionEvent(p string, ev *notifications.Event) error {
	switch ev.Action {
	case notifications.EventActionPush, notifications.EventActionPull, notifications.EventActionMount, notifications.EventActionDelete:
	case "":
		return badInput(p+".action", "required")
	default:
		return badInput(p+".action", "unknown action %q: want push, pull, mount or delete", ev.Action)
	}
	if ev.Timestamp.IsZero() {
		return badInput(p+".timestamp", "required")
	}
	if !timeInRange(ev.Timestamp) {
		return badInput(p+".timestamp", "out of range: not between the years 1 and 9999 in UTC")
	}
	t := &ev.Target
	switch {
	case t.Repository == "":
		return badInput(p+".target.repository", "required")
	case !validRepository(t.Repository):
		return badInput(p+".target.repository", "invalid repository name %q", t.Repository)
	}
	if ev.Action == notifications.EventActionMount || isBlob(ev) {
		return nil
	}
	dgst := string(t.Digest)
	switch {
	case dgst == "" && ev.Action != notifications.EventActionDelete:
		return badInput(p+".target.digest", "required for a manifest %s", ev.Action)
	case dgst != "" && !validDigest(dgst):
		return badInput(p+".target.digest", "invalid digest %q", dgst)
	case t.Tag != "" && !validTag(t.Tag):
		return badInput(p+".target.tag", "invalid tag %q", t.Tag)
	}
	return nil
}

// isBlob reports whether ev is about a blob (a layer, a config): a push or
// pull whose target media type is not a manifest's, or a delete whose
// target carries a media type that is not a manifest's. The registry sends
// deletes without media type.
func isBlob(ev *notifications.Event) bool {
	mt := baseMediaType(ev.Target.MediaType)
	if ev.Action == notifications.EventActionDelete && mt == "" {
		return false
	}
	for _, m := range manifestMediaTypes {
		if mt == m {
			return false
		}
	}
	return true
}

// baseMediaType is mt without parameters, lower case.
func baseMediaType(mt string) string {
	mt, _, _ = strings.Cut(mt, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

type distributionMapper struct {
	ctx  context.Context
	opts MapOptions
	insp Inspector
	// Answers of insp within one envelope, by repository@digest.
	platforms map[string]Platform
	charts    map[string]bool
}

func (m *distributionMapper) mapEvent(ev *notifications.Event) ([]intake.Event, error) {
	if ev.Action == notifications.EventActionMount || isBlob(ev) {
		return nil, nil
	}
	t := &ev.Target
	repo, tag, dgst := t.Repository, t.Tag, string(t.Digest)
	ns, name := subscriptions.SplitRepository(repo)
	at := ev.Timestamp.UTC()
	author := ev.Actor.Name
	host := m.opts.RegistryHost
	if host == "" {
		host = ev.Request.Host
	}
	byTag := imageName(host, repo, ':', tag)
	byDigest := imageName(host, repo, '@', dgst)

	id := distributionEventID(ev)
	var (
		out []intake.Event
		err error
	)
	add := func(typ kubehookv1.EventType, contents any) {
		if err != nil {
			return
		}
		var e intake.Event
		if e, err = newEvent(typ, repo, at, contents); err == nil {
			e.ID = id
			out = append(out, e)
		}
	}
	done := func() ([]intake.Event, error) {
		if err != nil {
			return nil, err
		}
		return out, nil
	}

	switch ev.Action {
	case notifications.EventActionPush:
		if tag != "" && m.isChart(ev) {
			add(kubehookv1.ChartPush, payload.ChartPush{
				Namespace: ns, Repository: name, ChartName: path.Base(repo), ChartVersion: chartVersion(tag),
				Digest: dgst, Author: author, PushedAt: at,
			})
			return done()
		}
		p := m.platform(ev)
		if tag != "" {
			add(kubehookv1.TagPush, payload.TagPush{
				Namespace: ns, Repository: name, Tag: tag, Digest: dgst, ImageName: byTag,
				OS: p.OS, Architecture: p.Architecture, Author: author, PushedAt: at,
			})
		}
		add(kubehookv1.ManifestPush, payload.ManifestPush{
			Namespace: ns, Repository: name, Digest: dgst, ImageName: byDigest,
			OS: p.OS, Architecture: p.Architecture, Author: author,
		})
		return done()

	case notifications.EventActionPull:
		if strings.HasPrefix(ev.Request.UserAgent, InspectorUserAgent) {
			return nil, nil
		}
		client := clientOf(ev.Request.Addr, ev.Request.UserAgent)
		if strings.EqualFold(ev.Request.Method, "HEAD") {
			m.opts.Resolutions.remember(m.ctx, repo, dgst, client, tag, at)
			return nil, nil
		}
		if tag == "" {
			if resolved, ok := m.opts.Resolutions.take(m.ctx, repo, dgst, client, at); ok {
				tag = resolved
				byTag = imageName(host, repo, ':', tag)
			}
		}
		if tag != "" && m.isChart(ev) {
			add(kubehookv1.ChartPull, payload.ChartPull{
				Namespace: ns, Repository: name, ChartName: path.Base(repo), ChartVersion: chartVersion(tag),
				Digest: dgst, Author: author, PulledAt: at,
			})
			return done()
		}
		p := m.platform(ev)
		if tag != "" {
			add(kubehookv1.TagPull, payload.TagPull{
				Namespace: ns, Repository: name, Tag: tag, Digest: dgst, ImageName: byTag,
				OS: p.OS, Architecture: p.Architecture, Author: author, PulledAt: at,
			})
		}
		add(kubehookv1.ManifestPull, payload.ManifestPull{
			Namespace: ns, Repository: name, Digest: dgst, ImageName: byDigest,
			OS: p.OS, Architecture: p.Architecture, Author: author, PulledAt: at,
		})
		return done()

	case notifications.EventActionDelete:
		switch {
		case tag != "":
			var p Platform
			if dgst != "" {
				p = m.platform(ev)
			}
			add(kubehookv1.TagDelete, payload.TagDelete{
				Namespace: ns, Repository: name, Tag: tag, Digest: dgst, ImageName: byTag,
				OS: p.OS, Architecture: p.Architecture, Author: author, DeletedAt: at,
			})
			return done()
		case dgst != "":
			p := m.platform(ev)
			add(kubehookv1.ManifestDelete, payload.ManifestDelete{
				Namespace: ns, Repository: name, Digest: dgst, ImageName: byDigest,
				OS: p.OS, Architecture: p.Architecture, Author: author, DeletedAt: at,
			})
			return done()
		default:
			add(kubehookv1.RepoDeleted, payload.RepoEvent{
				Namespace: ns, Repository: name, Event: payload.RepoEventDeleted, Author: author,
				Data: json.RawMessage(`{}`),
			})
			return done()
		}
	}
	return nil, nil
}

// distributionEventID is the identity of the events mapped from ev: its
// id, which the registry keeps when it resends the notification, with what
// the event is about, so a registry that numbers its events in some other
// way than by UUID cannot make two different events look like one. The
// tag is the one sent, not one a tag resolution added, so a resend has the
// same identity however it pairs. Without an id there is no identity.
func distributionEventID(ev *notifications.Event) string {
	if ev.ID == "" {
		return ""
	}
	t := &ev.Target
	return eventID(SourceDistribution, ev.ID, ev.Action, ev.Timestamp.UTC().Format(time.RFC3339Nano),
		t.Repository, string(t.Digest), t.Tag)
}

// platform returns the os and architecture of ev's manifest: from
// target.platform if the registry sent one, else from the inspector
// (empty on error or without one).
func (m *distributionMapper) platform(ev *notifications.Event) Platform {
	t := &ev.Target
	if t.Platform != nil && t.Platform.OS != "" {
		return Platform{OS: t.Platform.OS, Architecture: t.Platform.Architecture}
	}
	if m.insp == nil || t.Digest == "" {
		return Platform{}
	}
	key := t.Repository + "@" + string(t.Digest)
	if p, ok := m.platforms[key]; ok {
		return p
	}
	p, err := m.insp.Platform(m.ctx, t.Repository, string(t.Digest))
	if err != nil {
		p = Platform{}
	}
	m.platforms[key] = p
	return p
}

// isChart reports whether ev's target is a Helm chart. Only OCI image
// manifests can be; the event's own fields decide when they can, else the
// inspector does (when it implements ArtifactInspector; an error means
// "not a chart").
func (m *distributionMapper) isChart(ev *notifications.Event) bool {
	t := &ev.Target
	if baseMediaType(t.MediaType) != mediaTypeOCIManifest {
		return false
	}
	if baseMediaType(t.ArtifactType) == mediaTypeHelmChartConfig {
		return true
	}
	if len(t.References) > 0 {
		for _, r := range t.References {
			if baseMediaType(r.MediaType) == mediaTypeHelmChartConfig {
				return true
			}
		}
		return false
	}
	ai, ok := m.insp.(ArtifactInspector)
	if !ok || t.Digest == "" {
		return false
	}
	key := t.Repository + "@" + string(t.Digest)
	if c, ok := m.charts[key]; ok {
		return c
	}
	mt, err := ai.ConfigMediaType(m.ctx, t.Repository, string(t.Digest))
	c := err == nil && baseMediaType(mt) == mediaTypeHelmChartConfig
	m.charts[key] = c
	return c
}

// chartVersion reads a chart version back from an OCI tag: Helm pushes
// version 1.2.3+build as tag 1.2.3_build, "+" being invalid in tags.
func chartVersion(tag string) string { return strings.ReplaceAll(tag, "_", "+") }
