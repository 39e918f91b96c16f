// Package kubehooktest holds helpers for testing kubehook as users run it,
// as net/http/httptest does for HTTP servers.
//
// It owns running kubehook in a child process of the test binary (Start in
// the test, RunChild in the child) and what the tests around such a process
// need: free loopback addresses, waiting for its probes, its output, posting
// events to its sources server, reading its metrics, a receiver that records
// what it delivers, and an admin client and kubeconfig of the control plane
// it runs against (started with internal/testenv).
//
// It holds nothing of kubehook's own logic: the child runs app.Run as
// main.go does, and everything else talks to kubehook from outside (HTTP,
// the API server, signals), as a user would. Only tests and benchmarks
// import it; non-test code must not.
package kubehooktest
