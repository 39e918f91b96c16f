// Package testenv starts a real kube-apiserver and etcd (controller-runtime's
// envtest) with the kubehook CRDs installed, for tests and for `make run`.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// RepoRoot returns the root of the kubehook source tree.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// AssetsDir returns where kube-apiserver and etcd are: $KUBEBUILDER_ASSETS
// when set, else bin/k8s, where `make tools` builds them.
func AssetsDir() string {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir
	}
	return filepath.Join(RepoRoot(), "bin", "k8s")
}

// New returns an environment with the kubehook CRDs; Start it, and Stop it when done.
func New() *envtest.Environment {
	return &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: AssetsDir(),
	}
}

// Start starts a new environment and returns it with its admin config.
func Start() (*envtest.Environment, *rest.Config, error) {
	dir := AssetsDir()
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			return nil, nil, fmt.Errorf("%s not found in %s: run `make tools` to build it, or set KUBEBUILDER_ASSETS", bin, dir)
		}
	}
	env := New()
	cfg, err := env.Start()
	if err != nil {
		// Start leaves etcd and kube-apiserver running when a later step fails.
		_ = env.Stop()
		return nil, nil, fmt.Errorf("starting the control plane: %w", err)
	}
	return env, cfg, nil
}

// Main runs a test package (m is its *testing.M) against a control plane
// it starts before and stops after, and returns the exit code for os.Exit.
// setup, when not nil, runs first with the environment and its admin
// config; its teardown runs after the tests. Logs are errors only, everything with KUBEHOOK_TEST_LOG
// set.
func Main(m interface{ Run() int }, setup func(env *envtest.Environment, cfg *rest.Config) (teardown func(), err error)) int {
	level := zapcore.ErrorLevel
	if os.Getenv("KUBEHOOK_TEST_LOG") != "" {
		level = zapcore.DebugLevel
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true), zap.Level(level)))
	env, cfg, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
		}
	}()
	if setup != nil {
		teardown, err := setup(env, cfg)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if teardown != nil {
			defer teardown()
		}
	}
	return m.Run()
}

// WriteAdminKubeconfig adds a user named name in group system:masters to
// env and writes its kubeconfig (mode 0600) to path: for what runs as
// users run it against env (kubehook children, kubectl, helm, `make run`).
func WriteAdminKubeconfig(env *envtest.Environment, name, path string) error {
	user, err := env.AddUser(envtest.User{Name: name, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("adding the admin user: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("rendering the kubeconfig: %w", err)
	}
	return os.WriteFile(path, data, 0o600)
}
