package kubehooktest

import (
	"fmt"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

// TagPushSubscription is a TAG_PUSH subscription of key to endpoint, with
// the defaults of every other field.
func TagPushSubscription(ns, name, key, endpoint string) *kubehookv1.WebhookSubscription {
	return &kubehookv1.WebhookSubscription{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: kubehookv1.WebhookSubscriptionSpec{
			Type:     kubehookv1.TagPush,
			Key:      key,
			Endpoint: endpoint,
		},
	}
}

// ReadyShortOf says why sub's Ready condition is not status with reason
// for its current generation, or "" when it is; reason "" takes any
// reason. A nil sub was not found.
func ReadyShortOf(sub *kubehookv1.WebhookSubscription, status metav1.ConditionStatus, reason string) string {
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
	case c.Status != status || (reason != "" && c.Reason != reason):
		return fmt.Sprintf("Ready=%s (%s): %s", c.Status, c.Reason, c.Message)
	}
	return ""
}
