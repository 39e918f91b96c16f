// Package dtrapi serves the DTR webhook API (/api/v0/webhooks...) backed by
// WebhookSubscription objects, so scripts written for Docker Trusted
// Registry keep working.
//
// Callers authenticate with a Kubernetes token (Bearer, or Basic with the
// token as password), verified with a TokenReview. Every read and write of
// subscriptions is then made as the caller, through impersonation, so the
// cluster's RBAC decides and kubehook's own rights never reach a caller.
// kubehook's own identity only reviews tokens and reads namespace metadata
// and a UID index from its cache to know where to look.
package dtrapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/dispatcher"
	"github.com/kubehook/kubehook/internal/httpserve"
)

// kubehook reviews callers' tokens and acts as them:
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups="",resources=users;groups;serviceaccounts,verbs=impersonate
// (RBAC has no "userextras/*" wildcard: "*" in this group covers uids and
// every userextras/<key>, the only resources impersonation checks here.)
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=*,verbs=impersonate

// Options configure the DTR API server.
type Options struct {
	// Addr is the listen address (--api-bind-address).
	Addr string
	// TLSCertFile and TLSKeyFile, when set, serve HTTPS.
	TLSCertFile, TLSKeyFile string
	// Config is kubehook's own API server config; the impersonating client
	// is derived from it.
	Config *rest.Config
	Scheme *runtime.Scheme
	Mapper meta.RESTMapper
	// Cache is kubehook's own cached client: TokenReviews, namespace
	// metadata and the UID index (see IndexFields).
	Cache client.Client
	// Sender makes test deliveries, with the SSRF guard of real ones.
	Sender dispatcher.Sender
	// AnyNamespace (kubehook's --tenancy=false) lets ?namespace= name any
	// namespace, whatever the key; without it, the namespace must be one
	// the tenancy rules allow for the key.
	AnyNamespace bool
	// Audiences of the TokenReview; empty means the API server's.
	Audiences []string
	// CacheTTL is how long a token review or access verdict is reused
	// (default 10s).
	CacheTTL time.Duration
	// ShutdownTimeout bounds the wait for in-flight requests (default 15s).
	ShutdownTimeout time.Duration
	Log             logr.Logger
}

// Server is the DTR API HTTP server, a manager.Runnable that runs on every
// replica (it keeps no state of its own).
type Server struct {
	opts     Options
	as       client.Client // impersonates the caller
	reviewer *reviewer
	access   *access
	handler  http.Handler
}

// New returns a server for opts.
func New(opts Options) (*Server, error) {
	if opts.Config == nil || opts.Scheme == nil || opts.Mapper == nil || opts.Cache == nil || opts.Sender == nil {
		return nil, errors.New("dtrapi: Config, Scheme, Mapper, Cache and Sender are required")
	}
	if (opts.TLSCertFile == "") != (opts.TLSKeyFile == "") {
		return nil, errors.New("the DTR API needs both a TLS certificate and key file, or neither")
	}
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = 10 * time.Second
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 15 * time.Second
	}
	as, err := newImpersonatingClient(opts.Config, opts.Scheme, opts.Mapper)
	if err != nil {
		return nil, fmt.Errorf("creating the impersonating client: %w", err)
	}
	s := &Server{
		opts:     opts,
		as:       as,
		reviewer: newReviewer(opts.Cache, opts.Audiences, opts.CacheTTL),
		access:   &access{as: as, cache: opts.Cache, ttl: opts.CacheTTL, anywhere: cache.NewLRUExpireCache(maxCachedReviews)},
	}
	s.handler = s.routes()
	return s, nil
}

// uidIndex indexes cached WebhookSubscriptions by UID, the DTR webhook id.
const uidIndex = "metadata.uid"

// IndexFields registers the cache index the server needs; call it before
// the manager starts.
func IndexFields(ctx context.Context, indexer client.FieldIndexer) error {
	return indexer.IndexField(ctx, &kubehookv1.WebhookSubscription{}, uidIndex, func(o client.Object) []string {
		return []string{string(o.GetUID())}
	})
}

// Handler serves the API; tests call it through httptest.
func (s *Server) Handler() http.Handler { return s.handler }

// NeedLeaderElection: every replica serves the API.
func (s *Server) NeedLeaderElection() bool { return false }

// Start serves until ctx ends, then lets in-flight requests finish.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("DTR API: listening on %s: %w", s.opts.Addr, err)
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// A test delivery waits for its endpoint (up to the default timeout).
		WriteTimeout:   60 * time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
	}
	if s.opts.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.opts.TLSCertFile, s.opts.TLSKeyFile)
		if err != nil {
			_ = ln.Close()
			return fmt.Errorf("DTR API: loading the TLS certificate: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	s.opts.Log.Info("serving the DTR API", "address", ln.Addr().String(), "tls", s.opts.TLSCertFile != "")

	if err := httpserve.Serve(ctx, srv, ln, s.opts.ShutdownTimeout); err != nil {
		return fmt.Errorf("DTR API: %w", err)
	}
	return nil
}
