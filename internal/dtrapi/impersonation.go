package dtrapi

import (
	"context"
	"errors"
	"net/http"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/transport"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

type callerKey struct{}

// withCaller returns a context whose API requests impersonate u.
func withCaller(ctx context.Context, u *transport.ImpersonationConfig) context.Context {
	return context.WithValue(ctx, callerKey{}, u)
}

func callerFrom(ctx context.Context) (*transport.ImpersonationConfig, bool) {
	u, ok := ctx.Value(callerKey{}).(*transport.ImpersonationConfig)
	return u, ok && u != nil && u.UserName != ""
}

// errNoCaller: a request of the impersonating client without a caller. It
// is refused rather than sent with kubehook's own identity.
var errNoCaller = errors.New("refusing an API request without a caller to impersonate")

// newImpersonatingClient returns a client whose every request impersonates
// the caller carried by its context, so the cluster's RBAC decides what a
// DTR API caller may do. One client (one connection pool) serves every
// caller; the impersonation headers are set per request.
func newImpersonatingClient(cfg *rest.Config, scheme *runtime.Scheme, mapper meta.RESTMapper) (client.Client, error) {
	c := rest.CopyConfig(cfg)
	c.Impersonate = rest.ImpersonationConfig{}
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &impersonator{next: rt} })
	return client.New(c, client.Options{Scheme: scheme, Mapper: mapper})
}

type impersonator struct{ next http.RoundTripper }

func (i *impersonator) RoundTrip(req *http.Request) (*http.Response, error) {
	u, ok := callerFrom(req.Context())
	if !ok {
		return nil, errNoCaller
	}
	return transport.NewImpersonatingRoundTripper(*u, i.next).RoundTrip(req)
}
