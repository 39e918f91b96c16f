package app

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

// The cache keeps neither managed fields nor kubectl's copy of the applied
// object, of a subscription or of a Secret's metadata, and keeps every
// other annotation (kubehook.io/test and the others the controller acts
// on) and the spec.
func TestCacheDropsManagedFieldsAndLastApplied(t *testing.T) {
	managed := []metav1.ManagedFieldsEntry{{Manager: "kubectl-client-side-apply", Operation: metav1.ManagedFieldsOperationUpdate,
		FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:endpoint":{}}}`)}}}
	sub := &kubehookv1.WebhookSubscription{
		ObjectMeta: metav1.ObjectMeta{Name: "hook", Namespace: "acme", ManagedFields: managed, Annotations: map[string]string{
			corev1.LastAppliedConfigAnnotation: `{"apiVersion":"kubehook.io/v1alpha1","kind":"WebhookSubscription"}`,
			kubehookv1.TestAnnotation:          "1",
		}},
		Spec: kubehookv1.WebhookSubscriptionSpec{Type: kubehookv1.TagPush, Key: "acme", Endpoint: "https://hooks.example.com"},
	}
	secret := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "hook-key", Namespace: "acme", ManagedFields: managed,
		Annotations: map[string]string{corev1.LastAppliedConfigAnnotation: `{"data":{"key":"d2hzZWNfLi4u"}}`}}}

	transform := cacheOptions().DefaultTransform
	for _, obj := range []metav1.Object{sub, secret} {
		out, err := transform(obj)
		if err != nil {
			t.Fatal(err)
		}
		got := out.(metav1.Object)
		if got.GetManagedFields() != nil {
			t.Errorf("%s: managed fields kept", got.GetName())
		}
		if _, ok := got.GetAnnotations()[corev1.LastAppliedConfigAnnotation]; ok {
			t.Errorf("%s: last-applied-configuration kept", got.GetName())
		}
	}
	if sub.Annotations[kubehookv1.TestAnnotation] != "1" || sub.Spec.Endpoint != "https://hooks.example.com" {
		t.Errorf("subscription lost what the controller reads: %+v", sub)
	}
	if secret.Annotations != nil {
		t.Errorf("an emptied annotation map is kept: %v", secret.Annotations)
	}

	// A tombstone is passed through.
	tomb := toolscache.DeletedFinalStateUnknown{Key: "acme/hook", Obj: sub}
	if out, err := transform(tomb); err != nil || out != any(tomb) {
		t.Errorf("tombstone: %v, %v", out, err)
	}
}
