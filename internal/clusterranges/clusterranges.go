// Package clusterranges reads the cluster's own address ranges, the Service
// ranges (ServiceCIDR objects) and the Pod ranges (Nodes' spec.podCIDRs),
// from the manager's cache and keeps them current, so that the sender can
// refuse endpoints inside the cluster even where those ranges are public
// addresses.
package clusterranges

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// PublishFunc receives every new set of ranges, Service ranges first.
// Calls never overlap.
type PublishFunc func(service, pod []netip.Prefix)

// CacheByObject is the manager's cache configuration for the objects the
// Reader watches: of a Node only its name and Pod ranges are kept, since
// status (images, conditions) makes most of a Node's size and a cluster has
// thousands. Anything else reading Nodes from the manager's cache sees
// these trimmed Nodes.
func CacheByObject() map[client.Object]cache.ByObject {
	return map[client.Object]cache.ByObject{
		&corev1.Node{}: {Transform: trimNode},
	}
}

func trimNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	return &corev1.Node{
		TypeMeta:   n.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion},
		Spec:       corev1.NodeSpec{PodCIDR: n.Spec.PodCIDR, PodCIDRs: n.Spec.PodCIDRs},
	}, nil
}

// Reader keeps the cluster's ranges and hands each new set to its
// PublishFunc. It is a manager.Runnable that runs on every replica, since
// every replica delivers.
type Reader struct {
	publish PublishFunc
	log     logr.Logger
	regs    []toolscache.ResourceEventHandlerRegistration

	mu       sync.Mutex
	synced   bool                      // the first set was published
	services map[string][]netip.Prefix // by ServiceCIDR name
	pods     map[string][]netip.Prefix // by Node name
}

// The Reader lists and watches Nodes and ServiceCIDRs (in the manager's cache):
// +kubebuilder:rbac:groups="",resources=nodes,verbs=list;watch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=servicecidrs,verbs=list;watch

// Setup registers the Reader's informers with the manager's cache, which
// must be configured with CacheByObject. Called before the manager starts,
// the manager waits for their first lists before starting deliveries. When
// the API server does not serve networking.k8s.io/v1 ServiceCIDR (before
// Kubernetes 1.33), only the Pod ranges are read. Add the Reader to the
// manager.
func Setup(ctx context.Context, mgr manager.Manager, publish PublishFunc, log logr.Logger) (*Reader, error) {
	r := &Reader{publish: publish, log: log, services: map[string][]netip.Prefix{}, pods: map[string][]netip.Prefix{}}
	if err := r.watch(ctx, mgr.GetCache(), &corev1.Node{}, r.pods, nodeRanges); err != nil {
		return nil, fmt.Errorf("watching Nodes for the cluster's Pod ranges: %w", err)
	}
	served, err := servesServiceCIDR(mgr.GetRESTMapper())
	if err != nil {
		return nil, err
	}
	if !served {
		log.Info("the API server does not serve networking.k8s.io/v1 ServiceCIDR: the cluster's Service ranges are not read, and are refused only as the private addresses they usually are")
		return r, nil
	}
	if err := r.watch(ctx, mgr.GetCache(), &networkingv1.ServiceCIDR{}, r.services, serviceCIDRRanges); err != nil {
		return nil, fmt.Errorf("watching ServiceCIDRs for the cluster's Service ranges: %w", err)
	}
	return r, nil
}

// servesServiceCIDR reports whether the API server serves networking.k8s.io/v1 ServiceCIDR.
func servesServiceCIDR(mapper meta.RESTMapper) (bool, error) {
	_, err := mapper.RESTMapping(schema.GroupKind{Group: networkingv1.GroupName, Kind: "ServiceCIDR"}, networkingv1.SchemeGroupVersion.Version)
	switch {
	case err == nil:
		return true, nil
	case meta.IsNoMatchError(err):
		return false, nil
	}
	return false, fmt.Errorf("looking up the ServiceCIDR API: %w", err)
}

// NeedLeaderElection is false: every replica delivers, so every replica
// needs the ranges.
func (r *Reader) NeedLeaderElection() bool { return false }

// Start publishes the first set once every informer has delivered its
// first list (publishing on each Node of that list would rebuild the set
// once per Node), then waits for ctx; later changes are published as they
// come.
func (r *Reader) Start(ctx context.Context) error {
	synced := make([]toolscache.InformerSynced, len(r.regs))
	for i, reg := range r.regs {
		synced[i] = reg.HasSynced
	}
	if !toolscache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil // stopped before
	}
	r.mu.Lock()
	r.synced = true
	service, pod := r.publishLocked()
	r.mu.Unlock()
	r.log.Info("refusing endpoints in the cluster's own ranges unless allowed", "serviceRanges", service, "podRanges", len(pod))
	<-ctx.Done()
	return nil
}

// ranges returns the name of a watched object and the ranges it holds.
type ranges func(obj any) (name string, cidrs []string, ok bool)

func nodeRanges(obj any) (string, []string, bool) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return "", nil, false
	}
	if len(n.Spec.PodCIDRs) == 0 && n.Spec.PodCIDR != "" {
		return n.Name, []string{n.Spec.PodCIDR}, true
	}
	return n.Name, n.Spec.PodCIDRs, true
}

func serviceCIDRRanges(obj any) (string, []string, bool) {
	s, ok := obj.(*networkingv1.ServiceCIDR)
	if !ok {
		return "", nil, false
	}
	// A ServiceCIDR being deleted still holds Service IPs until its
	// finalizer is removed, so it counts until it is gone.
	return s.Name, s.Spec.CIDRs, true
}

// watch keeps into the ranges of the objects of obj's kind, by name.
func (r *Reader) watch(ctx context.Context, c cache.Cache, obj client.Object, into map[string][]netip.Prefix, get ranges) error {
	inf, err := c.GetInformer(ctx, obj)
	if err != nil {
		return err
	}
	set := func(o any) {
		name, cidrs, ok := get(o)
		if !ok {
			return
		}
		ps := r.parse(name, cidrs)
		r.mu.Lock()
		defer r.mu.Unlock()
		if old, had := into[name]; had && slices.Equal(old, ps) {
			return // a status update: the ranges did not change
		}
		into[name] = ps
		r.publishLocked()
	}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { set(o) },
		UpdateFunc: func(_, o any) { set(o) },
		DeleteFunc: func(o any) {
			name, _, ok := get(o)
			if t, tomb := o.(toolscache.DeletedFinalStateUnknown); tomb {
				// Missed while the watch was down; the key of a
				// cluster-scoped object is its name.
				name, ok = t.Key, true
			}
			if !ok {
				return
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			if _, had := into[name]; had {
				delete(into, name)
				r.publishLocked()
			}
		},
	})
	if err != nil {
		return err
	}
	r.regs = append(r.regs, reg)
	return nil
}

// parse parses an object's ranges; the API server validates them, so a
// bad one is only logged.
func (r *Reader) parse(name string, cidrs []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range cidrs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			r.log.Info("ignoring a range that does not parse", "object", name, "range", s, "error", err.Error())
			continue
		}
		out = append(out, p.Masked())
	}
	return out
}

// publishLocked hands the current set to publish once the first set is
// complete, and returns it; r.mu is held.
func (r *Reader) publishLocked() (service, pod []netip.Prefix) {
	if !r.synced {
		return nil, nil
	}
	service, pod = flatten(r.services), flatten(r.pods)
	r.publish(service, pod)
	return service, pod
}

func flatten(m map[string][]netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, ps := range m {
		out = append(out, ps...)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out)
}
