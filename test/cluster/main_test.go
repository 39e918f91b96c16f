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

	"github.com/kubehook/kubehook/internal/kubehooktest"
)

// nats is the NATS JetStream cluster TestMain starts; the test kills and
// restarts its servers.
var nats *natsCluster

func TestMain(m *testing.M) {
	os.Exit(kubehooktest.Main(m, func(c *kubehooktest.ControlPlane) (func(), error) {
		cp, k8s = c, c.Client
		var err error
		if nats, err = startNATSCluster(3); err != nil {
			return nil, err
		}
		return nats.stop, nil
	}))
}
