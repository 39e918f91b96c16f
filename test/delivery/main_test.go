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

	"github.com/kubehook/kubehook/internal/kubehooktest"
)

func TestMain(m *testing.M) {
	os.Exit(kubehooktest.Main(m, func(c *kubehooktest.ControlPlane) (func(), error) {
		cp, k8s = c, c.Client
		return nil, nil
	}))
}
