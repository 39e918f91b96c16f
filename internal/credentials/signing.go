package credentials

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// SigningSecretPrefix starts every Standard Webhooks secret.
const SigningSecretPrefix = "whsec_"

// Bounds of a decoded Standard Webhooks secret.
const (
	MinSigningKeyBytes = 24
	MaxSigningKeyBytes = 64
)

// ParseSigningSecret decodes one Standard Webhooks secret, "whsec_" followed
// by the base64 of 24 to 64 bytes. Surrounding whitespace (a trailing newline
// from a file) is ignored.
func ParseSigningSecret(value []byte) ([]byte, error) {
	v := string(bytes.TrimSpace(value))
	if !strings.HasPrefix(v, SigningSecretPrefix) {
		return nil, fmt.Errorf("does not start with %q", SigningSecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(v, SigningSecretPrefix))
	if err != nil {
		return nil, errors.New("is not valid base64 after the whsec_ prefix")
	}
	if len(key) < MinSigningKeyBytes || len(key) > MaxSigningKeyBytes {
		return nil, fmt.Errorf("decodes to %d bytes, want %d to %d", len(key), MinSigningKeyBytes, MaxSigningKeyBytes)
	}
	return key, nil
}

// ParseSigningSecrets decodes every value of a signing Secret, in key order.
// Every value must be a valid secret: all of them sign each delivery, which
// is how a secret is rotated.
func ParseSigningSecrets(data map[string][]byte) ([][]byte, error) {
	if len(data) == 0 {
		return nil, errors.New("the signing Secret holds no keys; add one whsec_ secret per data key")
	}
	names := make([]string, 0, len(data))
	for k := range data {
		names = append(names, k)
	}
	sort.Strings(names)
	keys := make([][]byte, 0, len(names))
	for _, n := range names {
		k, err := ParseSigningSecret(data[n])
		if err != nil {
			return nil, fmt.Errorf("key %q %w", n, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}
