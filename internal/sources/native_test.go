package sources

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/payload"
)

// nativeNow is the "now" of the native tests: createdAt when absent.
var nativeNow = time.Date(2025, time.November, 28, 9, 30, 0, 0, time.UTC)

// nativeSampleBody is the native event of type t with payload.Sample's
// contents, as a producer would post it.
func nativeSampleBody(t kubehookv1.EventType) []byte {
	body, err := json.Marshal(payload.Sample(t))
	if err != nil {
		panic(err)
	}
	return body
}

func TestNativeEveryType(t *testing.T) {
	for _, typ := range kubehookv1.EventTypes {
		t.Run(string(typ), func(t *testing.T) {
			got, err := Native(nativeSampleBody(typ), nativeNow, "")
			if err != nil {
				t.Fatal(err)
			}
			repo := payload.SampleNamespace + "/" + payload.SampleRepository
			if typ == kubehookv1.ScannerUpdateCompleted {
				repo = "" // global subscriptions only
			}
			checkEvents(t, got, []wantEvent{{typ, repo, nil}})
			sample := payload.Sample(typ)
			if !got[0].Payload.CreatedAt.Equal(sample.CreatedAt) {
				t.Errorf("createdAt %v, want %v", got[0].Payload.CreatedAt, sample.CreatedAt)
			}
			if diffs := jsonDiffRaw(got[0].Payload.Contents, sample.Contents); len(diffs) > 0 {
				t.Errorf("contents changed: %v", diffs)
			}
			checkGolden(t, "native-"+string(typ), got)
		})
	}
}

func jsonDiffRaw(got, want json.RawMessage) []string {
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		return []string{err.Error()}
	}
	if err := json.Unmarshal(want, &w); err != nil {
		return []string{err.Error()}
	}
	return jsonDiff("", g, w)
}

func TestNativeFiles(t *testing.T) {
	t.Run("single", func(t *testing.T) {
		got, err := Native(testdataFile(t, "native", "single"), nativeNow, "")
		if err != nil {
			t.Fatal(err)
		}
		checkEvents(t, got, []wantEvent{{kubehookv1.ScanCompleted, "acme/web", map[string]any{
			"tag": "1.4.2", "scanSummary": map[string]any{
				"namespace": "acme", "repository": "web", "tag": "1.4.2", "critical": 7.0, "major": 11.0, "minor": 7.0,
				"last_scan_status": 6.0, "check_completed_at": "2025-11-27T16:54:32Z",
			},
		}}})
		if want := time.Date(2025, time.November, 27, 16, 55, 2, 114e6, time.UTC); !got[0].Payload.CreatedAt.Equal(want) {
			t.Errorf("createdAt %v, want %v", got[0].Payload.CreatedAt, want)
		}
		checkGolden(t, "native-single", got)
	})
	t.Run("array", func(t *testing.T) {
		got, err := Native(testdataFile(t, "native", "array"), nativeNow, "")
		if err != nil {
			t.Fatal(err)
		}
		checkEvents(t, got, []wantEvent{
			{kubehookv1.Promotion, "acme/web", map[string]any{"targetRepository": "acme/web-prod"}},
			{kubehookv1.PushMirroring, "acme/web", map[string]any{"remoteHost": "mirror.example.com"}},
			{kubehookv1.RepoCreated, "acme/payments", map[string]any{"event": "REPO_CREATED"}},
			{kubehookv1.ScannerUpdateCompleted, "", map[string]any{"db_version": 2.0}},
		})
		// REPO_CREATED has no createdAt: now.
		if !got[2].Payload.CreatedAt.Equal(nativeNow) {
			t.Errorf("default createdAt %v, want %v", got[2].Payload.CreatedAt, nativeNow)
		}
		checkGolden(t, "native-array", got)
	})
}

func TestNativeDetails(t *testing.T) {
	t.Run("createdAt defaults to now, in UTC", func(t *testing.T) {
		local := time.Date(2025, time.November, 28, 10, 30, 0, 0, time.FixedZone("CET", 3600))
		got, err := Native([]byte(`{"type":"REPO_DELETED","contents":{"namespace":"acme","repository":"old","event":"REPO_DELETED","author":"jdoe","data":{}}}`), local, "")
		if err != nil {
			t.Fatal(err)
		}
		if ca := got[0].Payload.CreatedAt; !ca.Equal(local) || ca.Location() != time.UTC {
			t.Errorf("createdAt %v, want %v in UTC", ca, local)
		}
		checkEvents(t, got, []wantEvent{{kubehookv1.RepoDeleted, "acme/old", nil}})
	})
	t.Run("createdAt with an offset is stored in UTC", func(t *testing.T) {
		got, err := Native([]byte(`{"type":"TAG_PUSH","createdAt":"2025-11-28T10:30:00.5+01:00","contents":{"namespace":"acme","repository":"web","tag":"1"}}`), nativeNow, "")
		if err != nil {
			t.Fatal(err)
		}
		if want := time.Date(2025, time.November, 28, 9, 30, 0, 5e8, time.UTC); !got[0].Payload.CreatedAt.Equal(want) {
			t.Errorf("createdAt %v, want %v", got[0].Payload.CreatedAt, want)
		}
	})
	t.Run("null createdAt is absent", func(t *testing.T) {
		got, err := Native([]byte(`{"type":"TAG_PUSH","createdAt":null,"contents":{"namespace":"acme","repository":"web","tag":"1"}}`), nativeNow, "")
		if err != nil {
			t.Fatal(err)
		}
		if !got[0].Payload.CreatedAt.Equal(nativeNow) {
			t.Errorf("createdAt %v, want now", got[0].Payload.CreatedAt)
		}
	})
	t.Run("contents are compacted, not rewritten: unmodelled fields pass", func(t *testing.T) {
		got, err := Native([]byte("{\"type\":\"TAG_PUSH\",\"contents\":{ \"namespace\" : \"acme\",\n \"repository\":\"web\",\"tag\":\"1\",\"extra\":{\"a\":[1, 2]}}}"), nativeNow, "")
		if err != nil {
			t.Fatal(err)
		}
		if want := `{"namespace":"acme","repository":"web","tag":"1","extra":{"a":[1,2]}}`; string(got[0].Payload.Contents) != want {
			t.Errorf("contents %s, want %s", got[0].Payload.Contents, want)
		}
	})
	t.Run("nested repository", func(t *testing.T) {
		got, err := Native([]byte(`[{"type":"MANIFEST_DELETE","contents":{"namespace":"acme","repository":"team/web","digest":"`+webDigest+`"}}]`), nativeNow, "")
		if err != nil {
			t.Fatal(err)
		}
		checkEvents(t, got, []wantEvent{{kubehookv1.ManifestDelete, "acme/team/web", nil}})
	})
}

func TestNativeInputErrors(t *testing.T) {
	tagPush := `{"type":"TAG_PUSH","contents":{"namespace":"acme","repository":"web","tag":"1.4.2"}}`
	cases := []struct {
		name, body, field, msg string
	}{
		{"empty", "  ", "", "empty body"},
		{"not JSON", "TAG_PUSH", "", "malformed JSON"},
		{"scalar", `"TAG_PUSH"`, "", "event object or an array"},
		{"empty array", `[]`, "", "empty array"},
		{"element not an object", `[` + tagPush + `,"TAG_PUSH"]`, "[1]", "JSON object"},
		{"unknown field", `{"type":"TAG_PUSH","location":"/repositories/acme/web/tags/1.4.2","contents":{}}`, "location", "unknown field"},
		{"unknown field in array", `[` + tagPush + `,{"type":"TAG_PUSH","Contents":{}}]`, "[1].Contents", "unknown field"},
		{"no type", `{"contents":{}}`, "type", "required"},
		{"null type", `{"type":null,"contents":{}}`, "type", "required"},
		{"type not a string", `{"type":1,"contents":{}}`, "type", "must be a string"},
		{"unknown type", `{"type":"IMAGE_PUSH","contents":{}}`, "type", `unknown event type "IMAGE_PUSH"`},
		{"lower-case type", `{"type":"tag_push","contents":{}}`, "type", "unknown event type"},
		{"bad createdAt", `{"type":"TAG_PUSH","createdAt":"2025-11-28 09:30","contents":{}}`, "createdAt", "RFC 3339"},
		{"createdAt a number", `{"type":"TAG_PUSH","createdAt":1764322200,"contents":{}}`, "createdAt", "RFC 3339"},
		{"createdAt after 9999 in UTC", `{"type":"TAG_PUSH","createdAt":"9999-12-31T23:00:00-10:00","contents":{}}`, "createdAt", "out of range"},
		{"no contents", `{"type":"TAG_PUSH"}`, "contents", "required"},
		{"contents not an object", `{"type":"TAG_PUSH","contents":[]}`, "contents", "JSON object"},
		{"missing tag in array", `[` + tagPush + `,` + tagPush + `,{"type":"TAG_PUSH","contents":{"namespace":"acme","repository":"web"}}]`, "[2].contents.tag", "required"},
		{"several errors", `{"type":"MANIFEST_PUSH","contents":{"namespace":"acme","digest":7}}`, "contents.repository", "required; contents.digest: must be a string"},
		{"REPO_DELETED with another event", `{"type":"REPO_DELETED","contents":{"namespace":"acme","repository":"web","event":"REPO_CREATED"}}`, "contents.event", "must be REPO_DELETED"},
		{"namespace with a slash", `{"type":"TAG_PUSH","contents":{"namespace":"acme/team","repository":"web","tag":"1"}}`, "contents.namespace", "one path component"},
		{"upper-case repository", `{"type":"TAG_PUSH","contents":{"namespace":"acme","repository":"Web","tag":"1"}}`, "contents.repository", "registry repository name"},
		{"repository with an empty component", `[{"type":"TAG_PUSH","contents":{"namespace":"acme","repository":"web//x","tag":"1"}}]`, "[0].contents.repository", "registry repository name"},
		{"trailing data", tagPush + ` {}`, "", "malformed JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Native([]byte(tc.body), nativeNow, "")
			ie, ok := isInputError(err)
			if !ok {
				t.Fatalf("got %d events, err %v (%T); want an *InputError", len(got), err, err)
			}
			if ie.Field != tc.field || !strings.Contains(ie.Message, tc.msg) {
				t.Errorf("err = %q (field %q), want field %q and a message with %q", err, ie.Field, tc.field, tc.msg)
			}
		})
	}
}
