// Package cluster proves kubehook's multi-replica guarantees through the
// shipped wiring: three kubehook processes (app.Run in children of the
// test binary) with leader election against a real kube-apiserver and etcd
// (envtest), on a three-server NATS JetStream cluster, with
// WebhookSubscriptions created through the API server, events posted to
// every replica's sources server, and a replica and a NATS server killed
// under load.
package cluster

import (
	"os"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/kubehook/kubehook/internal/kubehooktest"
	"github.com/kubehook/kubehook/internal/testenv"
)

// nats is the NATS JetStream cluster TestMain starts; the test kills and
// restarts its servers.
var nats *natsCluster

func TestMain(m *testing.M) {
	// A child runs kubehook against the parent's control plane and NATS.
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
		if nats, err = startNATSCluster(3); err != nil {
			cp.Close()
			return nil, err
		}
		return func() { nats.stop(); cp.Close() }, nil
	})
}
