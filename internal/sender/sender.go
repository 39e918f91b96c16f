// Package sender makes one HTTP delivery attempt to a webhook endpoint.
//
// Send makes exactly one attempt and never retries: retries, backoff and
// deactivation belong to the caller, which gets what it needs to decide in
// the Result (status code, Retry-After, error). Redirects are not followed.
// Connections go through an address guard that refuses loopback, private,
// link-local and other internal addresses, denied ranges and the cluster's
// own Service and Pod ranges at connect time unless they are allowed, and
// are pooled per TLS configuration so that deliveries to the same endpoint
// reuse them.
//
// The sender keeps no global state and registers no metrics.
package sender

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/signing"
	"github.com/kubehook/kubehook/internal/subscriptions"
	"github.com/kubehook/kubehook/internal/version"
)

const (
	// DefaultConcurrency is used when Options.Concurrency is not set.
	DefaultConcurrency = 64
	// DefaultMaxTransports is used when Options.MaxTransports is not set.
	DefaultMaxTransports = 256

	// MaxResponseBody is how much of a response body is read; the rest is
	// left unread and the connection closed.
	MaxResponseBody = 64 << 10
	// maxSnippet is how much of a failed response's body goes into Result.Err.
	maxSnippet = 512
	// maxLocation is how much of a redirect's Location goes into Result.Err.
	maxLocation = 256
	// maxResponseHeaderBytes caps the response header size.
	maxResponseHeaderBytes = 64 << 10
	// minRedactLen is the shortest header value redacted from response
	// snippets; shorter ones would garble them without protecting anything.
	minRedactLen = 4
)

// Request is one delivery attempt.
type Request struct {
	// ID is the webhook-id of the delivery, the same on every attempt so
	// that receivers can deduplicate.
	ID string
	// Timestamp is the webhook-timestamp (sent in unix seconds) and is
	// signed; it should be the time of this attempt, as receivers refuse
	// timestamps far from their clock. The zero time means Options.Now().
	Timestamp time.Time
	// Body is the payload, sent as is.
	Body []byte
	// ContentType is the Content-Type header; empty means application/json.
	ContentType string
}

// Result is the outcome of one attempt.
type Result struct {
	// StatusCode is the response status, 0 when no response was received.
	StatusCode int
	// RetryAfter is the delay the endpoint asked for with Retry-After on a
	// non-2xx response, 0 when it asked for none (or a date in the past).
	RetryAfter time.Duration
	// Duration is how long the attempt took, from before connecting to
	// after the response body was read.
	Duration time.Duration
	// Err is nil exactly when the endpoint answered 2xx. It describes the
	// failure (status and the start of the response body, a redirect, a
	// timeout, a refused address, a network or TLS error) and never holds
	// signing keys or the values of the subscription's headers.
	Err error
	// NotSent is set when the request never reached the endpoint's host
	// for reasons of the subscription, not of the host: its URL or TLS
	// configuration is invalid, or the address guard refused every address
	// the host resolved to. Such a failure says nothing about whether the
	// host is up, so a caller keeping per-host health ignores it.
	NotSent bool
}

// OK reports whether the endpoint accepted the delivery (2xx).
func (r Result) OK() bool { return r.Err == nil && r.StatusCode >= 200 && r.StatusCode < 300 }

// Gone reports whether the endpoint answered 410 Gone, which deactivates a
// subscription at once.
func (r Result) Gone() bool { return r.StatusCode == http.StatusGone }

// Options configure a Sender. The zero value is usable.
type Options struct {
	// Concurrency is how many Sends the caller runs at once; it sizes the
	// idle connection pools (Send itself does not limit concurrency).
	// DefaultConcurrency when 0.
	Concurrency int
	// AllowCIDRs are address ranges endpoints may resolve to even though
	// the guard refuses them otherwise (the --allow-endpoint-cidrs flag).
	AllowCIDRs []netip.Prefix
	// DenyCIDRs are address ranges endpoints may not resolve to, on top of
	// the guard's own (the --deny-endpoint-cidrs flag). A denied address is
	// refused even when an allowed range holds it.
	DenyCIDRs []netip.Prefix
	// AwaitClusterRanges refuses every address that AllowCIDRs does not
	// allow until SetClusterRanges is first called, so that nothing is
	// delivered into the cluster's own ranges before they are known.
	AwaitClusterRanges bool
	// Now is the clock used for Retry-After dates and for a Request with no
	// Timestamp; time.Now when nil. Durations use the monotonic clock.
	Now func() time.Time
	// MaxTransports caps the pooled transports, one per distinct TLS
	// configuration; DefaultMaxTransports when 0.
	MaxTransports int
	// Resolver resolves endpoint host names; net.DefaultResolver when nil.
	// The guard checks the addresses it returns when connecting.
	Resolver *net.Resolver
}

// Sender makes delivery attempts. It is safe for concurrent use.
type Sender struct {
	now        func() time.Time
	guard      *guard
	dialer     *net.Dialer
	userAgent  string
	transports *transportCache
}

// New returns a Sender configured by o.
func New(o Options) *Sender {
	conc := o.Concurrency
	if conc <= 0 {
		conc = DefaultConcurrency
	}
	maxT := o.MaxTransports
	if maxT <= 0 {
		maxT = DefaultMaxTransports
	}
	s := &Sender{
		now:       o.Now,
		guard:     newGuard(o.AllowCIDRs),
		userAgent: version.UserAgent(),
	}
	s.guard.deny = newPrefixSet(o.DenyCIDRs)
	s.guard.awaitCluster = o.AwaitClusterRanges
	if s.now == nil {
		s.now = time.Now
	}
	s.dialer = &net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
		Resolver:  o.Resolver,
		Control:   s.guard.control,
	}
	// Every Send may hold a connection to a different host, and idle
	// connections to many endpoints are worth keeping: allow a few per
	// worker overall and one per worker to a single host.
	maxIdle := max(4*conc, 100)
	s.transports = newTransportCache(maxT, func(cfg *tls.Config) *http.Transport {
		return newTransport(s.dialer, cfg, maxIdle, conc)
	})
	return s
}

// SetClusterRanges replaces the cluster's own Service and Pod ranges, which
// the guard refuses unless AllowCIDRs allows them. It is safe to call while
// Sends run; connections made after it returns are checked against the new
// ranges (pooled connections already open stay open).
func (s *Sender) SetClusterRanges(service, pod []netip.Prefix) {
	s.guard.setCluster(service, pod)
}

// CloseIdleConnections closes the idle connections of every pooled
// transport, for shutdown.
func (s *Sender) CloseIdleConnections() { s.transports.closeIdle() }

// Send makes one POST of req to sub.Endpoint and reports the outcome. It
// does not retry. The attempt, from connecting to reading the response
// body, is bounded by sub.Delivery.Timeout (the API default when zero) and
// by ctx.
//
// The request carries Content-Type, User-Agent, the Standard Webhooks
// headers webhook-id, webhook-timestamp and, when the subscription has
// signing keys, webhook-signature, plus the subscription's extra headers.
// At most MaxResponseBody bytes of the response are read.
func (s *Sender) Send(ctx context.Context, sub *subscriptions.Subscription, req Request) Result {
	start := time.Now()
	res := s.send(ctx, sub, req)
	res.Duration = time.Since(start)
	return res
}

// errAttemptTimeout is the cause of an attempt's context when its timeout expires.
var errAttemptTimeout = errors.New("attempt timeout")

func (s *Sender) send(parent context.Context, sub *subscriptions.Subscription, req Request) Result {
	timeout := sub.Delivery.Timeout
	if timeout <= 0 {
		timeout = kubehookv1.DefaultTimeout
	}
	ctx, cancel := context.WithTimeoutCause(parent, timeout, errAttemptTimeout)
	defer cancel()

	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.Endpoint, bytes.NewReader(req.Body))
	if err != nil || (hreq.URL.Scheme != "http" && hreq.URL.Scheme != "https") || hreq.URL.Host == "" {
		// The URL is not repeated: it may carry a token in its query.
		return Result{Err: errors.New("the endpoint is not an absolute http or https URL"), NotSent: true}
	}
	transport, err := s.transports.transport(sub.TLS, sub.SkipTLSVerification)
	if err != nil {
		return Result{Err: fmt.Errorf("TLS configuration: %w", err), NotSent: true}
	}

	ts := req.Timestamp
	if ts.IsZero() {
		ts = s.now()
	}
	h := hreq.Header
	for k, v := range sub.Headers {
		h.Set(k, v)
	}
	ct := req.ContentType
	if ct == "" {
		ct = "application/json"
	}
	h.Set("Content-Type", ct)
	h.Set("User-Agent", s.userAgent)
	h.Set(signing.HeaderID, req.ID)
	h.Set(signing.HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	if len(sub.SigningKeys) > 0 {
		h.Set(signing.HeaderSignature, signing.Sign(sub.SigningKeys, req.ID, ts, req.Body))
	} else {
		h.Del(signing.HeaderSignature)
	}

	// One round trip on the transport, not http.Client.Do: redirects are
	// never followed (a 3xx is the attempt's answer), and for those alone
	// the client would copy every request's headers.
	resp, err := transport.RoundTrip(hreq)
	if err != nil {
		var refused *AddressNotAllowedError
		return Result{Err: transportError(parent, ctx, timeout, err), NotSent: errors.As(err, &refused)}
	}
	defer resp.Body.Close() // closes the connection when the body is not fully read

	res := Result{StatusCode: resp.StatusCode}
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		// The endpoint accepted the delivery. Read the body so the
		// connection can be reused; an error reading it changes nothing.
		_, _ = io.CopyN(io.Discard, resp.Body, MaxResponseBody)
		return res
	}

	secrets := secretValues(sub.Headers)
	keep := maxSnippet
	for _, v := range secrets {
		keep = max(keep, maxSnippet+len(v))
	}
	keep = min(keep, MaxResponseBody)
	buf := make([]byte, keep)
	n, _ := io.ReadFull(resp.Body, buf)
	rest, _ := io.CopyN(io.Discard, resp.Body, int64(MaxResponseBody-n))

	if v := resp.Header.Get("Retry-After"); v != "" {
		res.RetryAfter, _ = parseRetryAfter(v, s.now())
	}

	status := "HTTP " + strconv.Itoa(resp.StatusCode)
	if t := http.StatusText(resp.StatusCode); t != "" {
		status += " " + t
	}
	loc := ""
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		loc = resp.Header.Get("Location")
	}
	switch snip := clean(redact(string(buf[:n]), secrets), maxSnippet); {
	case loc != "":
		res.Err = fmt.Errorf("%s: redirect to %s not followed", status, clean(redact(loc, secrets), maxLocation))
	case snip != "":
		if rest > 0 && !strings.HasSuffix(snip, "...") {
			snip += "..."
		}
		res.Err = fmt.Errorf("%s: %s", status, snip)
	default:
		res.Err = errors.New(status)
	}
	return res
}

// transportError turns the error of a request that got no response into
// Result.Err: a refused address as is, a timeout or cancellation named as
// such, anything else without the url.Error wrapper (whose message repeats
// the endpoint URL).
func transportError(parent, ctx context.Context, timeout time.Duration, err error) error {
	var refused *AddressNotAllowedError
	if errors.As(err, &refused) {
		return refused
	}
	if ctx.Err() != nil {
		if parent.Err() != nil {
			return fmt.Errorf("attempt canceled: %w", context.Cause(parent))
		}
		if errors.Is(context.Cause(ctx), errAttemptTimeout) {
			return fmt.Errorf("no response within the %s timeout: %w", timeout, context.DeadlineExceeded)
		}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("request failed: %w", err)
}

// secretValues returns the header values to keep out of error messages.
func secretValues(headers map[string]string) []string {
	var out []string
	for _, v := range headers {
		if len(v) >= minRedactLen {
			out = append(out, v)
		}
	}
	return out
}

// redact replaces every occurrence of a secret in s. An endpoint that echoes
// its request (a debugging sink, an error page) would otherwise put an
// Authorization header into the message.
func redact(s string, secrets []string) string {
	for _, v := range secrets {
		if strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, "[REDACTED]")
		}
	}
	return s
}

// clean makes untrusted text fit for a one-line message: invalid UTF-8 and
// control characters become spaces, runs of spaces collapse, and the result
// is cut to at most limit bytes on a rune boundary, "..." marking the cut.
func clean(s string, limit int) string {
	var b strings.Builder
	b.Grow(min(len(s), limit+3))
	space := false
	for _, r := range strings.ToValidUTF8(s, " ") {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			if b.Len()+1 > limit {
				b.WriteString("...")
				return b.String()
			}
			b.WriteByte(' ')
		}
		space = false
		if b.Len()+utf8.RuneLen(r) > limit {
			b.WriteString("...")
			return b.String()
		}
		b.WriteRune(r)
	}
	return b.String()
}
