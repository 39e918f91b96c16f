package credentials

import (
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// FuzzParseTLS: any Secret content gives material or an error, never a panic,
// and accepted material is usable.
func FuzzParseTLS(f *testing.F) {
	cert, key := selfSigned(f)
	f.Add(string(cert), cert, cert, key)
	f.Add("", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), []byte{}, []byte{})
	f.Add("junk", []byte{0}, key, cert)
	f.Fuzz(func(t *testing.T, inline string, ca, crt, k []byte) {
		secret := map[string][]byte{}
		if len(ca) > 0 {
			secret[CACertKey] = ca
		}
		if len(crt) > 0 {
			secret[ClientCertKey] = crt
		}
		if len(k) > 0 {
			secret[ClientKeyKey] = k
		}
		got, err := ParseTLS(inline, secret)
		if err != nil {
			return
		}
		if got != nil && len(got.CAPEM) > 0 {
			if _, err := ParseCABundle(got.CAPEM); err != nil {
				t.Fatalf("accepted CA bundle does not parse: %v", err)
			}
		}
	})
}

// FuzzParseSigningSecret: accepted secrets decode to 24..64 bytes.
func FuzzParseSigningSecret(f *testing.F) {
	f.Add([]byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
	f.Add([]byte("whsec_"))
	f.Add([]byte("whsec_====\n"))
	f.Fuzz(func(t *testing.T, v []byte) {
		key, err := ParseSigningSecret(v)
		if err != nil {
			return
		}
		if len(key) < MinSigningKeyBytes || len(key) > MaxSigningKeyBytes {
			t.Fatalf("accepted a %d-byte key", len(key))
		}
	})
}

// FuzzParseHeaders: accepted headers are valid on the wire and never reserved.
func FuzzParseHeaders(f *testing.F) {
	f.Add("Authorization", []byte("Bearer x"))
	f.Add("webhook-id", []byte("1"))
	f.Add("X-\r\nA", []byte("a\nb"))
	f.Fuzz(func(t *testing.T, name string, value []byte) {
		h, err := ParseHeaders(map[string][]byte{name: value})
		if err != nil {
			return
		}
		for k, v := range h {
			if !httpguts.ValidHeaderFieldName(k) || !httpguts.ValidHeaderFieldValue(v) {
				t.Fatalf("accepted invalid header %q: %q", k, v)
			}
			if reservedHeaders[http.CanonicalHeaderKey(k)] || strings.ContainsAny(v, "\r\n") {
				t.Fatalf("accepted reserved or multi-line header %q", k)
			}
		}
	})
}
