package queue

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"k8s.io/apimachinery/pkg/types"
)

// Headers of a delivery message.
const (
	hdrDeliveryID   = "Kubehook-Delivery-Id"
	hdrSubscription = "Kubehook-Subscription"
	hdrEventType    = "Kubehook-Event-Type"
	hdrAttempt      = "Kubehook-Attempt"
	hdrQueuedAt     = "Kubehook-Queued-At"
	hdrLastError    = "Kubehook-Last-Error"
)

// Delivery is one event on its way to one subscription.
type Delivery struct {
	// ID is the webhook-id: the same on every attempt of this delivery.
	ID string
	// Subscription and SubscriptionUID name the receiving WebhookSubscription;
	// a recreated object (new UID) does not inherit deliveries.
	Subscription    types.NamespacedName
	SubscriptionUID types.UID
	// EventType is the DTR type of Event.
	EventType string
	// Attempts counts the attempts already made.
	Attempts int
	// QueuedAt is when a source handed the event in (or it was replayed);
	// held deliveries older than the dead-letter retention are given up.
	// Publish sets it when zero.
	QueuedAt time.Time
	// Event is the DTR wrapper {"type", "createdAt", "contents"}, as JSON.
	Event []byte
}

func deliverySubject(uid types.UID) string { return deliverySubjectPrefix + string(uid) }
func parkedSubject(uid types.UID) string   { return parkedSubjectPrefix + string(uid) }

// retrySubject holds the waiting retry of one delivery and attempt count;
// the subscription UID comes first so a subscription's retries can be
// counted by subject.
func retrySubject(uid types.UID, id string, attempts int) string {
	return fmt.Sprintf("%s%s.%s.%d", retrySubjectPrefix, uid, id, attempts)
}

// deadSubject holds a subscription's dead letters of one reason, so both can
// be counted by subject without reading a message.
func deadSubject(uid types.UID, reason string) string {
	return deadSubjectPrefix + string(uid) + "." + reason
}

// subjectUID returns the subscription UID of a delivery or parked subject.
func subjectUID(subject string) (types.UID, bool) {
	for _, prefix := range []string{deliverySubjectPrefix, parkedSubjectPrefix} {
		if uid, ok := strings.CutPrefix(subject, prefix); ok && uid != "" {
			return types.UID(uid), true
		}
	}
	return "", false
}

func (d *Delivery) message(subject string) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Header.Set(hdrDeliveryID, d.ID)
	m.Header.Set(hdrSubscription, d.Subscription.String())
	m.Header.Set(hdrEventType, d.EventType)
	m.Header.Set(hdrAttempt, strconv.Itoa(d.Attempts))
	if !d.QueuedAt.IsZero() {
		m.Header.Set(hdrQueuedAt, strconv.FormatInt(d.QueuedAt.UnixMilli(), 10))
	}
	m.Data = d.Event
	return m
}

// decode reads a delivery back from a message of the deliveries stream.
func decode(subject string, h nats.Header, data []byte) (*Delivery, error) {
	uid, ok := subjectUID(subject)
	if !ok {
		return nil, fmt.Errorf("subject %q is not a delivery subject", subject)
	}
	return decodeFor(uid, h, data)
}

// decodeFor reads a delivery of subscription uid from its headers and body.
func decodeFor(uid types.UID, h nats.Header, data []byte) (*Delivery, error) {
	d := &Delivery{
		ID:              h.Get(hdrDeliveryID),
		SubscriptionUID: uid,
		EventType:       h.Get(hdrEventType),
		Event:           data,
	}
	if d.ID == "" {
		return nil, fmt.Errorf("header %s missing", hdrDeliveryID)
	}
	ns, name, ok := strings.Cut(h.Get(hdrSubscription), "/")
	if !ok || ns == "" || name == "" {
		return nil, fmt.Errorf("header %s %q is not namespace/name", hdrSubscription, h.Get(hdrSubscription))
	}
	d.Subscription = types.NamespacedName{Namespace: ns, Name: name}
	n, err := strconv.Atoi(h.Get(hdrAttempt))
	if err != nil || n < 0 {
		return nil, fmt.Errorf("header %s %q is not a count", hdrAttempt, h.Get(hdrAttempt))
	}
	d.Attempts = n
	// Absent in deliveries queued by earlier versions: they count from now.
	if v := h.Get(hdrQueuedAt); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("header %s %q is not a time", hdrQueuedAt, v)
		}
		d.QueuedAt = time.UnixMilli(ms)
	}
	return d, nil
}
