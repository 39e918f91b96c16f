// Package dtrapi serves the DTR webhook API (/api/v0/webhooks...) backed by
// WebhookSubscription objects, so scripts written for Docker Trusted
// Registry keep working.
//
// Callers authenticate with a Kubernetes token (Bearer, or Basic with the
// token as password). Every API request made for a caller carries that
// token and no credential of kubehook's, as the Kubernetes Dashboard does:
// the API server authenticates the caller (a SelfSubjectReview says who
// they are) and its RBAC decides every read and write, so kubehook needs no
// right to act for anyone. kubehook's own identity only reads namespace
// metadata from its cache, and a map from each subscription's UID to its
// name fed by its informer (uids.go), to know where to look.
//
// The package owns the API's HTTP surface: its routes (routes.go), the
// middleware every route passes (middleware.go: request metrics, the
// per-client rate limit, the token review), the caller's identity and
// client (authn.go, caller.go), access reviews (access.go), reading and
// checking request bodies (body.go, decode.go), the choice of a new
// subscription's namespace (placement.go), listing (list.go), creating,
// reading and deleting one subscription (subscription.go), test deliveries
// (testdelivery.go), and DTR's error shape (errors.go, types.go).
//
// It must not act for a caller with kubehook's own credentials, nor
// impersonate anyone; it must not write a subscription's status (the
// reconciler is its only writer) nor queue deliveries (a test delivery
// goes straight to the Sender, and its outcome only to the caller); and it
// keeps no state beyond short-lived caches of token reviews, access
// verdicts and rate-limit buckets, so every replica serves the API alike.
package dtrapi
