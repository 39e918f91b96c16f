package sources

import (
	"encoding/json"
	"testing"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/payload"
)

// FuzzNative: Native never panics; it returns either events fit to deliver
// or an *InputError and no events. And what it returns, rendered as
// kubehook delivers it, is a native event that maps to itself, with the
// same identity. key is the Idempotency-Key header: a bad one fails the
// request whatever the body; a good one gives every event of the request
// its own ID.
func FuzzNative(f *testing.F) {
	fuzzSeeds(f, "native", "")
	for _, typ := range kubehookv1.EventTypes {
		f.Add(nativeSampleBody(typ), "")
	}
	f.Add([]byte(`[]`), "")
	f.Add([]byte(`{"type":"TAG_PUSH","createdAt":"2025-11-28T10:30:00.5+01:00","contents":{"namespace":"acme","repository":"web","tag":"1","x":null}}`), "")
	f.Add(testdataFile(f, "native", "array"), "8e03978e-40d5-43e8-bc93-6894a57f9324")
	f.Add(nativeSampleBody(kubehookv1.TagPush), `"quoted key" with spaces`)
	f.Add(nativeSampleBody(kubehookv1.TagPush), "bad\x00key")
	f.Add(nativeSampleBody(kubehookv1.TagPush), "é")
	f.Fuzz(func(t *testing.T, body []byte, key string) {
		evs, err := Native(body, nativeNow, key)
		if err != nil {
			ie, ok := isInputError(err)
			if !ok {
				t.Fatalf("error %v (%T) is not an *InputError", err, err)
			}
			if evs != nil {
				t.Fatalf("events returned with an error: %v", evs)
			}
			if key != "" && checkIdempotencyKey(key) != nil && ie.Field != IdempotencyKeyHeader {
				t.Fatalf("bad key %q: error names %q, want %s", key, ie.Field, IdempotencyKeyHeader)
			}
			return
		}
		if len(evs) == 0 {
			t.Fatal("no events and no error")
		}
		if key != "" && (len(key) > MaxIdempotencyKeyLength || !printableASCII(key)) {
			t.Fatalf("key %q accepted", key)
		}
		ids := map[string]bool{}
		for _, ev := range evs {
			checkMappedEvent(t, ev)
			if ev.ID == "" {
				t.Fatalf("%s: no ID", ev.Payload.Type)
			}
			if key != "" && ids[ev.ID] {
				t.Fatalf("two events of one keyed request have ID %s", ev.ID)
			}
			ids[ev.ID] = true
			if err := payload.Validate(ev.Payload.Type, ev.Payload.Contents); err != nil {
				t.Fatalf("%s: contents do not validate: %v", ev.Payload.Type, err)
			}
			rendered, _, err := payload.Render(kubehookv1.PayloadFormatDTR, ev.Payload, "msg_x", "kubehook")
			if err != nil {
				t.Fatal(err)
			}
			again, err := Native(rendered, nativeNow, "")
			if err != nil || len(again) != 1 {
				t.Fatalf("delivered body %s does not map back: %d events, %v", rendered, len(again), err)
			}
			a := again[0]
			if a.Repository != ev.Repository || a.Payload.Type != ev.Payload.Type || !a.Payload.CreatedAt.Equal(ev.Payload.CreatedAt) {
				t.Fatalf("round trip changed the event: %+v, then %+v", ev, a)
			}
			if key == "" && a.ID != ev.ID {
				t.Fatalf("the delivered body %s has ID %s, the posted one %s", rendered, a.ID, ev.ID)
			}
			var c1, c2 any
			_ = json.Unmarshal(ev.Payload.Contents, &c1)
			_ = json.Unmarshal(a.Payload.Contents, &c2)
			if diffs := jsonDiff("contents", c2, c1); len(diffs) > 0 {
				t.Fatalf("round trip changed the contents: %v", diffs)
			}
		}
	})
}

// printableASCII reports whether s is space to ~ only.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
