package sources

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/singleflight"
	"k8s.io/apimachinery/pkg/util/cache"
)

// InspectorUserAgent starts the User-Agent of the inspector's registry
// requests. Its manifest fetches show in the registry's notifications as
// pulls; a parser can recognise them by request.useragent.
const InspectorUserAgent = "kubehook-inspector"

// InspectorOptions configure a RemoteInspector.
type InspectorOptions struct {
	// URL of the registry, e.g. https://registry.example.com or
	// http://127.0.0.1:5000. Plain http is used only when the scheme is
	// http; with https every request is made over TLS, private and loopback
	// addresses included.
	URL string
	// Credentials returns the authenticator for the registry; nil is
	// anonymous. See SecretCredentials.
	Credentials func(ctx context.Context) (authn.Authenticator, error)
	// Transport for the registry requests (default remote.DefaultTransport).
	Transport http.RoundTripper
	// CacheSize bounds the inspections kept, by digest, and the failures
	// remembered, by repository@digest (default 4096 each).
	CacheSize int
	// Timeout bounds one inspection (default 10s). It runs to completion
	// even when the request that asked for it ends, so that the registry's
	// retry of a notification finds it in the cache.
	Timeout time.Duration
	// FailureTTL is how long a failed inspection is answered from memory
	// with the same error (default 5s), so that a registry that is down or
	// slow costs one timeout per manifest, not one per question about it.
	FailureTTL time.Duration
	// Now is the clock; tests inject it.
	Now func() time.Time
}

// RemoteInspector reads os and architecture from the registry with
// go-containerregistry: the manifest by digest and, for an image, its
// config. Results are cached by digest (content is immutable); concurrent
// inspections of one manifest make one fetch.
//
// For an image index (OCI index or Docker manifest list) it reports the
// platform of its linux/amd64 entry when there is one, else of its first
// entry with a platform other than unknown/unknown (the attestation
// manifests of BuildKit). That is what a default `docker pull` on the most
// common nodes resolves to, and what DTR showed for a tag: one os and one
// architecture. An index without platforms, and an artifact whose config is
// not an image config (a Helm chart, for example), report both empty.
type RemoteInspector struct {
	opts     InspectorOptions
	registry name.Registry
	insecure bool

	// results holds inspections by digest, at most CacheSize, the least
	// recently used making room; they never expire (a digest names
	// immutable content).
	results *cache.LRUExpireCache
	// failures holds the errors of recent failed inspections by
	// repository@digest, each for FailureTTL, bounded like results.
	failures *cache.LRUExpireCache
	// calls makes concurrent inspections of one repository@digest one
	// fetch.
	calls singleflight.Group
}

// inspection is what one manifest tells.
type inspection struct {
	platform        Platform
	configMediaType string
}

// NewRemoteInspector returns an inspector for the registry at opts.URL.
func NewRemoteInspector(opts InspectorOptions) (*RemoteInspector, error) {
	u, err := url.Parse(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("registry URL %q: %w", opts.URL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("registry URL %q: the scheme must be http or https", opts.URL)
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("registry URL %q: give only the scheme and host (and port), e.g. https://registry.example.com", opts.URL)
	}
	insecure := u.Scheme == "http"
	var nameOpts []name.Option
	if insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	reg, err := name.NewRegistry(u.Host, nameOpts...)
	if err != nil {
		return nil, fmt.Errorf("registry URL %q: %w", opts.URL, err)
	}
	if opts.Transport == nil {
		opts.Transport = remote.DefaultTransport
	}
	if !insecure {
		// go-containerregistry speaks plain http to private and loopback
		// addresses on its own; an https URL means TLS, always.
		opts.Transport = httpsOnly{opts.Transport}
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 4096
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.FailureTTL <= 0 {
		opts.FailureTTL = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &RemoteInspector{
		opts:     opts,
		registry: reg,
		insecure: insecure,
		results:  cache.NewLRUExpireCacheWithClock(opts.CacheSize, clockFunc(opts.Now)),
		failures: cache.NewLRUExpireCacheWithClock(opts.CacheSize, clockFunc(opts.Now)),
	}, nil
}

// Platform returns the os and architecture of the manifest repository@digest.
func (i *RemoteInspector) Platform(ctx context.Context, repository, digest string) (Platform, error) {
	res, err := i.inspect(ctx, repository, digest)
	return res.platform, err
}

// ConfigMediaType returns the media type of the manifest's config (for
// example application/vnd.cncf.helm.config.v1+json for a Helm chart), or
// empty for an index.
func (i *RemoteInspector) ConfigMediaType(ctx context.Context, repository, digest string) (string, error) {
	res, err := i.inspect(ctx, repository, digest)
	return res.configMediaType, err
}
