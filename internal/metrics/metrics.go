// Package metrics defines kubehook's Prometheus metrics, registered with
// controller-runtime's registry so they are served on the manager's metrics
// endpoint.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// States of Subscriptions, the "state" label of kubehook_subscriptions.
// Each registered subscription is in exactly one, the first that applies.
const (
	StateInactive     = "inactive"
	StateNotPermitted = "not_permitted"
	StateSuspended    = "suspended"
	StateStalled      = "stalled"
	StateReady        = "ready"
)

// SubscriptionStates lists every state, so each is exported, at zero too.
var SubscriptionStates = []string{StateReady, StateSuspended, StateStalled, StateInactive, StateNotPermitted}

// Results of a delivery attempt, the "result" label of DeliveriesTotal.
const (
	ResultSuccess    = "success"
	ResultRetry      = "retry"
	ResultDeadLetter = "dead_letter"
	ResultDropped    = "dropped"
	ResultDeactivate = "deactivated"
	ResultHeld       = "held"
)

// States of CircuitBreakerStates. Closed breakers are not counted: every
// endpoint host would be one.
const (
	BreakerOpen     = "open"
	BreakerHalfOpen = "half_open"
)

// Consumers, the "consumer" label of ConsumerErrorsTotal.
const (
	ConsumerShared = "shared"
	ConsumerParked = "parked"
)

var (
	// DeliveriesTotal counts finished attempts and dropped deliveries.
	DeliveriesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kubehook_deliveries_total",
		Help: "Delivery attempts by event type and result (success, retry, dead_letter, deactivated); deliveries held for a suspended or stalled subscription (held), and dropped because their subscription no longer exists (dropped).",
	}, []string{"type", "result"})

	// DeliveryDuration observes the duration of each HTTP attempt.
	DeliveryDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kubehook_delivery_duration_seconds",
		Help:    "Duration of one HTTP delivery attempt, by event type.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"type"})

	// QueuePending is the number of deliveries in the stream.
	QueuePending = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kubehook_queue_pending",
		Help: "Deliveries in the queue: waiting, in flight, scheduled for retry, or on a subscription's own line (held ones included).",
	})

	// QueueOldestDeliveryAge says whether the dispatcher keeps up: a
	// healthy queue hands a delivery out within seconds of its arrival.
	QueueOldestDeliveryAge = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kubehook_queue_oldest_delivery_age_seconds",
		Help: "Seconds the oldest delivery ready for an attempt (waiting for the dispatcher, or in flight) has been in the queue since it was queued or its retry fell due; 0 when none. Not counted: retries waiting for their time, deliveries on a subscription's own line (slow, or held for a suspended or stalled subscription: status.backlog), dead letters (kubehook_dead_letters). Exported by the replica that writes status.",
	})

	// QueueUp is 1 while the queue answers, so an alert can tell an
	// unreachable NATS from an idle one.
	QueueUp = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "kubehook_queue_up",
		Help: "1 when this replica is connected to NATS and JetStream answered its last stream query, else 0. The query is made when the queue changed or a consumer reported an error (a missed heartbeat): while the queue is quiet, the consumers' heartbeats watch over JetStream.",
	})

	// Subscriptions counts registered subscriptions by state.
	Subscriptions = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kubehook_subscriptions",
		Help: "Registered subscriptions by state: ready (delivering), suspended, stalled (a Secret or TLS problem; deliveries held), inactive, not_permitted (key not permitted by tenancy).",
	}, []string{"state"})

	// ParkedTotal counts deliveries moved to the line of a subscription
	// that was at its in-flight limit (a slow endpoint being isolated).
	ParkedTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kubehook_parked_deliveries_total",
		Help: "Deliveries moved to the line of their own of a subscription at its in-flight limit, so they wait there rather than in front of other subscriptions.",
	})

	// DeadLettersTotal counts deliveries moved to the dead-letter stream.
	DeadLettersTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kubehook_dead_letters_total",
		Help: "Deliveries given up and kept as dead letters (attempts exhausted, subscription inactive or not permitted, held too long).",
	})

	// DeadLetters is the number of dead letters kept, by reason.
	DeadLetters = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kubehook_dead_letters",
		Help: "Dead letters kept for replay, by reason (exhausted, deactivated, inactive, key-not-permitted, held-too-long, held-limit, unrenderable, undecodable).",
	}, []string{"reason"})

	// The circuit breakers' metrics. Their labels are bounded: neither
	// hosts nor subscriptions are labels (either may be countless); which
	// hosts are open shows in the status of their subscriptions.
	CircuitBreakerStates = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kubehook_circuit_breaker_state",
		Help: "Endpoint hosts whose circuit breaker is open (deliveries wait, none attempted) or half_open (one probe attempt in flight).",
	}, []string{"state"})
	CircuitBreakerTrips = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kubehook_circuit_breaker_trips_total",
		Help: "Circuit breakers opened after consecutive failed attempts (no answer, timeouts, 5xx) to one endpoint host.",
	})
	CircuitBreakerDeferred = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kubehook_circuit_breaker_deferred_total",
		Help: "Deliveries not attempted because their endpoint host's circuit breaker was open, scheduled again for when it half-opens; no attempt is counted.",
	})

	// ConsumerErrorsTotal counts errors of the queue's consumers.
	ConsumerErrorsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kubehook_queue_consumer_errors_total",
		Help: "Errors while consuming deliveries (missed heartbeats, a deleted consumer, a lost connection), by consumer (shared, parked); consumption restarts by itself.",
	}, []string{"consumer"})
)

func init() {
	ctrlmetrics.Registry.MustRegister(DeliveriesTotal, DeliveryDuration, QueuePending, QueueOldestDeliveryAge, QueueUp, Subscriptions,
		DeadLettersTotal, ParkedTotal, DeadLetters, ConsumerErrorsTotal,
		CircuitBreakerStates, CircuitBreakerTrips, CircuitBreakerDeferred, SubscriptionDeliveriesTotal)
	// Both breaker states are exported from the start, at zero.
	CircuitBreakerStates.WithLabelValues(BreakerOpen)
	CircuitBreakerStates.WithLabelValues(BreakerHalfOpen)
}
