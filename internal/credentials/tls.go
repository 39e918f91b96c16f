// Package credentials parses the Secret contents a WebhookSubscription refers
// to: TLS material, Standard Webhooks signing secrets and extra headers. Each
// parser returns an error that names the offending key, never its value.
package credentials

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// Keys of a TLS Secret, as in kubernetes.io/tls Secrets.
const (
	CACertKey     = "ca.crt"
	ClientCertKey = "tls.crt"
	ClientKeyKey  = "tls.key"
)

// TLS is the TLS material for one endpoint.
type TLS struct {
	// CAPEM holds the PEM certificates trusted in addition to the system roots.
	CAPEM []byte
	// ClientCert, when set, is presented for mutual TLS.
	ClientCert *tls.Certificate
}

// ParseCABundle checks that pemData holds one or more PEM certificates and
// nothing else, and returns them.
func ParseCABundle(pemData []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := pemData
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is a %q, want CERTIFICATE", len(certs)+1, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}

// ParseTLS builds the TLS material from the inline tlsCert and the data of
// the tlsSecretRef Secret (either may be empty). It returns nil when neither
// holds anything.
func ParseTLS(inlineCA string, secret map[string][]byte) (*TLS, error) {
	out := &TLS{}
	if inlineCA != "" {
		if _, err := ParseCABundle([]byte(inlineCA)); err != nil {
			return nil, fmt.Errorf("tlsCert: %w", err)
		}
		out.CAPEM = append(out.CAPEM, []byte(inlineCA)...)
		out.CAPEM = append(out.CAPEM, '\n')
	}
	if secret != nil {
		ca, hasCA := secret[CACertKey]
		crt, hasCrt := secret[ClientCertKey]
		key, hasKey := secret[ClientKeyKey]
		if !hasCA && !hasCrt && !hasKey {
			return nil, fmt.Errorf("the TLS Secret holds none of %s, %s, %s", CACertKey, ClientCertKey, ClientKeyKey)
		}
		if hasCA {
			if _, err := ParseCABundle(ca); err != nil {
				return nil, fmt.Errorf("%s: %w", CACertKey, err)
			}
			out.CAPEM = append(out.CAPEM, ca...)
		}
		switch {
		case hasCrt && hasKey:
			pair, err := tls.X509KeyPair(crt, key)
			if err != nil {
				return nil, fmt.Errorf("%s/%s: %w", ClientCertKey, ClientKeyKey, err)
			}
			out.ClientCert = &pair
		case hasCrt:
			return nil, fmt.Errorf("%s is set without %s", ClientCertKey, ClientKeyKey)
		case hasKey:
			return nil, fmt.Errorf("%s is set without %s", ClientKeyKey, ClientCertKey)
		}
	}
	if out.CAPEM == nil && out.ClientCert == nil {
		return nil, nil
	}
	return out, nil
}
