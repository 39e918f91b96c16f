package dtrapi

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// MaxBodyBytes bounds request bodies: room for a 64 KiB tlsCert.
const MaxBodyBytes = 128 << 10

// readRequest reads the body (see readBody) and decodes it with decode
// (decodeCreate, decodeTest).
func readRequest[T any](w http.ResponseWriter, r *http.Request, decode func([]byte) (T, *apiError)) (T, *apiError) {
	body, aerr := readBody(w, r)
	if aerr != nil {
		var zero T
		return zero, aerr
	}
	return decode(body)
}

// readBody checks the media type and reads at most MaxBodyBytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, *apiError) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, &apiError{status: http.StatusUnsupportedMediaType, code: CodeUnsupportedMediaType,
				message: fmt.Sprintf("Content-Type %q is not JSON: send application/json", ct)}
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, &apiError{status: http.StatusRequestEntityTooLarge, code: CodeRequestTooLarge,
				message: fmt.Sprintf("the body is larger than %d bytes", MaxBodyBytes)}
		}
		return nil, &apiError{status: http.StatusBadRequest, code: CodeInvalidJSON, message: "reading the body: " + err.Error()}
	}
	return body, nil
}
