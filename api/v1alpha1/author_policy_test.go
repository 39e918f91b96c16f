package v1alpha1_test

import (
	"context"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

// authorPolicyFile is the shipped policy under test.
var authorPolicyFile = filepath.Join("..", "..", "config", "policies", "author.yaml")

const (
	// policyTimeout bounds how long the API server may take to start or stop
	// enforcing the policy (it loads policies and bindings from informers) or
	// to authorize a new RoleBinding. Typically well under a second.
	policyTimeout = 30 * time.Second
	policyPoll    = 50 * time.Millisecond
)

// TestAuthorPolicy installs config/policies/author.yaml on the real API
// server and proves that the author annotations of a WebhookSubscription come
// from the authenticated creator, cannot be forged at creation, and cannot be
// changed or removed later. It removes the policy when done; while it runs,
// other tests' dry-run creates would only gain the two annotations.
func TestAuthorPolicy(t *testing.T) {
	ctx := t.Context()
	g := NewWithT(t)
	admin := adminConfig(t)
	cs, err := kubernetes.NewForConfig(admin)
	g.Expect(err).NotTo(HaveOccurred())

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "author-policy-"}}
	g.Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	t.Cleanup(func() {
		// envtest runs no namespace controller: the namespace stays
		// Terminating with its objects, which nothing else looks at.
		_ = k8sClient.Delete(context.Background(), ns)
	})

	// Stored before the policy exists, so without author annotations, as a
	// subscription created before the policy was installed would be: one
	// without any annotations, one with unrelated annotations only.
	legacyBare := subscription(ns.Name, "legacy-bare", nil)
	g.Expect(k8sClient.Create(ctx, legacyBare)).To(Succeed())
	legacyOther := subscription(ns.Name, "legacy-other", map[string]string{"team": "payments"})
	g.Expect(k8sClient.Create(ctx, legacyOther)).To(Succeed())

	installAuthorPolicy(t, ns.Name)

	// The admin (envtest's client-certificate user) as the server sees it.
	adminReview := &authenticationv1.SelfSubjectReview{}
	g.Expect(k8sClient.Create(ctx, adminReview)).To(Succeed())
	adminUser := adminReview.Status.UserInfo

	// A ServiceAccount allowed to create and change subscriptions in ns, and
	// a client that authenticates as it with a bound token and nothing else.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "creator", Namespace: ns.Name}}
	g.Expect(k8sClient.Create(ctx, sa)).To(Succeed())
	saUser := "system:serviceaccount:" + ns.Name + ":" + sa.Name
	grantSubscriptionWriter(t, cs, ns.Name, sa.Name)
	tok, err := cs.CoreV1().ServiceAccounts(ns.Name).CreateToken(ctx, sa.Name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}},
		metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	saCfg := rest.AnonymousClientConfig(admin) // host and serving CA, no credentials
	saCfg.BearerToken = tok.Status.Token
	saClient, err := client.New(saCfg, client.Options{Scheme: k8sClient.Scheme()})
	g.Expect(err).NotTo(HaveOccurred())

	// The user the token authenticates as: a ServiceAccount token user's UID
	// is the ServiceAccount object's UID.
	review, err := cs.AuthenticationV1().TokenReviews().Create(ctx,
		&authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: tok.Status.Token}}, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(review.Status.Authenticated).To(BeTrue(), "token review: %s", review.Status.Error)
	g.Expect(review.Status.User.Username).To(Equal(saUser))
	g.Expect(review.Status.User.UID).To(Equal(string(sa.UID)))

	t.Run("service account creator is recorded", func(t *testing.T) {
		g := NewWithT(t)
		// No annotations at all: the policy creates the map.
		sub := subscription(ns.Name, "by-sa", nil)
		g.Expect(saClient.Create(ctx, sub)).To(Succeed())
		g.Expect(sub.Annotations).To(Equal(map[string]string{
			kubehookv1.AuthorIDAnnotation: string(sa.UID),
			kubehookv1.AuthorAnnotation:   saUser,
		}))
		g.Expect(stored(t, sub).Annotations).To(Equal(sub.Annotations))
	})

	t.Run("forged author is overwritten at creation", func(t *testing.T) {
		g := NewWithT(t)
		sub := subscription(ns.Name, "forged", map[string]string{
			kubehookv1.AuthorIDAnnotation: "0b1c4c1e-0000-4000-8000-000000000000",
			kubehookv1.AuthorAnnotation:   "alice",
			"team":                        "payments",
		})
		g.Expect(saClient.Create(ctx, sub)).To(Succeed())
		g.Expect(stored(t, sub).Annotations).To(Equal(map[string]string{
			kubehookv1.AuthorIDAnnotation: string(sa.UID),
			kubehookv1.AuthorAnnotation:   saUser,
			"team":                        "payments",
		}))

		// Only one of the two forged: both still come from the request.
		sub = subscription(ns.Name, "forged-id-only", map[string]string{kubehookv1.AuthorIDAnnotation: "alice"})
		g.Expect(saClient.Create(ctx, sub)).To(Succeed())
		g.Expect(stored(t, sub).Annotations).To(Equal(map[string]string{
			kubehookv1.AuthorIDAnnotation: string(sa.UID),
			kubehookv1.AuthorAnnotation:   saUser,
		}))
	})

	t.Run("updates cannot change or remove the author", func(t *testing.T) {
		g := NewWithT(t)
		sub := subscription(ns.Name, "updated", nil)
		g.Expect(saClient.Create(ctx, sub)).To(Succeed())
		want := map[string]string{
			kubehookv1.AuthorIDAnnotation: string(sa.UID),
			kubehookv1.AuthorAnnotation:   saUser,
		}

		// Update changing both, next to a legitimate change that must stick.
		sub.Annotations[kubehookv1.AuthorIDAnnotation] = "forged-id"
		sub.Annotations[kubehookv1.AuthorAnnotation] = "alice"
		sub.Annotations["team"] = "payments"
		g.Expect(saClient.Update(ctx, sub)).To(Succeed())
		want["team"] = "payments"
		g.Expect(stored(t, sub).Annotations).To(Equal(want))

		// Merge patch changing one and deleting the other.
		patch := []byte(`{"metadata":{"annotations":{"kubehook.io/author-id":"forged-id","kubehook.io/author":null}}}`)
		g.Expect(saClient.Patch(ctx, sub, client.RawPatch(types.MergePatchType, patch))).To(Succeed())
		g.Expect(stored(t, sub).Annotations).To(Equal(want))

		// Update dropping every annotation.
		sub = stored(t, sub)
		sub.Annotations = nil
		g.Expect(saClient.Update(ctx, sub)).To(Succeed())
		g.Expect(stored(t, sub).Annotations).To(Equal(map[string]string{
			kubehookv1.AuthorIDAnnotation: string(sa.UID),
			kubehookv1.AuthorAnnotation:   saUser,
		}))

		// The admin cannot rewrite it either.
		sub = stored(t, sub)
		sub.Annotations[kubehookv1.AuthorAnnotation] = adminUser.Username
		g.Expect(k8sClient.Update(ctx, sub)).To(Succeed())
		g.Expect(stored(t, sub).Annotations[kubehookv1.AuthorAnnotation]).To(Equal(saUser))
	})

	t.Run("subscriptions stored without an author cannot gain one", func(t *testing.T) {
		// Their old object has no annotations at all, or none of these two.
		for _, tc := range []struct {
			sub   *kubehookv1.WebhookSubscription
			other map[string]string
		}{
			{legacyBare, nil},
			{legacyOther, map[string]string{"team": "payments"}},
		} {
			t.Run(tc.sub.Name, func(t *testing.T) {
				g := NewWithT(t)
				sub := stored(t, tc.sub)
				g.Expect(sub.Annotations).To(Equal(tc.other), "stored before the policy, so without author annotations")

				// An update that leaves the annotations alone leaves them alone.
				sub.Spec.Endpoint = "https://hooks.example.com/changed"
				g.Expect(saClient.Update(ctx, sub)).To(Succeed())
				sub = stored(t, sub)
				g.Expect(sub.Spec.Endpoint).To(Equal("https://hooks.example.com/changed"))
				g.Expect(sub.Annotations).To(Equal(tc.other))

				// One that adds them loses them, and keeps its other changes.
				if sub.Annotations == nil {
					sub.Annotations = map[string]string{}
				}
				sub.Annotations[kubehookv1.AuthorIDAnnotation] = "forged-id"
				sub.Annotations[kubehookv1.AuthorAnnotation] = "alice"
				sub.Annotations["reviewed"] = "yes"
				g.Expect(saClient.Update(ctx, sub)).To(Succeed())
				want := map[string]string{"reviewed": "yes"}
				maps.Copy(want, tc.other)
				g.Expect(stored(t, sub).Annotations).To(Equal(want))
			})
		}
	})

	t.Run("admin creator gets its own user name", func(t *testing.T) {
		g := NewWithT(t)
		// envtest's admin authenticates with a client certificate, which
		// carries no UID: this is the fallback to the user name.
		g.Expect(adminUser.Username).NotTo(BeEmpty())
		g.Expect(adminUser.UID).To(BeEmpty(), "certificate users have no UID")
		sub := subscription(ns.Name, "by-admin", map[string]string{kubehookv1.AuthorAnnotation: saUser})
		g.Expect(k8sClient.Create(ctx, sub)).To(Succeed())
		g.Expect(stored(t, sub).Annotations).To(Equal(map[string]string{
			kubehookv1.AuthorIDAnnotation: adminUser.Username,
			kubehookv1.AuthorAnnotation:   adminUser.Username,
		}))
	})
}

// installAuthorPolicy creates the objects of the policy file and waits until
// the API server enforces them; at cleanup it deletes them and waits until it
// no longer does. Policies take effect asynchronously, so both waits probe
// with dry-run creates in namespace ns, which persist nothing.
func installAuthorPolicy(t *testing.T, ns string) {
	t.Helper()
	g := NewWithT(t)
	objs := policyObjects(t)
	g.Expect(objs).To(HaveLen(2), "%s: a policy and its binding", authorPolicyFile)

	t.Cleanup(func() {
		g := NewWithT(t)
		for _, obj := range objs {
			err := k8sClient.Delete(context.Background(), obj)
			g.Expect(client.IgnoreNotFound(err)).To(Succeed(), "deleting %s %s", obj.GetKind(), obj.GetName())
		}
		g.Eventually(func(g Gomega) {
			g.Expect(probe(g, ns)).NotTo(HaveKey(kubehookv1.AuthorAnnotation))
		}).WithTimeout(policyTimeout).WithPolling(policyPoll).Should(Succeed(), "the policy is still enforced after deletion")
	})
	for _, obj := range objs {
		err := k8sClient.Create(t.Context(), obj)
		if meta.IsNoMatchError(err) {
			t.Fatalf("this API server does not serve %s: %v", obj.GroupVersionKind(), err)
		}
		g.Expect(err).NotTo(HaveOccurred(), "creating %s %s", obj.GetKind(), obj.GetName())
	}
	g.Eventually(func(g Gomega) {
		g.Expect(probe(g, ns)).To(HaveKey(kubehookv1.AuthorAnnotation))
	}).WithTimeout(policyTimeout).WithPolling(policyPoll).Should(Succeed(), "the policy never took effect")
}

// probe dry-runs the creation of a subscription and returns the annotations
// admission gave it.
func probe(g Gomega, ns string) map[string]string {
	sub := subscription(ns, "author-policy-probe", nil)
	g.Expect(k8sClient.Create(context.Background(), sub, client.DryRunAll)).To(Succeed())
	return sub.Annotations
}

// policyObjects decodes the documents of the policy file.
func policyObjects(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	f, err := os.Open(authorPolicyFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		obj := &unstructured.Unstructured{}
		err := dec.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("%s: %v", authorPolicyFile, err)
		}
		if len(obj.Object) > 0 { // an empty document
			objs = append(objs, obj)
		}
	}
}

// grantSubscriptionWriter lets the ServiceAccount create, read and change
// WebhookSubscriptions in ns, and waits until the authorizer, which also
// learns of RBAC objects asynchronously, agrees.
func grantSubscriptionWriter(t *testing.T, cs kubernetes.Interface, ns, sa string) {
	t.Helper()
	g := NewWithT(t)
	verbs := []string{"create", "get", "update", "patch"}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "subscription-writer", Namespace: ns},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{kubehookv1.GroupVersion.Group},
			Resources: []string{"webhooksubscriptions"},
			Verbs:     verbs,
		}},
	}
	g.Expect(k8sClient.Create(t.Context(), role)).To(Succeed())
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "subscription-writer", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns}},
	}
	g.Expect(k8sClient.Create(t.Context(), binding)).To(Succeed())

	g.Eventually(func(g Gomega) {
		for _, verb := range verbs {
			sar, err := cs.AuthorizationV1().SubjectAccessReviews().Create(t.Context(), &authorizationv1.SubjectAccessReview{
				Spec: authorizationv1.SubjectAccessReviewSpec{
					User:   "system:serviceaccount:" + ns + ":" + sa,
					Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
					ResourceAttributes: &authorizationv1.ResourceAttributes{
						Namespace: ns, Verb: verb, Group: kubehookv1.GroupVersion.Group, Resource: "webhooksubscriptions",
					},
				},
			}, metav1.CreateOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(sar.Status.Allowed).To(BeTrue(), "%s webhooksubscriptions", verb)
		}
	}).WithTimeout(policyTimeout).WithPolling(policyPoll).Should(Succeed())
}

// subscription returns a valid WebhookSubscription with the given annotations.
func subscription(ns, name string, annotations map[string]string) *kubehookv1.WebhookSubscription {
	return &kubehookv1.WebhookSubscription{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: annotations},
		Spec: kubehookv1.WebhookSubscriptionSpec{
			Type:     kubehookv1.TagPush,
			Endpoint: "https://hooks.example.com/registry",
		},
	}
}

// stored reads sub back from the API server.
func stored(t *testing.T, sub *kubehookv1.WebhookSubscription) *kubehookv1.WebhookSubscription {
	t.Helper()
	got := &kubehookv1.WebhookSubscription{}
	if err := k8sClient.Get(t.Context(), client.ObjectKeyFromObject(sub), got); err != nil {
		t.Fatalf("reading %s back: %v", sub.Name, err)
	}
	return got
}

// adminConfig returns a copy of envtest's admin config.
func adminConfig(t *testing.T) *rest.Config {
	t.Helper()
	return rest.CopyConfig(adminCfg)
}
