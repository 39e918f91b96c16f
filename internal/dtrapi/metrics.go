package dtrapi

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// requestsTotal counts DTR API requests by route, method and status code.
var requestsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "kubehook_dtr_api_requests_total",
	Help: "DTR API requests by route, method and HTTP status code.",
}, []string{"route", "method", "code"})

func init() { ctrlmetrics.Registry.MustRegister(requestsTotal) }
