package delivery

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/app"
)

const (
	// apiTimeout bounds waiting for the controller to act on an object.
	apiTimeout = 30 * time.Second
	poll       = 100 * time.Millisecond
)

var (
	// k8s is an admin client of the control plane TestMain starts.
	k8s client.Client
	// kubeconfigPath is the admin kubeconfig the kubehook children use,
	// as a user points kubehook at a cluster.
	kubeconfigPath string
)

// setUpCluster writes the admin kubeconfig of cfg and makes the client;
// stop removes the kubeconfig.
func setUpCluster(cfg *rest.Config) (stop func(), err error) {
	dir, err := os.MkdirTemp("", "kubehook-delivery-")
	if err != nil {
		return nil, err
	}
	stop = func() { _ = os.RemoveAll(dir) }
	kubeconfigPath = filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(cfg, kubeconfigPath); err != nil {
		stop()
		return nil, fmt.Errorf("writing the kubeconfig: %w", err)
	}
	if k8s, err = client.New(cfg, client.Options{Scheme: app.Scheme}); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// writeKubeconfig writes cfg as a kubeconfig file, with whichever
// credentials it holds (envtest's admin has a client certificate).
func writeKubeconfig(cfg *rest.Config, path string) error {
	cluster := clientcmdapi.NewCluster()
	cluster.Server = cfg.Host
	cluster.CertificateAuthority = cfg.CAFile
	cluster.CertificateAuthorityData = cfg.CAData
	cluster.InsecureSkipTLSVerify = cfg.Insecure
	cluster.TLSServerName = cfg.ServerName

	user := clientcmdapi.NewAuthInfo()
	user.ClientCertificate = cfg.CertFile
	user.ClientCertificateData = cfg.CertData
	user.ClientKey = cfg.KeyFile
	user.ClientKeyData = cfg.KeyData
	user.Token = cfg.BearerToken
	user.TokenFile = cfg.BearerTokenFile
	user.Username = cfg.Username
	user.Password = cfg.Password

	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = cluster
	kc.AuthInfos["admin"] = user
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	kc.CurrentContext = "envtest"
	return clientcmd.WriteToFile(*kc, path)
}

// newNamespace creates a namespace of its own for a test. Its generated
// name is also a valid registry namespace, so subscriptions in it may use
// the registry namespace of the same name.
func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "delivery-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating a namespace: %v", err)
	}
	return ns.Name
}

// tagPushSubscription is a TAG_PUSH subscription of key to endpoint, with
// the defaults of every other field.
func tagPushSubscription(ns, name, key, endpoint string) *kubehookv1.WebhookSubscription {
	return &kubehookv1.WebhookSubscription{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: kubehookv1.WebhookSubscriptionSpec{
			Type:     kubehookv1.TagPush,
			Key:      key,
			Endpoint: endpoint,
		},
	}
}

// createSubscriptions creates subs through the API server.
func createSubscriptions(t *testing.T, subs ...*kubehookv1.WebhookSubscription) {
	t.Helper()
	for _, sub := range subs {
		if err := k8s.Create(context.Background(), sub); err != nil {
			t.Fatalf("creating WebhookSubscription %s/%s: %v", sub.Namespace, sub.Name, err)
		}
	}
}

// updateSubscription applies mutate to the current object and updates it,
// retrying on conflicts with the controller's status writes.
func updateSubscription(t *testing.T, key client.ObjectKey, mutate func(*kubehookv1.WebhookSubscription)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sub := &kubehookv1.WebhookSubscription{}
		if err := k8s.Get(context.Background(), key, sub); err != nil {
			return err
		}
		mutate(sub)
		return k8s.Update(context.Background(), sub)
	})
	if err != nil {
		t.Fatalf("updating WebhookSubscription %s: %v", key, err)
	}
}

// waitSubscriptionsReady waits until every one of subs is Ready for its
// current generation: registered with the delivery engine.
func waitSubscriptionsReady(t *testing.T, subs ...*kubehookv1.WebhookSubscription) {
	t.Helper()
	waitReadyCondition(t, metav1.ConditionTrue, kubehookv1.SucceededReason, subs...)
}

// waitReadyCondition waits until the Ready condition of every one of subs
// has status and reason for the object's current generation. The failure
// names the subscriptions still short of it.
func waitReadyCondition(t *testing.T, status metav1.ConditionStatus, reason string, subs ...*kubehookv1.WebhookSubscription) {
	t.Helper()
	byNamespace := map[string][]string{}
	for _, sub := range subs {
		byNamespace[sub.Namespace] = append(byNamespace[sub.Namespace], sub.Name)
	}
	NewWithT(t).Eventually(func(g Gomega) {
		var pending []string
		for ns, names := range byNamespace {
			var list kubehookv1.WebhookSubscriptionList
			g.Expect(k8s.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
			got := map[string]*kubehookv1.WebhookSubscription{}
			for i := range list.Items {
				got[list.Items[i].Name] = &list.Items[i]
			}
			for _, name := range names {
				if why := readyShortOf(got[name], status, reason); why != "" {
					pending = append(pending, ns+"/"+name+": "+why)
				}
			}
		}
		slices.Sort(pending)
		g.Expect(pending).To(BeEmpty(), "%d subscriptions not Ready=%s (%s):\n%s",
			len(pending), status, reason, strings.Join(pending[:min(len(pending), 10)], "\n"))
	}, apiTimeout, poll).Should(Succeed())
}

// readyShortOf says why sub's Ready condition is not status and reason
// for its generation, or "" when it is.
func readyShortOf(sub *kubehookv1.WebhookSubscription, status metav1.ConditionStatus, reason string) string {
	if sub == nil {
		return "not found"
	}
	if sub.Status.ObservedGeneration != sub.Generation {
		return fmt.Sprintf("observedGeneration %d of generation %d", sub.Status.ObservedGeneration, sub.Generation)
	}
	c := apimeta.FindStatusCondition(sub.Status.Conditions, kubehookv1.ReadyCondition)
	switch {
	case c == nil:
		return "no Ready condition"
	case c.Status != status || c.Reason != reason:
		return fmt.Sprintf("Ready=%s (%s): %s", c.Status, c.Reason, c.Message)
	}
	return ""
}
