package kubehooktest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/kubehook/kubehook/internal/app"
	"github.com/kubehook/kubehook/internal/testenv"
)

// ControlPlane is a test's way into a control plane it started (with
// internal/testenv): an admin client for the test's own requests, and an
// admin kubeconfig file for what runs as users run it (kubehook children,
// kubectl).
type ControlPlane struct {
	Config     *rest.Config
	Client     client.WithWatch
	Kubeconfig string
	dir        string
}

// NewControlPlane writes an admin kubeconfig of env into a new temporary
// directory and makes a client of cfg, env's admin config; Close removes
// the directory.
func NewControlPlane(env *envtest.Environment, cfg *rest.Config) (*ControlPlane, error) {
	dir, err := os.MkdirTemp("", "kubehooktest-")
	if err != nil {
		return nil, err
	}
	cp := &ControlPlane{Config: cfg, Kubeconfig: filepath.Join(dir, "kubeconfig"), dir: dir}
	if err := testenv.WriteAdminKubeconfig(env, "kubehooktest-admin", cp.Kubeconfig); err != nil {
		cp.Close()
		return nil, fmt.Errorf("writing the kubeconfig: %w", err)
	}
	if cp.Client, err = client.NewWithWatch(cfg, client.Options{Scheme: app.Scheme}); err != nil {
		cp.Close()
		return nil, err
	}
	return cp, nil
}

// Close removes the kubeconfig; the control plane goes on.
func (cp *ControlPlane) Close() { _ = os.RemoveAll(cp.dir) }

// NewNamespace creates a namespace named after prefix for a test. Its
// generated name is also a valid registry namespace, so subscriptions in it
// may use the registry namespace of the same name.
func (cp *ControlPlane) NewNamespace(t testing.TB, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := cp.Client.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating a namespace: %v", err)
	}
	return ns.Name
}
