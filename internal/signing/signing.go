// Package signing signs webhook deliveries as the Standard Webhooks
// specification describes (https://www.standardwebhooks.com): the signed
// content is "<webhook-id>.<webhook-timestamp>.<body>", the MAC is
// HMAC-SHA256 and the header carries one "v1,<base64>" entry per key, so a
// receiver verifying with either the old or the new secret accepts a
// delivery while a secret is rotated.
package signing

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"time"
)

// Standard Webhooks request headers.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// signatureVersion prefixes every signature: "v1" is HMAC-SHA256.
const signatureVersion = "v1,"

// Sign returns the webhook-signature header value for a delivery with the
// given webhook-id, webhook-timestamp and body: for each key, in order,
// "v1," followed by the base64 of HMAC-SHA256(key, id + "." + unix seconds
// of ts + "." + body), the entries separated by single spaces. It returns
// the empty string when keys is empty. The keys are the decoded secrets
// (the bytes after "whsec_", base64-decoded); they never appear in the result.
func Sign(keys [][]byte, id string, ts time.Time, body []byte) string {
	if len(keys) == 0 {
		return ""
	}
	var prefix [64]byte
	p := append(prefix[:0], id...)
	p = append(p, '.')
	p = strconv.AppendInt(p, ts.Unix(), 10)
	p = append(p, '.')

	const encLen = 44 // base64.StdEncoding.EncodedLen(sha256.Size)
	out := make([]byte, 0, len(keys)*(len(signatureVersion)+encLen+1))
	var sum [sha256.Size]byte
	for i, k := range keys {
		if i > 0 {
			out = append(out, ' ')
		}
		mac := hmac.New(sha256.New, k)
		mac.Write(p)
		mac.Write(body)
		out = append(out, signatureVersion...)
		out = base64.StdEncoding.AppendEncode(out, mac.Sum(sum[:0]))
	}
	return string(out)
}
