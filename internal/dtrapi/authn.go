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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/cache"
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

// reviewer asks the API server who a token belongs to, with a
// SelfSubjectReview sent with that token, caching each answer briefly so a
// script's burst of calls costs one review.
type reviewer struct {
	as  client.Client // the callers' client
	ttl time.Duration
	// cache maps the SHA-256 of a token to its user.
	cache *cache.LRUExpireCache
}

// maxCachedReviews bounds each verdict cache; the least recently used
// entry makes room.
const maxCachedReviews = 4096

func newReviewer(as client.Client, ttl time.Duration) *reviewer {
	return &reviewer{as: as, ttl: ttl, cache: cache.NewLRUExpireCache(maxCachedReviews)}
}

// errUnauthenticated wraps the reason a token was refused.
type errUnauthenticated struct{ reason string }

func (e *errUnauthenticated) Error() string { return e.reason }

// review returns the caller the token belongs to. A token the API server
// does not accept is an *errUnauthenticated; other errors mean the review
// could not be made.
func (r *reviewer) review(ctx context.Context, token string) (*caller, error) {
	// Keyed by a hash: the cache holds no token.
	key := sha256.Sum256([]byte(token))
	if u, ok := r.cache.Get(key); ok {
		return &caller{token: token, user: u.(authenticationv1.UserInfo)}, nil
	}

	c := &caller{token: token}
	ssr := &authenticationv1.SelfSubjectReview{}
	if err := r.as.Create(withCaller(ctx, c), ssr); err != nil {
		if apierrors.IsUnauthorized(err) {
			return nil, &errUnauthenticated{reason: "the token is not valid: the Kubernetes API server does not accept it"}
		}
		return nil, fmt.Errorf("reviewing the token: %w", err)
	}
	if ssr.Status.UserInfo.Username == "" {
		return nil, &errUnauthenticated{reason: "the token is not valid: the Kubernetes API server names no user for it"}
	}
	c.user = ssr.Status.UserInfo
	r.cache.Add(key, c.user, r.ttl)
	return c, nil
}
