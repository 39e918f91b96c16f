package dtrapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/dtrapi"
	"github.com/kubehook/kubehook/internal/sender"
	"github.com/kubehook/kubehook/internal/testenv"
)

// One control plane and one DTR API for the package. The API runs as a
// ServiceAccount bound to the generated manager-role only, so the tests
// also prove that role is enough.
var (
	env    *envtest.Environment
	admin  client.Client // envtest's admin, to arrange and check
	apiURL string
	// apiOptions are the API's options, for tests that start another.
	apiOptions dtrapi.Options
	tokens     = map[string]string{}
	saUIDs     = map[string]string{}
	accounts   = "accounts" // namespace of the callers' ServiceAccounts
)

// Callers.
const (
	editor   = "editor"    // editor in team-a
	norights = "no-rights" // authenticated, nothing else
	boss     = "admin"     // cluster admin
	dtrAdmin = "dtr-admin" // bound to kubehook's admin ClusterRole
)

func TestMain(m *testing.M) {
	flag.Parse()
	if fuzzing() {
		// Fuzz targets need no cluster; their workers would each start one.
		os.Exit(m.Run())
	}
	os.Exit(runSuite(m))
}

func fuzzing() bool {
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}

func runSuite(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	var cfg *rest.Config
	var err error
	env, cfg, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := arrange(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "arranging the cluster:", err)
		return 1
	}

	kubehookCfg := &rest.Config{Host: cfg.Host, BearerToken: tokens["kubehook"], TLSClientConfig: rest.TLSClientConfig{CAData: cfg.CAData}}
	mgr, err := ctrl.NewManager(kubehookCfg, ctrl.Options{
		Scheme:                 scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	uids, err := dtrapi.WatchUIDs(ctx, mgr.GetCache())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	apiOptions = dtrapi.Options{
		Config: kubehookCfg,
		Scheme: scheme(),
		Mapper: mgr.GetRESTMapper(),
		Cache:  mgr.GetClient(),
		UIDs:   uids,
		Sender: sender.New(sender.Options{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}),
		Log:    ctrl.Log.WithName("dtr-api"),
	}
	srv, err := dtrapi.New(apiOptions)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	apiURL = ts.URL

	code := m.Run()
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		return 1
	}
	return code
}

func scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = kubehookv1.AddToScheme(s)
	return s
}

// arrange installs kubehook's ClusterRoles and creates the namespaces and
// the ServiceAccounts of kubehook and of the callers, with their tokens.
func arrange(ctx context.Context, cfg *rest.Config) error {
	var err error
	if admin, err = client.New(cfg, client.Options{Scheme: scheme()}); err != nil {
		return err
	}
	for _, f := range []string{"role.yaml", "webhooksubscription_viewer_role.yaml", "webhooksubscription_editor_role.yaml", "webhooksubscription_admin_role.yaml"} {
		if err := applyClusterRole(ctx, filepath.Join(testenv.RepoRoot(), "config", "rbac", f)); err != nil {
			return err
		}
	}
	namespaces := map[string]map[string]string{
		accounts:          nil,
		"kubehook-system": nil,
		// team-a may also use the registry namespace of the DTR document's example.
		"team-a":         {kubehookv1.RegistryNamespacesAnnotation: "team-a,maria-testorg"},
		"team-b":         nil,
		"registry-admin": {kubehookv1.RegistryNamespacesAnnotation: "*"},
	}
	for name, ann := range namespaces {
		if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}}); err != nil {
			return err
		}
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	for _, sa := range []struct{ ns, name string }{{"kubehook-system", "kubehook"}, {accounts, editor}, {accounts, norights}, {accounts, boss}, {accounts, dtrAdmin}} {
		obj, err := cs.CoreV1().ServiceAccounts(sa.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa.name}}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		tr, err := cs.CoreV1().ServiceAccounts(sa.ns).CreateToken(ctx, sa.name, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))},
		}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		tokens[sa.name], saUIDs[sa.name] = tr.Status.Token, string(obj.UID)
	}
	subject := func(ns, name string) []rbacv1.Subject {
		return []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}}
	}
	bindings := []client.Object{
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "kubehook"}, Subjects: subject("kubehook-system", "kubehook"),
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "manager-role"}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "editor"}, Subjects: subject(accounts, editor),
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "webhooksubscription-editor-role"}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "boss"}, Subjects: subject(accounts, boss),
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "dtr-admin"}, Subjects: subject(accounts, dtrAdmin),
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "webhooksubscription-admin-role"}},
	}
	for _, b := range bindings {
		if err := admin.Create(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

func applyClusterRole(ctx context.Context, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096).Decode(role); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return admin.Create(ctx, role)
}

func ptr[T any](v T) *T { return &v }

// response is an answer of the API.
type response struct {
	status int
	header http.Header
	body   []byte
}

// call sends a request with the caller's token as Bearer ("" sends none).
func call(t *testing.T, method, path, token string, body any) response {
	t.Helper()
	return callAt(t, apiURL, method, path, token, body)
}

// callAt is call against the API at base.
func callAt(t *testing.T, base, method, path, token string, body any) response {
	t.Helper()
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return doAt(t, base, method, path, h, body)
}

// callBasic authenticates as curl -u user:$TOKEN does.
func callBasic(t *testing.T, method, path, token string, body any) response {
	t.Helper()
	h := http.Header{}
	h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("test-user:"+token)))
	return do(t, method, path, h, body)
}

func do(t *testing.T, method, path string, h http.Header, body any) response {
	t.Helper()
	return doAt(t, apiURL, method, path, h, body)
}

func doAt(t *testing.T, base, method, path string, h http.Header, body any) response {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = bytes.NewBufferString(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}
