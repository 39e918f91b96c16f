package sources

// Golden files of the parsers (Distribution, Harbor, Native):
// testdata/golden/<source>-<case>.json holds, as a JSON array, the DTR
// request body (payload.Render, format DTR) of every event a case produces.
// Bodies are compared field by field, key order aside. Regenerate with
//
//	go test ./internal/sources/ -run 'Distribution|Harbor|Native' -update

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/intake"
	"github.com/kubehook/kubehook/internal/payload"
)

func init() {
	// Registered here unless another test file of the package has.
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files under testdata/golden")
	}
}

func updatingGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

const goldenDir = "testdata/golden"

// renderDTRBodies renders evs as the DTR bodies kubehook delivers.
func renderDTRBodies(t *testing.T, evs []intake.Event) []json.RawMessage {
	t.Helper()
	bodies := make([]json.RawMessage, 0, len(evs))
	for i, ev := range evs {
		body, ct, err := payload.Render(kubehookv1.PayloadFormatDTR, ev.Payload, "msg_golden", "kubehook")
		if err != nil {
			t.Fatalf("event %d (%s): render: %v", i, ev.Payload.Type, err)
		}
		if ct != payload.ContentTypeDTR {
			t.Fatalf("event %d: content type %q", i, ct)
		}
		bodies = append(bodies, body)
	}
	return bodies
}

// checkGolden compares the DTR bodies of evs with testdata/golden/<name>.json,
// or writes the file under -update.
func checkGolden(t *testing.T, name string, evs []intake.Event) {
	t.Helper()
	bodies := renderDTRBodies(t, evs)
	file := filepath.Join(goldenDir, name+".json")
	if updatingGolden() {
		data, err := json.MarshalIndent(bodies, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("golden file: %v (run the test with -update to create it)", err)
	}
	var want, got any
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	raw, _ := json.Marshal(bodies)
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	if diffs := jsonDiff("", got, want); len(diffs) > 0 {
		t.Errorf("%s: delivered bodies differ from the golden file (-update rewrites it):\n  %s", file, strings.Join(diffs, "\n  "))
	}
}

// jsonDiff lists the differences between two decoded JSON values, by path.
func jsonDiff(path string, got, want any) []string {
	at := path
	if at == "" {
		at = "$"
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: got %s, want an object", at, short(got))}
		}
		var out []string
		for _, k := range sortedKeysOf(w) {
			if _, ok := g[k]; !ok {
				out = append(out, fmt.Sprintf("%s.%s: missing, want %s", at, k, short(w[k])))
				continue
			}
			out = append(out, jsonDiff(at+"."+k, g[k], w[k])...)
		}
		for _, k := range sortedKeysOf(g) {
			if _, ok := w[k]; !ok {
				out = append(out, fmt.Sprintf("%s.%s: unexpected, got %s", at, k, short(g[k])))
			}
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: got %s, want an array", at, short(got))}
		}
		var out []string
		if len(g) != len(w) {
			out = append(out, fmt.Sprintf("%s: %d elements, want %d", at, len(g), len(w)))
		}
		for i := range min(len(g), len(w)) {
			out = append(out, jsonDiff(fmt.Sprintf("%s[%d]", at, i), g[i], w[i])...)
		}
		return out
	}
	if !reflect.DeepEqual(got, want) {
		return []string{fmt.Sprintf("%s: got %s, want %s", at, short(got), short(want))}
	}
	return nil
}

func short(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 120 {
		return string(b[:117]) + "..."
	}
	return string(b)
}

func sortedKeysOf[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// dtrContentsKeys lists the keys of contents for every event type. For the
// types the DTR document details (reference/dtr-webhooks-api.md, "Content
// structure") they are the document's lists, restated here; the others
// follow package payload's documented choices (the nearest documented
// shape).
var dtrContentsKeys = map[kubehookv1.EventType][]string{
	// Documented.
	kubehookv1.TagPush:                {"namespace", "repository", "tag", "digest", "imageName", "os", "architecture", "author", "pushedAt"},
	kubehookv1.TagDelete:              {"namespace", "repository", "tag", "digest", "imageName", "os", "architecture", "author", "deletedAt"},
	kubehookv1.ManifestPush:           {"namespace", "repository", "digest", "imageName", "os", "architecture", "author"},
	kubehookv1.ManifestDelete:         {"namespace", "repository", "digest", "imageName", "os", "architecture", "author", "deletedAt"},
	kubehookv1.ScanCompleted:          {"namespace", "repository", "tag", "imageName", "scanSummary"},
	kubehookv1.ScanFailed:             {"namespace", "repository", "tag", "imageName", "error"},
	kubehookv1.RepoEvent:              {"namespace", "repository", "event", "author", "data"},
	kubehookv1.RepoCreated:            {"namespace", "repository", "event", "author", "data"},
	kubehookv1.RepoUpdated:            {"namespace", "repository", "event", "author", "data"},
	kubehookv1.RepoDeleted:            {"namespace", "repository", "event", "author", "data"},
	kubehookv1.ScannerUpdateCompleted: {"scanner_version", "scanner_updated_at", "db_version", "db_updated_at", "success", "replicas"},
	// Not detailed by the document: kubehook's shapes.
	kubehookv1.TagPull:       {"namespace", "repository", "tag", "digest", "imageName", "os", "architecture", "author", "pulledAt"},
	kubehookv1.ManifestPull:  {"namespace", "repository", "digest", "imageName", "os", "architecture", "author", "pulledAt"},
	kubehookv1.Promotion:     {"namespace", "repository", "tag", "digest", "imageName", "promotionPolicyID", "targetRepository", "targetTag", "targetImageName", "author", "promotedAt"},
	kubehookv1.PushMirroring: {"namespace", "repository", "tag", "digest", "imageName", "mirroringPolicyID", "remoteHost", "remoteRepository", "remoteTag", "author", "mirroredAt"},
	kubehookv1.PollMirroring: {"namespace", "repository", "tag", "digest", "imageName", "mirroringPolicyID", "remoteHost", "remoteRepository", "remoteTag", "author", "mirroredAt"},
	kubehookv1.ChartPush:     {"namespace", "repository", "chartName", "chartVersion", "digest", "author", "pushedAt"},
	kubehookv1.ChartPull:     {"namespace", "repository", "chartName", "chartVersion", "digest", "author", "pulledAt"},
	kubehookv1.ChartDelete:   {"namespace", "repository", "chartName", "chartVersion", "digest", "author", "deletedAt"},
}

// The documented nested objects: scanSummary of SCAN_COMPLETED, and each
// entry of replicas of SCANNER_UPDATE_COMPLETED.
var (
	dtrScanSummaryKeys = []string{"namespace", "repository", "tag", "critical", "major", "minor", "last_scan_status", "check_completed_at"}
	dtrReplicaKeys     = []string{"db_updated_at", "version", "replica_id"}
	dtrWrapperKeys     = []string{"type", "createdAt", "contents"}
)

// The types each source must show in its golden files.
var goldenMustCover = map[string][]kubehookv1.EventType{
	"distribution": {
		kubehookv1.TagPush, kubehookv1.ManifestPush, kubehookv1.TagPull, kubehookv1.ManifestPull,
		kubehookv1.TagDelete, kubehookv1.ManifestDelete, kubehookv1.RepoDeleted,
		kubehookv1.ChartPush, kubehookv1.ChartPull,
	},
	"harbor": {
		kubehookv1.TagPush, kubehookv1.ManifestPush, kubehookv1.TagPull, kubehookv1.ManifestPull,
		kubehookv1.TagDelete, kubehookv1.ManifestDelete, kubehookv1.ScanCompleted, kubehookv1.ScanFailed,
		kubehookv1.ChartPush,
	},
	"native": kubehookv1.EventTypes,
}

func readGoldenBodies(t *testing.T) map[string][]map[string]any {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files in %s (%v)", goldenDir, err)
	}
	out := map[string][]map[string]any{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var bodies []map[string]any
		if err := json.Unmarshal(data, &bodies); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".json")] = bodies
	}
	return out
}

// TestGoldenBodiesHaveTheDocumentedKeys checks every delivered body of the
// golden files against the DTR document: the wrapper, and the keys of
// contents (and of its documented nested objects) for its type.
func TestGoldenBodiesHaveTheDocumentedKeys(t *testing.T) {
	for name, bodies := range readGoldenBodies(t) {
		for i, body := range bodies {
			at := fmt.Sprintf("%s[%d]", name, i)
			checkKeyList(t, at, body, dtrWrapperKeys)
			typ, _ := body["type"].(string)
			want, ok := dtrContentsKeys[kubehookv1.EventType(typ)]
			if !ok {
				t.Errorf("%s: unknown type %q", at, typ)
				continue
			}
			contents, ok := body["contents"].(map[string]any)
			if !ok {
				t.Errorf("%s: contents is not an object", at)
				continue
			}
			checkKeyList(t, at+".contents", contents, want)
			switch kubehookv1.EventType(typ) {
			case kubehookv1.ScanCompleted:
				sum, _ := contents["scanSummary"].(map[string]any)
				checkKeyList(t, at+".contents.scanSummary", sum, dtrScanSummaryKeys)
			case kubehookv1.ScannerUpdateCompleted:
				replicas, _ := contents["replicas"].(map[string]any)
				for id, r := range replicas {
					entry, _ := r.(map[string]any)
					checkKeyList(t, at+".contents.replicas."+id, entry, dtrReplicaKeys)
				}
			case kubehookv1.RepoEvent, kubehookv1.RepoCreated, kubehookv1.RepoUpdated, kubehookv1.RepoDeleted:
				if _, ok := contents["data"].(map[string]any); !ok {
					t.Errorf("%s.contents.data: not an object", at)
				}
			}
			// And the body is what a receiver can validate.
			raw, _ := json.Marshal(contents)
			if err := payload.Validate(kubehookv1.EventType(typ), raw); err != nil {
				t.Errorf("%s: contents do not validate: %v", at, err)
			}
		}
	}
}

func checkKeyList(t *testing.T, at string, got map[string]any, want []string) {
	t.Helper()
	g, w := sortedKeysOf(got), slices.Sorted(slices.Values(want))
	if !slices.Equal(g, w) {
		t.Errorf("%s: keys %v, DTR document lists %v", at, g, w)
	}
}

// TestGoldenFilesCoverEveryType checks that the golden files show every
// event type each source can produce.
func TestGoldenFilesCoverEveryType(t *testing.T) {
	seen := map[string]map[kubehookv1.EventType]bool{}
	for name, bodies := range readGoldenBodies(t) {
		source, _, _ := strings.Cut(name, "-")
		if seen[source] == nil {
			seen[source] = map[kubehookv1.EventType]bool{}
		}
		for _, b := range bodies {
			typ, _ := b["type"].(string)
			seen[source][kubehookv1.EventType(typ)] = true
		}
	}
	for source, types := range goldenMustCover {
		for _, typ := range types {
			if !seen[source][typ] {
				t.Errorf("no %s golden file shows %s", source, typ)
			}
		}
	}
}

// isInputError reports whether err is an *InputError, and returns it.
func isInputError(err error) (*InputError, bool) {
	var ie *InputError
	ok := errors.As(err, &ie)
	return ie, ok
}
