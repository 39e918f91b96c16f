package sources

import (
	"context"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func (i *RemoteInspector) fetch(ctx context.Context, repository, digest string) (inspection, error) {
	var nameOpts []name.Option
	if i.insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	ref, err := name.NewDigest(i.registry.RegistryStr()+"/"+repository+"@"+digest, nameOpts...)
	if err != nil {
		return inspection{}, fmt.Errorf("inspecting %s@%s: %w", repository, digest, err)
	}
	auth := authn.Anonymous
	if i.opts.Credentials != nil {
		if auth, err = i.opts.Credentials(ctx); err != nil {
			return inspection{}, fmt.Errorf("registry credentials: %w", err)
		}
	}
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuth(auth),
		remote.WithTransport(i.opts.Transport),
		remote.WithUserAgent(InspectorUserAgent),
	}
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return inspection{}, fmt.Errorf("fetching manifest %s: %w", ref, err)
	}
	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return inspection{}, fmt.Errorf("reading index %s: %w", ref, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return inspection{}, fmt.Errorf("reading index %s: %w", ref, err)
		}
		return inspection{platform: indexPlatform(im)}, nil
	case desc.MediaType.IsImage():
		img, err := desc.Image()
		if err != nil {
			return inspection{}, fmt.Errorf("reading manifest %s: %w", ref, err)
		}
		m, err := img.Manifest()
		if err != nil {
			return inspection{}, fmt.Errorf("reading manifest %s: %w", ref, err)
		}
		res := inspection{configMediaType: string(m.Config.MediaType)}
		if !m.Config.MediaType.IsConfig() {
			// An artifact (a Helm chart, a signature): no platform.
			return res, nil
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			return inspection{}, fmt.Errorf("reading image config of %s: %w", ref, err)
		}
		res.platform = Platform{OS: cfg.OS, Architecture: cfg.Architecture}
		return res, nil
	default:
		return inspection{}, fmt.Errorf("manifest %s has media type %q, neither an image nor an index", ref, desc.MediaType)
	}
}

// indexPlatform picks the platform reported for an index: linux/amd64 if
// listed, else the first entry with a known platform.
func indexPlatform(im *v1.IndexManifest) Platform {
	var first *v1.Platform
	for _, m := range im.Manifests {
		p := m.Platform
		if p == nil || p.OS == "" || p.OS == "unknown" || p.Architecture == "unknown" {
			continue
		}
		if p.OS == "linux" && p.Architecture == "amd64" {
			return Platform{OS: p.OS, Architecture: p.Architecture}
		}
		if first == nil {
			first = p
		}
	}
	if first == nil {
		return Platform{}
	}
	return Platform{OS: first.OS, Architecture: first.Architecture}
}

// httpsOnly upgrades plain http requests to https.
type httpsOnly struct{ next http.RoundTripper }

func (t httpsOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" {
		req = req.Clone(req.Context())
		req.URL.Scheme = "https"
	}
	return t.next.RoundTrip(req)
}
