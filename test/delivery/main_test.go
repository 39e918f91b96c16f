// Package delivery proves kubehook's delivery guarantees through the
// shipped wiring: app.Run in a child process of the test binary, against a
// real kube-apiserver and etcd (envtest), with WebhookSubscriptions created
// through the API server, events posted to the sources server over HTTP,
// and real signals (SIGKILL, SIGTERM) and restarts on the same data
// directory.
package delivery

import (
	"os"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/kubehook/kubehook/internal/kubehooktest"
	"github.com/kubehook/kubehook/internal/testenv"
)

func TestMain(m *testing.M) {
	// A child runs kubehook against the parent's control plane.
	if kubehooktest.IsChild() {
		os.Exit(m.Run())
	}
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	return testenv.Main(m, func(cfg *rest.Config) (func(), error) {
		var err error
		if cp, err = kubehooktest.NewControlPlane(cfg); err != nil {
			return nil, err
		}
		k8s = cp.Client
		return cp.Close, nil
	})
}
