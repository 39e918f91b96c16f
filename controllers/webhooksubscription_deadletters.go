package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

// applyDeadLetters acts on new values of kubehook.io/replay and
// kubehook.io/purge-dead-letters, once each, and copies the queue's counts
// of the subscription's deliveries and dead letters into status. It runs
// whether or not the subscription is ready: a stalled subscription's held
// backlog is what its owner needs to see.
func (r *WebhookSubscriptionReconciler) applyDeadLetters(ctx context.Context, obj *kubehookv1.WebhookSubscription) error {
	st := &obj.Status
	// The leader alone acts, so a replay is queued once.
	if r.DeadLetters != nil && r.leads() {
		replayed, err := r.deadLetterRequest(ctx, obj, kubehookv1.ReplayAnnotation, &st.LastReplay, r.DeadLetters.Replay)
		if err != nil {
			return err
		}
		if replayed >= 0 {
			r.eventf(obj, corev1.EventTypeNormal, "Replayed", "Replay", "queued %d dead letters again", replayed)
		}
		purged, err := r.deadLetterRequest(ctx, obj, kubehookv1.PurgeDeadLettersAnnotation, &st.LastPurge, r.DeadLetters.PurgeDeadLetters)
		if err != nil {
			return err
		}
		if purged >= 0 {
			r.eventf(obj, corev1.EventTypeNormal, "Purged", "PurgeDeadLetters", "deleted %d dead letters", purged)
		}
	}
	if r.Outcomes != nil {
		c := r.Outcomes.Counts(client.ObjectKeyFromObject(obj), obj.UID)
		st.Backlog, st.DeadLetters = c.Backlog, c.DeadLetters
	}
	return nil
}

// deadLetterRequest runs action once for a new value of the annotation and
// records it in *last; it returns how many dead letters it affected, or -1
// when there was nothing to do. A failed action is not recorded, so the
// next reconcile tries again; replaying what is left.
func (r *WebhookSubscriptionReconciler) deadLetterRequest(ctx context.Context, obj *kubehookv1.WebhookSubscription, annotation string,
	last **kubehookv1.DeadLetterAction, action func(context.Context, types.UID) (int, error)) (int, error) {
	request := obj.Annotations[annotation]
	if request == "" || (*last != nil && (*last).Request == request) {
		return -1, nil
	}
	n, err := action(ctx, obj.UID)
	if err != nil {
		return -1, fmt.Errorf("%s %q: %w", annotation, request, err)
	}
	*last = &kubehookv1.DeadLetterAction{Request: request, RequestedAt: ptrTime(now()), Count: int64(n)}
	if r.Outcomes != nil {
		r.Outcomes.Refresh()
	}
	return n, nil
}
