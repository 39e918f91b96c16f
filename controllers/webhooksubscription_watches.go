package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

// secretRefIndex indexes subscriptions by the names of the Secrets they refer to.
const secretRefIndex = ".spec.secretRefs"

func indexSecretRefs(o client.Object) []string {
	sub, ok := o.(*kubehookv1.WebhookSubscription)
	if !ok {
		return nil
	}
	var names []string
	for _, ref := range []*kubehookv1.SecretReference{sub.Spec.TLSSecretRef, sub.Spec.SigningSecretRef, sub.Spec.HeadersSecretRef} {
		if ref != nil {
			names = append(names, ref.Name)
		}
	}
	return names
}

// requestsForSecret maps a Secret to the subscriptions of its namespace that refer to it.
func (r *WebhookSubscriptionReconciler) requestsForSecret(ctx context.Context, secret client.Object) []reconcile.Request {
	return r.requestsFor(ctx, client.InNamespace(secret.GetNamespace()), client.MatchingFields{secretRefIndex: secret.GetName()})
}

// requestsForNamespace maps a Namespace to every subscription in it.
func (r *WebhookSubscriptionReconciler) requestsForNamespace(ctx context.Context, ns client.Object) []reconcile.Request {
	return r.requestsFor(ctx, client.InNamespace(ns.GetName()))
}

func (r *WebhookSubscriptionReconciler) requestsFor(ctx context.Context, opts ...client.ListOption) []reconcile.Request {
	var list kubehookv1.WebhookSubscriptionList
	if err := r.List(ctx, &list, opts...); err != nil {
		log.FromContext(ctx).Error(err, "listing subscriptions for a watched object")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{
			Namespace: list.Items[i].Namespace, Name: list.Items[i].Name,
		}})
	}
	return reqs
}

// registryNamespacesChanged passes Namespace updates that change the
// kubehook.io/registry-namespaces annotation.
type registryNamespacesChanged struct {
	predicate.Funcs
}

func (registryNamespacesChanged) Create(event.CreateEvent) bool   { return false }
func (registryNamespacesChanged) Delete(event.DeleteEvent) bool   { return false }
func (registryNamespacesChanged) Generic(event.GenericEvent) bool { return false }
func (registryNamespacesChanged) Update(e event.UpdateEvent) bool {
	if e.ObjectOld == nil || e.ObjectNew == nil {
		return false
	}
	oldV, oldOK := e.ObjectOld.GetAnnotations()[kubehookv1.RegistryNamespacesAnnotation]
	newV, newOK := e.ObjectNew.GetAnnotations()[kubehookv1.RegistryNamespacesAnnotation]
	return oldOK != newOK || oldV != newV
}
