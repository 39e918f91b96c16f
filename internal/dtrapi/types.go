package dtrapi

import (
	"time"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

// Webhook is a subscription as the DTR API shows it: exactly the fields of
// DTR's webhook object.
type Webhook struct {
	// ID is the WebhookSubscription's UID.
	ID       string `json:"id"`
	Type     string `json:"type"`
	Key      string `json:"key"`
	Endpoint string `json:"endpoint"`
	// AuthorID is the creator's user UID (or name), from the
	// kubehook.io/author-id annotation; empty when unknown.
	AuthorID  string    `json:"authorID"`
	CreatedAt time.Time `json:"createdAt"`
	// LastSuccessfulAt is the zero time (0001-01-01T00:00:00Z) before the
	// first success, as in DTR.
	LastSuccessfulAt    time.Time `json:"lastSuccessfulAt"`
	Inactive            bool      `json:"inactive"`
	TLSCert             string    `json:"tlsCert"`
	SkipTLSVerification bool      `json:"skipTLSVerification"`
}

// webhookFor converts a WebhookSubscription to the DTR object.
func webhookFor(s *kubehookv1.WebhookSubscription) Webhook {
	w := Webhook{
		ID:                  string(s.UID),
		Type:                string(s.Spec.Type),
		Key:                 s.Spec.Key,
		Endpoint:            s.Spec.Endpoint,
		AuthorID:            s.Annotations[kubehookv1.AuthorIDAnnotation],
		CreatedAt:           s.CreationTimestamp.UTC(),
		Inactive:            s.Status.Inactive,
		TLSCert:             s.Spec.TLSCert,
		SkipTLSVerification: s.Spec.SkipTLSVerification,
	}
	if t := s.Status.LastSuccessfulAt; t != nil {
		w.LastSuccessfulAt = t.UTC()
	}
	return w
}

// CreateRequest is the body of POST /api/v0/webhooks.
type CreateRequest struct {
	Type                string `json:"type"`
	Key                 string `json:"key"`
	Endpoint            string `json:"endpoint"`
	SkipTLSVerification bool   `json:"skipTLSVerification"`
	TLSCert             string `json:"tlsCert"`
}

// TestRequest is the body of POST /api/v0/webhooks/test. Besides DTR's type
// and endpoint it takes the TLS settings of a subscription, so an endpoint
// with a private CA can be tried before subscribing.
type TestRequest struct {
	Type                string `json:"type"`
	Endpoint            string `json:"endpoint"`
	SkipTLSVerification bool   `json:"skipTLSVerification"`
	TLSCert             string `json:"tlsCert"`
}

// TestResult is the answer to a test delivery the endpoint accepted.
type TestResult struct {
	Type       string `json:"type"`
	Endpoint   string `json:"endpoint"`
	Success    bool   `json:"success"`
	StatusCode int    `json:"statusCode"`
	Message    string `json:"message"`
}

// ErrorBody is DTR's error shape:
//
//	{"errors": [{"code": "INVALID_PARAMETERS", "message": "...", "detail": {"field": "endpoint"}}]}
type ErrorBody struct {
	Errors []Error `json:"errors"`
}

// Error is one entry of ErrorBody.
type Error struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Detail  map[string]any `json:"detail,omitempty"`
}

// Error codes.
const (
	CodeNotAuthenticated     = "NOT_AUTHENTICATED"
	CodeNotAuthorized        = "NOT_AUTHORIZED"
	CodeNoSuchWebhook        = "NO_SUCH_WEBHOOK"
	CodeNotFound             = "NOT_FOUND"
	CodeInvalidJSON          = "INVALID_JSON"
	CodeInvalidParameters    = "INVALID_PARAMETERS"
	CodeAmbiguousNamespace   = "AMBIGUOUS_NAMESPACE"
	CodeMethodNotAllowed     = "METHOD_NOT_ALLOWED"
	CodeUnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"
	CodeRequestTooLarge      = "REQUEST_TOO_LARGE"
	CodeWebhookTestFailed    = "WEBHOOK_TEST_FAILED"
	CodeUnavailable          = "UNAVAILABLE"
	CodeInternal             = "INTERNAL_ERROR"
)
