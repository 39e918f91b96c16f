package signing

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

var (
	key1 = bytes.Repeat([]byte{0x11}, 32)
	key2 = []byte("0123456789abcdef0123456789abcdef01234567")
)

func verifier(t testing.TB, key []byte) *standardwebhooks.Webhook {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook("whsec_" + base64.StdEncoding.EncodeToString(key))
	if err != nil {
		t.Fatal(err)
	}
	return wh
}

func headers(id string, ts time.Time, sig string) http.Header {
	h := http.Header{}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, sig)
	return h
}

func TestHeaderNamesMatchTheSpecification(t *testing.T) {
	if HeaderID != standardwebhooks.HeaderWebhookID ||
		HeaderTimestamp != standardwebhooks.HeaderWebhookTimestamp ||
		HeaderSignature != standardwebhooks.HeaderWebhookSignature {
		t.Fatal("header names differ from the Standard Webhooks library")
	}
}

func TestSignNoKeys(t *testing.T) {
	if got := Sign(nil, "msg_1", time.Now(), []byte("x")); got != "" {
		t.Fatalf("Sign(nil) = %q, want empty", got)
	}
	if got := Sign([][]byte{}, "msg_1", time.Now(), []byte("x")); got != "" {
		t.Fatalf("Sign([]) = %q, want empty", got)
	}
}

func TestSignKnownAnswer(t *testing.T) {
	ts := time.Unix(1614265330, 0)
	body := []byte(`{"test": 2432232314}`)
	got := Sign([][]byte{key1}, "msg_p5jXN8AQM9LWM0D4loKWxJek", ts, body)

	mac := hmac.New(sha256.New, key1)
	mac.Write([]byte("msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
	// The official library signs the same way.
	lib, err := verifier(t, key1).Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", ts, body)
	if err != nil {
		t.Fatal(err)
	}
	if got != lib {
		t.Fatalf("Sign = %q, library signs %q", got, lib)
	}
}

func TestSignVerifiesWithOfficialLibrary(t *testing.T) {
	body := []byte(`{"type":"TAG_PUSH","createdAt":"2024-01-01T00:00:00Z","contents":{}}`)
	ts := time.Now()
	id := "0190f6a8-7c1e-7000-8000-000000000001"
	sig := Sign([][]byte{key1}, id, ts, body)
	if strings.Count(sig, " ") != 0 || !strings.HasPrefix(sig, "v1,") {
		t.Fatalf("one key gives %q, want a single v1 signature", sig)
	}
	if err := verifier(t, key1).Verify(body, headers(id, ts, sig)); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := verifier(t, key2).Verify(body, headers(id, ts, sig)); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		t.Fatalf("Verify with another secret: %v, want ErrNoMatchingSignature", err)
	}
}

func TestSignRotationEitherSecretVerifies(t *testing.T) {
	body := []byte(`{"hello":"world"}`)
	ts := time.Now()
	id := "msg_rotation"
	sig := Sign([][]byte{key1, key2}, id, ts, body)
	parts := strings.Split(sig, " ")
	if len(parts) != 2 {
		t.Fatalf("two keys give %q, want two space-separated signatures", sig)
	}
	if parts[0] != Sign([][]byte{key1}, id, ts, body) || parts[1] != Sign([][]byte{key2}, id, ts, body) {
		t.Fatalf("signatures are not in key order: %q", sig)
	}
	for i, k := range [][]byte{key1, key2} {
		if err := verifier(t, k).Verify(body, headers(id, ts, sig)); err != nil {
			t.Fatalf("Verify with secret %d alone: %v", i+1, err)
		}
	}
}

func TestSignTamperedBodyFails(t *testing.T) {
	body := []byte(`{"amount":1}`)
	ts := time.Now()
	sig := Sign([][]byte{key1, key2}, "msg_1", ts, body)
	err := verifier(t, key1).Verify([]byte(`{"amount":9}`), headers("msg_1", ts, sig))
	if !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		t.Fatalf("tampered body: %v, want ErrNoMatchingSignature", err)
	}
	err = verifier(t, key1).Verify(body, headers("msg_2", ts, sig))
	if !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		t.Fatalf("other webhook-id: %v, want ErrNoMatchingSignature", err)
	}
}

func TestSignWrongTimestampFails(t *testing.T) {
	body := []byte(`{}`)
	ts := time.Now()
	sig := Sign([][]byte{key1}, "msg_1", ts, body)
	// A different timestamp within the tolerance: the signature no longer matches.
	err := verifier(t, key1).Verify(body, headers("msg_1", ts.Add(time.Second), sig))
	if !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		t.Fatalf("shifted timestamp: %v, want ErrNoMatchingSignature", err)
	}
	// A correctly signed but stale delivery is refused by the receiver's tolerance.
	old := ts.Add(-time.Hour)
	sig = Sign([][]byte{key1}, "msg_1", old, body)
	err = verifier(t, key1).Verify(body, headers("msg_1", old, sig))
	if !errors.Is(err, standardwebhooks.ErrMessageTooOld) {
		t.Fatalf("stale timestamp: %v, want ErrMessageTooOld", err)
	}
}

func TestSignSubSecondTimestampsTruncate(t *testing.T) {
	ts := time.Unix(1700000000, 999_999_999)
	if Sign([][]byte{key1}, "a", ts, nil) != Sign([][]byte{key1}, "a", time.Unix(1700000000, 0), nil) {
		t.Fatal("the signature depends on sub-second precision; webhook-timestamp carries whole seconds")
	}
}

func FuzzSign(f *testing.F) {
	f.Add([]byte("k"), "msg_1", int64(1700000000), []byte(`{}`))
	f.Add([]byte{}, "", int64(-1), []byte{})
	f.Fuzz(func(t *testing.T, key []byte, id string, unix int64, body []byte) {
		ts := time.Unix(unix, 0)
		sig := Sign([][]byte{key, key}, id, ts, body)
		parts := strings.Split(sig, " ")
		if len(parts) != 2 || parts[0] != parts[1] {
			t.Fatalf("Sign = %q, want two identical entries", sig)
		}
		wh, _ := standardwebhooks.NewWebhookRaw(key)
		want, _ := wh.Sign(id, ts, body)
		if parts[0] != want {
			t.Fatalf("Sign = %q, library signs %q", parts[0], want)
		}
	})
}

func BenchmarkSign1KiB(b *testing.B) {
	body := bytes.Repeat([]byte("a"), 1024)
	keys := [][]byte{key1}
	ts := time.Unix(1700000000, 0)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		_ = Sign(keys, "0190f6a8-7c1e-7000-8000-000000000001", ts, body)
	}
}

func BenchmarkSign1KiBTwoKeys(b *testing.B) {
	body := bytes.Repeat([]byte("a"), 1024)
	keys := [][]byte{key1, key2}
	ts := time.Unix(1700000000, 0)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		_ = Sign(keys, "0190f6a8-7c1e-7000-8000-000000000001", ts, body)
	}
}
