package sources

import (
	"encoding/json"
	"testing"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/payload"
)

// FuzzNative: Native never panics; it returns either events fit to deliver
// or an *InputError and no events. And what it returns, rendered as
// kubehook delivers it, is a native event that maps to itself.
func FuzzNative(f *testing.F) {
	fuzzSeeds(f, "native")
	for _, typ := range kubehookv1.EventTypes {
		f.Add(nativeSampleBody(typ))
	}
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"type":"TAG_PUSH","createdAt":"2025-11-28T10:30:00.5+01:00","contents":{"namespace":"acme","repository":"web","tag":"1","x":null}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, err := Native(body, nativeNow)
		if err != nil {
			if _, ok := isInputError(err); !ok {
				t.Fatalf("error %v (%T) is not an *InputError", err, err)
			}
			if evs != nil {
				t.Fatalf("events returned with an error: %v", evs)
			}
			return
		}
		if len(evs) == 0 {
			t.Fatal("no events and no error")
		}
		for _, ev := range evs {
			checkMappedEvent(t, ev)
			if err := payload.Validate(ev.Payload.Type, ev.Payload.Contents); err != nil {
				t.Fatalf("%s: contents do not validate: %v", ev.Payload.Type, err)
			}
			rendered, _, err := payload.Render(kubehookv1.PayloadFormatDTR, ev.Payload, "msg_x", "kubehook")
			if err != nil {
				t.Fatal(err)
			}
			again, err := Native(rendered, nativeNow)
			if err != nil || len(again) != 1 {
				t.Fatalf("delivered body %s does not map back: %d events, %v", rendered, len(again), err)
			}
			a := again[0]
			if a.Repository != ev.Repository || a.Payload.Type != ev.Payload.Type || !a.Payload.CreatedAt.Equal(ev.Payload.CreatedAt) {
				t.Fatalf("round trip changed the event: %+v, then %+v", ev, a)
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
