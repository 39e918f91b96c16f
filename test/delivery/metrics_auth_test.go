package delivery

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"github.com/kubehook/kubehook/internal/kubehooktest"
	"github.com/kubehook/kubehook/internal/testenv"
)

// With --metrics-secure (the default) kubehook serves /metrics over HTTPS,
// and only to a caller whose Kubernetes token may GET the /metrics URL:
// no token is 401, a token of a ServiceAccount without the metrics reader
// ClusterRole is 403, and one bound to config/rbac/metrics_reader_role.yaml
// gets kubehook's metrics. kubehook runs as its own ServiceAccount with the
// manager ClusterRole of config/rbac/role.yaml, as `make deploy` runs it, so
// the role must let it review tokens and access.
func TestSecureMetricsServeOnlyTokensAllowedToGetMetrics(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	admin := clientset(t, cp.Kubeconfig)

	manager := clusterRoleFrom(t, "role.yaml", ns+"-manager")
	reader := clusterRoleFrom(t, "metrics_reader_role.yaml", ns+"-metrics-reader")
	for _, role := range []*rbacv1.ClusterRole{manager, reader} {
		_, err := admin.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		t.Cleanup(func() { _ = admin.RbacV1().ClusterRoles().Delete(ctx, role.Name, metav1.DeleteOptions{}) })
	}
	kubehookToken := serviceAccountToken(t, admin, ns, "kubehook", manager.Name)
	prometheusToken := serviceAccountToken(t, admin, ns, "prometheus", reader.Name)
	otherToken := serviceAccountToken(t, admin, ns, "other", "")

	p := start(t,
		kubehooktest.WithKubeconfig(tokenKubeconfig(t, kubehookToken)),
		kubehooktest.WithFlags("--metrics-secure=true"))

	// The certificate is self-signed (no --metrics-cert-path): the scraper
	// skips verification, as Prometheus does with insecure_skip_verify.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // self-signed in the test
	}}
	scrape := func(token string) (int, string, error) {
		req, err := http.NewRequest(http.MethodGet, "https://"+p.MetricsAddr+"/metrics", nil)
		if err != nil {
			return 0, "", err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer func() { _ = resp.Body.Close() }()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}

	// The metrics server may start a moment after /readyz answers.
	g.Eventually(func(g Gomega) {
		g.Expect(p.Running()).To(Succeed())
		code, _, err := scrape("")
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(code).To(Equal(http.StatusUnauthorized), "without a token")
	}, apiTimeout, poll).Should(Succeed())

	// A token the API server rejects is refused too (controller-runtime's
	// filter answers 500, as for a failed review).
	code, body, err := scrape("not-a-token")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(code).NotTo(Equal(http.StatusOK), "with a token the API server does not know: %s", body)
	g.Expect(body).NotTo(ContainSubstring("kubehook_"))

	code, body, err = scrape(otherToken)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(code).To(Equal(http.StatusForbidden), "with a token that may not get /metrics: %s", body)

	code, body, err = scrape(prometheusToken)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(code).To(Equal(http.StatusOK), "with a token bound to the metrics reader role: %s", body)
	g.Expect(body).To(ContainSubstring("kubehook_queue_pending "))
	g.Expect(body).To(ContainSubstring("kubehook_parked_deliveries_total "))

	// Plain HTTP is not served.
	resp, err := http.Get("http://" + p.MetricsAddr + "/metrics")
	g.Expect(err).NotTo(HaveOccurred())
	_ = resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusBadRequest), "an HTTP request to the HTTPS server")
}

// clientset is a Kubernetes clientset for the kubeconfig at path.
func clientset(t *testing.T, path string) *kubernetes.Clientset {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// clusterRoleFrom reads the ClusterRole of config/rbac/file, named name so
// that tests do not share it.
func clusterRoleFrom(t *testing.T, file, name string) *rbacv1.ClusterRole {
	t.Helper()
	f, err := os.Open(filepath.Join(testenv.RepoRoot(), "config", "rbac", file))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	role := &rbacv1.ClusterRole{}
	if err := utilyaml.NewYAMLOrJSONDecoder(f, 4096).Decode(role); err != nil {
		t.Fatalf("config/rbac/%s: %v", file, err)
	}
	if role.Kind != "ClusterRole" || len(role.Rules) == 0 {
		t.Fatalf("config/rbac/%s holds no ClusterRole rules", file)
	}
	role.ObjectMeta = metav1.ObjectMeta{Name: name}
	return role
}

// serviceAccountToken creates ServiceAccount name in ns, binds it to the
// ClusterRole role unless role is empty, and returns a token of it from
// the TokenRequest API.
func serviceAccountToken(t *testing.T, cs *kubernetes.Clientset, ns, name, role string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating ServiceAccount %s/%s: %v", ns, name, err)
	}
	if role != "" {
		binding := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}},
		}
		if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			t.Fatalf("binding %s/%s to %s: %v", ns, name, role, err)
		}
		t.Cleanup(func() { _ = cs.RbacV1().ClusterRoleBindings().Delete(ctx, binding.Name, metav1.DeleteOptions{}) })
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("requesting a token of %s/%s: %v", ns, name, err)
	}
	return tr.Status.Token
}

// tokenKubeconfig writes a kubeconfig of the test's control plane that
// authenticates with token, and returns its path.
func tokenKubeconfig(t *testing.T, token string) string {
	t.Helper()
	kc, err := clientcmd.LoadFromFile(cp.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	user := clientcmdapi.NewAuthInfo()
	user.Token = token
	kc.AuthInfos = map[string]*clientcmdapi.AuthInfo{"token": user}
	for _, c := range kc.Contexts {
		c.AuthInfo = "token"
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}
