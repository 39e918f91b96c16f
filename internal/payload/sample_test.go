package payload_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/payload"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestSampleGolden pins the sample payload of every event type, as rendered
// in the DTR format, to testdata/<TYPE>.json (indented). Run with -update to
// rewrite the files after an intended change.
func TestSampleGolden(t *testing.T) {
	for _, typ := range kubehookv1.EventTypes {
		t.Run(string(typ), func(t *testing.T) {
			body, ct, err := payload.Render(kubehookv1.PayloadFormatDTR, payload.Sample(typ), "id", "/source")
			if err != nil {
				t.Fatal(err)
			}
			if ct != "application/json" {
				t.Errorf("content type = %q, want application/json", ct)
			}
			var indented bytes.Buffer
			if err := json.Indent(&indented, body, "", "  "); err != nil {
				t.Fatal(err)
			}
			indented.WriteByte('\n')
			path := filepath.Join("testdata", string(typ)+".json")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, indented.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(indented.Bytes(), want) {
				t.Errorf("sample of %s differs from %s (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", typ, path, indented.Bytes(), want)
			}
			// The body on the wire is the compact form of the golden file.
			var compact bytes.Buffer
			if err := json.Compact(&compact, want); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(body, compact.Bytes()) {
				t.Errorf("rendered body is not the compact golden file:\n%s", body)
			}
		})
	}
}

func TestSampleIsFixed(t *testing.T) {
	for _, typ := range kubehookv1.EventTypes {
		a, b := payload.Sample(typ), payload.Sample(typ)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: two samples differ", typ)
		}
		// A caller that scribbles on one sample does not change the next.
		for i := range a.Contents {
			a.Contents[i] = 'x'
		}
		if c := payload.Sample(typ); !bytes.Equal(c.Contents, b.Contents) {
			t.Errorf("%s: sample contents are shared between calls", typ)
		}
		if b.Type != typ {
			t.Errorf("sample of %s has type %s", typ, b.Type)
		}
		if !b.CreatedAt.Equal(time.Date(2019, 5, 22, 1, 55, 20, 471286995, time.UTC)) {
			t.Errorf("%s: createdAt = %v", typ, b.CreatedAt)
		}
	}
}

func TestSampleIsValid(t *testing.T) {
	for _, typ := range kubehookv1.EventTypes {
		ev := payload.Sample(typ)
		if err := payload.Validate(typ, ev.Contents); err != nil {
			t.Errorf("sample of %s does not validate: %v", typ, err)
		}
		dst := payload.ContentsFor(typ)
		if dst == nil {
			t.Fatalf("ContentsFor(%s) = nil", typ)
		}
		dec := json.NewDecoder(bytes.NewReader(ev.Contents))
		dec.DisallowUnknownFields()
		if err := dec.Decode(dst); err != nil {
			t.Errorf("sample of %s has fields its struct lacks: %v", typ, err)
		}
	}
}

func TestSampleValues(t *testing.T) {
	var tag payload.TagPush
	mustDecode(t, payload.Sample(kubehookv1.TagPush).Contents, &tag)
	want := payload.TagPush{
		Namespace: "foo", Repository: "bar", Tag: "latest",
		Digest:    "sha256:b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c",
		ImageName: "registry.example.com/foo/bar:latest", OS: "linux", Architecture: "amd64",
		Author: "admin", PushedAt: time.Date(2019, 5, 22, 1, 55, 20, 471286995, time.UTC),
	}
	if !reflect.DeepEqual(tag, want) {
		t.Errorf("TAG_PUSH sample = %+v, want %+v", tag, want)
	}
	var repo payload.RepoEvent
	mustDecode(t, payload.Sample(kubehookv1.RepoEvent).Contents, &repo)
	if repo.Event != "REPO_CREATED" {
		t.Errorf("REPO_EVENT sample event = %q, want REPO_CREATED", repo.Event)
	}
	for _, typ := range []kubehookv1.EventType{kubehookv1.RepoCreated, kubehookv1.RepoUpdated, kubehookv1.RepoDeleted} {
		var r payload.RepoEvent
		mustDecode(t, payload.Sample(typ).Contents, &r)
		if r.Event != string(typ) {
			t.Errorf("%s sample event = %q", typ, r.Event)
		}
	}
	for _, typ := range kubehookv1.EventTypes {
		var c struct {
			Digest string `json:"digest"`
		}
		mustDecode(t, payload.Sample(typ).Contents, &c)
		if c.Digest != "" && !isSHA256Digest(c.Digest) {
			t.Errorf("%s sample digest %q is not sha256:<64 hex>", typ, c.Digest)
		}
	}
}

func TestSampleUnknownType(t *testing.T) {
	ev := payload.Sample("NOPE")
	if string(ev.Contents) != "{}" || ev.Type != "NOPE" {
		t.Errorf("Sample(NOPE) = %s %s", ev.Type, ev.Contents)
	}
	if payload.ContentsFor("NOPE") != nil {
		t.Error("ContentsFor(NOPE) is not nil")
	}
}

// documented holds, for the types the DTR document details, the keys of
// contents and their JSON types, copied from reference/dtr-webhooks-api.md
// ("Content structure").
var documented = map[kubehookv1.EventType]map[string]string{
	kubehookv1.TagPush: {
		"namespace": "string", "repository": "string", "tag": "string", "digest": "string",
		"imageName": "string", "os": "string", "architecture": "string", "author": "string",
		"pushedAt": "string",
	},
	kubehookv1.TagDelete: {
		"namespace": "string", "repository": "string", "tag": "string", "digest": "string",
		"imageName": "string", "os": "string", "architecture": "string", "author": "string",
		"deletedAt": "string",
	},
	kubehookv1.ManifestPush: {
		"namespace": "string", "repository": "string", "digest": "string", "imageName": "string",
		"os": "string", "architecture": "string", "author": "string",
	},
	kubehookv1.ManifestDelete: {
		"namespace": "string", "repository": "string", "digest": "string", "imageName": "string",
		"os": "string", "architecture": "string", "author": "string", "deletedAt": "string",
	},
	kubehookv1.ScanCompleted: {
		"namespace": "string", "repository": "string", "tag": "string", "imageName": "string",
		"scanSummary": "object",
	},
	kubehookv1.ScanFailed: {
		"namespace": "string", "repository": "string", "tag": "string", "imageName": "string",
		"error": "string",
	},
	kubehookv1.RepoEvent: {
		"namespace": "string", "repository": "string", "event": "string", "author": "string",
		"data": "object",
	},
	kubehookv1.ScannerUpdateCompleted: {
		"scanner_version": "string", "scanner_updated_at": "string", "db_version": "int",
		"db_updated_at": "string", "success": "bool", "replicas": "object",
	},
}

// documentedNested holds the documented nested objects: scanSummary of
// SCAN_COMPLETED, and each entry of replicas of SCANNER_UPDATE_COMPLETED.
var (
	documentedScanSummary = map[string]string{
		"namespace": "string", "repository": "string", "tag": "string", "critical": "int",
		"major": "int", "minor": "int", "last_scan_status": "int", "check_completed_at": "string",
	}
	documentedReplica = map[string]string{
		"db_updated_at": "string", "version": "string", "replica_id": "string",
	}
)

func TestDocumentedContentsKeys(t *testing.T) {
	// REPO_CREATED, REPO_UPDATED and REPO_DELETED split REPO_EVENT.
	types := map[kubehookv1.EventType]map[string]string{}
	for typ, keys := range documented {
		types[typ] = keys
	}
	for _, typ := range []kubehookv1.EventType{kubehookv1.RepoCreated, kubehookv1.RepoUpdated, kubehookv1.RepoDeleted} {
		types[typ] = documented[kubehookv1.RepoEvent]
	}
	for typ, want := range types {
		t.Run(string(typ), func(t *testing.T) {
			var got map[string]any
			mustDecode(t, payload.Sample(typ).Contents, &got)
			checkKeys(t, "contents", got, want)
			switch typ {
			case kubehookv1.ScanCompleted:
				checkKeys(t, "contents.scanSummary", got["scanSummary"].(map[string]any), documentedScanSummary)
			case kubehookv1.ScannerUpdateCompleted:
				replicas := got["replicas"].(map[string]any)
				if len(replicas) == 0 {
					t.Fatal("sample has no replicas")
				}
				for id, r := range replicas {
					checkKeys(t, "contents.replicas."+id, r.(map[string]any), documentedReplica)
				}
			}
		})
	}
}

// TestContentsKeysAreStructFields checks that every sample, documented or
// not, carries exactly the fields of its contents struct, so the structs
// and the golden files show the whole shape.
func TestContentsKeysAreStructFields(t *testing.T) {
	for _, typ := range kubehookv1.EventTypes {
		var got map[string]any
		mustDecode(t, payload.Sample(typ).Contents, &got)
		st := reflect.TypeOf(payload.ContentsFor(typ)).Elem()
		var want []string
		for i := range st.NumField() {
			name, _, _ := strings.Cut(st.Field(i).Tag.Get("json"), ",")
			want = append(want, name)
		}
		if g := sortedKeys(got); !slices.Equal(g, sorted(want)) {
			t.Errorf("%s: sample keys %v, struct fields %v", typ, g, sorted(want))
		}
	}
}

func TestEventJSON(t *testing.T) {
	zone := time.FixedZone("CEST", 2*60*60)
	ev := payload.Event{
		Type:      kubehookv1.TagPush,
		CreatedAt: time.Date(2012, 4, 23, 20, 25, 43, 511000000, zone),
		Contents:  json.RawMessage(`{"namespace":"foo"}`),
	}
	got, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"TAG_PUSH","createdAt":"2012-04-23T18:25:43.511Z","contents":{"namespace":"foo"}}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	var back payload.Event
	mustDecode(t, got, &back)
	if back.Type != ev.Type || !back.CreatedAt.Equal(ev.CreatedAt) || string(back.Contents) != string(ev.Contents) {
		t.Errorf("round trip: %+v", back)
	}
}

func TestNewEvent(t *testing.T) {
	at := time.Date(2024, 1, 2, 3, 4, 5, 6, time.FixedZone("X", -3600))
	ev, err := payload.NewEvent(kubehookv1.ScanFailed, at, payload.ScanFailed{Namespace: "a", Repository: "b", Error: "boom"})
	if err != nil {
		t.Fatal(err)
	}
	if ev.CreatedAt.Location() != time.UTC || !ev.CreatedAt.Equal(at) {
		t.Errorf("createdAt = %v", ev.CreatedAt)
	}
	if err := payload.Validate(ev.Type, ev.Contents); err != nil {
		t.Error(err)
	}
	if _, err := payload.NewEvent(kubehookv1.TagPush, at, func() {}); err == nil {
		t.Error("NewEvent accepted unmarshallable contents")
	}
}

func checkKeys(t *testing.T, path string, got map[string]any, want map[string]string) {
	t.Helper()
	if g, w := sortedKeys(got), sortedKeys(want); !slices.Equal(g, w) {
		t.Errorf("%s keys = %v, DTR document lists %v", path, g, w)
		return
	}
	for k, kind := range want {
		v := got[k]
		ok := false
		switch kind {
		case "string":
			_, ok = v.(string)
		case "int":
			f, isNum := v.(float64)
			ok = isNum && f == float64(int64(f))
		case "bool":
			_, ok = v.(bool)
		case "object":
			_, ok = v.(map[string]any)
		}
		if !ok {
			t.Errorf("%s.%s = %#v, DTR document says %s", path, k, v, kind)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return sorted(keys)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func mustDecode(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
}

func isSHA256Digest(s string) bool {
	hex, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(hex) != 64 {
		return false
	}
	for _, c := range hex {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}
