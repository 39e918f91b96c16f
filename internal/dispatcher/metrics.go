package dispatcher

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// States of kubehook_circuit_breaker_state. Closed breakers are not
// counted: every endpoint host would be one.
const (
	breakerOpen     = "open"
	breakerHalfOpen = "half_open"
)

// The circuit breakers' metrics. Their labels are bounded: neither hosts
// nor subscriptions are labels (either may be countless); which hosts are
// open shows in the status of their subscriptions.
var (
	breakerStates = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kubehook_circuit_breaker_state",
		Help: "Endpoint hosts whose circuit breaker is open (deliveries wait, none attempted) or half_open (one probe attempt in flight).",
	}, []string{"state"})

	breakerTrips = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kubehook_circuit_breaker_trips_total",
		Help: "Circuit breakers opened after consecutive failed attempts (no answer, timeouts, 5xx) to one endpoint host.",
	})

	breakerDeferred = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kubehook_circuit_breaker_deferred_total",
		Help: "Deliveries not attempted because their endpoint host's circuit breaker was open, scheduled again for when it half-opens; no attempt is counted.",
	})
)

func init() {
	ctrlmetrics.Registry.MustRegister(breakerStates, breakerTrips, breakerDeferred)
	// Both states are exported from the start, at zero.
	breakerStates.WithLabelValues(breakerOpen)
	breakerStates.WithLabelValues(breakerHalfOpen)
}
