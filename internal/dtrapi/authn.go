package dtrapi

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/transport"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// errNoCredentials: the request carries no token.
var errNoCredentials = errors.New("no credentials: send a Kubernetes token as \"Authorization: Bearer <token>\", or as the password of Basic authentication (curl -u user:$TOKEN)")

// tokenFrom extracts the token of an Authorization header: Bearer, or Basic
// with the token as password (the user name is ignored: the token says who
// the caller is).
func tokenFrom(header string) (string, error) {
	if header == "" {
		return "", errNoCredentials
	}
	scheme, rest, _ := strings.Cut(header, " ")
	rest = strings.TrimSpace(rest)
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		if rest == "" || strings.ContainsAny(rest, " \t") {
			return "", errors.New("malformed Bearer credentials: expected \"Bearer <token>\"")
		}
		return rest, nil
	case strings.EqualFold(scheme, "Basic"):
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return "", errors.New("malformed Basic credentials: not base64")
		}
		_, password, ok := strings.Cut(string(raw), ":")
		if !ok || password == "" {
			return "", errors.New("Basic credentials carry no password: the password is the Kubernetes token")
		}
		return password, nil
	}
	return "", fmt.Errorf("unsupported authorization scheme %q: use Bearer or Basic", scheme)
}

// reviewer verifies tokens with the TokenReview API, caching each verdict
// briefly so a script's burst of calls costs one review.
type reviewer struct {
	client    client.Client
	audiences []string
	ttl       time.Duration
	// cache maps the SHA-256 of a token to its user.
	cache *cache.LRUExpireCache
}

// maxCachedReviews bounds each verdict cache; the least recently used
// entry makes room.
const maxCachedReviews = 4096

func newReviewer(c client.Client, audiences []string, ttl time.Duration) *reviewer {
	return &reviewer{client: c, audiences: audiences, ttl: ttl, cache: cache.NewLRUExpireCache(maxCachedReviews)}
}

// errUnauthenticated wraps the reason a token was refused.
type errUnauthenticated struct{ reason string }

func (e *errUnauthenticated) Error() string { return e.reason }

// review returns who the token belongs to, as the impersonation of that
// user. An invalid token is an
// *errUnauthenticated; other errors mean the review could not be made.
func (r *reviewer) review(ctx context.Context, token string) (*transport.ImpersonationConfig, error) {
	// Keyed by a hash: the cache holds no token.
	key := sha256.Sum256([]byte(token))
	if u, ok := r.cache.Get(key); ok {
		return u.(*transport.ImpersonationConfig), nil
	}

	tr := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: r.audiences}}
	if err := r.client.Create(ctx, tr); err != nil {
		return nil, fmt.Errorf("reviewing the token: %w", err)
	}
	if !tr.Status.Authenticated {
		reason := "the token is not valid"
		if tr.Status.Error != "" {
			reason += ": " + tr.Status.Error
		}
		return nil, &errUnauthenticated{reason: reason}
	}
	u := &transport.ImpersonationConfig{
		UserName: tr.Status.User.Username,
		UID:      tr.Status.User.UID,
		Groups:   tr.Status.User.Groups,
		Extra:    map[string][]string{},
	}
	for k, v := range tr.Status.User.Extra {
		u.Extra[k] = v
	}
	r.cache.Add(key, u, r.ttl)
	return u, nil
}
