// Package cluster proves kubehook's multi-replica guarantees through the
// shipped wiring: three kubehook processes (app.Run in children of the
// test binary) with leader election against a real kube-apiserver and etcd
// (envtest), on a three-server NATS JetStream cluster, with
// WebhookSubscriptions created through the API server, events posted to
// every replica's sources server, and a replica and a NATS server killed
// under load.
package cluster

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/kubehook/kubehook/internal/testenv"
)

// nats is the NATS JetStream cluster TestMain starts; the test kills and
// restarts its servers.
var nats *natsCluster

func TestMain(m *testing.M) {
	// A child runs kubehook against the parent's control plane and NATS.
	if os.Getenv(childEnv) == "1" {
		os.Exit(m.Run())
	}
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	level := zapcore.ErrorLevel
	if os.Getenv("KUBEHOOK_TEST_LOG") != "" {
		level = zapcore.DebugLevel
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true), zap.Level(level)))
	env, cfg, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
		}
	}()
	stop, err := setUpCluster(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stop()
	if nats, err = startNATSCluster(3); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer nats.stop()
	return m.Run()
}
