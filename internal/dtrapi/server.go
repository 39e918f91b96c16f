package dtrapi

import (
	"context"
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

	"github.com/kubehook/kubehook/internal/httpserve"
)

// Options configure the DTR API server.
type Options struct {
	// Addr is the listen address (--api-bind-address).
	Addr string
	// TLSCertFile and TLSKeyFile, when set, serve HTTPS, reloaded when the
	// files change.
	TLSCertFile, TLSKeyFile string
	// Config is kubehook's own API server config; the callers' client takes
	// its address and CA from it, none of its credentials.
	Config *rest.Config
	Scheme *runtime.Scheme
	Mapper meta.RESTMapper
	// Cache is kubehook's own cached client, for namespace metadata.
	Cache client.Client
	// UIDs names each cached subscription from its DTR webhook id (see
	// WatchUIDs).
	UIDs *UIDs
	// Sender makes test deliveries, with the SSRF guard of real ones.
	Sender TestSender
	// AnyNamespace (kubehook's --tenancy=false) lets ?namespace= name any
	// namespace, whatever the key; without it, the namespace must be one
	// the tenancy rules allow for the key.
	AnyNamespace bool
	// CacheTTL is how long a token review or access verdict is reused
	// (default 10s).
	CacheTTL time.Duration
	// RateLimit is the requests a second one client address may make, in
	// bursts of RateBurst; zero or less serves every request.
	RateLimit float64
	RateBurst int
	// ShutdownTimeout bounds the wait for in-flight requests (default 15s).
	ShutdownTimeout time.Duration
	Log             logr.Logger
}

// Server is the DTR API HTTP server, a manager.Runnable that runs on every
// replica (it keeps no state of its own).
type Server struct {
	opts     Options
	as       client.Client // sends the caller's token
	reviewer *reviewer
	access   *access
	limits   *clientLimits // nil: no rate limit
	handler  http.Handler
}

// New returns a server for opts.
func New(opts Options) (*Server, error) {
	if opts.Config == nil || opts.Scheme == nil || opts.Mapper == nil || opts.Cache == nil || opts.UIDs == nil || opts.Sender == nil {
		return nil, errors.New("dtrapi: Config, Scheme, Mapper, Cache, UIDs and Sender are required")
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
	as, err := newCallerClient(opts.Config, opts.Scheme, opts.Mapper)
	if err != nil {
		return nil, fmt.Errorf("creating the callers' client: %w", err)
	}
	s := &Server{
		opts:     opts,
		as:       as,
		reviewer: newReviewer(as, opts.CacheTTL),
		access:   &access{as: as, cache: opts.Cache, ttl: opts.CacheTTL, anywhere: cache.NewLRUExpireCache(maxCachedReviews)},
	}
	if opts.RateLimit > 0 {
		s.limits = newClientLimits(opts.RateLimit, opts.RateBurst)
	}
	s.handler = s.routes()
	return s, nil
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
		// Reloaded when the files change: a renewed certificate needs no restart.
		if ln, err = httpserve.TLSListener(ctx, ln, s.opts.TLSCertFile, s.opts.TLSKeyFile); err != nil {
			return fmt.Errorf("DTR API: %w", err)
		}
	}
	s.opts.Log.Info("serving the DTR API", "address", ln.Addr().String(), "tls", s.opts.TLSCertFile != "")

	if err := httpserve.Serve(ctx, srv, ln, s.opts.ShutdownTimeout); err != nil {
		return fmt.Errorf("DTR API: %w", err)
	}
	return nil
}
