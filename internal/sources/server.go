package sources

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/kubehook/kubehook/internal/httpserve"
	"github.com/kubehook/kubehook/internal/intake"
)

// MaxBodyBytes is the largest request body a source accepts (413 beyond).
const MaxBodyBytes = 1 << 20

// Routes of the sources server.
const (
	PathDistribution = "/v1/sources/distribution"
	PathHarbor       = "/v1/sources/harbor"
	PathEvents       = "/v1/events"
)

// Media types accepted by the sources.
const (
	MediaTypeDistributionEventsV2 = "application/vnd.docker.distribution.events.v2+json"
	MediaTypeDistributionEventsV1 = "application/vnd.docker.distribution.events.v1+json"
	MediaTypeJSON                 = "application/json"
)

// Error codes of the JSON error body.
const (
	CodeBadRequest           = "BAD_REQUEST"
	CodeUnauthorized         = "UNAUTHORIZED"
	CodeForbidden            = "FORBIDDEN"
	CodeNotFound             = "NOT_FOUND"
	CodeMethodNotAllowed     = "METHOD_NOT_ALLOWED"
	CodeUnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"
	CodePayloadTooLarge      = "PAYLOAD_TOO_LARGE"
	CodeUnavailable          = "UNAVAILABLE"
	CodeInternal             = "INTERNAL"
)

// Publisher queues events durably; *intake.Publisher is the one.
type Publisher interface {
	Publish(ctx context.Context, events ...intake.Event) (int, error)
}

// ErrorBody is the body of every error answer:
//
//	{"error": {"code": "BAD_REQUEST", "message": "...", "field": "events[0].target.digest"}}
//
// field is present when one field of the body, or one request header
// (Idempotency-Key), is at fault.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what is wrong with a request.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// AcceptedBody is the body of a 202 answer: the events the request mapped
// to, and the deliveries durably queued for them (one per matching
// subscription).
type AcceptedBody struct {
	Accepted   int `json:"accepted"`
	Deliveries int `json:"deliveries"`
}

// ServerOptions configure the sources server.
type ServerOptions struct {
	// Addr is the listen address (--events-bind-address, default ":8090").
	Addr string
	// TLSCertFile and TLSKeyFile, both or neither, serve HTTPS with a
	// certificate reloaded when the files change (--events-tls-cert-file,
	// --events-tls-key-file); neither serves plain HTTP.
	TLSCertFile string
	TLSKeyFile  string
	// SharedResolutions, when set, shares tag resolutions (HEAD of a tag,
	// then GET of its digest) with the other replicas.
	SharedResolutions SharedResolutions
	// RegistryHost is the host in imageName (--registry-host); empty uses
	// the request's Host (the Distribution parser prefers the host of the
	// registry request recorded in each event).
	RegistryHost string
	// Auth holds each source's tokens. Required: a source without tokens
	// refuses every request.
	Auth *Authenticator
	// Inspector finds os and architecture; nil leaves them empty.
	Inspector Inspector
	// Publisher queues the events' deliveries.
	Publisher Publisher
	// WaitReady, when set, is awaited before the listener opens: kubehook
	// serves only once the controller has loaded the subscriptions, so no
	// event is accepted while it would match nothing.
	WaitReady func(ctx context.Context) error
	// RetryAfter is sent with 503 answers (default 10s).
	RetryAfter time.Duration
	// PublishTimeout bounds queueing one request's deliveries (default 30s).
	PublishTimeout time.Duration
	// ShutdownTimeout bounds the wait for in-flight requests at stop
	// (default 15s).
	ShutdownTimeout time.Duration
	// Now is the clock (native events default createdAt to it).
	Now func() time.Time
	Log logr.Logger
}

// parseFunc maps a request (its header and whole body) to events.
type parseFunc func(ctx context.Context, header http.Header, body []byte, opts MapOptions) ([]intake.Event, error)

// route is one source endpoint.
type route struct {
	source     string
	mediaTypes []string
	parse      parseFunc
}

// Server is the sources HTTP server: it authenticates and bounds each
// request, parses the whole body, refuses it (403) when a scoped token sent
// an event outside its registry namespaces, publishes every resulting event
// with one Publish call, and answers 202 only after that call returned, so
// the sender retries anything kubehook did not durably accept.
//
// It is a manager.Runnable that runs on every replica: each replica's
// controller loads every subscription into that replica's index, so any of
// them matches and queues an event the same way. It listens only once the
// subscriptions are loaded (WaitReady), so no event is matched against
// half of them.
type Server struct {
	opts      ServerOptions
	inspector Inspector
	routes    map[string]*route
	// resolutions pairs the HEAD of a tag with the GET of its digest.
	resolutions *TagResolutions

	// listening is closed once the listener is open; addr is its address.
	listening chan struct{}
	addr      net.Addr
}

// TagResolutionWindow is how long after a client's HEAD of a tag its GET
// of the digest counts as a pull of that tag.
const TagResolutionWindow = time.Minute

// NewServer returns a sources server for opts.
func NewServer(opts ServerOptions) (*Server, error) {
	if opts.Auth == nil {
		return nil, errors.New("sources: an Authenticator is required")
	}
	if opts.Publisher == nil {
		return nil, errors.New("sources: a Publisher is required")
	}
	if (opts.TLSCertFile == "") != (opts.TLSKeyFile == "") {
		return nil, errors.New("sources: a TLS certificate file needs its key file, and a key file its certificate file")
	}
	if opts.Addr == "" {
		opts.Addr = ":8090"
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = 10 * time.Second
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = 30 * time.Second
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 15 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, listening: make(chan struct{}), resolutions: NewTagResolutions(TagResolutionWindow, 10_000)}
	if opts.SharedResolutions != nil {
		s.resolutions.Share(opts.SharedResolutions)
	}
	if opts.Inspector != nil {
		s.inspector = counting(opts.Inspector)
	}
	s.routes = map[string]*route{
		PathDistribution: {
			source:     SourceDistribution,
			mediaTypes: []string{MediaTypeDistributionEventsV2, MediaTypeDistributionEventsV1, MediaTypeJSON},
			parse: func(ctx context.Context, _ http.Header, body []byte, o MapOptions) ([]intake.Event, error) {
				return Distribution(ctx, body, o, s.inspector)
			},
		},
		PathHarbor: {
			source:     SourceHarbor,
			mediaTypes: []string{MediaTypeJSON},
			parse: func(ctx context.Context, _ http.Header, body []byte, o MapOptions) ([]intake.Event, error) {
				return Harbor(ctx, body, o)
			},
		},
		PathEvents: {
			source:     SourceEvents,
			mediaTypes: []string{MediaTypeJSON},
			parse: func(_ context.Context, h http.Header, body []byte, _ MapOptions) ([]intake.Event, error) {
				key, err := IdempotencyKey(h)
				if err != nil {
					return nil, err
				}
				return Native(body, s.opts.Now(), key)
			},
		},
	}
	return s, nil
}

// NeedLeaderElection reports false: every replica has every subscription
// registered and publishes to the one queue, so a Service over all Pods is
// a valid target for registries.
func (s *Server) NeedLeaderElection() bool { return false }

// Ready is a readiness check: it fails until the server accepts events.
func (s *Server) Ready(*http.Request) error {
	select {
	case <-s.listening:
		return nil
	default:
		return errors.New("event sources not accepting events yet")
	}
}

// Start listens on the configured address and serves until ctx ends, then
// shuts down gracefully: in-flight requests finish (bounded by the
// shutdown timeout), new ones are refused.
func (s *Server) Start(ctx context.Context) error {
	log := s.opts.Log
	if err := s.opts.Auth.Refresh(ctx); err != nil {
		log.Error(err, "reading source tokens")
	}
	for _, source := range SourceNames {
		s.opts.Auth.logState(source, s.opts.Auth.Enabled(source))
	}
	go s.opts.Auth.run(ctx)

	// Before waiting for the subscriptions, so a bad certificate stops
	// kubehook at once.
	var tlsConfig *tls.Config
	if s.opts.TLSCertFile != "" {
		cfg, err := httpserve.TLSConfig(ctx, s.opts.TLSCertFile, s.opts.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("sources server: %w", err)
		}
		tlsConfig = cfg
	}

	if s.opts.WaitReady != nil {
		if err := s.opts.WaitReady(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("sources server: %w", err)
		}
	}

	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("sources server: %w", err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	s.addr = ln.Addr()
	close(s.listening)
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      s.opts.PublishTimeout + 30*time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	log.Info("serving event sources", "address", s.addr.String(), "tls", tlsConfig != nil)
	if err := httpserve.Serve(ctx, srv, ln, s.opts.ShutdownTimeout); err != nil {
		return fmt.Errorf("sources server: %w", err)
	}
	return nil
}

// Handler serves the sources' routes.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt, ok := s.routes[r.URL.Path]
		if !ok {
			writeError(w, http.StatusNotFound, ErrorDetail{Code: CodeNotFound, Message: fmt.Sprintf("no source at %s; sources are %s, %s and %s", r.URL.Path, PathDistribution, PathHarbor, PathEvents)})
			return
		}
		s.serve(w, r, rt)
	})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, rt *route) {
	log := s.opts.Log.WithValues("source", rt.source, "remote", r.RemoteAddr)
	reject := func(status int, reason string, detail ErrorDetail) {
		RequestsRejectedTotal.WithLabelValues(rt.source, reason).Inc()
		log.V(1).Info("source request rejected", "status", status, "reason", reason, "message", detail.Message)
		writeError(w, status, detail)
	}

	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		reject(http.StatusMethodNotAllowed, ReasonMethodNotAllowed, ErrorDetail{Code: CodeMethodNotAllowed, Message: fmt.Sprintf("method %s not allowed; use POST", r.Method)})
		return
	}
	grant, ok := s.opts.Auth.Authorize(rt.source, r.Header.Get("Authorization"))
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="kubehook"`)
		reject(http.StatusUnauthorized, ReasonUnauthorized, ErrorDetail{Code: CodeUnauthorized, Message: "a valid bearer token for the " + rt.source + " source is required"})
		return
	}
	if !mediaTypeAccepted(r.Header.Get("Content-Type"), rt.mediaTypes) {
		w.Header().Set("Accept-Post", strings.Join(rt.mediaTypes, ", "))
		reject(http.StatusUnsupportedMediaType, ReasonUnsupportedMediaType, ErrorDetail{Code: CodeUnsupportedMediaType, Message: fmt.Sprintf("Content-Type %q is not accepted; use %s", r.Header.Get("Content-Type"), strings.Join(rt.mediaTypes, " or "))})
		return
	}
	tooLarge := ErrorDetail{Code: CodePayloadTooLarge, Message: fmt.Sprintf("the body is larger than %d bytes", MaxBodyBytes)}
	if r.ContentLength > MaxBodyBytes {
		reject(http.StatusRequestEntityTooLarge, ReasonTooLarge, tooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			reject(http.StatusRequestEntityTooLarge, ReasonTooLarge, tooLarge)
			return
		}
		reject(http.StatusBadRequest, ReasonBadRequest, ErrorDetail{Code: CodeBadRequest, Message: "reading the body: " + err.Error()})
		return
	}

	opts := MapOptions{RegistryHost: s.opts.RegistryHost, Resolutions: s.resolutions}
	if opts.RegistryHost == "" {
		opts.RegistryHost = r.Host
	}
	events, err := rt.parse(r.Context(), r.Header, body, opts)
	if err != nil {
		if in, ok := errors.AsType[*InputError](err); ok {
			reject(http.StatusBadRequest, ReasonBadRequest, ErrorDetail{Code: CodeBadRequest, Message: in.Message, Field: in.Field})
			return
		}
		log.Error(err, "mapping source request")
		RequestsRejectedTotal.WithLabelValues(rt.source, ReasonInternal).Inc()
		writeError(w, http.StatusInternalServerError, ErrorDetail{Code: CodeInternal, Message: "the request could not be mapped; see kubehook's log"})
		return
	}

	// A scoped token's request is refused whole when one event is outside
	// its namespaces, before anything is published.
	if d := grant.forbidden(events, body); d != nil {
		reject(http.StatusForbidden, ReasonForbidden, *d)
		return
	}

	// All or nothing: one Publish for every event of the request.
	pctx, cancel := context.WithTimeout(r.Context(), s.opts.PublishTimeout)
	defer cancel()
	n, err := s.opts.Publisher.Publish(pctx, events...)
	if err != nil {
		log.Error(err, "queueing source events", "events", len(events))
		w.Header().Set("Retry-After", strconv.Itoa(int((s.opts.RetryAfter+time.Second-1)/time.Second)))
		reject(http.StatusServiceUnavailable, ReasonUnavailable, ErrorDetail{Code: CodeUnavailable, Message: "the events could not be queued durably; retry later"})
		return
	}
	for _, ev := range events {
		EventsReceivedTotal.WithLabelValues(rt.source, string(ev.Payload.Type)).Inc()
	}
	log.V(1).Info("source events accepted", "events", len(events), "deliveries", n)
	writeJSON(w, http.StatusAccepted, AcceptedBody{Accepted: len(events), Deliveries: n})
}

// mediaTypeAccepted reports whether the Content-Type header names one of
// the accepted media types (parameters such as charset are allowed).
func mediaTypeAccepted(header string, accepted []string) bool {
	if header == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(header)
	if err != nil {
		return false
	}
	for _, a := range accepted {
		if mt == a {
			return true
		}
	}
	return false
}

func writeError(w http.ResponseWriter, status int, detail ErrorDetail) {
	writeJSON(w, status, ErrorBody{Error: detail})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// countingInspector counts failed inspections. The parsers deliver the
// event anyway, with os and architecture empty.
type countingInspector struct{ Inspector }

func (c countingInspector) Platform(ctx context.Context, repository, digest string) (Platform, error) {
	p, err := c.Inspector.Platform(ctx, repository, digest)
	if err != nil {
		InspectionsFailedTotal.Inc()
	}
	return p, err
}

// countingArtifactInspector keeps the optional ArtifactInspector of the
// inspector it wraps. Its failures are not counted: with RemoteInspector a
// failed config media type is the same failed inspection that Platform
// reports (and counts) for the event right after.
type countingArtifactInspector struct {
	countingInspector
	ArtifactInspector
}

// Platform resolves the ambiguity between the two embedded types.
func (c countingArtifactInspector) Platform(ctx context.Context, repository, digest string) (Platform, error) {
	return c.countingInspector.Platform(ctx, repository, digest)
}

// counting wraps insp so that its failures are counted, keeping the
// optional ArtifactInspector.
func counting(insp Inspector) Inspector {
	if ai, ok := insp.(ArtifactInspector); ok {
		return countingArtifactInspector{countingInspector{insp}, ai}
	}
	return countingInspector{insp}
}
