// Package sources turns what registries and producers send into kubehook
// events: the CNCF Distribution registry's notifications, Harbor webhooks,
// and native events in the DTR wrapper. Parsers are pure functions of the
// request body; the HTTP server authenticates, bounds and answers requests,
// and publishes the events to the delivery engine.
//
// The package owns where an event enters kubehook: the sources server
// (server.go) and its tokens (auth.go, scope.go), one parser per source
// (distribution.go; harbor.go with harbor_payload.go and harbor_scan.go;
// native.go), what the parsers share (sources.go), the pairing of a tag's
// HEAD with its digest's GET (resolutions.go), and the RemoteInspector that
// reads os and architecture from the registry (inspector.go: options and
// API; inspector_cache.go: results, failures and calls in flight;
// inspector_fetch.go: the registry requests; registry_credentials.go: its
// credentials from a Secret).
//
// It must not match events to subscriptions or deliver them: it hands every
// event of a request to the Publisher in one call and answers 202 only
// once that call returned, so a sender retries anything not durably
// accepted. It writes no Kubernetes object; it only reads the Secrets of
// source tokens and registry credentials.
package sources
