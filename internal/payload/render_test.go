package payload_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/payload"
)

func TestRenderDTR(t *testing.T) {
	for _, format := range []kubehookv1.PayloadFormat{kubehookv1.PayloadFormatDTR, ""} {
		ev := payload.Sample(kubehookv1.TagPush)
		body, ct, err := payload.Render(format, ev, "delivery-1", "https://kubehook.example/")
		if err != nil {
			t.Fatal(err)
		}
		if ct != "application/json" {
			t.Errorf("format %q: content type %q", format, ct)
		}
		if !strings.HasPrefix(string(body), `{"type":"TAG_PUSH","createdAt":"2019-05-22T01:55:20.471286995Z","contents":{"namespace":"foo",`) {
			t.Errorf("format %q: body %s", format, body)
		}
		var back payload.Event
		mustDecode(t, body, &back)
		if !jsonEqual(t, back.Contents, ev.Contents) {
			t.Errorf("contents changed: %s", back.Contents)
		}
	}
}

func TestRenderDTRKeepsUnknownFields(t *testing.T) {
	ev := payload.Event{Type: kubehookv1.TagPush, CreatedAt: payload.SampleCreatedAt,
		Contents: json.RawMessage(`{"namespace":"foo", "repository":"bar", "tag":"v1", "location":"/repositories/foo/bar/tags/v1"}`)}
	body, _, err := payload.Render(kubehookv1.PayloadFormatDTR, ev, "id", "/src")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"TAG_PUSH","createdAt":"2019-05-22T01:55:20.471286995Z","contents":{"namespace":"foo","repository":"bar","tag":"v1","location":"/repositories/foo/bar/tags/v1"}}`
	if string(body) != want {
		t.Errorf("got  %s\nwant %s", body, want)
	}
}

func TestRenderCloudEvents(t *testing.T) {
	for _, typ := range kubehookv1.EventTypes {
		t.Run(string(typ), func(t *testing.T) {
			ev := payload.Sample(typ)
			body, ct, err := payload.Render(kubehookv1.PayloadFormatCloudEvents, ev, "d-42", "https://kubehook.example/clusters/prod")
			if err != nil {
				t.Fatal(err)
			}
			if ct != "application/cloudevents+json" {
				t.Errorf("content type %q", ct)
			}
			var ce cloudevents.Event
			if err := json.Unmarshal(body, &ce); err != nil {
				t.Fatalf("sdk-go cannot parse %s: %v", body, err)
			}
			if err := ce.Validate(); err != nil {
				t.Errorf("invalid CloudEvent: %v", err)
			}
			if ce.SpecVersion() != "1.0" {
				t.Errorf("specversion %q", ce.SpecVersion())
			}
			if ce.ID() != "d-42" {
				t.Errorf("id %q", ce.ID())
			}
			if want := "io.kubehook." + string(typ); ce.Type() != want {
				t.Errorf("type %q, want %q", ce.Type(), want)
			}
			if ce.Source() != "https://kubehook.example/clusters/prod" {
				t.Errorf("source %q", ce.Source())
			}
			if !ce.Time().Equal(ev.CreatedAt) {
				t.Errorf("time %v, want %v", ce.Time(), ev.CreatedAt)
			}
			if ce.DataContentType() != "application/json" {
				t.Errorf("datacontenttype %q", ce.DataContentType())
			}
			if !jsonEqual(t, ce.Data(), ev.Contents) {
				t.Errorf("data %s, want %s", ce.Data(), ev.Contents)
			}
			wantSubject := "foo/bar"
			if typ == kubehookv1.ScannerUpdateCompleted {
				wantSubject = ""
			}
			if ce.Subject() != wantSubject {
				t.Errorf("subject %q, want %q", ce.Subject(), wantSubject)
			}
			// Structured mode with JSON data: "data" holds the object itself,
			// not a base64 string.
			var raw map[string]json.RawMessage
			mustDecode(t, body, &raw)
			if _, ok := raw["data_base64"]; ok {
				t.Errorf("data was base64-encoded: %s", body)
			}
			if d := bytes.TrimSpace(raw["data"]); len(d) == 0 || d[0] != '{' {
				t.Errorf("data is not a JSON object: %s", raw["data"])
			}
			if string(raw["specversion"]) != `"1.0"` {
				t.Errorf("specversion attribute %s", raw["specversion"])
			}
		})
	}
}

func TestRenderCloudEventsSubject(t *testing.T) {
	tests := []struct{ contents, subject string }{
		{`{"namespace":"acme","repository":"team/app"}`, "acme/team/app"},
		{`{"namespace":"acme"}`, "acme"},
		{`{"repository":"app"}`, ""},
		{`{"namespace":7,"repository":"app"}`, ""},
		{`{}`, ""},
	}
	for _, tt := range tests {
		ev := payload.Event{Type: kubehookv1.RepoEvent, CreatedAt: time.Unix(0, 0), Contents: json.RawMessage(tt.contents)}
		body, _, err := payload.Render(kubehookv1.PayloadFormatCloudEvents, ev, "id", "/src")
		if err != nil {
			t.Fatal(err)
		}
		var ce cloudevents.Event
		mustDecode(t, body, &ce)
		if ce.Subject() != tt.subject {
			t.Errorf("contents %s: subject %q, want %q", tt.contents, ce.Subject(), tt.subject)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	ev := payload.Sample(kubehookv1.TagPush)
	tests := []struct {
		name   string
		format kubehookv1.PayloadFormat
		ev     payload.Event
		id     string
		source string
		want   string
	}{
		{"unknown format", "XML", ev, "id", "/src", `unknown payload format "XML"`},
		{"no contents", kubehookv1.PayloadFormatDTR, payload.Event{Type: kubehookv1.TagPush}, "id", "/src", "no contents"},
		{"invalid contents JSON", kubehookv1.PayloadFormatDTR, payload.Event{Type: kubehookv1.TagPush, Contents: json.RawMessage(`{`)}, "id", "/src", "render DTR payload"},
		{"cloudevent without id", kubehookv1.PayloadFormatCloudEvents, ev, "", "/src", "id"},
		{"cloudevent without source", kubehookv1.PayloadFormatCloudEvents, ev, "id", "", "source"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, ct, err := payload.Render(tt.format, tt.ev, tt.id, tt.source)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if body != nil || ct != "" {
				t.Errorf("body %q and content type %q returned with an error", body, ct)
			}
		})
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var ca, cb bytes.Buffer
	if err := json.Compact(&ca, a); err != nil {
		t.Fatalf("compact %s: %v", a, err)
	}
	if err := json.Compact(&cb, b); err != nil {
		t.Fatalf("compact %s: %v", b, err)
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}
