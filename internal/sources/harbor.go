package sources

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/intake"
	"github.com/kubehook/kubehook/internal/payload"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

// maxUnixSeconds is the last second of the year 9999, the last a JSON
// timestamp can show.
const maxUnixSeconds = 253402300799

// Harbor maps a Harbor webhook payload (the Default format, not
// CloudEvents) onto DTR events, one or two per entry of
// event_data.resources:
//
//   - PUSH_ARTIFACT: TAG_PUSH (when the resource has a tag) and
//     MANIFEST_PUSH; PULL_ARTIFACT: TAG_PULL and MANIFEST_PULL;
//     DELETE_ARTIFACT: TAG_DELETE and MANIFEST_DELETE. Harbor puts the
//     digest in tag when the artifact has no tag; such a resource has none.
//   - SCANNING_COMPLETED: SCAN_COMPLETED, SCANNING_FAILED: SCAN_FAILED, for
//     vulnerability scans (SBOM scans, event_data.scan.scan_type "sbom", are
//     ignored). The scan summary comes from the resource's scan_overview
//     (see harborScanSummary); SCAN_FAILED's error names the report's
//     status and scanner, as Harbor sends no reason.
//   - UPLOAD_CHART, DOWNLOAD_CHART, DELETE_CHART (ChartMuseum, Harbor 2.7
//     and older): CHART_PUSH, CHART_PULL, CHART_DELETE, one per version
//     (the resource's tag). Harbor's OCI Helm charts arrive as *_ARTIFACT
//     events that do not say they are charts, and map as images.
//   - Every other Harbor type (quota, replication, retention, scan stopped,
//     ...) gives no event and no error.
//
// The repository path is event_data.repository.repo_full_name
// ("project/name"): namespace is the Harbor project, repository the rest.
// imageName uses the host of resource_url (Harbor's external endpoint),
// else opts.RegistryHost. author is operator; pushedAt, pulledAt,
// deletedAt and createdAt are occur_at. os and architecture are empty:
// Harbor does not send them. The events of one resource share an ID
// derived from the payload's type, occur_at, operator and repository and
// the resource's digest and tag (see harborMapper.eventID), so the same
// payload posted again has the delivery IDs it had. Errors are
// *InputError naming the field.
func Harbor(ctx context.Context, body []byte, opts MapOptions) ([]intake.Event, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, badInput("", "empty body: want a Harbor webhook payload")
	}
	if !json.Valid(body) {
		return nil, syntaxError(body)
	}
	if body[0] != '{' {
		return nil, badInput("", "want a Harbor webhook payload, a JSON object")
	}
	var head struct {
		Type json.RawMessage `json:"type"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return nil, jsonInputError("", err)
	}
	var typ string
	if len(head.Type) == 0 || isJSONNull(head.Type) {
		return nil, badInput("type", "required")
	}
	if json.Unmarshal(head.Type, &typ) != nil {
		return nil, badInput("type", "must be a string")
	}
	switch typ {
	case "":
		return nil, badInput("type", "required")
	case harborPushArtifact, harborPullArtifact, harborDeleteArtifact,
		harborScanningCompleted, harborScanningFailed,
		harborUploadChart, harborDownloadChart, harborDeleteChart:
	default:
		return nil, nil
	}

	var p harborPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, jsonInputError("", err)
	}
	switch {
	case p.OccurAt <= 0:
		return nil, badInput("occur_at", "required: the event's time in Unix seconds")
	case p.OccurAt > maxUnixSeconds:
		return nil, badInput("occur_at", "out of range: %d is after the year 9999", p.OccurAt)
	}
	if p.EventData == nil {
		return nil, badInput("event_data", "required")
	}
	d := p.EventData
	if (typ == harborScanningCompleted || typ == harborScanningFailed) && d.Scan != nil && d.Scan.ScanType != "" && d.Scan.ScanType != "vulnerability" {
		// An SBOM (or other non-vulnerability) scan: DTR's scan events are
		// about vulnerabilities.
		return nil, nil
	}
	repo, err := harborRepositoryPath(d.Repository)
	if err != nil {
		return nil, err
	}
	if len(d.Resources) == 0 {
		return nil, badInput("event_data.resources", "required")
	}

	m := harborMapper{
		typ:    typ,
		repo:   repo,
		at:     time.Unix(p.OccurAt, 0).UTC(),
		author: p.Operator,
		host:   opts.RegistryHost,
	}
	m.ns, m.name = subscriptions.SplitRepository(repo)
	var out []intake.Event
	for i, raw := range d.Resources {
		field := fmt.Sprintf("event_data.resources[%d]", i)
		if r := bytes.TrimSpace(raw); len(r) == 0 || r[0] != '{' {
			return nil, badInput(field, "must be a JSON object")
		}
		var r harborResource
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, jsonInputError(field, err)
		}
		evs, err := m.mapResource(field, &r)
		if err != nil {
			return nil, err
		}
		out = append(out, evs...)
	}
	return out, nil
}

// harborRepositoryPath returns the repository path of the payload:
// repo_full_name, or namespace/name when it is missing.
func harborRepositoryPath(r *harborRepository) (string, error) {
	if r == nil {
		return "", badInput("event_data.repository", "required")
	}
	repo, field := r.RepoFullName, "event_data.repository.repo_full_name"
	if repo == "" {
		if r.Namespace == "" || r.Name == "" {
			return "", badInput(field, "required")
		}
		repo = r.Namespace + "/" + r.Name
	}
	if !validRepository(repo) {
		return "", badInput(field, "invalid repository name %q", repo)
	}
	return repo, nil
}

type harborMapper struct {
	typ      string
	repo     string
	ns, name string
	at       time.Time
	author   string
	host     string // opts.RegistryHost
}

func (m *harborMapper) mapResource(p string, r *harborResource) ([]intake.Event, error) {
	dgst := r.Digest
	if dgst != "" && !validDigest(dgst) {
		return nil, badInput(p+".digest", "invalid digest %q", dgst)
	}
	// Harbor puts the digest in tag when the artifact has none.
	tag := r.Tag
	if tag == dgst || strings.Contains(tag, ":") {
		tag = ""
	}
	if tag != "" && !validTag(tag) {
		return nil, badInput(p+".tag", "invalid tag %q", tag)
	}
	host := m.resourceHost(r.ResourceURL)
	byTag := imageName(host, m.repo, ':', tag)
	byDigest := imageName(host, m.repo, '@', dgst)
	ns, name, at, author := m.ns, m.name, m.at, m.author

	id := m.eventID(r)
	var out []intake.Event
	add := func(typ kubehookv1.EventType, contents any) error {
		e, err := newEvent(typ, m.repo, at, contents)
		if err == nil {
			e.ID = id
			out = append(out, e)
		}
		return err
	}
	var err error
	switch m.typ {
	case harborPushArtifact, harborPullArtifact, harborDeleteArtifact:
		if dgst == "" {
			return nil, badInput(p+".digest", "required")
		}
		tagged, manifest := m.artifactEvents(tag, dgst, byTag, byDigest)
		if tag != "" {
			err = add(tagged.typ, tagged.contents)
		}
		if err == nil {
			err = add(manifest.typ, manifest.contents)
		}

	case harborScanningCompleted, harborScanningFailed:
		image := byTag
		if tag == "" {
			if dgst == "" {
				return nil, badInput(p+".digest", "required when the resource has no tag")
			}
			image = byDigest
		}
		key, rep, rerr := harborPickReport(p+".scan_overview", r.ScanOverview)
		if rerr != nil {
			return nil, rerr
		}
		if m.typ == harborScanningFailed {
			err = add(kubehookv1.ScanFailed, payload.ScanFailed{Namespace: ns, Repository: name, Tag: tag,
				ImageName: image, Error: harborScanError(rep)})
			break
		}
		sum, serr := harborScanSummary(fmt.Sprintf("%s.scan_overview[%q]", p, key), rep, at)
		if serr != nil {
			return nil, serr
		}
		sum.Namespace, sum.Repository, sum.Tag = ns, name, tag
		err = add(kubehookv1.ScanCompleted, payload.ScanCompleted{Namespace: ns, Repository: name, Tag: tag,
			ImageName: image, ScanSummary: sum})

	case harborUploadChart, harborDownloadChart, harborDeleteChart:
		version := r.Tag
		if version == "" {
			return nil, badInput(p+".tag", "required: the chart version")
		}
		chart := path.Base(m.repo)
		switch m.typ {
		case harborUploadChart:
			err = add(kubehookv1.ChartPush, payload.ChartPush{Namespace: ns, Repository: name, ChartName: chart,
				ChartVersion: version, Digest: dgst, Author: author, PushedAt: at})
		case harborDownloadChart:
			err = add(kubehookv1.ChartPull, payload.ChartPull{Namespace: ns, Repository: name, ChartName: chart,
				ChartVersion: version, Digest: dgst, Author: author, PulledAt: at})
		case harborDeleteChart:
			err = add(kubehookv1.ChartDelete, payload.ChartDelete{Namespace: ns, Repository: name, ChartName: chart,
				ChartVersion: version, Digest: dgst, Author: author, DeletedAt: at})
		}
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// typedContents is the type and the contents of an event to make.
type typedContents struct {
	typ      kubehookv1.EventType
	contents any
}

// artifactEvents returns the contents of the tag event (made only when the
// resource has a tag) and of the manifest event of a PUSH_ARTIFACT,
// PULL_ARTIFACT or DELETE_ARTIFACT.
func (m *harborMapper) artifactEvents(tag, dgst, byTag, byDigest string) (tagged, manifest typedContents) {
	ns, name, at, author := m.ns, m.name, m.at, m.author
	switch m.typ {
	case harborPushArtifact:
		return typedContents{kubehookv1.TagPush, payload.TagPush{Namespace: ns, Repository: name, Tag: tag, Digest: dgst,
				ImageName: byTag, Author: author, PushedAt: at}},
			typedContents{kubehookv1.ManifestPush, payload.ManifestPush{Namespace: ns, Repository: name, Digest: dgst,
				ImageName: byDigest, Author: author}}
	case harborPullArtifact:
		return typedContents{kubehookv1.TagPull, payload.TagPull{Namespace: ns, Repository: name, Tag: tag, Digest: dgst,
				ImageName: byTag, Author: author, PulledAt: at}},
			typedContents{kubehookv1.ManifestPull, payload.ManifestPull{Namespace: ns, Repository: name, Digest: dgst,
				ImageName: byDigest, Author: author, PulledAt: at}}
	default: // harborDeleteArtifact
		return typedContents{kubehookv1.TagDelete, payload.TagDelete{Namespace: ns, Repository: name, Tag: tag, Digest: dgst,
				ImageName: byTag, Author: author, DeletedAt: at}},
			typedContents{kubehookv1.ManifestDelete, payload.ManifestDelete{Namespace: ns, Repository: name, Digest: dgst,
				ImageName: byDigest, Author: author, DeletedAt: at}}
	}
}

// eventID is the identity of the events mapped from resource r. Harbor's
// payloads carry no event id; what identifies the event is its type, time,
// operator and repository, and the artifact (digest and tag, as sent), so
// a payload Harbor sends again has the identity it had the first time.
func (m *harborMapper) eventID(r *harborResource) string {
	return eventID(SourceHarbor, m.typ, strconv.FormatInt(m.at.Unix(), 10), m.author, m.repo, r.Digest, r.Tag)
}

// resourceHost is the registry host of a Harbor resource_url
// ("harbor.example.com/project/repo:tag", possibly with a scheme), or
// opts.RegistryHost when the URL is absent or not of that shape (a
// ChartMuseum URL, for instance).
func (m *harborMapper) resourceHost(u string) string {
	if _, rest, ok := strings.Cut(u, "://"); ok {
		u = rest
	}
	for _, sep := range []string{":", "@"} {
		if i := strings.Index(u, "/"+m.repo+sep); i > 0 && !strings.ContainsAny(u[:i], "/?#@ ") {
			return u[:i]
		}
	}
	return m.host
}
