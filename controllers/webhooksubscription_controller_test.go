package controllers

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

const (
	timeout  = 20 * time.Second
	interval = 50 * time.Millisecond
)

func newSub(ns, name, key string) *kubehookv1.WebhookSubscription {
	return &kubehookv1.WebhookSubscription{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: kubehookv1.WebhookSubscriptionSpec{
			Type:     kubehookv1.TagPush,
			Key:      key,
			Endpoint: "https://hooks.example.com/registry",
		},
	}
}

// waitObserved waits until the controller has observed the current
// generation, and returns the object.
func waitObserved(g Gomega, sub *kubehookv1.WebhookSubscription) *kubehookv1.WebhookSubscription {
	got := &kubehookv1.WebhookSubscription{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(sub), got)).To(Succeed())
		g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		g.Expect(apimeta.FindStatusCondition(got.Status.Conditions, kubehookv1.ReadyCondition)).NotTo(BeNil())
	}, timeout, interval).Should(Succeed())
	return got
}

// waitReady waits until Ready has the given status and reason.
func waitReady(g Gomega, sub *kubehookv1.WebhookSubscription, status metav1.ConditionStatus, reason string) *kubehookv1.WebhookSubscription {
	got := &kubehookv1.WebhookSubscription{}
	g.Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(sub), got)).To(Succeed())
		g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		ready := apimeta.FindStatusCondition(got.Status.Conditions, kubehookv1.ReadyCondition)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(status), ready.Message)
		g.Expect(ready.Reason).To(Equal(reason), ready.Message)
	}, timeout, interval).Should(Succeed())
	return got
}

func TestValidSubscriptionBecomesReadyAndRegistered(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "acme", nil)
	sub := newSub(ns, "pushes", ns+"/app")
	g.Expect(k8sClient.Create(ctx, sub)).To(Succeed())

	got := waitReady(g, sub, metav1.ConditionTrue, kubehookv1.SucceededReason)
	g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
	// inactive: false is stored, so kubectl's Inactive column shows it.
	raw := &unstructured.Unstructured{}
	raw.SetGroupVersionKind(kubehookv1.GroupVersion.WithKind("WebhookSubscription"))
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(sub), raw)).To(Succeed())
	inactive, found, err := unstructured.NestedBool(raw.Object, "status", "inactive")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(found).To(BeTrue(), "status.inactive stored")
	g.Expect(inactive).To(BeFalse())
	g.Expect(apimeta.FindStatusCondition(got.Status.Conditions, kubehookv1.ReconcilingCondition)).To(BeNil())
	g.Expect(apimeta.FindStatusCondition(got.Status.Conditions, kubehookv1.StalledCondition)).To(BeNil())

	entry, ok := reg.Get(client.ObjectKeyFromObject(sub))
	g.Expect(ok).To(BeTrue())
	g.Expect(entry.Endpoint).To(Equal(sub.Spec.Endpoint))
	g.Expect(entry.Delivery.Timeout).To(Equal(kubehookv1.DefaultTimeout))
	g.Expect(reg.Match(kubehookv1.TagPush, ns+"/app")).To(ContainElement(entry))

	// A spec change is picked up: new generation observed, entry updated.
	got.Spec.Key = ns + "/other"
	g.Expect(k8sClient.Update(ctx, got)).To(Succeed())
	g.Eventually(func(g Gomega) {
		e, ok := reg.Get(client.ObjectKeyFromObject(sub))
		g.Expect(ok).To(BeTrue())
		g.Expect(e.Key).To(Equal(ns + "/other"))
	}, timeout, interval).Should(Succeed())
	waitObserved(g, got)
	g.Expect(reg.Match(kubehookv1.TagPush, ns+"/app")).NotTo(ContainElement(HaveField("ID", client.ObjectKeyFromObject(sub))))
}

func TestDeletionRemovesRegistryEntry(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "acme", nil)
	sub := newSub(ns, "gone", ns)
	g.Expect(k8sClient.Create(ctx, sub)).To(Succeed())
	waitReady(g, sub, metav1.ConditionTrue, kubehookv1.SucceededReason)
	_, ok := reg.Get(client.ObjectKeyFromObject(sub))
	g.Expect(ok).To(BeTrue())

	g.Expect(k8sClient.Delete(ctx, sub)).To(Succeed())
	g.Eventually(func() bool {
		_, ok := reg.Get(client.ObjectKeyFromObject(sub))
		return ok
	}, timeout, interval).Should(BeFalse())
	g.Expect(reg.Match(kubehookv1.TagPush, ns+"/app")).To(BeEmpty())
}

// A suspended subscription still takes events: they are queued and held
// for it until it resumes.
func TestSuspendedStaysRegisteredAndHoldsWhatItMatches(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "acme", nil)
	sub := newSub(ns, "paused", ns)
	sub.Spec.Suspend = true
	g.Expect(k8sClient.Create(ctx, sub)).To(Succeed())

	waitReady(g, sub, metav1.ConditionTrue, kubehookv1.SuspendedReason)
	entry, ok := reg.Get(client.ObjectKeyFromObject(sub))
	g.Expect(ok).To(BeTrue())
	g.Expect(entry.Suspended).To(BeTrue())
	g.Expect(reg.Match(kubehookv1.TagPush, ns+"/app")).To(ContainElement(HaveField("ID", client.ObjectKeyFromObject(sub))))
	fate, _ := entry.Fate()
	g.Expect(fate).To(Equal(subscriptions.Hold))
}

func TestMissingSecretThenCreatedBecomesReady(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "acme", nil)
	sub := newSub(ns, "signed", ns)
	sub.Spec.SigningSecretRef = &kubehookv1.SecretReference{Name: "hook-key"}
	g.Expect(k8sClient.Create(ctx, sub)).To(Succeed())

	got := waitReady(g, sub, metav1.ConditionFalse, kubehookv1.SecretNotFoundReason)
	stalled := apimeta.FindStatusCondition(got.Status.Conditions, kubehookv1.StalledCondition)
	g.Expect(stalled).NotTo(BeNil())
	g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
	g.Expect(stalled.Message).To(ContainSubstring(`Secret "hook-key"`))
	// Registered, so what is queued for it is held until the Secret exists.
	stalledEntry, registered := reg.Get(client.ObjectKeyFromObject(sub))
	g.Expect(registered).To(BeTrue())
	g.Expect(stalledEntry.Stalled).To(ContainSubstring(kubehookv1.SecretNotFoundReason))
	fate, _ := stalledEntry.Fate()
	g.Expect(fate).To(Equal(subscriptions.Hold))
	before := got.DeepCopy()

	// Creating the Secret alone, without touching the subscription, makes it Ready.
	g.Expect(k8sClient.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hook-key"},
		Data:       map[string][]byte{"current": whsec(32)},
	})).To(Succeed())
	got = waitReady(g, sub, metav1.ConditionTrue, kubehookv1.SucceededReason)
	g.Expect(got.Generation).To(Equal(before.Generation))
	g.Expect(got.Annotations).To(Equal(before.Annotations))
	g.Expect(apimeta.FindStatusCondition(got.Status.Conditions, kubehookv1.StalledCondition)).To(BeNil())

	entry, ok := reg.Get(client.ObjectKeyFromObject(sub))
	g.Expect(ok).To(BeTrue())
	g.Expect(entry.SigningKeys).To(HaveLen(1))

	// Events mark the two state changes.
	g.Eventually(func(g Gomega) {
		g.Expect(eventReasons(g, ns, sub.Name)).To(ContainElements(kubehookv1.SecretNotFoundReason, kubehookv1.SucceededReason))
	}, timeout, interval).Should(Succeed())
}

func TestInvalidSecretsStallUntilFixed(t *testing.T) {
	cert, key := selfSignedPEM(t)
	otherCert, _ := selfSignedPEM(t)
	tests := []struct {
		name     string
		ref      func(*kubehookv1.WebhookSubscription, *kubehookv1.SecretReference)
		bad      map[string][]byte
		good     map[string][]byte
		reason   string
		contains string
	}{
		{
			name:   "signing secret without whsec_ prefix",
			ref:    func(s *kubehookv1.WebhookSubscription, r *kubehookv1.SecretReference) { s.Spec.SigningSecretRef = r },
			bad:    map[string][]byte{"key": []byte("plain-secret")},
			good:   map[string][]byte{"key": whsec(24)},
			reason: kubehookv1.InvalidSecretReason, contains: `does not start with "whsec_"`,
		},
		{
			name:   "TLS pair that does not match",
			ref:    func(s *kubehookv1.WebhookSubscription, r *kubehookv1.SecretReference) { s.Spec.TLSSecretRef = r },
			bad:    map[string][]byte{"tls.crt": otherCert, "tls.key": key},
			good:   map[string][]byte{"tls.crt": cert, "tls.key": key, "ca.crt": cert},
			reason: kubehookv1.InvalidTLSReason, contains: "tls.crt/tls.key",
		},
		{
			name:   "CA that is not PEM",
			ref:    func(s *kubehookv1.WebhookSubscription, r *kubehookv1.SecretReference) { s.Spec.TLSSecretRef = r },
			bad:    map[string][]byte{"ca.crt": []byte("not a certificate")},
			good:   map[string][]byte{"ca.crt": cert},
			reason: kubehookv1.InvalidTLSReason, contains: "no PEM certificate",
		},
		{
			name:   "header that kubehook sets itself",
			ref:    func(s *kubehookv1.WebhookSubscription, r *kubehookv1.SecretReference) { s.Spec.HeadersSecretRef = r },
			bad:    map[string][]byte{"Webhook-Signature": []byte("v1,forged")},
			good:   map[string][]byte{"X-Token": []byte("v")},
			reason: kubehookv1.InvalidSecretReason, contains: "set by kubehook and cannot be overridden",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			ns := newNamespace(t, "acme", nil)
			secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "material"}, Data: tt.bad}
			g.Expect(k8sClient.Create(ctx, secret)).To(Succeed())
			sub := newSub(ns, "sub", ns)
			tt.ref(sub, &kubehookv1.SecretReference{Name: "material"})
			g.Expect(k8sClient.Create(ctx, sub)).To(Succeed())

			got := waitReady(g, sub, metav1.ConditionFalse, tt.reason)
			ready := apimeta.FindStatusCondition(got.Status.Conditions, kubehookv1.ReadyCondition)
			g.Expect(ready.Message).To(ContainSubstring(tt.contains))
			g.Expect(apimeta.IsStatusConditionTrue(got.Status.Conditions, kubehookv1.StalledCondition)).To(BeTrue())

			// Reconciled again with the Secret unchanged (here an unrelated
			// annotation; in life a delivery outcome): still stalled, never
			// delivering without the material it lacks.
			got.Annotations = map[string]string{"example.com/poke": "1"}
			g.Expect(k8sClient.Update(ctx, got)).To(Succeed())
			key := client.ObjectKeyFromObject(sub)
			g.Eventually(func() int { return reconciles.count(key) }, timeout, interval).Should(BeNumerically(">=", 2))
			g.Consistently(func(g Gomega) {
				entry, ok := reg.Get(key)
				g.Expect(ok).To(BeTrue())
				g.Expect(entry.Stalled).NotTo(BeEmpty())
				g.Expect(apimeta.IsStatusConditionTrue(get(g, sub).Status.Conditions, kubehookv1.StalledCondition)).To(BeTrue())
			}, time.Second, interval).Should(Succeed())

			secret.Data = tt.good
			g.Expect(k8sClient.Update(ctx, secret)).To(Succeed())
			waitReady(g, sub, metav1.ConditionTrue, kubehookv1.SucceededReason)
		})
	}
}

func TestTenancyAllowDenyAndReevaluation(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "team", nil)
	other := newNamespace(t, "globex", nil)

	denied := newSub(ns, "foreign", other+"/app")
	g.Expect(k8sClient.Create(ctx, denied)).To(Succeed())
	got := waitReady(g, denied, metav1.ConditionFalse, kubehookv1.KeyNotPermittedReason)
	g.Expect(apimeta.FindStatusCondition(got.Status.Conditions, kubehookv1.ReadyCondition).Message).
		To(ContainSubstring(`may only use registry namespace "` + ns + `"`))
	// Registered as not permitted: matches nothing, and what was queued for
	// it goes to its dead letters.
	entry, ok := reg.Get(client.ObjectKeyFromObject(denied))
	g.Expect(ok).To(BeTrue())
	g.Expect(entry.NotPermitted).To(BeTrue())
	g.Expect(reg.Match(kubehookv1.TagPush, other+"/app")).To(BeEmpty())

	global := newSub(ns, "everything", "")
	g.Expect(k8sClient.Create(ctx, global)).To(Succeed())
	waitReady(g, global, metav1.ConditionFalse, kubehookv1.KeyNotPermittedReason)

	own := newSub(ns, "own", ns+"/app")
	g.Expect(k8sClient.Create(ctx, own)).To(Succeed())
	waitReady(g, own, metav1.ConditionTrue, kubehookv1.SucceededReason)

	// An admin lets the namespace use the other registry namespace.
	setRegistryNamespaces(g, ns, other)
	waitReady(g, denied, metav1.ConditionTrue, kubehookv1.SucceededReason)
	g.Expect(reg.Match(kubehookv1.TagPush, other+"/app")).To(ContainElement(HaveField("ID", client.ObjectKeyFromObject(denied))))
	// The list replaces the same-name default.
	waitReady(g, own, metav1.ConditionFalse, kubehookv1.KeyNotPermittedReason)
	waitReady(g, global, metav1.ConditionFalse, kubehookv1.KeyNotPermittedReason)

	// "*" allows everything, the empty key included.
	setRegistryNamespaces(g, ns, "*")
	waitReady(g, global, metav1.ConditionTrue, kubehookv1.SucceededReason)
	waitReady(g, own, metav1.ConditionTrue, kubehookv1.SucceededReason)

	// Taking the annotation away withdraws it again: the entry matches nothing.
	nsObj := &corev1.Namespace{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: ns}, nsObj)).To(Succeed())
	delete(nsObj.Annotations, kubehookv1.RegistryNamespacesAnnotation)
	g.Expect(k8sClient.Update(ctx, nsObj)).To(Succeed())
	waitReady(g, denied, metav1.ConditionFalse, kubehookv1.KeyNotPermittedReason)
	g.Eventually(func() []*subscriptions.Subscription {
		return reg.Match(kubehookv1.TagPush, other+"/app")
	}, timeout, interval).Should(BeEmpty())
	waitReady(g, own, metav1.ConditionTrue, kubehookv1.SucceededReason)
}

func TestStatusWriteDoesNotTriggerReconcile(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "acme", nil)
	sub := newSub(ns, "quiet", ns)
	g.Expect(k8sClient.Create(ctx, sub)).To(Succeed())
	got := waitReady(g, sub, metav1.ConditionTrue, kubehookv1.SucceededReason)
	key := client.ObjectKeyFromObject(sub)

	// The controller's own status write (Ready) came back as no reconcile.
	g.Expect(reconciles.count(key)).To(Equal(1))
	g.Consistently(func() int { return reconciles.count(key) }, 2*time.Second, interval).Should(Equal(1))

	// Nor does a status write from elsewhere (the engine's outcome writer).
	patch := client.MergeFrom(got.DeepCopy())
	stamp := metav1.NewTime(time.Now().Truncate(time.Second))
	got.Status.LastSuccessfulAt = &stamp
	g.Expect(k8sClient.Status().Patch(ctx, got, patch)).To(Succeed())
	g.Consistently(func() int { return reconciles.count(key) }, 2*time.Second, interval).Should(Equal(1))

	// An annotation change does reconcile (kubehook.io/test and reactivate rely on it),
	// without another Event: nothing changed state.
	got.Annotations = map[string]string{"team.example.com/owner": "payments"}
	g.Expect(k8sClient.Update(ctx, got)).To(Succeed())
	g.Eventually(func() int { return reconciles.count(key) }, timeout, interval).Should(Equal(2))
	g.Expect(eventReasons(g, ns, sub.Name)).To(ConsistOf(kubehookv1.SucceededReason))
}

func TestReconcileOfMissingObjectForgetsIt(t *testing.T) {
	g := NewWithT(t)
	_, err := (&WebhookSubscriptionReconciler{Client: k8sClient, Registry: reg}).
		Reconcile(context.Background(), reqFor("nowhere", "nothing"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(apierrors.IsNotFound(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: "nowhere", Name: "nothing"}, &kubehookv1.WebhookSubscription{}))).To(BeTrue())
}

func setRegistryNamespaces(g Gomega, ns, value string) {
	nsObj := &corev1.Namespace{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Name: ns}, nsObj)).To(Succeed())
	if nsObj.Annotations == nil {
		nsObj.Annotations = map[string]string{}
	}
	nsObj.Annotations[kubehookv1.RegistryNamespacesAnnotation] = value
	g.Expect(k8sClient.Update(context.Background(), nsObj)).To(Succeed())
}

// eventReasons lists the reasons of the Events about one subscription.
func eventReasons(g Gomega, ns, name string) []string {
	var list eventsv1.EventList
	g.Expect(k8sClient.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	var reasons []string
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Regarding.Kind == "WebhookSubscription" {
			reasons = append(reasons, e.Reason)
		}
	}
	return reasons
}

func whsec(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return []byte("whsec_" + base64.StdEncoding.EncodeToString(b))
}

func selfSignedPEM(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func TestUnchangedSecretsAreNotReadAgain(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t, "acme", nil)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hook-key"}, Data: map[string][]byte{"k": whsec(32)}}
	g.Expect(k8sClient.Create(ctx, secret)).To(Succeed())
	sub := newSub(ns, "signed", ns)
	sub.Spec.SigningSecretRef = &kubehookv1.SecretReference{Name: "hook-key"}
	g.Expect(k8sClient.Create(ctx, sub)).To(Succeed())
	got := waitReady(g, sub, metav1.ConditionTrue, kubehookv1.SucceededReason)
	key := client.ObjectKeyFromObject(sub)
	reads := secretReads.count(ns)
	g.Expect(reads).To(BeNumerically(">=", 1))

	// A reconcile with nothing changed (an annotation) reads no Secret.
	before := reconciles.count(key)
	got.Annotations = map[string]string{"team.example.com/owner": "payments"}
	g.Expect(k8sClient.Update(ctx, got)).To(Succeed())
	g.Eventually(func() int { return reconciles.count(key) }, timeout, interval).Should(BeNumerically(">", before))
	g.Expect(secretReads.count(ns)).To(Equal(reads))

	// A changed Secret is read again and its new material registered.
	secret.Data = map[string][]byte{"k": whsec(32), "next": whsec(32)}
	g.Expect(k8sClient.Update(ctx, secret)).To(Succeed())
	g.Eventually(func(g Gomega) {
		e, ok := reg.Get(key)
		g.Expect(ok).To(BeTrue())
		g.Expect(e.SigningKeys).To(HaveLen(2))
	}, timeout, interval).Should(Succeed())
	g.Expect(secretReads.count(ns)).To(BeNumerically(">", reads))
}
