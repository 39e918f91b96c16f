// Package controllers holds the WebhookSubscription reconciler: on every
// replica it turns each object (with its Secrets and namespace) into an
// entry of the subscription index; on the leader it writes status, the one
// writer, from the engine's outcomes, and handles the test, replay, purge
// and reactivate annotations.
//
// It must not deliver: deliveries are the engine's (intake, queue,
// dispatcher, sender), which never writes objects.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/outcomes"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

// conflictRequeueAfter is how long a reconcile whose status write met a
// newer object waits for the cache to catch up.
const conflictRequeueAfter = 100 * time.Millisecond

// ControllerName names the controller in logs, metrics and Events.
const ControllerName = "webhooksubscription"

// WebhookSubscriptionReconciler keeps the delivery engine's registry in step
// with the WebhookSubscriptions of the cluster, and writes their status.
type WebhookSubscriptionReconciler struct {
	client.Client
	// SecretReader reads referenced Secrets directly from the API server, so
	// Secret contents are never cached: only their metadata is watched.
	SecretReader client.Reader
	Recorder     recorder.EventRecorder
	Registry     *subscriptions.Registry
	// Outcomes, when set, holds the delivery engine's outcomes; its events
	// wake the reconciler, the single writer of status.
	Outcomes *outcomes.Tracker
	// Sender sends test deliveries (annotation kubehook.io/test); nil turns them off.
	Sender TestSender
	// DeadLetters replays and purges dead letters (annotations
	// kubehook.io/replay and kubehook.io/purge-dead-letters); nil turns
	// them off.
	DeadLetters DeadLetterStore
	// Tenancy turns on the registry-namespace check of keys (see internal/tenancy).
	Tenancy bool
	// Circuits, when set, says until when the circuit breaker of an
	// endpoint's host is open (zero: closed), for status.circuitOpenUntil.
	Circuits func(endpoint string) time.Time
	// Leader reports whether this replica is the leader. Every replica
	// reconciles, so every replica's engine has every subscription; only
	// the leader writes status, records Events, sends test deliveries and
	// replays dead letters. Nil: this replica is the only one.
	Leader func() bool

	// resync wakes every subscription's reconcile when this replica
	// becomes the leader, so status is brought up to date at once.
	resync chan event.GenericEvent
}

func (r *WebhookSubscriptionReconciler) leads() bool { return r.Leader == nil || r.Leader() }

// eventf records an Event, from the leader only: Events are writes too.
func (r *WebhookSubscriptionReconciler) eventf(obj *kubehookv1.WebhookSubscription, eventType, reason, action, note string, args ...any) {
	if r.leads() {
		r.Recorder.Eventf(obj, nil, eventType, reason, action, note, args...)
	}
}

// +kubebuilder:rbac:groups=kubehook.io,resources=webhooksubscriptions,verbs=get;list;watch
// +kubebuilder:rbac:groups=kubehook.io,resources=webhooksubscriptions/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile registers one WebhookSubscription in the engine and writes its
// status, once, in a deferred patch.
func (r *WebhookSubscriptionReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	obj := &kubehookv1.WebhookSubscription{}
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	// The registry lives in memory, so deletion needs no finalizer.
	if !obj.DeletionTimestamp.IsZero() {
		r.forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}

	read := obj.DeepCopy()
	defer func() { result, retErr = r.writeStatus(ctx, read, obj, result, retErr) }()

	err := r.reconcile(ctx, obj)
	var stall *stalledError
	if errors.As(err, &stall) {
		// Terminal: a spec or Secret change (both watched) brings us back.
		log.FromContext(ctx).Info("subscription stalled", "reason", stall.reason, "message", stall.Error())
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, err
}

// reconcile runs the phases in order and records the outcome in obj.Status.
func (r *WebhookSubscriptionReconciler) reconcile(ctx context.Context, obj *kubehookv1.WebhookSubscription) error {
	id := client.ObjectKeyFromObject(obj)
	entry := &subscriptions.Subscription{
		ID:                  id,
		UID:                 obj.UID,
		Generation:          obj.Generation,
		Type:                obj.Spec.Type,
		Key:                 obj.Spec.Key,
		Endpoint:            obj.Spec.Endpoint,
		Suspended:           obj.Spec.Suspend,
		PayloadFormat:       obj.Spec.GetPayloadFormat(),
		Delivery:            subscriptions.DeliveryFor(&obj.Spec),
		SkipTLSVerification: obj.Spec.SkipTLSVerification,
	}

	for _, phase := range []func(context.Context, *kubehookv1.WebhookSubscription, *subscriptions.Subscription) error{
		r.checkSpec,
		r.checkTenancy,
		r.resolveSecrets,
		// Reactivation is judged on the status as stored, before the
		// engine's outcomes are folded in.
		r.applyInactive,
		r.applyDeliveryStatus,
		r.testDelivery,
	} {
		if err := phase(ctx, obj, entry); err != nil {
			var stall *stalledError
			if errors.As(err, &stall) {
				// Registered still, so its deliveries are held (or, for a
				// key no longer permitted, kept as dead letters), not lost.
				entry.Inactive = obj.Status.Inactive
				if stall.reason == kubehookv1.KeyNotPermittedReason {
					entry.NotPermitted = true
				} else {
					entry.Stalled = stall.reason + ": " + stall.Error()
				}
				r.Registry.Upsert(entry)
				markStalled(obj, stall.reason, stall.Error())
			} else {
				markReconciling(obj, err.Error())
			}
			return errors.Join(err, r.applyDeadLetters(ctx, obj))
		}
	}

	r.Registry.Upsert(entry)
	markReady(obj, entry)
	return r.applyDeadLetters(ctx, obj)
}

// DeadLetterStore keeps the dead letters of subscriptions (queue.Queue).
type DeadLetterStore interface {
	Replay(ctx context.Context, uid types.UID) (int, error)
	PurgeDeadLetters(ctx context.Context, uid types.UID) (int, error)
}

// SubscriptionExists returns the dispatcher's check that a subscription's
// object with that UID still exists: a read from reader, which must be the
// API server (not the cache), since a queued delivery is dropped on it.
func SubscriptionExists(reader client.Reader) func(context.Context, types.NamespacedName, types.UID) (bool, error) {
	return func(ctx context.Context, id types.NamespacedName, uid types.UID) (bool, error) {
		obj := &metav1.PartialObjectMetadata{}
		obj.SetGroupVersionKind(kubehookv1.GroupVersion.WithKind("WebhookSubscription"))
		if err := reader.Get(ctx, id, obj); err != nil {
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			return false, err
		}
		return obj.UID == uid, nil
	}
}

// forget removes a deleted subscription from the engine.
func (r *WebhookSubscriptionReconciler) forget(id types.NamespacedName) {
	r.Registry.Remove(id)
	if r.Outcomes != nil {
		r.Outcomes.Forget(id)
	}
}

// stalledError is a terminal failure: retrying cannot fix it, a change to the
// subscription, a Secret or the Namespace must.
type stalledError struct {
	reason string
	err    error
}

func (e *stalledError) Error() string { return e.err.Error() }
func (e *stalledError) Unwrap() error { return e.err }

func stalled(reason string, format string, args ...any) error {
	return &stalledError{reason: reason, err: fmt.Errorf(format, args...)}
}

// SetupWithManager registers the controller with the manager.
func (r *WebhookSubscriptionReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	b, err := r.builder(ctx, mgr)
	if err != nil {
		return err
	}
	return b.Complete(r)
}

// builder wires the watches; tests complete it with an instrumented reconciler.
func (r *WebhookSubscriptionReconciler) builder(ctx context.Context, mgr ctrl.Manager) (*builder.Builder, error) {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &kubehookv1.WebhookSubscription{}, secretRefIndex, indexSecretRefs); err != nil {
		return nil, fmt.Errorf("indexing %s: %w", secretRefIndex, err)
	}
	needLeader := false
	b := ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		// A test delivery waits on its endpoint; others go on meanwhile.
		// Every replica reconciles: its engine needs every subscription.
		WithOptions(controller.Options{MaxConcurrentReconciles: 4, NeedLeaderElection: &needLeader}).
		// Status writes change neither generation nor annotations, so they
		// do not come back as reconciles; kubehook.io/test and
		// kubehook.io/reactivate (annotations) do.
		For(&kubehookv1.WebhookSubscription{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		WatchesMetadata(&corev1.Secret{},
			handler.EnqueueRequestsFromMapFunc(r.requestsForSecret)).
		WatchesMetadata(&corev1.Namespace{},
			handler.EnqueueRequestsFromMapFunc(r.requestsForNamespace),
			builder.WithPredicates(registryNamespacesChanged{}))
	if r.Outcomes != nil {
		b = b.WatchesRawSource(source.Channel(r.Outcomes.Events(), &handler.EnqueueRequestForObject{}))
	}
	if r.Leader != nil {
		r.resync = make(chan event.GenericEvent, 1024)
		b = b.WatchesRawSource(source.Channel(r.resync, &handler.EnqueueRequestForObject{}))
		if err := mgr.Add(&electionResync{reader: mgr.GetClient(), out: r.resync}); err != nil {
			return nil, fmt.Errorf("adding the election resync: %w", err)
		}
	}
	return b, nil
}

// electionResync runs when this replica is elected (it needs leader
// election) and wakes the reconcile of every subscription: as a follower
// this replica registered them but wrote no status.
type electionResync struct {
	reader client.Reader
	out    chan<- event.GenericEvent
}

func (e *electionResync) Start(ctx context.Context) error {
	var list kubehookv1.WebhookSubscriptionList
	if err := e.reader.List(ctx, &list); err != nil {
		return fmt.Errorf("listing subscriptions after election: %w", err)
	}
	for i := range list.Items {
		select {
		case e.out <- event.GenericEvent{Object: &list.Items[i]}:
		case <-ctx.Done():
			return nil
		}
	}
	<-ctx.Done()
	return nil
}

// now is the reconciler's clock, for status timestamps.
var now = metav1.Now
