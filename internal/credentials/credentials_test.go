package credentials

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

// selfSigned returns a PEM certificate and PEM key.
func selfSigned(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kubehook test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func TestParseTLS(t *testing.T) {
	cert, key := selfSigned(t)
	otherCert, _ := selfSigned(t)

	tests := []struct {
		name       string
		inline     string
		secret     map[string][]byte
		wantErr    string
		wantNil    bool
		wantClient bool
	}{
		{name: "nothing configured", wantNil: true},
		{name: "inline CA", inline: string(cert)},
		{name: "secret CA", secret: map[string][]byte{CACertKey: cert}},
		{name: "mTLS pair", secret: map[string][]byte{ClientCertKey: cert, ClientKeyKey: key}, wantClient: true},
		{name: "inline CA is not PEM", inline: "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----", wantErr: "tlsCert"},
		{name: "ca.crt holds a key", secret: map[string][]byte{CACertKey: key}, wantErr: "want CERTIFICATE"},
		{name: "ca.crt empty", secret: map[string][]byte{CACertKey: nil}, wantErr: "no PEM certificate"},
		{name: "tls.crt without tls.key", secret: map[string][]byte{ClientCertKey: cert}, wantErr: "tls.crt is set without tls.key"},
		{name: "tls.key without tls.crt", secret: map[string][]byte{ClientKeyKey: key}, wantErr: "tls.key is set without tls.crt"},
		{name: "mismatched pair", secret: map[string][]byte{ClientCertKey: otherCert, ClientKeyKey: key}, wantErr: "tls.crt/tls.key"},
		{name: "secret with unrelated keys", secret: map[string][]byte{"foo": cert}, wantErr: "holds none of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTLS(tt.inline, tt.secret)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantNil != (got == nil) {
				t.Fatalf("got %v, want nil=%v", got, tt.wantNil)
			}
			if got != nil && tt.wantClient != (got.ClientCert != nil) {
				t.Fatalf("client cert present = %v, want %v", got.ClientCert != nil, tt.wantClient)
			}
		})
	}
}

func whsec(n int) []byte {
	return []byte(SigningSecretPrefix + base64.StdEncoding.EncodeToString(make([]byte, n)))
}

func TestParseSigningSecrets(t *testing.T) {
	keys, err := ParseSigningSecrets(map[string][]byte{"b-new": whsec(32), "a-old": append(whsec(24), '\n')})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || len(keys[0]) != 24 || len(keys[1]) != 32 {
		t.Fatalf("keys not decoded in key order: %d keys", len(keys))
	}

	for name, tt := range map[string]struct {
		data map[string][]byte
		want string
	}{
		"empty Secret":   {map[string][]byte{}, "holds no keys"},
		"no prefix":      {map[string][]byte{"k": []byte("c2VjcmV0")}, `key "k" does not start with "whsec_"`},
		"bad base64":     {map[string][]byte{"k": []byte("whsec_!!!")}, "not valid base64"},
		"too short":      {map[string][]byte{"k": whsec(8)}, "decodes to 8 bytes"},
		"too long":       {map[string][]byte{"k": whsec(65)}, "decodes to 65 bytes"},
		"one bad of two": {map[string][]byte{"good": whsec(32), "zbad": []byte("x")}, `key "zbad"`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseSigningSecrets(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseHeaders(t *testing.T) {
	h, err := ParseHeaders(map[string][]byte{"authorization": []byte("Bearer abc\n"), "X-Team": []byte("payments")})
	if err != nil {
		t.Fatal(err)
	}
	if h["Authorization"] != "Bearer abc" || h["X-Team"] != "payments" {
		t.Fatalf("headers = %v", h)
	}
	for name, tt := range map[string]struct {
		data map[string][]byte
		want string
	}{
		"empty":          {map[string][]byte{}, "holds no keys"},
		"bad name":       {map[string][]byte{"bad name": []byte("v")}, "not a valid HTTP header name"},
		"reserved":       {map[string][]byte{"webhook-signature": []byte("v")}, "set by kubehook"},
		"content type":   {map[string][]byte{"content-type": []byte("text/plain")}, "set by kubehook"},
		"control chars":  {map[string][]byte{"X-A": []byte("a\x00b")}, "not allowed"},
		"case duplicate": {map[string][]byte{"x-a": []byte("1"), "X-A": []byte("2")}, "given twice"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseHeaders(tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
