package dtrapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// apiError is an error answer: status, code, message and an optional field.
type apiError struct {
	status  int
	code    string
	message string
	detail  map[string]any
}

func (e *apiError) Error() string { return e.message }

func (e *apiError) body() ErrorBody {
	return ErrorBody{Errors: []Error{{Code: e.code, Message: e.message, Detail: e.detail}}}
}

// invalid is a 400 naming the field at fault.
func invalid(field, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: CodeInvalidParameters,
		message: fmt.Sprintf(format, args...), detail: map[string]any{"field": field}}
}

// fromAPI maps an API server error to an answer, keeping its reason.
func fromAPI(err error, doing string) *apiError {
	msg := fmt.Sprintf("%s: %s", doing, apiMessage(err))
	switch {
	case apierrors.IsForbidden(err):
		return &apiError{status: http.StatusForbidden, code: CodeNotAuthorized, message: msg}
	case apierrors.IsNotFound(err):
		return &apiError{status: http.StatusNotFound, code: CodeNotFound, message: msg}
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		e := &apiError{status: http.StatusBadRequest, code: CodeInvalidParameters, message: msg}
		if f := invalidField(err); f != "" {
			e.detail = map[string]any{"field": f}
		}
		return e
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
		return &apiError{status: http.StatusConflict, code: CodeInvalidParameters, message: msg}
	case apierrors.IsInternalError(err):
		return &apiError{status: http.StatusInternalServerError, code: CodeInternal, message: msg}
	}
	return unavailable(err)
}

func apiMessage(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Message != "" {
		return status.Status().Message
	}
	return err.Error()
}

// invalidField names the DTR field of the first invalid spec field.
func invalidField(err error) string {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil {
		return ""
	}
	for _, c := range status.Status().Details.Causes {
		if f, ok := strings.CutPrefix(c.Field, "spec."); ok {
			return f
		}
	}
	return ""
}

func unavailable(err error) *apiError {
	return &apiError{status: http.StatusServiceUnavailable, code: CodeUnavailable,
		message: "the Kubernetes API is not available: " + err.Error()}
}

func noSuchWebhook(id string) *apiError {
	return &apiError{status: http.StatusNotFound, code: CodeNoSuchWebhook, message: fmt.Sprintf("no webhook subscription with id %q", id)}
}

func methodNotAllowed(w http.ResponseWriter, allowed ...string) *apiError {
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	return &apiError{status: http.StatusMethodNotAllowed, code: CodeMethodNotAllowed,
		message: "method not allowed: use " + strings.Join(allowed, " or ")}
}

// writeJSON writes an answer: v as JSON with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes e in DTR's error shape.
func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, e.body())
}
