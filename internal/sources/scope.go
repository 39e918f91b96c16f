package sources

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/kubehook/kubehook/internal/intake"
)

// ReasonForbidden is the "reason" of RequestsRejectedTotal for a request
// answered 403: a scoped token posted an event outside its namespaces.
const ReasonForbidden = "forbidden"

// Grant is what an accepted token may publish. Tokens are registry-wide
// unless their line in the events source's tokens says
// "namespaces=<ns>,<ns>" (see parseTokens).
type Grant struct {
	// Scoped is true for a token limited to Namespaces.
	Scoped bool
	// Namespaces are the registry namespaces a scoped token may publish
	// for, sorted and unique. It may be empty for a token listed twice with
	// no namespace in common: such a token publishes nothing.
	Namespaces []string
}

// allows reports whether g may publish events of registry namespace ns.
func (g Grant) allows(ns string) bool {
	if !g.Scoped {
		return true
	}
	_, found := slices.BinarySearch(g.Namespaces, ns)
	return found
}

// intersect is what both g and o allow.
func (g Grant) intersect(o Grant) Grant {
	switch {
	case !o.Scoped:
		return g
	case !g.Scoped:
		return o
	}
	out := Grant{Scoped: true, Namespaces: []string{}}
	for _, ns := range g.Namespaces {
		if o.allows(ns) {
			out.Namespaces = append(out.Namespaces, ns)
		}
	}
	return out
}

func (g Grant) describe() string {
	if len(g.Namespaces) == 0 {
		return "none (the token is listed more than once, with no namespace in common)"
	}
	return strings.Join(g.Namespaces, ", ")
}

// forbidden returns the 403 answer for the first of events that g does not
// allow, or nil when it allows them all. The server calls it with every
// event of a request before publishing any, so a request with one event
// outside the token's namespaces queues nothing.
//
// An event's registry namespace is the first component of its repository:
// for native events the validated contents.namespace. An event without one
// (SCANNER_UPDATE_COMPLETED reaches every global subscription) is
// registry-wide, so a scoped token may not publish it. Only events tokens
// can be scoped, so fields are named as the native parser names them:
// "contents.namespace", "[2].contents.namespace" in an array (body is the
// request's).
func (g Grant) forbidden(events []intake.Event, body []byte) *ErrorDetail {
	if !g.Scoped {
		return nil
	}
	prefix := func(int) string { return "" }
	if bytes.HasPrefix(bytes.TrimSpace(body), []byte("[")) {
		prefix = func(i int) string { return fmt.Sprintf("[%d].", i) }
	}
	for i, ev := range events {
		ns, _, _ := strings.Cut(ev.Repository, "/")
		if ns == "" {
			return &ErrorDetail{Code: CodeForbidden, Field: prefix(i) + "type", Message: fmt.Sprintf(
				"%s is a registry-wide event (it has no registry namespace), and this token may publish only for registry namespaces %s; nothing of the request was queued",
				ev.Payload.Type, g.describe())}
		}
		if !g.allows(ns) {
			return &ErrorDetail{Code: CodeForbidden, Field: prefix(i) + "contents.namespace", Message: fmt.Sprintf(
				"this token may not publish events for registry namespace %q, only for %s; nothing of the request was queued",
				ns, g.describe())}
		}
	}
	return nil
}
