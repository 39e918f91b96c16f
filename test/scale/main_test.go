// Package scale measures what kubehook costs as it grows and while it
// rests, run as users run it: its resident memory per subscription
// (app.Run in a child process of the test binary, 10,000 subscriptions
// applied with kubectl), and the requests it makes to the Kubernetes API
// and to JetStream with 1,000 subscriptions and nothing happening (app.Run
// in this process, so its requests can be counted, against a NATS server
// of the test). Each benchmark starts a control plane of its own (envtest),
// so neither sees the other's objects. Benchmarks only: `make bench`
// prints their figures as "name: value" lines.
package scale

import (
	"os"
	"testing"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/kubehook/kubehook/internal/kubehooktest"
)

func TestMain(m *testing.M) {
	// A child runs kubehook (TestKubehookChild) and sets its own logger.
	if !kubehooktest.IsChild() {
		level := zapcore.ErrorLevel
		if os.Getenv("KUBEHOOK_TEST_LOG") != "" {
			level = zapcore.DebugLevel
		}
		ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true), zap.Level(level)))
	}
	os.Exit(m.Run())
}
