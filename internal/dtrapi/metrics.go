package dtrapi

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// requestsTotal counts DTR API requests by route, method and status code.
var requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "kubehook_dtr_api_requests_total",
	Help: "DTR API requests by route, method and HTTP status code.",
}, []string{"route", "method", "code"})

func init() { ctrlmetrics.Registry.MustRegister(requestsTotal) }

// methodLabel bounds the method label: the method is the caller's choice.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodPost, http.MethodDelete, http.MethodPut, http.MethodPatch, http.MethodHead, http.MethodOptions:
		return m
	}
	return "other"
}

// statusRecorder remembers the answer's status for the metrics.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}
