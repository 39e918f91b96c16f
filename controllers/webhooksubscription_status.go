package controllers

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/registry"
)

// markReady records a successful reconcile: Ready reflects whether the
// subscription is delivering; Reconciling and Stalled are removed.
func markReady(obj *kubehookv1.WebhookSubscription, entry *registry.Subscription) {
	status, reason, msg := metav1.ConditionTrue, kubehookv1.SucceededReason, readyMessage(entry)
	switch {
	case entry.Inactive:
		status, reason = metav1.ConditionFalse, kubehookv1.InactiveReason
		msg = "inactive: deliveries stopped after the endpoint kept failing; change the spec or set a new kubehook.io/reactivate value to resume"
		if f := obj.Status.LastFailure; f != nil && f.Message != "" {
			msg += "; last failure: " + f.Message
		}
	case entry.Suspended:
		reason, msg = kubehookv1.SuspendedReason, "suspended: no deliveries until spec.suspend is false"
	case obj.Status.CircuitOpenUntil != nil:
		msg += fmt.Sprintf("; paused until %s: the circuit breaker of the endpoint's host is open after repeated failures",
			obj.Status.CircuitOpenUntil.UTC().Format(time.RFC3339))
		if f := obj.Status.LastFailure; f != nil && f.Message != "" {
			msg += "; last failure: " + f.Message
		}
	case obj.Status.ConsecutiveFailures > 0 && obj.Status.FailingSince != nil:
		// Still Ready (retrying), but say so where `kubectl get -o wide` shows it.
		msg += fmt.Sprintf("; failing since %s (%d failed attempts)", obj.Status.FailingSince.UTC().Format(time.RFC3339), obj.Status.ConsecutiveFailures)
		if f := obj.Status.LastFailure; f != nil && f.Message != "" {
			msg += ": " + f.Message
		}
	}
	setCondition(obj, kubehookv1.ReadyCondition, status, reason, msg)
	apimeta.RemoveStatusCondition(&obj.Status.Conditions, kubehookv1.ReconcilingCondition)
	apimeta.RemoveStatusCondition(&obj.Status.Conditions, kubehookv1.StalledCondition)
	obj.Status.ObservedGeneration = obj.Generation
}

func readyMessage(entry *registry.Subscription) string {
	scope := "every repository"
	if entry.Key != "" {
		scope = entry.Key
	}
	return fmt.Sprintf("delivering %s events for %s", entry.Type, scope)
}

// markStalled records a terminal failure: Ready=False and Stalled=True with
// the same reason; the generation counts as observed.
func markStalled(obj *kubehookv1.WebhookSubscription, reason, msg string) {
	setCondition(obj, kubehookv1.ReadyCondition, metav1.ConditionFalse, reason, msg)
	setCondition(obj, kubehookv1.StalledCondition, metav1.ConditionTrue, reason, msg)
	apimeta.RemoveStatusCondition(&obj.Status.Conditions, kubehookv1.ReconcilingCondition)
	obj.Status.ObservedGeneration = obj.Generation
}

// markReconciling records a transient failure that will be retried: the
// generation is not yet observed.
func markReconciling(obj *kubehookv1.WebhookSubscription, msg string) {
	setCondition(obj, kubehookv1.ReconcilingCondition, metav1.ConditionTrue, kubehookv1.ProgressingReason, msg)
	if apimeta.FindStatusCondition(obj.Status.Conditions, kubehookv1.ReadyCondition) == nil ||
		obj.Generation != obj.Status.ObservedGeneration {
		setCondition(obj, kubehookv1.ReadyCondition, metav1.ConditionUnknown, kubehookv1.ProgressingReason, msg)
	}
	apimeta.RemoveStatusCondition(&obj.Status.Conditions, kubehookv1.StalledCondition)
}

// setCondition keeps lastTransitionTime unless the status changes, so a
// reconcile that changes nothing writes nothing.
func setCondition(obj *kubehookv1.WebhookSubscription, t string, status metav1.ConditionStatus, reason, msg string) {
	apimeta.SetStatusCondition(&obj.Status.Conditions, metav1.Condition{
		Type:               t,
		Status:             status,
		Reason:             reason,
		Message:            msg,
		ObservedGeneration: obj.Generation,
		LastTransitionTime: now(),
	})
}

func statusEqual(a, b *kubehookv1.WebhookSubscriptionStatus) bool {
	return equality.Semantic.DeepEqual(a, b)
}

// recordReadyChange emits an Event when Ready changed status or reason, so
// Events mark state changes, not reconciles.
func (r *WebhookSubscriptionReconciler) recordReadyChange(base, obj *kubehookv1.WebhookSubscription) {
	before := apimeta.FindStatusCondition(base.Status.Conditions, kubehookv1.ReadyCondition)
	after := apimeta.FindStatusCondition(obj.Status.Conditions, kubehookv1.ReadyCondition)
	if after == nil || (before != nil && before.Status == after.Status && before.Reason == after.Reason) {
		return
	}
	eventType := corev1.EventTypeNormal
	if after.Status != metav1.ConditionTrue {
		eventType = corev1.EventTypeWarning
	}
	r.eventf(obj, eventType, after.Reason, "Reconcile", "%s", after.Message)
}
