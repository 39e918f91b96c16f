package credentials

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// reservedHeaders are set by kubehook on every delivery and cannot be
// overridden from a headers Secret.
var reservedHeaders = map[string]bool{
	"Content-Type":      true,
	"Content-Length":    true,
	"Host":              true,
	"User-Agent":        true,
	"Transfer-Encoding": true,
	"Connection":        true,
	"Webhook-Id":        true,
	"Webhook-Timestamp": true,
	"Webhook-Signature": true,
	"Ce-Id":             true,
	"Ce-Type":           true,
	"Ce-Source":         true,
	"Ce-Specversion":    true,
}

// ParseHeaders turns the data of a headers Secret into request headers: each
// key is a header name, its value (trailing newline trimmed) the header value.
func ParseHeaders(data map[string][]byte) (map[string]string, error) {
	if len(data) == 0 {
		return nil, errors.New("the headers Secret holds no keys")
	}
	out := make(map[string]string, len(data))
	for name, raw := range data {
		if !httpguts.ValidHeaderFieldName(name) {
			return nil, fmt.Errorf("key %q is not a valid HTTP header name", name)
		}
		canon := http.CanonicalHeaderKey(name)
		if reservedHeaders[canon] {
			return nil, fmt.Errorf("header %q is set by kubehook and cannot be overridden", canon)
		}
		if _, dup := out[canon]; dup {
			return nil, fmt.Errorf("header %q is given twice (keys differ only in case)", canon)
		}
		value := strings.TrimRight(string(raw), "\r\n")
		if !httpguts.ValidHeaderFieldValue(value) {
			return nil, fmt.Errorf("the value of header %q holds characters not allowed in a header", canon)
		}
		out[canon] = value
	}
	return out, nil
}
