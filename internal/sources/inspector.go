package sources

import (
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
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
	// CacheSize bounds the inspections kept, by digest (default 4096).
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

	cache *lruCache

	mu       sync.Mutex
	inflight map[string]*inspectCall
	// failed holds recent failures by repository@digest, bounded like the cache.
	failed map[string]failure
}

type failure struct {
	err error
	at  time.Time
}

// inspection is what one manifest tells.
type inspection struct {
	platform        Platform
	configMediaType string
}

type inspectCall struct {
	done chan struct{}
	res  inspection
	err  error
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
		cache:    newLRU(opts.CacheSize),
		inflight: map[string]*inspectCall{},
		failed:   map[string]failure{},
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

func (i *RemoteInspector) inspect(ctx context.Context, repository, digest string) (inspection, error) {
	if _, err := v1.NewHash(digest); err != nil {
		return inspection{}, fmt.Errorf("inspecting %s@%s: %w", repository, digest, err)
	}
	if res, ok := i.cache.get(digest); ok {
		return res, nil
	}
	key := repository + "@" + digest
	i.mu.Lock()
	if f, ok := i.failed[key]; ok {
		if i.opts.Now().Sub(f.at) < i.opts.FailureTTL {
			i.mu.Unlock()
			return inspection{}, f.err
		}
		delete(i.failed, key)
	}
	c, ok := i.inflight[key]
	if !ok {
		c = &inspectCall{done: make(chan struct{})}
		i.inflight[key] = c
		go func() {
			// Detached from the caller, bounded by the timeout: a registry
			// that gave up on a slow answer retries and finds the result.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), i.opts.Timeout)
			defer cancel()
			c.res, c.err = i.fetch(fctx, repository, digest)
			if c.err == nil {
				i.cache.add(digest, c.res)
			}
			i.mu.Lock()
			delete(i.inflight, key)
			if c.err != nil {
				i.rememberFailure(key, c.err)
			}
			i.mu.Unlock()
			close(c.done)
		}()
	}
	i.mu.Unlock()
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		return inspection{}, fmt.Errorf("inspecting %s: %w", key, ctx.Err())
	}
}

// rememberFailure records a failed inspection; i.mu is held. Expired
// entries are dropped when the map reaches the cache size.
func (i *RemoteInspector) rememberFailure(key string, err error) {
	now := i.opts.Now()
	if len(i.failed) >= i.opts.CacheSize {
		for k, f := range i.failed {
			if now.Sub(f.at) >= i.opts.FailureTTL {
				delete(i.failed, k)
			}
		}
		if len(i.failed) >= i.opts.CacheSize {
			return
		}
	}
	i.failed[key] = failure{err: err, at: now}
}

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

// SecretCredentials returns registry credentials read from a Secret, for
// InspectorOptions.Credentials. Two kinds of Secret are understood:
//
//   - kubernetes.io/dockerconfigjson (key .dockerconfigjson), the kind
//     `kubectl create secret docker-registry` makes and image pull secrets
//     use: the entry of "auths" for the registry host (written as the host,
//     or as a URL such as https://host/v1/);
//   - any other Secret with keys "username" and "password"
//     (kubernetes.io/basic-auth).
//
// The Secret is read when needed and kept for ttl, so a rotated Secret
// takes effect without a restart.
func SecretCredentials(reader client.Reader, secret types.NamespacedName, registryURL string, ttl time.Duration) func(ctx context.Context) (authn.Authenticator, error) {
	host := registryURL
	if u, err := url.Parse(registryURL); err == nil && u.Host != "" {
		host = u.Host
	}
	var (
		mu      sync.Mutex
		cached  authn.Authenticator
		fetched time.Time
	)
	return func(ctx context.Context) (authn.Authenticator, error) {
		mu.Lock()
		defer mu.Unlock()
		if cached != nil && time.Since(fetched) < ttl {
			return cached, nil
		}
		var s corev1.Secret
		if err := reader.Get(ctx, secret, &s); err != nil {
			return nil, fmt.Errorf("reading registry credentials Secret %s: %w", secret, err)
		}
		auth, err := secretAuthenticator(&s, host)
		if err != nil {
			return nil, fmt.Errorf("registry credentials Secret %s: %w", secret, err)
		}
		cached, fetched = auth, time.Now()
		return auth, nil
	}
}

func secretAuthenticator(s *corev1.Secret, host string) (authn.Authenticator, error) {
	if data, ok := s.Data[corev1.DockerConfigJsonKey]; ok {
		var cfg struct {
			Auths map[string]authn.AuthConfig `json:"auths"`
		}
		if err := json.Unmarshal(data, &cfg); err != nil {
			return nil, fmt.Errorf("key %s is not a Docker config: %w", corev1.DockerConfigJsonKey, err)
		}
		for key, ac := range cfg.Auths {
			if configHost(key) == host {
				return authn.FromConfig(ac), nil
			}
		}
		return nil, fmt.Errorf("no credentials for %s in key %s", host, corev1.DockerConfigJsonKey)
	}
	user, pass := s.Data[corev1.BasicAuthUsernameKey], s.Data[corev1.BasicAuthPasswordKey]
	if len(user) == 0 || len(pass) == 0 {
		return nil, errors.New("neither .dockerconfigjson nor username and password keys")
	}
	return &authn.Basic{Username: string(user), Password: string(pass)}, nil
}

// configHost is the host of a Docker config "auths" key, which may be a
// host or a URL.
func configHost(key string) string {
	if strings.Contains(key, "://") {
		if u, err := url.Parse(key); err == nil {
			return u.Host
		}
	}
	host, _, _ := strings.Cut(key, "/")
	return host
}

// lruCache is a bounded, concurrency-safe least-recently-used cache.
type lruCache struct {
	mu    sync.Mutex
	max   int
	ll    *list.List
	items map[string]*list.Element
}

type lruEntry struct {
	key string
	val inspection
}

func newLRU(max int) *lruCache {
	return &lruCache{max: max, ll: list.New(), items: map[string]*list.Element{}}
}

func (c *lruCache) get(key string) (inspection, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[key]
	if !ok {
		return inspection{}, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*lruEntry).val, true
}

func (c *lruCache) add(key string, val inspection) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		e.Value.(*lruEntry).val = val
		c.ll.MoveToFront(e)
		return
	}
	c.items[key] = c.ll.PushFront(&lruEntry{key: key, val: val})
	for c.ll.Len() > c.max {
		oldest := c.ll.Back()
		c.ll.Remove(oldest)
		delete(c.items, oldest.Value.(*lruEntry).key)
	}
}

func (c *lruCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
