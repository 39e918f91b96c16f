// Package delivery proves kubehook's delivery guarantees through the
// shipped wiring: app.Run in a child process of the test binary, against a
// real kube-apiserver and etcd (envtest), with WebhookSubscriptions created
// through the API server, events posted to the sources server over HTTP,
// and real signals (SIGKILL, SIGTERM) and restarts on the same data
// directory.
package delivery

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/kubehook/kubehook/internal/testenv"
)

func TestMain(m *testing.M) {
	// A child runs kubehook against the parent's control plane.
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
	return m.Run()
}
