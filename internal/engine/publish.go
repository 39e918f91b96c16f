// Package engine is the delivery engine's entry point for event sources:
// Publish turns an event into one durable delivery per matching
// subscription.
package engine

import (
	"context"
	"fmt"

	"github.com/nats-io/nuid"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/payload"
	"github.com/kubehook/kubehook/internal/queue"
	"github.com/kubehook/kubehook/internal/registry"
)

// Event is a registry event as a source saw it.
type Event struct {
	// Repository is the registry path the event is about ("ns/repo"), or
	// empty for global events.
	Repository string
	// Payload is the DTR wrapper to deliver.
	Payload payload.Event
}

// Publisher matches events to subscriptions and queues the deliveries.
type Publisher struct {
	Registry *registry.Registry
	Queue    *queue.Queue
}

// Publish queues one delivery per matching subscription for every event, and
// returns only when all of them are durably stored. It returns the number
// of deliveries queued. On error nothing should be assumed stored, and the
// source should answer so that its client retries (delivery IDs are fresh,
// so a retry may deliver twice: at least once).
func (p *Publisher) Publish(ctx context.Context, events ...Event) (int, error) {
	var deliveries []queue.Delivery
	for _, ev := range events {
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
				ID:              "msg_" + nuid.Next(),
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
