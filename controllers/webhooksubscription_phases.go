package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/credentials"
	"github.com/kubehook/kubehook/internal/payload"
	"github.com/kubehook/kubehook/internal/retry"
	"github.com/kubehook/kubehook/internal/sender"
	"github.com/kubehook/kubehook/internal/subscriptions"
	"github.com/kubehook/kubehook/internal/tenancy"
)

// checkSpec repeats in Go the critical rules admission enforces, for objects
// stored before a rule existed.
func (r *WebhookSubscriptionReconciler) checkSpec(_ context.Context, obj *kubehookv1.WebhookSubscription, _ *subscriptions.Subscription) error {
	if err := kubehookv1.ValidateSpec(&obj.Spec); err != nil {
		return stalled(kubehookv1.InvalidSpecReason, "%s", err)
	}
	return nil
}

// checkTenancy keeps a subscription to a registry namespace its Kubernetes
// namespace may not use out of the registry.
func (r *WebhookSubscriptionReconciler) checkTenancy(ctx context.Context, obj *kubehookv1.WebhookSubscription, _ *subscriptions.Subscription) error {
	if !r.Tenancy {
		return nil
	}
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	if err := r.Get(ctx, types.NamespacedName{Name: obj.Namespace}, ns); err != nil {
		return fmt.Errorf("reading namespace %s: %w", obj.Namespace, err)
	}
	if err := tenancy.Check(obj.Namespace, ns.Annotations, obj.Spec.Key); err != nil {
		return stalled(kubehookv1.KeyNotPermittedReason, "%s", err)
	}
	return nil
}

// resolveSecrets reads and parses every referenced Secret into the entry.
func (r *WebhookSubscriptionReconciler) resolveSecrets(ctx context.Context, obj *kubehookv1.WebhookSubscription, entry *subscriptions.Subscription) error {
	spec := &obj.Spec
	if r.reuseSecrets(ctx, obj, entry) {
		return nil
	}
	entry.SecretVersions = map[string]string{}

	var tlsData map[string][]byte
	if spec.TLSSecretRef != nil {
		data, err := r.secretData(ctx, entry, obj.Namespace, spec.TLSSecretRef.Name, "tlsSecretRef")
		if err != nil {
			return err
		}
		tlsData = data
	}
	tlsMaterial, err := credentials.ParseTLS(spec.TLSCert, tlsData)
	if err != nil {
		return stalled(kubehookv1.InvalidTLSReason, "%s", withSecretName(spec.TLSSecretRef, err))
	}
	entry.TLS = tlsMaterial

	if spec.SigningSecretRef != nil {
		data, err := r.secretData(ctx, entry, obj.Namespace, spec.SigningSecretRef.Name, "signingSecretRef")
		if err != nil {
			return err
		}
		keys, err := credentials.ParseSigningSecrets(data)
		if err != nil {
			return stalled(kubehookv1.InvalidSecretReason, "signing Secret %q: %s", spec.SigningSecretRef.Name, err)
		}
		entry.SigningKeys = keys
	}

	if spec.HeadersSecretRef != nil {
		data, err := r.secretData(ctx, entry, obj.Namespace, spec.HeadersSecretRef.Name, "headersSecretRef")
		if err != nil {
			return err
		}
		headers, err := credentials.ParseHeaders(data)
		if err != nil {
			return stalled(kubehookv1.InvalidSecretReason, "headers Secret %q: %s", spec.HeadersSecretRef.Name, err)
		}
		entry.Headers = headers
	}
	return nil
}

func withSecretName(ref *kubehookv1.SecretReference, err error) error {
	if ref == nil {
		return err
	}
	return fmt.Errorf("TLS Secret %q: %w", ref.Name, err)
}

// reuseSecrets copies the parsed Secret material of the registered entry when
// neither the spec nor any referenced Secret changed since it was parsed, as
// told by the Secrets' resourceVersions in the metadata cache. Most
// reconciles (delivery status updates) then read no Secret from the API.
func (r *WebhookSubscriptionReconciler) reuseSecrets(ctx context.Context, obj *kubehookv1.WebhookSubscription, entry *subscriptions.Subscription) bool {
	cur, ok := r.Registry.Get(client.ObjectKeyFromObject(obj))
	// A stalled entry's material is incomplete: parse again.
	if !ok || cur.UID != obj.UID || cur.Generation != obj.Generation || cur.SecretVersions == nil || cur.Stalled != "" {
		return false
	}
	names := map[string]bool{}
	for _, name := range indexSecretRefs(obj) {
		names[name] = true
	}
	if len(names) != len(cur.SecretVersions) {
		return false
	}
	for name := range names {
		meta := &metav1.PartialObjectMetadata{}
		meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
		if err := r.Get(ctx, types.NamespacedName{Namespace: obj.Namespace, Name: name}, meta); err != nil {
			return false
		}
		if cur.SecretVersions[name] != meta.ResourceVersion {
			return false
		}
	}
	entry.TLS, entry.SigningKeys, entry.Headers, entry.SecretVersions = cur.TLS, cur.SigningKeys, cur.Headers, cur.SecretVersions
	return true
}

// secretData reads a Secret's data, recording its resourceVersion in the
// entry. A missing Secret stalls the subscription until the Secret watch
// brings it back.
func (r *WebhookSubscriptionReconciler) secretData(ctx context.Context, entry *subscriptions.Subscription, namespace, name, field string) (map[string][]byte, error) {
	secret := &corev1.Secret{}
	if err := r.SecretReader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, stalled(kubehookv1.SecretNotFoundReason, "Secret %q (spec.%s) not found in namespace %q", name, field, namespace)
		}
		return nil, fmt.Errorf("reading Secret %q: %w", name, err)
	}
	entry.SecretVersions[name] = secret.ResourceVersion
	return secret.Data, nil
}

// applyDeliveryStatus copies what the engine observed of deliveries into
// status, and the inactive verdict into the entry. The tracker coalesces
// outcomes, so this runs at most once per sync period per subscription, plus
// once per transition. The failure streak in status is the one streak: it
// keeps its start across restarts, only a success, a reactivation or a spec
// change ends it, and it deactivates the subscription once it is longer
// than deactivateAfter.
func (r *WebhookSubscriptionReconciler) applyDeliveryStatus(_ context.Context, obj *kubehookv1.WebhookSubscription, entry *subscriptions.Subscription) error {
	st := &obj.Status
	if r.Outcomes != nil {
		if s, ok := r.Outcomes.Get(client.ObjectKeyFromObject(obj)); ok && s.UID == obj.UID {
			st.LastSuccessfulAt = laterTime(st.LastSuccessfulAt, s.LastSuccessAt)
			st.LastAttemptAt = laterTime(st.LastAttemptAt, s.LastAttemptAt)
			st.LastFailureAt = laterTime(st.LastFailureAt, s.LastFailureAt)
			if s.ConsecutiveFailures == 0 {
				st.FailingSince = nil
				st.ConsecutiveFailures = 0
			} else {
				if st.FailingSince == nil {
					st.FailingSince = metaTime(s.FailingSince)
				}
				st.ConsecutiveFailures = s.ConsecutiveFailures
				st.LastFailure = &kubehookv1.DeliveryFailure{StatusCode: int32(s.LastFailureCode), Message: s.LastFailureMessage}
			}
			streakExpired := st.FailingSince != nil && st.LastFailureAt != nil && st.ConsecutiveFailures > 0 &&
				retry.ShouldDeactivate(entry.Delivery, st.FailingSince.Time, st.LastFailureAt.Time, 0)
			if (s.Deactivated || streakExpired) && !st.Inactive {
				st.Inactive = true
				r.eventf(obj, corev1.EventTypeWarning, kubehookv1.InactiveReason, "Deactivate",
					"deactivated after failing since %s: %s", st.FailingSince, s.LastFailureMessage)
			}
		}
	}
	entry.Inactive = st.Inactive
	r.applyCircuit(obj)
	return nil
}

// applyCircuit shows in status until when deliveries to the endpoint's host
// are paused by its circuit breaker: the latest of what this replica's
// breaker says and what the last attempt reported (from any replica).
func (r *WebhookSubscriptionReconciler) applyCircuit(obj *kubehookv1.WebhookSubscription) {
	var until time.Time
	if r.Outcomes != nil {
		if s, ok := r.Outcomes.Get(client.ObjectKeyFromObject(obj)); ok && s.UID == obj.UID {
			until = s.CircuitOpenUntil
		}
	}
	if r.Circuits != nil {
		if t := r.Circuits(obj.Spec.Endpoint); t.After(until) {
			until = t
		}
	}
	if !until.After(now().Time) {
		obj.Status.CircuitOpenUntil = nil
		return
	}
	obj.Status.CircuitOpenUntil = metaTime(until)
}

func laterTime(have *metav1.Time, seen time.Time) *metav1.Time {
	if seen.IsZero() || (have != nil && !seen.After(have.Time)) {
		return have
	}
	return metaTime(seen)
}

func metaTime(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	mt := metav1.NewTime(t.Truncate(time.Second))
	return &mt
}

// applyInactive clears a stored inactive verdict when the spec changed or
// kubehook.io/reactivate has a new value, and ends the failure streak with
// it, so a reactivated subscription gets a full deactivateAfter again. A
// spec change ends the streak of an active subscription too. It runs before
// the engine's outcomes are applied, so it only ever reactivates what status
// recorded as inactive: a deactivation not yet written is never mistaken
// for an old one.
func (r *WebhookSubscriptionReconciler) applyInactive(_ context.Context, obj *kubehookv1.WebhookSubscription, _ *subscriptions.Subscription) error {
	st := &obj.Status
	reactivate := obj.Annotations[kubehookv1.ReactivateAnnotation]
	specChanged := st.ObservedGeneration != 0 && obj.Generation != st.ObservedGeneration
	reactivated := st.Inactive && (specChanged || reactivate != st.LastHandledReactivate)
	if reactivated || (specChanged && st.FailingSince != nil) {
		st.FailingSince = nil
		st.ConsecutiveFailures = 0
		if r.Outcomes != nil {
			r.Outcomes.ClearStreak(client.ObjectKeyFromObject(obj))
		}
	}
	if reactivated {
		st.Inactive = false
		r.eventf(obj, corev1.EventTypeNormal, "Reactivated", "Reactivate", "subscription reactivated")
	}
	st.LastHandledReactivate = reactivate
	return nil
}

// testDelivery sends the fixed sample payload of spec.type once for each new
// TestSender makes the one HTTP attempt of a test delivery, with the SSRF
// guard and signing of real ones (the engine's sender).
type TestSender interface {
	Send(ctx context.Context, sub *subscriptions.Subscription, req sender.Request) sender.Result
}

// value of the kubehook.io/test annotation, and records the outcome.
func (r *WebhookSubscriptionReconciler) testDelivery(ctx context.Context, obj *kubehookv1.WebhookSubscription, entry *subscriptions.Subscription) error {
	request, ok := obj.Annotations[kubehookv1.TestAnnotation]
	// The leader alone sends it, so it is sent once whatever the replicas.
	if !ok || request == "" || r.Sender == nil || !r.leads() {
		return nil
	}
	if last := obj.Status.LastTest; last != nil && last.Request == request {
		return nil
	}
	result := &kubehookv1.TestDeliveryStatus{Request: request, RequestedAt: ptrTime(now())}
	obj.Status.LastTest = result

	body, contentType, err := payload.Render(entry.PayloadFormat, payload.Sample(entry.Type), "msg_test_"+string(obj.UID), "kubehook")
	if err != nil {
		result.Message = "rendering the sample payload: " + err.Error()
		return nil
	}
	res := r.Sender.Send(ctx, entry, sender.Request{ID: "msg_test_" + string(obj.UID) + "_" + request, Body: body, ContentType: contentType})
	result.SentAt = ptrTime(now())
	result.StatusCode = int32(res.StatusCode)
	if res.OK() {
		result.Message = fmt.Sprintf("delivered: HTTP %d", res.StatusCode)
	} else {
		result.Message = res.Err.Error()
	}
	eventType := corev1.EventTypeNormal
	if !res.OK() {
		eventType = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(obj, nil, eventType, "TestDelivery", "Test", "test delivery of %s: %s", entry.Type, result.Message)
	return nil
}

func ptrTime(t metav1.Time) *metav1.Time { return &t }
