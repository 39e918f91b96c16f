package dtrapi

import (
	"context"
	"errors"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache/informertest"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllertest"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

// The map answers only once it holds the informer's first list, then
// follows additions and deletions, tombstones included.
func TestUIDsAnswerOnceListedAndFollowTheInformer(t *testing.T) {
	s := runtime.NewScheme()
	if err := kubehookv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	inf := controllertest.NewFakeInformer()
	gvk := schema.GroupVersionKind{Group: kubehookv1.GroupVersion.Group, Version: kubehookv1.GroupVersion.Version, Kind: "WebhookSubscription"}
	ctx := context.Background()
	u, err := WatchUIDs(ctx, &informertest.FakeInformers{Scheme: s, InformersByGVK: map[schema.GroupVersionKind]toolscache.SharedIndexInformer{gvk: inf}})
	if err != nil {
		t.Fatal(err)
	}
	sub := &kubehookv1.WebhookSubscription{ObjectMeta: metav1.ObjectMeta{Namespace: "acme", Name: "hook", UID: "uid-1"}}

	inf.Add(sub)
	ended, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := u.Name(ended, sub.UID); !errors.Is(err, context.Canceled) {
		t.Fatalf("before the first list is in: %v, want the context's error", err)
	}

	inf.Synced()
	name, ok, err := u.Name(ctx, sub.UID)
	if err != nil || !ok || name != (types.NamespacedName{Namespace: "acme", Name: "hook"}) {
		t.Fatalf("after the first list: %v %v %v", name, ok, err)
	}
	if _, ok, _ := u.Name(ctx, "uid-2"); ok {
		t.Fatal("an unknown UID was found")
	}

	inf.Delete(sub)
	if _, ok, _ := u.Name(ctx, sub.UID); ok {
		t.Fatal("a deleted subscription was still found")
	}
	inf.Add(sub)
	u.remove(toolscache.DeletedFinalStateUnknown{Key: "acme/hook", Obj: sub})
	if _, ok, _ := u.Name(ctx, sub.UID); ok {
		t.Fatal("a subscription deleted while unwatched was still found")
	}
}
