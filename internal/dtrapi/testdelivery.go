package dtrapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/credentials"
	"github.com/kubehook/kubehook/internal/payload"
	"github.com/kubehook/kubehook/internal/sender"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

// TestSender makes the one HTTP attempt of a test delivery, with the SSRF
// guard and signing of real ones (the engine's sender).
type TestSender interface {
	Send(ctx context.Context, sub *subscriptions.Subscription, req sender.Request) sender.Result
}

// test sends the fixed sample payload of a type to an endpoint, with the
// sender (TLS, SSRF guard) of real deliveries. Any caller who may create
// subscriptions somewhere may test an endpoint.
func (s *Server) test(w http.ResponseWriter, r *http.Request) *apiError {
	req, aerr := readRequest(w, r, decodeTest)
	if aerr != nil {
		return aerr
	}
	ctx := r.Context()
	verdict, err := s.access.inSomeNamespace(ctx, "create")
	if err != nil {
		return unavailable(err)
	}
	if verdict != anywhere {
		u, _ := callerFrom(ctx)
		where := "any namespace"
		if verdict == unknown {
			where = fmt.Sprintf("any of the first %d namespaces (by name) one request asks about", maxNamespaceReviews)
		}
		return &apiError{status: http.StatusForbidden, code: CodeNotAuthorized,
			message: fmt.Sprintf("user %q may not create webhooksubscriptions in %s, so may not test endpoints", u.user.Username, where)}
	}

	spec := kubehookv1.WebhookSubscriptionSpec{Type: kubehookv1.EventType(req.Type), Endpoint: req.Endpoint}
	entry := &subscriptions.Subscription{
		Type:                spec.Type,
		Endpoint:            spec.Endpoint,
		PayloadFormat:       kubehookv1.PayloadFormatDTR,
		Delivery:            subscriptions.DeliveryFor(&spec),
		SkipTLSVerification: req.SkipTLSVerification,
	}
	if req.TLSCert != "" {
		tlsMaterial, err := credentials.ParseTLS(req.TLSCert, nil)
		if err != nil {
			return invalid("tlsCert", "tlsCert: %v", err)
		}
		entry.TLS = tlsMaterial
	}
	body, contentType, err := payload.Render(kubehookv1.PayloadFormatDTR, payload.Sample(spec.Type), "", "kubehook")
	if err != nil {
		return &apiError{status: http.StatusInternalServerError, code: CodeInternal, message: "rendering the sample payload: " + err.Error()}
	}
	res := s.opts.Sender.Send(ctx, entry, sender.Request{ID: "msg_test_" + randomID(), Body: body, ContentType: contentType})
	if !res.OK() {
		return &apiError{status: http.StatusBadGateway, code: CodeWebhookTestFailed,
			message: fmt.Sprintf("the test delivery to %s failed: %v", req.Endpoint, res.Err),
			detail:  map[string]any{"statusCode": res.StatusCode}}
	}
	writeJSON(w, http.StatusOK, TestResult{
		Type: req.Type, Endpoint: req.Endpoint, Success: true, StatusCode: res.StatusCode,
		Message: fmt.Sprintf("delivered: HTTP %d", res.StatusCode),
	})
	return nil
}

// randomID names a test delivery (its webhook-id).
func randomID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
