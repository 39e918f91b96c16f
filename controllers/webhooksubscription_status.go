package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

// writeStatus is the one status write, run (deferred) at the end of every
// reconcile:
//   - what: the whole status this reconcile computed, as an update of the
//     status subresource (every field is sent, so inactive: false is stored
//     by the first write, for kubectl's column and DTR's field);
//   - when: only on the leader (one status writer for all replicas), and
//     only when the status differs from the one read;
//   - a conflict: the update carries the resourceVersion read, so the API
//     server refuses it when the object changed since (the cache was behind,
//     perhaps not yet showing this reconciler's own last write). A status
//     computed from a stale object must not overwrite a newer one, such as
//     a deactivation or a handled test, so the reconcile runs again shortly
//     on the newer object instead of failing.
//
// An Event is recorded when the Ready condition changed.
func (r *WebhookSubscriptionReconciler) writeStatus(ctx context.Context, read, obj *kubehookv1.WebhookSubscription, result ctrl.Result, err error) (ctrl.Result, error) {
	if !r.leads() || statusEqual(&read.Status, &obj.Status) {
		return result, err
	}
	switch werr := r.Status().Update(ctx, obj); {
	case werr == nil:
		r.recordReadyChange(read, obj)
	case apierrors.IsNotFound(werr):
		// Deleted meanwhile: nothing to write to.
	case apierrors.IsConflict(werr):
		log.FromContext(ctx).V(1).Info("status write conflicted; reconciling again")
		return ctrl.Result{RequeueAfter: conflictRequeueAfter}, nil
	default:
		return result, kerrors.NewAggregate([]error{err, fmt.Errorf("writing status: %w", werr)})
	}
	return result, err
}

// markReady records a successful reconcile: Ready reflects whether the
// subscription is delivering; Reconciling and Stalled are removed.
func markReady(obj *kubehookv1.WebhookSubscription, entry *subscriptions.Subscription) {
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

func readyMessage(entry *subscriptions.Subscription) string {
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
