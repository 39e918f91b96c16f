package dtrapi

import (
	"context"
	"errors"
	"net/http"

	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// caller is who sent a request: the token they sent, which every API
// request made for them carries, and who the API server says they are.
type caller struct {
	token string
	user  authenticationv1.UserInfo
}

// authorID is what the author policy records for the caller: the user's
// UID, or the name when the user has none (certificate and static-token
// users).
func (c *caller) authorID() string {
	if c.user.UID != "" {
		return c.user.UID
	}
	return c.user.Username
}

type callerKey struct{}

// withCaller returns a context whose API requests carry c's token.
func withCaller(ctx context.Context, c *caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

func callerFrom(ctx context.Context) (*caller, bool) {
	c, ok := ctx.Value(callerKey{}).(*caller)
	return c, ok && c != nil && c.token != ""
}

// errNoCaller: a request of the callers' client without a caller's token.
// It is refused rather than sent anonymously.
var errNoCaller = errors.New("refusing an API request without a caller's token")

// newCallerClient returns a client whose every request carries the token of
// the caller in its context and no credential of kubehook's: the API server
// authenticates and authorizes the caller itself, as it would their
// kubectl. One client (one connection pool) serves every caller; the token
// is set per request.
func newCallerClient(cfg *rest.Config, scheme *runtime.Scheme, mapper meta.RESTMapper) (client.Client, error) {
	c := rest.AnonymousClientConfig(cfg)
	// The client is shared by every caller: a client-side rate limit would
	// make one caller wait for another. The API server's priority and
	// fairness and the API's own per-client limit bound them instead.
	c.QPS, c.Burst, c.RateLimiter = -1, 0, nil
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &bearer{next: rt} })
	return client.New(c, client.Options{Scheme: scheme, Mapper: mapper})
}

// bearer sets the caller's token on each request.
type bearer struct{ next http.RoundTripper }

func (b *bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	c, ok := callerFrom(req.Context())
	if !ok {
		return nil, errNoCaller
	}
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+c.token)
	return b.next.RoundTrip(req)
}
