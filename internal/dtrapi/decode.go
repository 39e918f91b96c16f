package dtrapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/credentials"
)

// decodeStrict decodes one JSON object into v, refusing unknown fields,
// wrong types and trailing data, and naming the field at fault.
func decodeStrict(body []byte, v any) *apiError {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &apiError{status: http.StatusBadRequest, code: CodeInvalidJSON, message: "the body holds more than one JSON value"}
	}
	return nil
}

func jsonError(err error) *apiError {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return &apiError{status: http.StatusBadRequest, code: CodeInvalidJSON,
			message: fmt.Sprintf("malformed JSON at byte %d: %v", syntax.Offset, syntax)}
	case errors.As(err, &typ):
		if typ.Field == "" {
			return &apiError{status: http.StatusBadRequest, code: CodeInvalidJSON,
				message: fmt.Sprintf("the body must be a JSON object, not %s", typ.Value)}
		}
		return invalid(typ.Field, "%s must be a %s, not %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &apiError{status: http.StatusBadRequest, code: CodeInvalidJSON, message: "the body is empty or cut short; send a JSON object"}
	}
	// encoding/json words an unknown field as: json: unknown field "name".
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return invalid(name, "unknown field %q", name)
	}
	return &apiError{status: http.StatusBadRequest, code: CodeInvalidJSON, message: err.Error()}
}

func jsonKind(k string) string {
	if k == "bool" {
		return "boolean"
	}
	return k
}

// decodeCreate parses and checks the body of POST /api/v0/webhooks. The
// checks are the CRD's, so the answer names the DTR field, not a path in
// the WebhookSubscription.
func decodeCreate(body []byte) (CreateRequest, *apiError) {
	var req CreateRequest
	if err := decodeStrict(body, &req); err != nil {
		return req, err
	}
	if err := checkType(req.Type); err != nil {
		return req, err
	}
	if err := checkKey(kubehookv1.EventType(req.Type), req.Key); err != nil {
		return req, err
	}
	return req, checkDestination(req.Endpoint, req.TLSCert)
}

// decodeTest parses and checks the body of POST /api/v0/webhooks/test.
func decodeTest(body []byte) (TestRequest, *apiError) {
	var req TestRequest
	if err := decodeStrict(body, &req); err != nil {
		return req, err
	}
	if err := checkType(req.Type); err != nil {
		return req, err
	}
	return req, checkDestination(req.Endpoint, req.TLSCert)
}

func checkType(t string) *apiError {
	if t == "" {
		return invalid("type", "type is required: one of %s", typeList())
	}
	if !slices.Contains(kubehookv1.EventTypes, kubehookv1.EventType(t)) {
		return invalid("type", "type %q is not an event type: one of %s", t, typeList())
	}
	return nil
}

func typeList() string {
	names := make([]string, len(kubehookv1.EventTypes))
	for i, t := range kubehookv1.EventTypes {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

// checkKey applies the CRD's key rules (pattern, length, scope of the type).
func checkKey(t kubehookv1.EventType, key string) *apiError {
	spec := kubehookv1.WebhookSubscriptionSpec{Type: t, Key: key, Endpoint: "https://example.com"}
	if err := kubehookv1.ValidateSpec(&spec); err != nil {
		return invalid("key", "%v", err)
	}
	return nil
}

// checkDestination checks the endpoint and the CA certificate to trust
// for it, which a subscription and a test delivery both name.
func checkDestination(endpoint, tlsCert string) *apiError {
	if err := checkEndpoint(endpoint); err != nil {
		return err
	}
	return checkTLSCert(tlsCert)
}

func checkEndpoint(endpoint string) *apiError {
	if endpoint == "" {
		return invalid("endpoint", "endpoint is required: the http:// or https:// URL to POST events to")
	}
	if err := kubehookv1.ValidateEndpoint(endpoint); err != nil {
		return invalid("endpoint", "%v", err)
	}
	return nil
}

func checkTLSCert(pem string) *apiError {
	if pem == "" {
		return nil
	}
	if len(pem) > 65536 {
		return invalid("tlsCert", "tlsCert is longer than 65536 bytes")
	}
	if _, err := credentials.ParseCABundle([]byte(pem)); err != nil {
		return invalid("tlsCert", "tlsCert: %v", err)
	}
	return nil
}
