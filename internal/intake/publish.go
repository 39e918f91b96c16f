// Package intake is where events enter the delivery engine: Publish turns
// an event from a source into one durable delivery per matching
// subscription, rendered once, and returns only once the queue has stored
// them all, so a source answers its client only for what is kept.
//
// It must not send anything, judge a subscription's health, or write a
// Kubernetes object; delivering is the dispatcher's.
package intake

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"fmt"

	"github.com/nats-io/nuid"
	"k8s.io/apimachinery/pkg/types"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/payload"
	"github.com/kubehook/kubehook/internal/queue"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

// Event is a registry event as a source saw it.
type Event struct {
	// ID identifies the source event this event was made from, so that a
	// resend of the same notification has the same ID: the Distribution
	// event id, a hash of what identifies a Harbor event, a producer's
	// Idempotency-Key. Sources prefix it with their name, so IDs of
	// different sources never meet. Several events made from one source
	// event (a push's TAG_PUSH and MANIFEST_PUSH) may share it when their
	// types differ. Empty means no identity is known: every Publish of the
	// event is a new delivery.
	ID string
	// Repository is the registry path the event is about ("ns/repo"), or
	// empty for global events.
	Repository string
	// Payload is the DTR wrapper to deliver.
	Payload payload.Event
}

// Publisher matches events to subscriptions and queues the deliveries.
type Publisher struct {
	Registry *subscriptions.Registry
	Queue    *queue.Queue
}

// Publish queues one delivery per matching subscription for every event, and
// returns only when all of them are durably stored. It returns the number
// of deliveries queued, counting those the queue already held (the same
// delivery IDs, stored within the duplicate window, are stored once). On
// error nothing should be assumed stored, and the source should answer so
// that its client retries: deliveries of events with an ID are then stored
// once, those of events without one may be delivered twice (at least once).
func (p *Publisher) Publish(ctx context.Context, events ...Event) (int, error) {
	var deliveries []queue.Delivery
	for i := range events {
		ev := &events[i]
		// Encoded once per event (and once more under REPO_EVENT), shared by
		// its deliveries.
		var encoded [2][]byte
		for _, sub := range p.Registry.Match(ev.Payload.Type, ev.Repository) {
			body, slot := ev.Payload, 0
			// REPO_EVENT subscribers get the repository events under their
			// own type, with contents.event naming which.
			if sub.Type == kubehookv1.RepoEvent {
				body.Type, slot = kubehookv1.RepoEvent, 1
			}
			if encoded[slot] == nil {
				data, err := body.MarshalJSON()
				if err != nil {
					return 0, fmt.Errorf("encoding %s event: %w", ev.Payload.Type, err)
				}
				encoded[slot] = data
			}
			data := encoded[slot]
			deliveries = append(deliveries, queue.Delivery{
				ID:              DeliveryID(ev, body.Type, sub.UID),
				Subscription:    sub.ID,
				SubscriptionUID: sub.UID,
				EventType:       string(body.Type),
				Event:           data,
			})
		}
	}
	if len(deliveries) == 0 {
		return 0, nil
	}
	if err := p.Queue.Publish(ctx, deliveries); err != nil {
		return 0, err
	}
	return len(deliveries), nil
}

// deliveryIDBytes is how much of the SHA-256 a derived delivery ID keeps:
// far beyond any chance of two deliveries colliding, and a whole number of
// base32 characters (32).
const deliveryIDBytes = 20

// deliveryIDEncoding is lowercase base32 without padding: letters and
// digits only, valid in a NATS message ID, a subject token (retries are
// keyed by it) and an HTTP header.
var deliveryIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// deliveryIDContext separates these hashes from any other use of SHA-256
// over similar input, and lets a later scheme change it.
const deliveryIDContext = "kubehook delivery id v1\x00"

// DeliveryID is the webhook-id of the delivery of ev, under the type
// delivered (REPO_EVENT for REPO_EVENT subscribers, else ev's own), to the
// subscription with uid. For an event with an ID it is derived from the
// ID, both types and uid: "msg_" and 32 lowercase base32 characters of a
// SHA-256 over them, so a resent source event gets the IDs of its first
// deliveries, and the queue stores them once. Without an ID it is random.
func DeliveryID(ev *Event, delivered kubehookv1.EventType, uid types.UID) string {
	if ev.ID == "" {
		return "msg_" + nuid.Next()
	}
	// Length-prefixed fields, so no two different inputs hash the same
	// bytes. Most fit in buf, which stays on the stack.
	var buf [256]byte
	b := append(buf[:0], deliveryIDContext...)
	for _, f := range [...]string{ev.ID, string(ev.Payload.Type), string(delivered), string(uid)} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	sum := sha256.Sum256(b)
	var id [len("msg_") + 32]byte
	copy(id[:], "msg_")
	deliveryIDEncoding.Encode(id[len("msg_"):], sum[:deliveryIDBytes])
	return string(id[:])
}
