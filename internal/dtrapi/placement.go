package dtrapi

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/subscriptions"
	"github.com/kubehook/kubehook/internal/tenancy"
)

// candidate is a namespace whose tenancy rules allow a key. specific is
// false when it allows the key only through "*".
type candidate struct {
	name     string
	specific bool
}

// candidates returns the namespaces that may hold a subscription to key,
// by the tenancy rules: the namespace named after the key's registry
// namespace (when it has no kubehook.io/registry-namespaces annotation),
// namespaces whose annotation lists it, and namespaces annotated "*" (the
// only ones for the empty key).
func candidates(namespaces []nsMeta, key string) []candidate {
	regNS, _ := subscriptions.SplitRepository(key)
	var out []candidate
	for _, ns := range namespaces {
		names, all := tenancy.Allowed(ns.name, ns.annotations)
		switch {
		case key != "" && slices.Contains(names, regNS):
			out = append(out, candidate{name: ns.name, specific: true})
		case all:
			out = append(out, candidate{name: ns.name})
		}
	}
	return out
}

type nsMeta struct {
	name        string
	annotations map[string]string
}

// place chooses the Kubernetes namespace of a new subscription to key: a
// candidate namespace where the caller may create subscriptions, the
// specific ones before those allowing every key. The candidates are what
// the tenancy rules (namespace annotations, kubehook's configuration)
// allow for the key; which of them the caller may use is decided by the
// caller's own access reviews, sent with their token, and only those are
// ever named to them. want, from the
// ?namespace= query parameter, settles a choice between several.
func (s *Server) place(ctx context.Context, key, want string) (string, *apiError) {
	metas, err := s.access.namespaces(ctx)
	if err != nil {
		return "", unavailable(err)
	}
	all := make([]nsMeta, len(metas))
	for i, m := range metas {
		all[i] = nsMeta{name: m.Name, annotations: m.Annotations}
	}
	cands := candidates(all, key)
	if want != "" {
		return s.placeIn(ctx, want, key, cands)
	}
	if len(cands) == 0 && s.opts.AnyNamespace {
		return "", invalid("namespace", "no namespace is named after, or annotated for, key %q: choose one with ?namespace=<name>", key)
	}
	// No candidate at all is answered as no permitted one: whether some
	// namespace may hold the key is not the business of every caller.

	var permitted []candidate
	var reasons []string
	for _, c := range cands {
		ok, reason, err := s.access.allowed(ctx, "create", c.name)
		if err != nil {
			return "", unavailable(err)
		}
		if ok {
			permitted = append(permitted, c)
		} else if reason != "" {
			reasons = append(reasons, reason)
		}
	}
	if len(permitted) == 0 {
		u, _ := callerFrom(ctx)
		// The namespaces are not named: the caller may not be allowed to
		// know them.
		msg := fmt.Sprintf("user %q may not create webhooksubscriptions in any namespace that may hold key %q (%s)",
			u.user.Username, key, tenancyHint(key))
		if len(reasons) > 0 {
			msg += ": " + strings.Join(reasons, "; ")
		}
		return "", &apiError{status: http.StatusForbidden, code: CodeNotAuthorized, message: msg}
	}
	best := permitted[:0:0]
	for _, c := range permitted {
		if c.specific {
			best = append(best, c)
		}
	}
	if len(best) == 0 {
		best = permitted
	}
	if len(best) > 1 {
		return "", &apiError{status: http.StatusBadRequest, code: CodeAmbiguousNamespace,
			message: fmt.Sprintf("key %q may live in namespaces %s; choose one with ?namespace=<name>", key, quoteAll(best)),
			detail:  map[string]any{"namespaces": names(best)}}
	}
	return best[0].name, nil
}

// placeIn checks the namespace the caller chose: RBAC first, so that only
// callers who may create subscriptions there learn its tenancy rules (and,
// with tenancy off, whether it exists: the API server's answer).
func (s *Server) placeIn(ctx context.Context, want, key string, cands []candidate) (string, *apiError) {
	ok, reason, err := s.access.allowed(ctx, "create", want)
	if err != nil {
		return "", unavailable(err)
	}
	if !ok {
		u, _ := callerFrom(ctx)
		msg := fmt.Sprintf("user %q may not create webhooksubscriptions in namespace %q", u.user.Username, want)
		if reason != "" {
			msg += ": " + reason
		}
		return "", &apiError{status: http.StatusForbidden, code: CodeNotAuthorized, message: msg}
	}
	if s.opts.AnyNamespace || slices.ContainsFunc(cands, func(c candidate) bool { return c.name == want }) {
		return want, nil
	}
	return "", &apiError{status: http.StatusForbidden, code: CodeNotAuthorized,
		message: fmt.Sprintf("namespace %q may not hold subscriptions to key %q (%s)", want, key, tenancyHint(key))}
}

func tenancyHint(key string) string {
	if key == "" {
		return fmt.Sprintf("the empty key needs a namespace annotated %s: %q", kubehookv1.RegistryNamespacesAnnotation, tenancy.Wildcard)
	}
	regNS, _ := subscriptions.SplitRepository(key)
	return fmt.Sprintf("registry namespace %q is used from the namespace of the same name, or from namespaces whose %s annotation lists it",
		regNS, kubehookv1.RegistryNamespacesAnnotation)
}

func names(cs []candidate) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.name
	}
	return out
}

func quoteAll(cs []candidate) string {
	q := make([]string, len(cs))
	for i, c := range cs {
		q[i] = fmt.Sprintf("%q", c.name)
	}
	return strings.Join(q, ", ")
}
