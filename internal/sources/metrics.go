package sources

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Reasons a source request is rejected, the "reason" label of
// RequestsRejectedTotal.
const (
	ReasonUnauthorized         = "unauthorized"
	ReasonBadRequest           = "bad_request"
	ReasonTooLarge             = "too_large"
	ReasonUnsupportedMediaType = "unsupported_media_type"
	ReasonMethodNotAllowed     = "method_not_allowed"
	ReasonUnavailable          = "unavailable"
	// ReasonInternal: a parser failed for a reason other than bad input.
	ReasonInternal = "internal"
)

var (
	// EventsReceivedTotal counts the events accepted from each source (the
	// request was answered 202), by the DTR type they were mapped to.
	EventsReceivedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kubehook_events_received_total",
		Help: "Events accepted from a source (distribution, harbor, events), by DTR event type.",
	}, []string{"source", "type"})

	// RequestsRejectedTotal counts source requests answered with an error.
	RequestsRejectedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kubehook_source_requests_rejected_total",
		Help: "Source requests rejected, by source and reason (unauthorized, bad_request, too_large, unsupported_media_type, method_not_allowed, unavailable, internal).",
	}, []string{"source", "reason"})

	// InspectionsFailedTotal counts image inspections that failed; the
	// events were delivered without os and architecture.
	InspectionsFailedTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kubehook_image_inspections_failed_total",
		Help: "Image inspections (os and architecture from the registry) that failed; the events were delivered with those fields empty.",
	})
)

func init() {
	ctrlmetrics.Registry.MustRegister(EventsReceivedTotal, RequestsRejectedTotal, InspectionsFailedTotal)
}
